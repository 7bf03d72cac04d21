"""What the pipeline knows of each model: how to train it (without registering: the jobs' ``register=False``),
its holdout, its primary metric, how to score and time a model on that holdout, and how to log it to MLflow.

Models (:data:`MODELS`): ``priority_scorer``, ``workload_predictor``, ``notification_ranker``,
``personalization_cf`` (Ray Train), ``task_assignment`` (the feature store), ``project_timeline`` (Ray Train; the
model folder keeps its ``task_risk`` sub-folder) and ``anomaly_lstm_ae`` (Ray Train; NAB under ``SUNDAY_DATA_DIR``,
not the simulation: :data:`NO_SIMULATION`). Ray Train models train in process when the context says
``use_ray=False``.

Each train function returns :class:`Trained`: the model folder, the holdout (pickled by the runner so that the
later steps resume without retraining) and the training metrics. The champion is loaded from the registry with
the same ``load`` and scored with the same ``score`` on the same holdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

LATENCY_ROWS = 256  # the fixed holdout batch the latency probe predicts on


@dataclass
class TrainContext:
    sim: str
    profile: str
    seed: int
    settings: dict[str, Any]     # this model's training settings (profile + overrides)
    use_ray: bool = True
    num_workers: int = 2
    log: Callable[..., Any] = print


@dataclass
class Trained:
    model_dir: Path
    holdout: Any
    metrics: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    name: str                 # registered model name
    metric: str               # primary (gate) metric
    higher_is_better: bool
    train: Callable[[Any, TrainContext], Trained]
    load: Callable[[Path], Any]
    score: Callable[[Any, Any], float]                 # (model, holdout) -> metric
    probe: Callable[[Any, Any], Callable[[], Any]]     # (model, holdout) -> one predict call on the fixed batch
    pyfunc: Callable[[], Any]                          # the MLflow python model instance
    example: Callable[[Any], Any]                      # (holdout) -> input example (or None)
    threshold: Callable[[dict[str, float]], float | None]  # (training metrics) -> gate min_metric
    threshold_doc: str
    deployment: str | None    # the Serve deployment serving it
    # trains through Ray Train when the context says use_ray (a callable: given the model's training settings)
    ray_train: bool | Callable[[dict[str, Any]], bool] = False

    def trains_on_ray(self, settings: dict[str, Any]) -> bool:
        return bool(self.ray_train(settings) if callable(self.ray_train) else self.ray_train)


def _config(cls, values: dict[str, Any]):
    from sunday.jobs import settings_from

    return settings_from(cls, values, cls.__name__)


def _probe(method: str, rows: str) -> Callable[[Any, Any], Callable[[], Any]]:
    """``(model, holdout) -> call``: ``model.<method>`` on the holdout's first :data:`LATENCY_ROWS` rows of
    ``holdout[rows]`` (a dict holdout) or ``holdout.<rows>`` (an object)."""

    def make(model: Any, holdout: Any) -> Callable[[], Any]:
        frame = holdout[rows] if isinstance(holdout, dict) else getattr(holdout, rows)
        batch = frame.head(LATENCY_ROWS)
        predict = getattr(model, method)
        return lambda: predict(batch)

    return make


# -- priority_scorer ---------------------------------------------------------------------------------------------

def _train_priority(settings, ctx: TrainContext) -> Trained:
    from sunday.models.priority.job import train_and_register
    from sunday.models.priority.scorer import PriorityConfig

    r = train_and_register(settings, ctx.sim, _config(PriorityConfig, ctx.settings), 0.7, register=False)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds)


def _score_priority(model, h) -> float:
    from sunday.evaluation.priority_sim import metrics

    p = model.predict_proba(h["X"])
    return float(metrics(h["y"], p.argmax(axis=1), p[:, 2:].sum(axis=1))["macro_f1"])


def _priority_spec() -> ModelSpec:
    from sunday.models.priority.scorer import PriorityScorer, pyfunc_class

    return ModelSpec(
        "priority_scorer", "macro_f1", True, _train_priority, PriorityScorer.load, _score_priority,
        _probe("predict_proba", "X"), lambda: pyfunc_class()(),
        lambda h: h["X"].iloc[:5].drop(columns=["created_at", "as_of"]).reset_index(drop=True),
        lambda m: m.get("majority_macro_f1"), "the majority class's macro-F1", "Personalization")


# -- workload_predictor ------------------------------------------------------------------------------------------

def _train_workload(settings, ctx: TrainContext) -> Trained:
    from sunday.models.workload.job import train_and_register
    from sunday.models.workload.predictor import WorkloadConfig

    r = train_and_register(settings, ctx.sim, _config(WorkloadConfig, ctx.settings), 0.7, register=False)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds)


def _score_workload(model, h) -> float:
    from sunday.evaluation.workload_sim import regression_metrics

    return float(regression_metrics(h["X"]["y_truth"].to_numpy(), model.predict(h["X"]), "truth")["mae_truth"])


def _workload_example(h):
    from sunday.models.workload.features import FEATURES

    return h["X"][["user_id"] + list(FEATURES)].iloc[:5].reset_index(drop=True)


def _workload_spec() -> ModelSpec:
    from sunday.models.workload.predictor import WorkloadPredictor, pyfunc_class

    return ModelSpec(
        "workload_predictor", "mae_truth", False, _train_workload, WorkloadPredictor.load, _score_workload,
        _probe("predict", "X"), lambda: pyfunc_class()(),
        _workload_example, lambda m: m.get("cap_util_mae_truth"), "the capacity x mean-utilisation rule's MAE",
        "Personalization")


# -- notification_ranker -----------------------------------------------------------------------------------------

def _train_notify(settings, ctx: TrainContext) -> Trained:
    from sunday.models.personalization.notifications_job import NotifyJobConfig, train_and_register

    job = _config(NotifyJobConfig, {"sim_name": ctx.sim, "seed": ctx.seed, **ctx.settings, "register": False})
    r = train_and_register(settings, job, log=ctx.log)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds, {"source": r.source})


def _score_notify(model, h) -> float:
    from sunday.models.personalization.notifications import ips_relevance, ndcg_at_k

    test = h["test"]
    pos = test["position"].to_numpy()
    rel = ips_relevance(test["clicked"].to_numpy(), pos, h["propensity"])
    return float(ndcg_at_k(test["session_id"].to_numpy(), model.predict(test), rel, 10, tiebreak=pos,
                           pooled=True)[0])


def _notify_spec() -> ModelSpec:
    from sunday.models.personalization.notifications import FEATURES, NotificationRanker, _pyfunc_class

    return ModelSpec(
        "notification_ranker", "ndcg_10_ips", True, _train_notify, NotificationRanker.load, _score_notify,
        _probe("predict", "test"), lambda: _pyfunc_class()(),
        lambda h: h["test"][FEATURES].head(5).reset_index(drop=True),
        lambda m: m.get("logged_order_ndcg_10_ips"), "the logged (newest-first) order's NDCG@10", "Personalization")


# -- personalization_cf (Ray Train) --------------------------------------------------------------------------------

def _train_cf(settings, ctx: TrainContext) -> Trained:
    from sunday.models.personalization.cf import CFConfig
    from sunday.models.personalization.cf_mlflow import CfJobConfig, train_and_register

    job = CfJobConfig(model=_config(CFConfig, {"seed": ctx.seed, **ctx.settings}), sim=ctx.sim,
                      use_ray=ctx.use_ray, num_workers=ctx.num_workers, register=False)
    r = train_and_register(settings, job, log=ctx.log)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds,
                   {"trainer": "ray" if ctx.use_ray else "local", "num_workers": ctx.num_workers})


def _score_cf(model, h) -> float:
    from sunday.evaluation.cf_sim import evaluate_tasks, model_ranker

    return float(evaluate_tasks(h, {"cf": model_ranker(model, h)}, 10)["cf"]["ndcg@10"])


def _cf_probe(model, h):
    users = [str(u) for u in h.test["user_id"].unique()[:4]]
    return lambda: [model.recommend(u, k=10) for u in users]


def _cf_example(h):
    import pandas as pd

    known = [str(u) for u in h.test["user_id"].unique()[:2]]
    frame = pd.DataFrame({"user_id": [*known, "new-user"],
                          "workspace_id": [None] * len(known) + [str(h.items["workspace_id"].iloc[0])]})
    return frame, {"k": 10}


def _cf_spec() -> ModelSpec:
    from sunday.models.personalization.cf import CFRecommender
    from sunday.models.personalization.cf_mlflow import _pyfunc_class

    return ModelSpec(
        "personalization_cf", "ndcg_at_10", True, _train_cf, CFRecommender.load, _score_cf, _cf_probe,
        lambda: _pyfunc_class()(), _cf_example, lambda m: m.get("popularity_ndcg_at_10"),
        "the popularity ranker's NDCG@10", "Personalization", ray_train=True)


# -- task_assignment -----------------------------------------------------------------------------------------------

def _train_assignment(settings, ctx: TrainContext) -> Trained:
    from sunday.models.assignment.train import TrainConfig, train_assignment

    values = dict(ctx.settings)
    profile = values.pop("profile", ctx.profile)
    # the job's own settings (neural: the multi-objective network through Ray Train, max_tasks, deepspeed, ...);
    # the rest are LightGBM's
    job = {k: values.pop(k) for k in ("neural", "max_tasks", "holdout", "deepspeed", "zero_stage", "use_gpu")
           if k in values}
    config = TrainConfig(sim_name=ctx.sim, profile=profile, seed=ctx.seed, register=False,
                         trainer="ray" if ctx.use_ray else "local", num_workers=ctx.num_workers,
                         lgbm_overrides=values, **job)
    r = train_assignment(settings, config, log=ctx.log)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds)


def _score_assignment(model, hold) -> float:
    from sunday.models.assignment.metrics import evaluate

    return float(evaluate(model, hold)["mrr"])


def _assignment_spec() -> ModelSpec:
    from sunday.models.assignment.mlflow_model import AssignmentPyfunc
    from sunday.models.assignment.ranker import AssignmentRanker

    return ModelSpec(
        "task_assignment", "mrr", True, _train_assignment, AssignmentRanker.load, _score_assignment,
        _probe("predict_frame", "pairs"), AssignmentPyfunc,
        lambda hold: None, lambda m: m.get("baseline_least_loaded_mrr"), "the least-loaded rule's MRR", "Assignment",
        ray_train=lambda settings: bool(settings.get("neural")))  # the network (neural=true) trains on Ray Train


# -- project_timeline (Ray Train) ----------------------------------------------------------------------------------

TIMELINE_PROBE_ROWS = 32  # the fixed holdout snapshots the timeline's latency probe forecasts


def _train_timeline(settings, ctx: TrainContext) -> Trained:
    """The LSTM forecaster (and its task delay-risk model, the ``task_risk`` sub-folder the Serve Timeline
    deployment loads) on the simulation's snapshots; Ray Train workers when the context says ``use_ray``.
    Settings: ``cut_every`` / ``holdout`` (the job's) and any :class:`TimelineConfig` field (``epochs``, ...)."""
    from sunday.models.timeline.train import TimelineTrainConfig, train_timeline

    values = dict(ctx.settings)
    job = {k: values.pop(k) for k in ("cut_every", "holdout", "task_risk") if k in values}
    config = TimelineTrainConfig(sim_name=ctx.sim, profile=ctx.profile, seed=ctx.seed, register=False,
                                 trainer="ray" if ctx.use_ray else "local", num_workers=ctx.num_workers,
                                 overrides=values, **job)
    r = train_timeline(settings, config, log=ctx.log)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds,
                   {"trainer": config.trainer, "num_workers": ctx.num_workers if ctx.use_ray else 1,
                    "n_train_projects": r.n_train_projects, "n_holdout_projects": r.n_holdout_projects,
                    "n_train_snapshots": r.n_train_snapshots, "n_holdout_snapshots": r.n_holdout_snapshots})


