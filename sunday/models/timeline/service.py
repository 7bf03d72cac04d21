"""``predict_timeline``: one project's forecast -- expected / best / worst completion dates, risk, main drivers.

    result = predict_timeline(model, {"history": velocity_df, "start_date": ..., "planned_end": ...,
                                      "team_size": 6, "team_capacity_hours": 220})

``history`` is the project's daily ``project_velocity`` series (``event_timestamp`` + the group's columns) up to
today; the cut is its last day. Bad input:

* no history (None / empty) -> :class:`SundayError`;
* a negative value (a negative estimate, backlog, count ...) or a negative ``remaining_points`` -> SundayError;
* NaN / infinite values, duplicated days, missing columns, planned end before start -> SundayError;
* gaps (missing days) -> documented fallback: flows 0, stocks carried forward, and a line in ``warnings``
  (``fill_gaps=False`` raises instead);
* a model output that is not finite (should not happen) -> the burn-down baseline's dates, with a warning.

The dates are always real dates, never NaN: expected = cut + p50, best = cut + p10, worst = cut + p90 (days).
Main drivers: the static features whose replacement by the training mean moves p50 the most (signed days), and the
days of the window the attention weighs most.

At-risk tasks (optional): ``predict_timeline(model, project, tasks=features, task_model=risk_model)`` adds
``at_risk_tasks``, the project's open tasks ranked by P(delayed) of
:class:`sunday.models.timeline.task_risk.TaskDelayRisk` (``features``: rows of
:func:`sunday.models.timeline.task_risk.task_risk_features`; when the project dict names a ``project_id`` and the
frame has that column, only that project's rows). Without them ``at_risk_tasks`` is ``[]``. Bad input: ``tasks``
without ``task_model``, a frame missing a required column, or a missing / non-date due date -> SundayError naming
the field.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.models.timeline.baselines import burndown_forecast
from sunday.models.timeline.data import (
    RISK_CLASSES, SERIES_COLUMNS, STATIC_COLUMNS, WINDOW, Snapshots, clean_history, project_features,
)
from sunday.models.timeline.forecaster import TimelineForecaster

if TYPE_CHECKING:
    from sunday.models.timeline.task_risk import TaskDelayRisk

N_DRIVERS = 3


def _ts(value, name: str) -> pd.Timestamp:
    try:
        t = pd.Timestamp(value)
    except Exception as exc:  # noqa: BLE001
        raise SundayError(f"{name} is not a date: {value!r}") from exc
    if pd.isna(t):
        raise SundayError(f"{name} is missing")
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def project_snapshot(project: Mapping[str, Any], fill_gaps: bool = True) -> tuple[Snapshots, pd.Timestamp, list[str]]:
    """A one-row :class:`Snapshots` for a project dict (see the module docstring), its cut and warnings."""
    hist, warnings = clean_history(project.get("history"), fill_gaps=fill_gaps)
    start = _ts(project.get("start_date", hist.index[0]), "start_date")
    planned = _ts(project.get("planned_end"), "planned_end")
    if planned <= start:
        raise SundayError(f"planned_end ({planned}) must be after start_date ({start})")
    remaining = project.get("remaining_points")
    if remaining is not None:
        if not np.isfinite(float(remaining)) or float(remaining) < 0:
            raise SundayError(f"remaining_points must be a finite number >= 0, got {remaining!r}")
        hist.iloc[-1, hist.columns.get_loc("backlog_points")] = float(remaining)
    size = float(project.get("team_size", 0) or 0)
    cap = float(project.get("team_capacity_hours", 0) or 0)
    if size < 0 or cap < 0:
        raise SundayError("team_size and team_capacity_hours must be >= 0")
    cut = hist.index[-1]
    w, L, s = project_features(hist, cut, start, planned, size, cap)
    meta = pd.DataFrame([{"project_id": project.get("project_id", "project"), "cut": cut + pd.Timedelta(days=1),
                          "start_date": start, "planned_end": planned}])
    return Snapshots(w[None], np.array([L]), s[None], meta), cut + pd.Timedelta(days=1), warnings


def drivers(model: TimelineForecaster, snap: Snapshots, n: int = N_DRIVERS) -> dict[str, Any]:
    """Static features ranked by |change of p50| when set to the training mean, and the top attention days."""
    base = model.predict_quantiles(snap)[0, 1]
    mean = np.array(model.stats_["mean"])
    rows = []
    for j, name in enumerate(STATIC_COLUMNS):
        alt = snap.take([0])
        st = alt.static.copy().astype(np.float64)
        # invert the signed log1p of the training mean so the ablated value is in raw units
        st[0, j] = np.sign(mean[j]) * np.expm1(abs(mean[j]))
        alt.static = st.astype(np.float32)
        q = model.predict_quantiles(alt)[0, 1]
        rows.append({"feature": name, "value": float(snap.static[0, j]), "effect_days": float(base - q)})
    rows.sort(key=lambda r: -abs(r["effect_days"]))
    att = model.attention(snap)[0]
    L = int(snap.length[0])
    cut = snap.meta["cut"].iloc[0]
    top = np.argsort(-att)[:n]
    days = [{"day": str((cut - pd.Timedelta(days=WINDOW - i)).date()), "weight": float(att[i])}
            for i in top if i >= WINDOW - L]
    return {"features": rows[:n], "attention_days": days}


def _check_tasks(tasks: pd.DataFrame | None, task_model: TaskDelayRisk | None) -> None:
    if tasks is None:
        return
    if task_model is None:
        raise SundayError("tasks were given without a task_model (a fitted TaskDelayRisk) to score them")
    from sunday.models.timeline.task_risk import check_task_frame

    check_task_frame(tasks, task_model)


def _at_risk(project: Mapping[str, Any], tasks: pd.DataFrame | None, task_model: TaskDelayRisk | None,
             warnings: list[str]) -> list[dict[str, Any]]:
    """The project's at-risk tasks (see the module docstring); [] when no tasks / task model are given."""
    if tasks is None or task_model is None:
        return []
    from sunday.models.timeline.task_risk import at_risk_tasks

    pid = project.get("project_id")
    if pid is not None and "project_id" in tasks.columns:
        mine = tasks[tasks["project_id"].astype(str) == str(pid)]
        if mine.empty and len(tasks):
            warnings.append(f"no task of project {pid!r} among the {len(tasks)} task rows given")
        tasks = mine
    return at_risk_tasks(task_model, tasks)


