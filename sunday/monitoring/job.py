"""The scheduled drift monitor: for each monitored model, reference vs recent rows -> drift table -> MLflow +
Prometheus -> retraining when the drift passes the threshold.

For each model (``MonitorConfig.models``):

1. **current** rows: the prediction log's rows of the model's most recently served version in the last
   ``window_hours`` (:mod:`sunday.monitoring.predictions`), or what a custom :data:`Source` gives (e.g. recent
   feature-store rows of a model whose inputs are feature groups);
2. **reference**: the version's saved training reference (:func:`sunday.monitoring.reference.save_reference`), else
   the first ``baseline_rows`` rows that version served (the current window then starts after them);
3. the drift table (:func:`sunday.monitoring.drift.compute_drift`: PSI + KS / chi-square per column, drift share);
4. an MLflow run in experiment ``monitoring`` (metrics ``drift_share``, ``max_psi``, ``n_drifted``,
   ``psi.<column>``, ``p_value.<column>``; artifacts ``drift_table.csv`` and the HTML report, Evidently's when it
   works) and Prometheus gauges: the textfile ``<home>/monitoring/metrics.prom`` (for node_exporter's textfile
   collector) and, inside Ray, ``ray.util.metrics.Gauge`` ``sunday_drift_score{model=...}``;
5. when the model drifts (drift share > ``DriftConfig.share_threshold``) and its last trigger is older than
   ``cooldown_hours``: ``sunday.pipeline.run_pipeline(settings, PipelineConfig(models=[model], profile=...,
   reason="drift: ..."))``. ``trigger=False`` (``--dry-run``) only records what it would start.

Scheduling (``train_jobs/monitor.py``): a cron line such as ::

    */30 * * * * cd /srv/sunday && SUNDAY_HOME=/srv/sunday/.sunday .venv/bin/python train_jobs/monitor.py \\
        >> /srv/sunday/.sunday/logs/monitor.log 2>&1

or a long-running loop: ``python train_jobs/monitor.py --every 30`` (also as a Ray job: ``ray job submit ...``).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from sunday.errors import SundayError
from sunday.monitoring.drift import DriftConfig, DriftReport, compute_drift
from sunday.monitoring.predictions import LOGGED_ENDPOINTS, META_COLUMNS, PredictionLog, default_prediction_log

DEFAULT_MODELS = tuple(LOGGED_ENDPOINTS.values())
EXPERIMENT = "monitoring"

# a custom source: (settings, model, now, config) -> (reference, current, version, description)
Source = Callable[[Any, str, float, "MonitorConfig"], tuple[pd.DataFrame, pd.DataFrame, "str | None", str]]
# what starts retraining: (settings, model, reason, profile) -> a dict recorded with the result
Trigger = Callable[[Any, str, str, str], dict]


@dataclass(frozen=True)
class MonitorConfig:
    models: tuple[str, ...] = DEFAULT_MODELS
    window_hours: float = 24.0  # the current window: rows logged in the last window_hours
    min_rows: int = 100  # fewer current (or reference) rows: the model is skipped this time
    baseline_rows: int = 500  # serving baseline size when a version has no saved training reference
    max_rows: int = 50_000  # at most this many of the window's latest rows are compared
    drift: DriftConfig = field(default_factory=DriftConfig)
    trigger: bool = True  # False: dry run, record the pipeline call that would start
    profile: str = "quick"  # the pipeline profile a drift starts
    sim: str | None = None  # the simulation (event log) it retrains on; None: the profile's
    cooldown_hours: float = 24.0  # at most one drift-triggered pipeline per model in this period
    html: bool = True
    keep_reports: int = 48  # HTML reports kept per model (Evidently's are ~4 MB each); older ones are deleted
    evidently: bool = True  # False: always the fallback HTML table
    mlflow: bool = True
    experiment: str = EXPERIMENT

    def __post_init__(self) -> None:
        if isinstance(self.models, str) or not self.models:
            raise SundayError(f"MonitorConfig.models: a non-empty list of model names, got {self.models!r}")
        object.__setattr__(self, "models", tuple(self.models))
        if not self.window_hours > 0:
            raise SundayError(f"MonitorConfig.window_hours: must be > 0, got {self.window_hours!r}")
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise SundayError(f"MonitorConfig.min_rows: must be an integer >= 1, got {self.min_rows!r}")
        if not isinstance(self.baseline_rows, int) or self.baseline_rows < 1:
            raise SundayError(f"MonitorConfig.baseline_rows: must be an integer >= 1, got {self.baseline_rows!r}")
        if not isinstance(self.max_rows, int) or self.max_rows < self.min_rows:
            raise SundayError(f"MonitorConfig.max_rows: must be an integer >= min_rows, got {self.max_rows!r}")
        if not isinstance(self.keep_reports, int) or self.keep_reports < 1:
            raise SundayError(f"MonitorConfig.keep_reports: must be an integer >= 1, got {self.keep_reports!r}")
        if self.cooldown_hours < 0:
            raise SundayError(f"MonitorConfig.cooldown_hours: must be >= 0, got {self.cooldown_hours!r}")
        if not isinstance(self.drift, DriftConfig):
            raise SundayError("MonitorConfig.drift: must be a DriftConfig")


@dataclass
class ModelDrift:
    model: str
    status: str  # ok | drift | skipped | error
    version: str | None = None
    reference: str = ""  # where the reference came from
    reason: str = ""
    report: DriftReport | None = None
    run_id: str | None = None
    html: str | None = None
    html_engine: str | None = None
    html_note: str = ""
    trigger: dict | None = None

    def line(self) -> str:
        head = f"{self.model}" + (f" v{self.version}" if self.version else "")
        if self.report is None:
            return f"{head}: {self.status} ({self.reason})"
        out = f"{head}: {self.report.line()} [reference: {self.reference}]"
        if self.trigger is not None:
            out += f" -> pipeline: {self.trigger.get('status')}"
        return out

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "report"}
        if self.report is not None:
            d["summary"] = self.report.summary()
            d["table"] = json.loads(self.report.table().to_json(orient="records"))
        return d


@dataclass
class MonitorResult:
    models: list[ModelDrift]
    started_at: float
    seconds: float
    prom_path: str | None = None

    def lines(self) -> list[str]:
        return [m.line() for m in self.models]

    def to_dict(self) -> dict:
        return {"started_at": self.started_at, "seconds": self.seconds, "prom_path": self.prom_path,
                "models": [m.to_dict() for m in self.models]}


# -- frames --------------------------------------------------------------------------------------------------------

def log_frames(settings, log: PredictionLog, model: str, now: float, config: MonitorConfig
               ) -> tuple[pd.DataFrame, pd.DataFrame, str | None, str]:
    """(reference, current, version, reference description) from the prediction log and the saved reference."""
    from sunday.monitoring.reference import load_reference, serving_baseline

    versions = log.versions(model)
    if not versions:
        return pd.DataFrame(), pd.DataFrame(), None, "no predictions logged"
    version = versions[-1]
    since = now - config.window_hours * 3600
    current = log.read(model, since=since, until=now, version=version, limit=config.max_rows, oldest_first=False)
    saved = load_reference(settings, model, version)
    if saved is not None:
        return saved[0], current, version, f"training reference v{version}"
    base = serving_baseline(log, model, version, config.baseline_rows)
    if len(base) < config.baseline_rows:  # the baseline is still filling: nothing to compare yet
        return base, current.iloc[0:0], version, f"serving baseline ({len(base)}/{config.baseline_rows} rows)"
    if not current.empty:
        current = current[current["id"] > base["id"].max()]
    return base, current, version, f"serving baseline (first {len(base)} rows of v{version})"


# -- outputs -------------------------------------------------------------------------------------------------------

_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


def _metric_key(prefix: str, name: str) -> str:
    return f"{prefix}.{_METRIC_NAME.sub('_', name)}"[:250]


def log_mlflow(settings, config: MonitorConfig, m: ModelDrift, now: float) -> str:
    import mlflow

    from sunday import tracking

    rep = m.report
    assert rep is not None
    tags = {"model": m.model, "version": str(m.version), "reference": m.reference,
            "drifted": str(rep.drifted).lower()}
    with tracking.run(settings, config.experiment, run_name=f"drift-{m.model}", tags=tags) as active:
        mlflow.log_params({"window_hours": config.window_hours, "psi_threshold": config.drift.psi_threshold,
                           "p_value": config.drift.p_value, "share_threshold": config.drift.share_threshold,
                           "bins": config.drift.bins})
        s = rep.summary()
        metrics = {"drift_share": s["drift_share"], "drifted": float(s["drifted"]), "n_drifted": s["n_drifted"],
                   "n_features": s["n_features"], "max_psi": s["max_psi"], "rows_reference": s["rows_reference"],
                   "rows_current": s["rows_current"]}
        for f in rep.checked:
            if f.psi is not None and math.isfinite(f.psi):
                metrics[_metric_key("psi", f.feature)] = f.psi
            if f.p_value is not None and math.isfinite(f.p_value):
                metrics[_metric_key("p_value", f.feature)] = f.p_value
        mlflow.log_metrics(metrics, step=int(now))
        mlflow.log_text(rep.table().to_csv(index=False), "drift_table.csv")
        mlflow.log_dict(s, "drift_summary.json")
        if m.html:
            mlflow.log_artifact(m.html, "report")
        return active.info.run_id


def prom_path(settings) -> Path:
    return Path(settings.home) / "monitoring" / "metrics.prom"


def _label(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def prometheus_text(results: list[ModelDrift], now: float) -> str:
    """Prometheus text exposition of the drift gauges."""
    done = [(_label(m.model), _label(str(m.version)), m.report) for m in results if m.report is not None]
    lines = ["# HELP sunday_drift_score Share of monitored columns that drifted (PSI and test) per model.",
             "# TYPE sunday_drift_score gauge"]
    lines += [f'sunday_drift_score{{model="{m}",version="{v}"}} {r.drift_share:.6g}' for m, v, r in done]
    lines += ["# HELP sunday_drift_detected 1 when the model's drift share passed the threshold.",
              "# TYPE sunday_drift_detected gauge"]
    lines += [f'sunday_drift_detected{{model="{m}"}} {int(r.drifted)}' for m, _, r in done]
    lines += ["# HELP sunday_drift_max_psi Largest column PSI per model.", "# TYPE sunday_drift_max_psi gauge"]
    lines += [f'sunday_drift_max_psi{{model="{m}"}} {r.max_psi:.6g}' for m, _, r in done]
    lines += ["# HELP sunday_feature_psi PSI of one column against the reference.",
              "# TYPE sunday_feature_psi gauge"]
    lines += [f'sunday_feature_psi{{model="{m}",feature="{_label(f.feature)}"}} {f.psi:.6g}'
              for m, _, r in done for f in r.checked if f.psi is not None and math.isfinite(f.psi)]
    lines += ["# HELP sunday_drift_rows Rows compared per model and window.", "# TYPE sunday_drift_rows gauge"]
    for m, _, r in done:
        lines.append(f'sunday_drift_rows{{model="{m}",window="reference"}} {r.rows_reference}')
        lines.append(f'sunday_drift_rows{{model="{m}",window="current"}} {r.rows_current}')
    lines += ["# HELP sunday_drift_last_run_timestamp_seconds When the drift monitor last ran.",
              "# TYPE sunday_drift_last_run_timestamp_seconds gauge",
              f"sunday_drift_last_run_timestamp_seconds {now:.0f}"]
    return "\n".join(lines) + "\n"


def write_prom(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)  # the textfile collector never reads half a file


_GAUGES: dict[str, Any] = {}


def ray_gauges(results: list[ModelDrift]) -> bool:
    """``sunday_drift_score{model}`` / ``sunday_drift_max_psi{model}`` as Ray metrics when Ray is initialised."""
    try:
        import ray

        if not ray.is_initialized():
            return False
        from ray.util.metrics import Gauge

        if not _GAUGES:
            _GAUGES["score"] = Gauge("sunday_drift_score", description="share of drifted columns",
                                     tag_keys=("model",))
            _GAUGES["max_psi"] = Gauge("sunday_drift_max_psi", description="largest column PSI", tag_keys=("model",))
        for m in results:
            if m.report is not None:
                _GAUGES["score"].set(m.report.drift_share, tags={"model": m.model})
                _GAUGES["max_psi"].set(m.report.max_psi, tags={"model": m.model})
        return True
    except Exception:
        return False


# -- the trigger ---------------------------------------------------------------------------------------------------

def start_pipeline(settings, model: str, reason: str, profile: str, sim: str | None = None) -> dict:
    """Retrain ``model`` through the pipeline, on simulation ``sim`` (None: the profile's), and wait for its
    verdict (imported here: the pipeline is optional for the monitor)."""
    try:
        from sunday.pipeline import PipelineConfig, run_pipeline
    except ImportError as exc:
        return {"status": "pipeline not available", "error": f"{type(exc).__name__}: {exc}"}
    out = run_pipeline(settings, PipelineConfig(models=[model], profile=profile, reason=reason, sim=sim))
    v = out.verdicts.get(model)
    return {"status": "started", "pipeline_run": out.run_id, "ok": out.ok, "verdict": v and v.status,
            "version": v and v.version, "line": v and v.line}


def _state_path(settings) -> Path:
    return Path(settings.home) / "monitoring" / "triggers.json"


def _read_state(settings) -> dict:
    try:
        return json.loads(_state_path(settings).read_text())
    except (OSError, ValueError):
        return {}


def _trigger(settings, config: MonitorConfig, m: ModelDrift, now: float, fn: Trigger | None) -> dict:
    rep = m.report
    assert rep is not None
    top = ", ".join(f"{f.feature} PSI {f.psi:.2f}" for f in sorted(
        (f for f in rep.features if f.drifted), key=lambda f: -(f.psi or 0))[:5])
    reason = (f"drift: {m.model} v{m.version} share {rep.drift_share:.2f} > {config.drift.share_threshold:.2f} "
              f"({top})")
    state = _read_state(settings)
    last = state.get(m.model, {}).get("last_trigger")
    if last is not None and now - float(last) < config.cooldown_hours * 3600:
        return {"status": "cooldown", "reason": reason, "last_trigger": last}
    if not config.trigger:
        return {"status": "dry-run", "reason": reason, "would_call": f"run_pipeline(models=[{m.model!r}], "
                f"profile={config.profile!r})"}
    try:
        if fn is None:
            out = start_pipeline(settings, m.model, reason, config.profile, config.sim)
        else:
            out = fn(settings, m.model, reason, config.profile)
    except Exception as exc:
        out = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    out = {"reason": reason, **out}
    if out.get("status") == "started":
        state[m.model] = {"last_trigger": now, "reason": reason}
        path = _state_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(state, indent=2))
    return out


# -- the job -------------------------------------------------------------------------------------------------------

def monitor_model(settings, config: MonitorConfig, model: str, now: float, log: PredictionLog | None,
                  source: Source | None, trigger_fn: Trigger | None) -> ModelDrift:
    if source is not None:
        reference, current, version, ref_desc = source(settings, model, now, config)
    else:
        assert log is not None
        reference, current, version, ref_desc = log_frames(settings, log, model, now, config)
    m = ModelDrift(model, "skipped", version, ref_desc)
    if len(reference) < config.min_rows or len(current) < config.min_rows:
        m.reason = (f"too few rows: {len(reference)} reference ({ref_desc}), {len(current)} current in the last "
                    f"{config.window_hours:g} h (need {config.min_rows})")
        return m
    exclude = set(META_COLUMNS) | {"event_timestamp", "created_at", "user_id", "task_id", "project_id",
                                   "workspace_id", "team_id"}
    m.report = compute_drift(reference, current, config.drift, exclude=exclude)
    m.status = "drift" if m.report.drifted else "ok"
    if config.html:
        from sunday.monitoring.report import write_html

        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        path = Path(settings.home) / "monitoring" / "reports" / model / f"{stamp}.html"
        out = write_html(reference, current, m.report, path, f"Drift of {model} v{version}", config.evidently)
        m.html, m.html_engine, m.html_note = str(out.path), out.engine, out.note
        for old in sorted(path.parent.glob("*.html"))[:-config.keep_reports]:
            old.unlink(missing_ok=True)
    if config.mlflow:
        m.run_id = log_mlflow(settings, config, m, now)
    if m.report.drifted:
        m.trigger = _trigger(settings, config, m, now, trigger_fn)
    return m


def run_monitor(settings, config: MonitorConfig | None = None, log: PredictionLog | None = None,
                now: float | None = None, sources: dict[str, Source] | None = None,
                trigger_fn: Trigger | None = None) -> MonitorResult:
    """One pass of the monitor over ``config.models`` (see the module docstring). ``sources``: custom frames per
    model; ``trigger_fn``: what starts retraining (default :func:`start_pipeline`). Errors of one model are
    recorded (status ``error``) and do not stop the others."""
    config = config or MonitorConfig()
    t0 = time.time()
    now = t0 if now is None else float(now)
    sources = sources or {}
    own_log = log is None and any(mdl not in sources for mdl in config.models)
    if own_log:
        log = default_prediction_log(settings)
    results: list[ModelDrift] = []
    try:
        for model in config.models:
            try:
                results.append(monitor_model(settings, config, model, now, log, sources.get(model), trigger_fn))
            except Exception as exc:
                results.append(ModelDrift(model, "error", reason=f"{type(exc).__name__}: {exc}",
                                          html_note=traceback.format_exc(limit=3)))
    finally:
        if own_log and log is not None:
            log.close()
    path = prom_path(settings)
    write_prom(path, prometheus_text(results, now))
    ray_gauges(results)
    return MonitorResult(results, t0, time.time() - t0, str(path))


__all__ = ["MonitorConfig", "MonitorResult", "ModelDrift", "run_monitor", "monitor_model", "log_frames",
           "prometheus_text", "write_prom", "start_pipeline", "prom_path", "DEFAULT_MODELS", "Source", "Trigger"]
