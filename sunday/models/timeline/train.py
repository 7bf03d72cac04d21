"""Train, evaluate, log and register the project timeline forecaster (the logic behind ``train_jobs/timeline.py``).

1. Snapshots of a simulated workspace written under the state folder (``simulation_path`` + ``read_simulation`` ->
   :func:`~sunday.models.timeline.data.build_snapshots`, a cut every ``cut_every`` days plus the early-warning
   cut), split by *project*: a ``holdout`` share of the projects is held out, none of their snapshots is trained on.
2. :class:`~sunday.models.timeline.forecaster.TimelineForecaster` on the other projects (in process, or Ray Train
   DDP / DeepSpeed workers with ``trainer="ray"``).
3. Holdout metrics of the model and of both baselines (burn-down, Monte Carlo) on the same snapshots, with the
   evaluation's own :func:`sunday.evaluation.timeline.metrics`; logged with the params, the per-epoch loss and the
   model (pyfunc, :mod:`.mlflow_model`) to MLflow; registered as ``project_timeline``, aliased ``challenger``, and
   moved to ``champion`` only when its holdout MAE (days, lower is better) beats the current champion re-scored on
   the same holdout snapshots.

Flags: the model flags a project as late (>= 7 days) when P(major delay) + P(at risk) >= 0.5 and as at risk
(>= 21 days) when P(at risk) >= 0.5; a baseline flags it when its p50 lands that many days past the planned end --
the rules of the ``timeline`` evaluation.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sunday.errors import SundayError

MODEL_NAME = "project_timeline"
EXPERIMENT = "project-timeline"
GATE_METRIC = "mae_days"  # lower is better
MIN_PROJECTS = 10  # eligible projects a simulation needs (holdout + calibration slice + training)
BASELINES = {"burndown": "burn-down", "monte_carlo": "Monte Carlo"}

PROFILES: dict[str, dict[str, Any]] = {  # snapshot cadence and TimelineConfig settings
    "quick": {"cut_every": 4, "epochs": 25},
    "full": {"cut_every": 2, "epochs": 40, "refit": True},
}
#: settings the job's own flags own (``--seed``, ``--num-workers``, ``--gpu``, ``--deepspeed``, ``--zero-stage``)
FLAG_SETTINGS = {"seed": "--seed", "num_workers": "--num-workers", "use_gpu": "--gpu", "deepspeed": "--deepspeed",
                 "zero_stage": "--zero-stage"}


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the TimelineConfig default, or SundayError naming the setting."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if kind is int:
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if not np.isfinite(out):
                raise ValueError
            return out
    except (TypeError, ValueError):
        raise SundayError(f"timeline setting {name!r} must be {kind.__name__}, got {value!r}") from None
    return value


def validate_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Check ``overrides`` against :class:`TimelineConfig`'s fields and types; returns them coerced."""
    from sunday.models.timeline.forecaster import TimelineConfig

    if not isinstance(overrides, dict):
        raise SundayError(f"timeline settings must be a JSON object of name -> value, got {type(overrides).__name__}")
    defaults = TimelineConfig()
    known = TimelineConfig.__dataclass_fields__
    out = {}
    for k, v in overrides.items():
        if k not in known:
            settable = sorted(set(known) - set(FLAG_SETTINGS))
            raise SundayError(f"unknown timeline setting {k!r}; known: {', '.join(settable)}")
        if k in FLAG_SETTINGS:
            raise SundayError(f"timeline setting {k!r} is set by the job's {FLAG_SETTINGS[k]} flag, not --params")
        out[k] = _coerce(k, v, getattr(defaults, k))
    checks = {"hidden": lambda v: v >= 1, "static_hidden": lambda v: v >= 1, "epochs": lambda v: v >= 1,
              "batch_size": lambda v: v >= 1, "threads": lambda v: v >= 1, "lr": lambda v: v > 0,
              "weight_decay": lambda v: v >= 0, "risk_weight": lambda v: v >= 0, "target_scale": lambda v: v > 0,
              "dropout": lambda v: 0 <= v < 1, "calibration_fraction": lambda v: 0 <= v < 1}
    for k, v in out.items():
        if k in checks and not checks[k](v):
            raise SundayError(f"timeline setting {k!r} is out of range: {v!r}")
    return out