def predict_timeline(model: TimelineForecaster, project: Mapping[str, Any], mc_samples: int = 0,
                     fill_gaps: bool = True, tasks: pd.DataFrame | None = None,
                     task_model: TaskDelayRisk | None = None) -> dict[str, Any]:
    """Forecast one project: ``expected`` / ``best`` / ``worst`` (ISO dates), ``p10/p50/p90_days`` from the cut,
    ``risk`` (class -> probability), ``risk_class``, ``delay_days`` (expected vs planned end), ``drivers``,
    ``uncertainty`` (MC-dropout spread of p50 when ``mc_samples``), ``warnings``, ``at_risk_tasks`` (``tasks``:
    task_risk_features rows, ``task_model``: a fitted TaskDelayRisk; [] without them)."""
    if project is None:
        raise SundayError("no project given")
    _check_tasks(tasks, task_model)
    snap, cut, warnings = project_snapshot(project, fill_gaps=fill_gaps)
    q = model.predict_quantiles(snap, mc_samples=mc_samples)[0]
    risk = model.predict_risk(snap, mc_samples=mc_samples)[0]
    if not (np.isfinite(q).all() and np.isfinite(risk).all()):
        i = SERIES_COLUMNS.index
        L = int(snap.length[0])
        q = np.array(burndown_forecast(snap.series[0, -L:, i("tasks_done")], float(snap.series[0, -1, i("backlog_tasks")])))
        risk = np.full(len(RISK_CLASSES), 1.0 / len(RISK_CLASSES))
        warnings.append("the model gave a non-finite forecast; the burn-down baseline's dates are returned")
    planned = snap.meta["planned_end"].iloc[0]
    dates = [cut + pd.Timedelta(days=float(d)) for d in q]
    out = {
        "project_id": snap.meta["project_id"].iloc[0], "as_of": str(cut.date()),
        "expected": str(dates[1].date()), "best": str(dates[0].date()), "worst": str(dates[2].date()),
        "p10_days": float(q[0]), "p50_days": float(q[1]), "p90_days": float(q[2]),
        "planned_end": str(planned.date()), "delay_days": float((dates[1] - planned) / pd.Timedelta(days=1)),
        "risk": {c: float(p) for c, p in zip(RISK_CLASSES, risk)},
        "risk_class": RISK_CLASSES[int(np.argmax(risk))],
        "drivers": drivers(model, snap), "warnings": warnings,
    }
    out["at_risk_tasks"] = _at_risk(project, tasks, task_model, warnings)
    if mc_samples:
        s = model.sample(snap, mc_samples)[:, 0, 1]
        out["uncertainty"] = {"mc_samples": int(mc_samples), "p50_std_days": float(s.std())}
    return out