def _score_timeline(model, hold) -> float:
    from sunday.models.timeline.train import GATE_METRIC, model_metrics

    return float(model_metrics(model, hold)[GATE_METRIC])


def _timeline_probe(model, hold):
    batch = hold.take(list(range(min(TIMELINE_PROBE_ROWS, len(hold)))))
    return lambda: model.predict_quantiles(batch)


def _timeline_example(hold):
    from sunday.models.timeline.mlflow_model import input_frame, snapshot_project

    return input_frame([snapshot_project(hold, 0)])


def _timeline_spec() -> ModelSpec:
    from sunday.models.timeline.forecaster import TimelineForecaster
    from sunday.models.timeline.mlflow_model import TimelinePyfunc
    from sunday.models.timeline.train import GATE_METRIC, MODEL_NAME

    return ModelSpec(
        MODEL_NAME, GATE_METRIC, False, _train_timeline, TimelineForecaster.load, _score_timeline, _timeline_probe,
        TimelinePyfunc, _timeline_example, lambda m: m.get("burndown_mae_days"),
        "the burn-down baseline's MAE (days)", "Timeline", ray_train=True)


# -- anomaly_lstm_ae (Ray Train; NAB data, not the simulation) -------------------------------------------------------

def _train_ae(settings, ctx: TrainContext) -> Trained:
    """The LSTM autoencoder on NAB's normal history (``settings.data_dir / 'nab'``, not the pipeline's simulation);
    Ray Train workers when the context says ``use_ray``. Settings: ``holdout`` (the job's share of held-out series)
    and any :class:`AeTrainConfig` field (``epochs``, ``max_windows``, ...)."""
    from sunday.models.anomaly.lstm_ae import AeTrainConfig
    from sunday.models.anomaly.lstm_ae_mlflow import AeJobConfig, train_and_register

    values = dict(ctx.settings)
    holdout = values.pop("holdout", 0.1)
    model = _config(AeTrainConfig, {"seed": ctx.seed, **values})
    job = AeJobConfig(model=model, use_ray=ctx.use_ray, num_workers=ctx.num_workers, holdout=holdout,
                      register=False)
    r = train_and_register(settings, job, log=ctx.log)
    return Trained(r.model_dir, r.holdout, r.metrics, r.seconds,
                   {"trainer": "ray" if ctx.use_ray else "local", "num_workers": ctx.num_workers if ctx.use_ray else 1,
                    "n_train_series": r.n_train_series, "n_holdout_series": r.n_holdout_series,
                    "n_windows": r.n_windows, "data": "nab-probationary"})


