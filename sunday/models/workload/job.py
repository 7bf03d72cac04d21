"""Training, MLflow logging, registration and the champion gate of ``workload_predictor``
(what ``train_jobs/workload.py`` runs).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from sunday.jobs import JobResult

MODEL_NAME = "workload_predictor"
EXPERIMENT = "workload-predictor"
GATE_METRIC = "mae_truth"  # hours, lower is better


def train_and_register(settings, sim: str, config, train_fraction: float, register: bool) -> JobResult:
    from sunday import tracking
    from sunday.data.simulator.writer import read_simulation
    from sunday.evaluation.workload_sim import evaluate_workload, regression_metrics
    from sunday.features.platform import simulation_path
    from sunday.models.workload.features import FEATURES
    from sunday.models.workload.predictor import WorkloadPredictor, pyfunc_class

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tables = read_simulation(simulation_path(settings, sim))
    seconds["read"] = time.perf_counter() - t0
    r = evaluate_workload(tables, config, train_fraction=train_fraction, backends=(config.backend,))
    seconds["features"] = r["data_s"]
    seconds["fit"] = r["fit_s"][config.backend]
    by = {x["row"]: x for x in r["rows"]}
    keys = ("mae_truth", "rmse_truth", "r2_truth", "mae_logged", "rmse_logged", "r2_logged")
    metric_values = {k: by[config.backend][k] for k in keys}
    for name, key in (("logged_trained", f"{config.backend} (trained on logged)"), ("last_week", "last-week-logged"),
                      ("mean_4w", "mean-4-weeks-logged"), ("cap_util", "capacity x mean-utilisation")):
        metric_values.update({f"{name}_{k}": by[key][k] for k in keys})
    model_dir = r["model"].save(Path(tempfile.mkdtemp(prefix="workload-")) / "model")
    X_test = r["X_test"]

    run_id = version = promotion = None
    if register:
        import mlflow

        with tracking.run(settings, EXPERIMENT, run_name=f"workload-{config.backend}", tags={"sim": sim}) as active:
            run_id = active.info.run_id
            mlflow.log_params(tracking.flat_params(config, "model."))
            mlflow.log_params({"sim": sim, "train_fraction": train_fraction, "split_at": r["split_at"],
                               "n_train": r["n_train"], "n_test": r["n_test"]})
            mlflow.log_metrics({k: float(v) for k, v in metric_values.items() if v is not None and math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            mlflow.log_dict({"example": r["example"]}, "explanation.json")
            example = X_test[["user_id"] + list(FEATURES)].iloc[:5].reset_index(drop=True)
            def holdout_mae(model: WorkloadPredictor) -> float:
                return regression_metrics(X_test["y_truth"].to_numpy(), model.predict(X_test), "truth")[GATE_METRIC]

            info, version, promotion = tracking.register_and_promote(
                model_dir, pyfunc_class()(), MODEL_NAME, GATE_METRIC, metric_values[GATE_METRIC],
                WorkloadPredictor.load, holdout_mae, higher_is_better=False, input_example=example)
            loaded = mlflow.pyfunc.load_model(info.model_uri)  # the logged model loads back and predicts
            if abs(loaded.predict(example)["hours"].to_numpy() - r["model"].predict(example)).max() > 1e-4:
                raise RuntimeError("the logged workload model does not reproduce the trained model's predictions")
    return JobResult(metric_values, run_id, version, promotion, model_dir, r["rows"], r["example"], seconds,
                     holdout={"X": X_test})