@dataclass
class TimelineTrainConfig:
    sim_name: str = "demo"
    profile: str = "quick"
    holdout: float = 0.3  # share of the eligible *projects* held out
    cut_every: int | None = None  # days between snapshot cuts; None: the profile's
    trainer: str = "local"  # "local" (in process) or "ray" (Ray Train TorchTrainer)
    num_workers: int = 2
    use_gpu: bool = False
    deepspeed: bool = False
    zero_stage: int = 1
    register: bool = True
    task_risk: bool = True  # also fit the task-level delay-risk model (at-risk tasks) into the model folder
    model_name: str = MODEL_NAME
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)  # TimelineConfig settings (e.g. the sweep's best)

    def __post_init__(self) -> None:
        from sunday.jobs import check_training_flags

        check_training_flags(self.profile, PROFILES, self.trainer, self.holdout, self.num_workers, self.zero_stage)
        if self.cut_every is not None and self.cut_every < 1:
            raise SundayError(f"--cut-every must be at least 1 day, got {self.cut_every}")
        if (self.deepspeed or self.use_gpu) and self.trainer == "local":
            self.trainer = "ray"  # DeepSpeed and GPU workers are Ray Train's: asking for them picks that trainer
        self.overrides = validate_overrides(dict(self.overrides or {}))

    @property
    def resolved_cut_every(self) -> int:
        return int(self.cut_every if self.cut_every is not None else PROFILES[self.profile]["cut_every"])

    def model_config(self):
        """The :class:`TimelineConfig`: defaults <- profile <- the job's flags <- ``overrides``."""
        from sunday.models.timeline.forecaster import TimelineConfig

        prof = {k: v for k, v in PROFILES[self.profile].items() if k in TimelineConfig.__dataclass_fields__}
        return TimelineConfig(**{**prof, "seed": self.seed, "num_workers": self.num_workers,
                                 "use_gpu": self.use_gpu, "deepspeed": self.deepspeed,
                                 "zero_stage": self.zero_stage, **self.overrides})


@dataclass
class TimelineTrainResult:
    metrics: dict[str, float]  # model: mae_days, coverage_p10_p90, ...; baselines: burndown_*, monte_carlo_*
    run_id: str | None
    version: str | None
    promotion: Any
    model_dir: Path
    model: Any  # the fitted TimelineForecaster
    n_train_projects: int
    n_holdout_projects: int
    n_train_snapshots: int
    n_holdout_snapshots: int
    seconds: dict[str, float]
    holdout: Any = None  # the held-out Snapshots
    history: list = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """One row per forecaster (model, burn-down, Monte Carlo) with the holdout metrics."""
        keys = [k for k in self.metrics if not k.startswith(tuple(f"{b}_" for b in BASELINES))]
        out = [{"row": "lstm-forecaster", **{k: self.metrics[k] for k in keys}}]
        for b, label in BASELINES.items():
            out.append({"row": label, **{k: self.metrics[f"{b}_{k}"] for k in keys if f"{b}_{k}" in self.metrics}})
        return out


# -- data ---------------------------------------------------------------------------------------------------------

TASK_RISK_DIR = "task_risk"  # sub-folder of the model folder holding the TaskDelayRisk model


def fit_task_risk(settings, config: TimelineTrainConfig):
    """The task-level delay-risk model (:class:`~sunday.models.timeline.task_risk.TaskDelayRisk`) on every
    completed task of the simulation (labels from observable completion events vs due dates)."""
    from sunday.data.simulator.writer import read_simulation
    from sunday.features.platform import simulation_path
    from sunday.models.timeline.task_risk import TaskDelayRisk

    return TaskDelayRisk().fit(read_simulation(simulation_path(settings, config.sim_name)))