def _score_ae(model, hold) -> float:
    from sunday.models.anomaly.lstm_ae_mlflow import holdout_windows

    return float(model.reconstruction_mse(holdout_windows(hold, model.config)))


def _ae_series(hold):
    import numpy as np
    import pandas as pd

    first = sorted(hold)[0]
    return pd.DataFrame({"value": np.asarray(hold[first][:LATENCY_ROWS], np.float64)})


def _ae_probe(model, hold):
    from sunday.models.anomaly.lstm_ae_mlflow import _predict

    frame = _ae_series(hold)  # the pyfunc's call: a fresh detector scores the first held-out series' first points
    return lambda: _predict(model, frame)


def _ae_spec() -> ModelSpec:
    from sunday.models.anomaly.lstm_ae import LstmAutoencoder
    from sunday.models.anomaly.lstm_ae_mlflow import BASELINE_METRIC, GATE_METRIC, MODEL_NAME, _pyfunc_class

    return ModelSpec(
        MODEL_NAME, GATE_METRIC, False, _train_ae, LstmAutoencoder.load, _score_ae, _ae_probe,
        lambda: _pyfunc_class()(), lambda h: _ae_series(h).head(200), lambda m: m.get(BASELINE_METRIC),
        "the flat (window-mean) reconstruction's MSE", None, ray_train=True)


