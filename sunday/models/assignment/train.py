"""Train, evaluate, log and register the task-assignment model (the logic behind ``train_jobs/assignment.py``).

1. Pairs from a simulated workspace's log + the feature store (:mod:`.dataset`), split by time: the latest
   ``holdout`` share of decisions is the holdout.
2. :class:`AssignmentRanker` (LambdaMART; plus the multi-objective network when ``neural`` is on, trained in
   process or with Ray Train / DeepSpeed) on the rest.
3. Holdout metrics (:mod:`.metrics`), logged with the params and the model to MLflow; the model is registered as
   ``task_assignment``, aliased ``challenger``, and moved to ``champion`` only when it beats the current champion
   on the same holdout (the champion is re-scored on it) by the gate metric.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sunday.errors import SundayError

MODEL_NAME = "task_assignment"
EXPERIMENT = "task-assignment"
GATE_METRIC = "mrr"

PROFILES = {  # decisions used (None: all), LightGBM trees, network epochs
    "quick": {"max_tasks": 2500, "n_estimators": 200, "epochs": 8},
    "full": {"max_tasks": None, "n_estimators": 400, "epochs": 30},
}


@dataclass
class TrainConfig:
    sim_name: str = "demo"
    profile: str = "quick"
    holdout: float = 0.2
    neural: bool = False
    trainer: str = "ray"  # for the network: "ray" (Ray Train TorchTrainer) or "local"
    num_workers: int = 2
    use_gpu: bool = False
    deepspeed: bool = False
    zero_stage: int = 2
    register: bool = True
    model_name: str = MODEL_NAME
    seed: int = 0
    max_tasks: int | None = None  # overrides the profile
    lgbm_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from sunday.jobs import check_training_flags

        check_training_flags(self.profile, PROFILES, self.trainer, self.holdout, self.num_workers, self.zero_stage)
        if self.deepspeed and not self.neural:
            self.neural = True  # DeepSpeed trains the network: asking for it turns the network on


@dataclass
class TrainResult:
    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model_dir: Path
    ranker: Any
    n_train_tasks: int
    n_holdout_tasks: int
    seconds: dict[str, float]
    holdout: Any = None  # the AssignmentData held out


def ranker_config(config: TrainConfig):
    from sunday.models.assignment.lgbm import LambdaMARTConfig
    from sunday.models.assignment.ranker import RankerConfig

    prof = PROFILES[config.profile]
    lgbm = LambdaMARTConfig(n_estimators=prof["n_estimators"], seed=config.seed)
    for k, v in config.lgbm_overrides.items():
        if not hasattr(lgbm, k):
            raise SundayError(f"unknown LightGBM setting {k!r}")
        setattr(lgbm, k, v)
    neural = None
    if config.neural:
        from sunday.models.assignment.neural import NeuralRankerConfig

        neural = NeuralRankerConfig(epochs=prof["epochs"], seed=config.seed, num_workers=config.num_workers,
                                    use_gpu=config.use_gpu, deepspeed=config.deepspeed, zero_stage=config.zero_stage)
    return RankerConfig(lgbm=lgbm, neural=neural, neural_trainer=config.trainer)


def load_data(settings, config: TrainConfig):
    from sunday.models.assignment.dataset import from_simulation, time_split

    max_tasks = config.max_tasks if config.max_tasks is not None else PROFILES[config.profile]["max_tasks"]
    data = from_simulation(settings, config.sim_name, max_tasks=max_tasks, seed=config.seed)
    if data.n_tasks < 20:
        raise SundayError(f"simulation '{config.sim_name}' has only {data.n_tasks} assignment decisions; "
                          f"simulate more events")
    return time_split(data, config.holdout)


def fit_ranker(train, config: TrainConfig):
    from sunday.models.assignment.ranker import AssignmentRanker

    return AssignmentRanker(ranker_config(config)).fit(train.pairs, train.assigned, train.completed, train.quality,
                                                         hours=train.hours)


def train_assignment(settings, config: TrainConfig, log=print) -> TrainResult:
    from sunday import tracking
    from sunday.models.assignment.metrics import evaluate

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train, hold = load_data(settings, config)
    seconds["data"] = time.perf_counter() - t0
    log(f"pairs: {train.n_tasks:,} training decisions ({len(train.pairs):,} pairs), "
        f"{hold.n_tasks:,} holdout decisions (latest {config.holdout:.0%})")
    t0 = time.perf_counter()
    ranker = fit_ranker(train, config)
    seconds["fit"] = time.perf_counter() - t0
    metrics = evaluate(ranker, hold)
    metrics.update({f"baseline_{k}": v for k, v in _baselines(hold).items()})
    seconds["evaluate"] = time.perf_counter() - t0 - seconds["fit"]
    model_dir = Path(tempfile.mkdtemp(prefix="assignment-")) / "model"
    ranker.save(model_dir)

    run_id = version = promotion = None
    if config.register:
        with tracking.run(settings, EXPERIMENT, run_name=f"assignment-{config.profile}",
                          tags={"sim": config.sim_name, "trainer": config.trainer if config.neural else "lightgbm",
                                "deepspeed": str(config.deepspeed)}) as active:
            run_id = active.info.run_id
            import mlflow

            mlflow.log_params(tracking.flat_params(config))
            mlflow.log_params(tracking.flat_params(ranker.config.lgbm, "lgbm."))
            mlflow.log_params({"n_train_tasks": train.n_tasks, "n_holdout_tasks": hold.n_tasks,
                               "n_train_pairs": len(train.pairs)})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            mlflow.log_dict(ranker.lgbm_.feature_importance(), "feature_importance.json")
            if ranker.neural_ is not None and getattr(ranker.neural_, "history_", None):
                for epoch, row in enumerate(ranker.neural_.history_):
                    mlflow.log_metrics({f"neural_{k}": float(v) for k, v in row.items()
                                        if isinstance(v, (int, float)) and k != "epoch"}, step=epoch)
            from sunday.models.assignment.mlflow_model import AssignmentPyfunc

            info = tracking.log_model_folder(model_dir, AssignmentPyfunc(),
                                             input_example=None)
            version = tracking.register(info.model_uri, config.model_name, tags={"gate_metric": GATE_METRIC})

            def score_version(v: str) -> float:
                from sunday.models.assignment.ranker import AssignmentRanker

                with tempfile.TemporaryDirectory() as tmp:
                    champ = AssignmentRanker.load(tracking.download_version(config.model_name, v, Path(tmp)))
                    return evaluate(champ, hold)[GATE_METRIC]

            promotion = tracking.promote(config.model_name, version, metrics[GATE_METRIC], GATE_METRIC,
                                         score_version)
            tracking.log_promotion(promotion)
    return TrainResult(metrics, run_id, version, promotion, model_dir, ranker, train.n_tasks, hold.n_tasks, seconds,
                       holdout=hold)


def _baselines(hold) -> dict[str, float]:
    """Holdout top-1/MRR of rules run on the same rows: least-loaded and skill-only (observable features)."""
    import numpy as np

    from sunday.models.assignment.metrics import ranking_metrics
    from sunday.models.assignment.pairs import pair_features

    X = pair_features(hold.pairs)
    tasks = hold.pairs["task_id"].to_numpy()
    out = {}
    least = -np.nan_to_num(X["open_points"].to_numpy(), nan=0.0)
    skill = np.nan_to_num(X["skill_match"].to_numpy(), nan=-1.0) + 1e-3 * least
    for name, s in (("least_loaded", least), ("skill_only", skill)):
        m = ranking_metrics(tasks, s, hold.assigned)
        out[f"{name}_top1"] = m["top1"]
        out[f"{name}_mrr"] = m["mrr"]
    return out