def load_task_risk(model_dir: Path):
    """The TaskDelayRisk saved beside a forecaster (None for a model folder without one)."""
    from sunday.models.timeline.task_risk import TaskDelayRisk

    path = Path(model_dir) / TASK_RISK_DIR
    return TaskDelayRisk.load(path) if path.exists() else None


def load_snapshots(settings, config: TimelineTrainConfig):
    """All snapshots of simulation ``config.sim_name`` (state folder); SundayError when it is missing or has fewer
    than :data:`MIN_PROJECTS` eligible projects."""
    from sunday.data.simulator.writer import read_simulation
    from sunday.features.platform import simulation_path
    from sunday.models.timeline.data import build_snapshots

    tables = read_simulation(simulation_path(settings, config.sim_name))
    snap = build_snapshots(tables, cut_every=config.resolved_cut_every)
    n = int(snap.meta["project_id"].nunique()) if len(snap) else 0
    if n < MIN_PROJECTS:
        raise SundayError(f"simulation '{config.sim_name}' has only {n} eligible project(s) (planned end at least "
                          f"14 days before the last event, known completion); the timeline forecaster needs at "
                          f"least {MIN_PROJECTS}: simulate more events")
    return snap


def load_data(settings, config: TimelineTrainConfig):
    """(train, holdout) Snapshots: ``config.holdout`` of the projects (seed ``config.seed``) held out."""
    from sunday.models.timeline.data import split_projects

    snap = load_snapshots(settings, config)
    tr, te = split_projects(snap, config.holdout, seed=config.seed)
    return snap.take(tr), snap.take(te)


# -- metrics ------------------------------------------------------------------------------------------------------

def days_to_planned_end(snap) -> np.ndarray:
    return (snap.meta["planned_end"] - snap.meta["cut"]).dt.total_seconds().to_numpy() / 86400


def model_metrics(model, snap) -> dict[str, float]:
    """The evaluation's metrics of a fitted forecaster on ``snap``."""
    from sunday.evaluation.timeline import metrics

    q = model.predict_quantiles(snap)
    risk = model.predict_risk(snap)
    return metrics(q, snap, risk[:, 2:].sum(1) >= 0.5, risk[:, 3] >= 0.5)


def baseline_metrics(snap) -> dict[str, float]:
    """Burn-down and Monte Carlo on ``snap``, keys prefixed ``burndown_`` / ``monte_carlo_``."""
    from sunday.evaluation.timeline import metrics
    from sunday.models.timeline.baselines import forecast_snapshots
    from sunday.models.timeline.data import LATE_DAYS, RISK_EDGES

    to_end = days_to_planned_end(snap)
    out: dict[str, float] = {}
    for method in BASELINES:
        q = forecast_snapshots(snap, method)
        delay = q[:, 1] - to_end
        out.update({f"{method}_{k}": v for k, v in metrics(q, snap, delay >= LATE_DAYS,
                                                            delay >= RISK_EDGES[2]).items()})
    return out


def holdout_metrics(model, snap) -> dict[str, float]:
    m = model_metrics(model, snap)
    m.update(baseline_metrics(snap))
    for method in BASELINES:
        base = m[f"{method}_mae_days"]
        m[f"mae_vs_{method}"] = m["mae_days"] / base if base > 0 else float("nan")
    return m


# -- the job ------------------------------------------------------------------------------------------------------