_BUILDERS: dict[str, Callable[[], ModelSpec]] = {
    "priority_scorer": _priority_spec, "workload_predictor": _workload_spec, "notification_ranker": _notify_spec,
    "personalization_cf": _cf_spec, "task_assignment": _assignment_spec, "project_timeline": _timeline_spec,
    "anomaly_lstm_ae": _ae_spec,
}
MODELS: tuple[str, ...] = tuple(_BUILDERS)
NEEDS_FEATURES = {"task_assignment"}  # reads the feature store (the others read the simulation's tables)
NO_SIMULATION = {"anomaly_lstm_ae"}   # trains on a public data set (NAB under SUNDAY_DATA_DIR), not the simulation


def missing_data(name: str, settings) -> str | None:
    """Why ``name`` cannot train here (its public data set is absent), else None. A run of every model (no
    ``--models``) skips such a model and says so; naming it explicitly makes its absence an error verdict."""
    if name == "anomaly_lstm_ae":
        folder = Path(settings.data_dir) / "nab" / "data"
        if not folder.is_dir():
            return f"NAB series folder {folder} is missing (set SUNDAY_DATA_DIR)"
    return None


def get_spec(name: str) -> ModelSpec:
    from sunday.errors import SundayError

    if name not in _BUILDERS:
        raise SundayError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    return _BUILDERS[name]()
