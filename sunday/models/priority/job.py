"""Training, MLflow logging, registration and the champion gate of ``priority_scorer``
(what ``train_jobs/priority.py`` runs).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

from sunday.jobs import JobResult

MODEL_NAME = "priority_scorer"
EXPERIMENT = "priority-scorer"
GATE_METRIC = "macro_f1"  # higher is better


def train_and_register(settings, sim: str, config, train_fraction: float, register: bool) -> JobResult:
    from sunday import tracking
    from sunday.data.simulator.writer import read_simulation
    from sunday.evaluation.priority_sim import evaluate_priority, metrics
    from sunday.features.platform import simulation_path
    from sunday.models.priority.scorer import PriorityScorer, pyfunc_class

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tables = read_simulation(simulation_path(settings, sim))
    seconds["read"] = time.perf_counter() - t0
    r = evaluate_priority(tables, config, train_fraction=train_fraction)
    seconds["features"], seconds["fit"] = r["data_s"], r["fit_s"]
    by = {x["row"]: x for x in r["rows"]}
    m = by["xgboost"]
    metric_values = {k: m[k] for k in ("accuracy", "macro_f1", "qwk", "auc_high")}
    for name, key in (("majority", "majority-class"), ("reporter", "reporter-commonest"),
                      ("rule", "rule(slack,pick-up)")):
        metric_values.update({f"{name}_{k}": by[key][k] for k in ("accuracy", "macro_f1", "qwk", "auc_high")})
    model_dir = r["model"].save(Path(tempfile.mkdtemp(prefix="priority-")) / "model")
    X_test, y_test = r["X_test"], r["y_test"]

    run_id = version = promotion = None
    if register:
        import mlflow

        with tracking.run(settings, EXPERIMENT, run_name="priority-xgboost", tags={"sim": sim}) as active:
            run_id = active.info.run_id
            mlflow.log_params(tracking.flat_params(config, "model."))
            mlflow.log_params({"sim": sim, "train_fraction": train_fraction, "split_at": r["split_at"],
                               "n_train": r["n_train"], "n_test": r["n_test"]})
            mlflow.log_metrics({k: float(v) for k, v in metric_values.items() if v is not None and math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            mlflow.log_dict({"example": r["example"], "per_class_f1": r["per_class_f1"]}, "explanation.json")
            example = X_test.iloc[:5].drop(columns=["created_at", "as_of"]).reset_index(drop=True)
            def holdout_f1(model: PriorityScorer) -> float:
                p = model.predict_proba(X_test)
                return metrics(y_test, p.argmax(axis=1), p[:, 2:].sum(axis=1))[GATE_METRIC]

            info, version, promotion = tracking.register_and_promote(
                model_dir, pyfunc_class()(), MODEL_NAME, GATE_METRIC, metric_values[GATE_METRIC], PriorityScorer.load,
                holdout_f1, higher_is_better=True, input_example=example)
            loaded = mlflow.pyfunc.load_model(info.model_uri)  # the logged model loads back and predicts
            if list(loaded.predict(example)["priority"]) != list(r["model"].predict(example)):
                raise RuntimeError("the logged priority model does not reproduce the trained model's predictions")
    return JobResult(metric_values, run_id, version, promotion, model_dir, r["rows"], r["example"], seconds,
                     holdout={"X": X_test, "y": y_test})