def train_timeline(settings, config: TimelineTrainConfig, log=print) -> TimelineTrainResult:
    from sunday import tracking
    from sunday.models.timeline.forecaster import TimelineForecaster

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    train, hold = load_data(settings, config)
    seconds["data"] = time.perf_counter() - t0
    n_tr, n_ho = int(train.meta["project_id"].nunique()), int(hold.meta["project_id"].nunique())
    log(f"snapshots: {len(train):,} of {n_tr} training projects, {len(hold):,} of {n_ho} holdout projects "
        f"({config.holdout:.0%} of the projects; a cut every {config.resolved_cut_every} days)")
    if config.trainer == "ray":
        from sunday.runtime import ensure_ray

        ensure_ray(settings)
    t0 = time.perf_counter()
    model = TimelineForecaster(config.model_config(), trainer=config.trainer).fit(train)
    seconds["fit"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics = holdout_metrics(model, hold)
    seconds["evaluate"] = time.perf_counter() - t0
    model_dir = Path(tempfile.mkdtemp(prefix="timeline-")) / "model"
    model.save(model_dir)
    if config.task_risk:
        t0 = time.perf_counter()
        task_model = fit_task_risk(settings, config)
        task_model.save(model_dir / TASK_RISK_DIR)
        seconds["task_risk_fit"] = time.perf_counter() - t0
        log(f"task delay-risk model (flags at-risk tasks inside a project): fit on "
            f"{task_model.n_rows_:,} snapshots of {task_model.n_tasks_:,} tasks in {seconds['task_risk_fit']:.1f} s")

    run_id = version = promotion = None
    if config.register:
        import mlflow

        from sunday.models.timeline.mlflow_model import TimelinePyfunc, input_frame, snapshot_project

        with tracking.run(settings, EXPERIMENT, run_name=f"timeline-{config.profile}",
                          tags={"sim": config.sim_name, "trainer": config.trainer,
                                "deepspeed": str(config.deepspeed)}) as active:
            run_id = active.info.run_id
            mlflow.log_params(tracking.flat_params(config))
            mlflow.log_params(tracking.flat_params(model.config, "model."))
            mlflow.log_params({"cut_every_days": config.resolved_cut_every, "n_train_projects": n_tr,
                               "n_holdout_projects": n_ho, "n_train_snapshots": len(train),
                               "n_holdout_snapshots": len(hold)})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            mlflow.log_metric("conformal_offset_days", model.conformal_ * model.config.target_scale)
            for row in model.history_:
                if "epoch" in row:  # local trainer: one row per epoch
                    mlflow.log_metrics({f"train_{k}": float(v) for k, v in row.items()
                                        if isinstance(v, (int, float)) and k != "epoch"}, step=int(row["epoch"]))
                else:  # Ray Train: the final epoch's report + the fit time
                    final = row.get("final") or {}
                    mlflow.log_metrics({f"train_{k}": float(v) for k, v in final.items()
                                        if isinstance(v, (int, float)) and k != "epoch"},
                                       step=int(final.get("epoch", 0)))
                    if "fit_s" in row:
                        mlflow.log_metric("ray_train_fit_s", float(row["fit_s"]))
            example = input_frame([snapshot_project(hold, 0)])  # documents the input; MLflow infers the signature
            info = tracking.log_model_folder(model_dir, TimelinePyfunc(), input_example=example)
            version = tracking.register(info.model_uri, config.model_name,
                                        tags={"gate_metric": GATE_METRIC, "higher_is_better": "false"})

            def score_version(v: str) -> float:
                with tempfile.TemporaryDirectory() as tmp:
                    champ = TimelineForecaster.load(tracking.download_version(config.model_name, v, Path(tmp)))
                    return model_metrics(champ, hold)[GATE_METRIC]

            promotion = tracking.promote(config.model_name, version, metrics[GATE_METRIC], GATE_METRIC,
                                         score_version, higher_is_better=False)
            tracking.log_promotion(promotion)
    return TimelineTrainResult(metrics, run_id, version, promotion, model_dir, model, n_tr, n_ho, len(train),
                               len(hold), seconds, holdout=hold, history=list(model.history_))
