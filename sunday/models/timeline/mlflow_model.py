"""The project timeline forecaster as an MLflow pyfunc model: what the registry stores and serving loads.

Input: a DataFrame with one column ``project``, one row per project; each value is the JSON text (or the dict) of
the project dict :func:`~sunday.models.timeline.service.predict_timeline` accepts, its ``history`` given as a list
of day records (``{"event_timestamp": "2024-01-01T23:59:59Z", "tasks_created": 3, ...}``) or as a column -> values
mapping. :func:`project_json` / :func:`input_frame` turn project dicts holding a history DataFrame into that.

Output: one row per input row, in order: ``project_id``, ``as_of``, ``expected`` / ``best`` / ``worst`` (ISO
dates), ``p10_days`` / ``p50_days`` / ``p90_days`` (days from the cut), ``planned_end``, ``delay_days``,
``risk_class``, ``risk_<class>`` probabilities, ``drivers`` and ``warnings`` (JSON text). A bad project (no history,
negative values, ...) raises :class:`~sunday.errors.SundayError` naming its row.

``unwrap_python_model().model`` gives the :class:`TimelineForecaster` itself.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

import mlflow.pyfunc
import pandas as pd

from sunday.errors import SundayError

INPUT_COLUMN = "project"


def project_json(project: Mapping[str, Any]) -> str:
    """The JSON text of one project dict (a ``history`` DataFrame becomes a list of day records)."""
    out = dict(project)
    hist = out.get("history")
    if isinstance(hist, pd.DataFrame):
        h = hist.copy()
        for c in h.columns:
            if pd.api.types.is_datetime64_any_dtype(h[c]):
                h[c] = h[c].map(lambda t: None if pd.isna(t) else pd.Timestamp(t).isoformat())
        out["history"] = h.to_dict(orient="records")
    return json.dumps(out, default=lambda v: pd.Timestamp(v).isoformat() if hasattr(v, "isoformat") else str(v))


def input_frame(projects: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The pyfunc's input for project dicts."""
    return pd.DataFrame({INPUT_COLUMN: [project_json(p) for p in projects]})


def snapshot_project(snap, i: int = 0) -> dict[str, Any]:
    """A project dict (the service's input) rebuilt from snapshot ``i`` of a :class:`Snapshots`: the window's days
    as the history (ending the day before ``cut``), the dates and team figures of the snapshot. An input example
    and a test helper; the service recomputes the features from it (totals only see the window's days)."""
    from sunday.models.timeline.data import SERIES_COLUMNS, STATIC_COLUMNS

    L = int(snap.length[i])
    meta = snap.meta.iloc[i]
    days = pd.date_range(end=pd.Timestamp(meta["cut"]) - pd.Timedelta(days=1), periods=L, freq="D")
    hist = pd.DataFrame(snap.series[i, snap.series.shape[1] - L:].astype(float), columns=list(SERIES_COLUMNS))
    hist.insert(0, "event_timestamp", (days + pd.Timedelta(hours=23, minutes=59, seconds=59)).tz_localize("UTC"))
    static = dict(zip(STATIC_COLUMNS, snap.static[i].tolist()))
    return {"project_id": str(meta["project_id"]), "history": hist, "start_date": pd.Timestamp(meta["start_date"]),
            "planned_end": pd.Timestamp(meta["planned_end"]), "team_size": float(static["team_size"]),
            "team_capacity_hours": float(static["team_capacity_hours"])}


def _project(value: Any, row: int) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SundayError(f"row {row}: '{INPUT_COLUMN}' is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise SundayError(f"row {row}: '{INPUT_COLUMN}' must be a project object, got {type(value).__name__}")
    project = dict(value)
    hist = project.get("history")
    if hist is not None and not isinstance(hist, pd.DataFrame):
        try:
            project["history"] = pd.DataFrame(hist)
        except (TypeError, ValueError) as exc:
            raise SundayError(f"row {row}: history is not a list of day records ({exc})") from None
    return project


class TimelinePyfunc(mlflow.pyfunc.PythonModel):
    """``predict(frame with a 'project' column)`` -> one forecast row per project (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        from sunday.models.timeline.forecaster import TimelineForecaster

        self.model = TimelineForecaster.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from sunday.models.timeline.data import RISK_CLASSES
        from sunday.models.timeline.service import predict_timeline

        if not isinstance(model_input, pd.DataFrame) or INPUT_COLUMN not in model_input.columns:
            raise SundayError(f"input must be a DataFrame with a '{INPUT_COLUMN}' column (one project per row)")
        rows = []
        for i, value in enumerate(model_input[INPUT_COLUMN].tolist()):
            try:
                out = predict_timeline(self.model, _project(value, i))
            except SundayError as exc:
                msg = str(exc)
                raise SundayError(msg if msg.startswith(f"row {i}:") else f"row {i}: {msg}") from None
            row = {k: out[k] for k in ("project_id", "as_of", "expected", "best", "worst", "p10_days", "p50_days",
                                       "p90_days", "planned_end", "delay_days", "risk_class")}
            row["project_id"] = str(row["project_id"])
            row.update({f"risk_{c}": out["risk"][c] for c in RISK_CLASSES})
            row["drivers"] = json.dumps(out["drivers"])
            row["warnings"] = json.dumps(out["warnings"])
            rows.append(row)
        columns = ["project_id", "as_of", "expected", "best", "worst", "p10_days", "p50_days", "p90_days",
                   "planned_end", "delay_days", "risk_class", *[f"risk_{c}" for c in RISK_CLASSES], "drivers",
                   "warnings"]
        return pd.DataFrame(rows, columns=columns)
