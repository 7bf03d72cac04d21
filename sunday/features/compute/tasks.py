"""``task_features``: one row per task at its creation, then at every scope change.

Static attributes come from the tasks table (title, description, required skills, priority, due date,
dependencies: fixed when the task is created). Story points come from the event log only -- the latest non-null
points of ``created`` / ``scope_changed`` at or before the row's timestamp -- never from the tasks table, whose
``story_points`` / ``status`` / ``assignee_id`` are the state at the *end* of the observation period.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.compute.common import (
    PRIORITY_SCORE, US_PER_DAY, prepare_events, scalar_us, to_arrow, to_us,
)

GROUP = "task_features"
POINT_EVENTS = ("created", "scope_changed")


def _list_len(values: pd.Series) -> np.ndarray:
    return np.array([0 if v is None or (isinstance(v, float) and np.isnan(v)) else len(v) for v in values],
                    dtype=np.int64)


def static_attributes(tasks: pd.DataFrame) -> pd.DataFrame:
    """Per task (indexed by task_id): everything that does not depend on the timestamp."""
    t = tasks.drop_duplicates("task_id").reset_index(drop=True)
    title = t["title"].fillna("").astype(str)
    desc = t["description"].fillna("").astype(str)
    skills = t["required_skills"] if "required_skills" in t.columns else pd.Series([None] * len(t))
    deps = t["dependencies"] if "dependencies" in t.columns else pd.Series([None] * len(t))
    out = pd.DataFrame({
        "priority_score": t["priority"].map(PRIORITY_SCORE).fillna(0).to_numpy(np.int64),
        "required_skill_count": _list_len(skills),
        "dependency_count": _list_len(deps),
        "description_length": (title.str.len() + desc.str.len()).to_numpy(np.int64),
        "due_us": to_us(t["due_date"]) if "due_date" in t.columns else np.iinfo(np.int64).min,
        "created_us": to_us(t["created_at"]) if "created_at" in t.columns else np.iinfo(np.int64).min,
    }, index=pd.Index(t["task_id"].to_numpy(), name="task_id"))
    out["required_skills"] = [list(v) if v is not None and not isinstance(v, float) else [] for v in skills]
    return out


def points_events(ev: pd.DataFrame) -> pd.DataFrame:
    """(task_id, ts, seq, points) of the events that set a task's estimate (non-null points only)."""
    p = ev[ev["event_type"].isin(POINT_EVENTS) & ev["story_points"].notna()]
    return p[["task_id", "ts", "seq", "story_points"]]


def stamps(ev: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    """The row timestamps: every ``created`` / ``scope_changed`` event (one row per task and timestamp); a task
    without a ``created`` event in the log gets a row at its ``created_at``."""
    s = ev.loc[ev["event_type"].isin(POINT_EVENTS), ["task_id", "ts"]]
    created = set(ev.loc[ev["event_type"] == "created", "task_id"])
    missing = attrs.index[~attrs.index.isin(list(created)) & (attrs["created_us"] > np.iinfo(np.int64).min)]
    if len(missing):
        s = pd.concat([s, pd.DataFrame({"task_id": missing.to_numpy(),
                                        "ts": attrs.loc[missing, "created_us"].to_numpy()})], ignore_index=True)
    return s.drop_duplicates().reset_index(drop=True)


def features_at(attrs: pd.DataFrame, points: pd.DataFrame, task_id: np.ndarray, at: np.ndarray) -> dict:
    """Feature values of each (task, timestamp) pair: static attributes + the estimate as of the timestamp."""
    n = len(task_id)
    left = pd.DataFrame({"task_id": np.asarray(task_id, dtype=object), "ts": np.asarray(at, dtype=np.int64),
                         "_row": np.arange(n)}).sort_values("ts", kind="stable")
    right = points.sort_values(["ts", "seq"], kind="stable")[["task_id", "ts", "story_points"]]
    if n:
        m = pd.merge_asof(left, right, on="ts", by="task_id", direction="backward").sort_values("_row")
        sp = m["story_points"].to_numpy(np.float64)
    else:
        sp = np.zeros(0)
    a = attrs.reindex(np.asarray(task_id, dtype=object))
    desc_len = a["description_length"].fillna(0).to_numpy(np.int64)
    skills_n = a["required_skill_count"].fillna(0).to_numpy(np.int64)
    deps_n = a["dependency_count"].fillna(0).to_numpy(np.int64)
    due = a["due_us"].fillna(np.iinfo(np.int64).min).to_numpy(np.int64)
    has_due = due > np.iinfo(np.int64).min
    at = np.asarray(at, dtype=np.int64)
    return {
        "story_points": sp,
        "priority_score": a["priority_score"].fillna(0).to_numpy(np.int64),
        "required_skill_count": skills_n,
        "required_skills": pa.array([list(v) if isinstance(v, list) else [] for v in a["required_skills"]],
                                    type=pa.list_(pa.string())),
        "dependency_count": deps_n,
        "description_length": desc_len,
        "complexity": np.log1p(desc_len) + skills_n + deps_n + np.log1p(np.nan_to_num(sp, nan=0.0)),
        "days_to_due": np.where(has_due, (np.where(has_due, due, 0) - at) / US_PER_DAY, np.nan),
    }


def compute(ev: pd.DataFrame, tasks: pd.DataFrame) -> pa.Table:
    attrs = static_attributes(tasks)
    s = stamps(ev, attrs)
    values = features_at(attrs, points_events(ev), s["task_id"].to_numpy(), s["ts"].to_numpy())
    return to_arrow(GROUP, {"task_id": s["task_id"].to_numpy(), "event_timestamp": s["ts"].to_numpy(), **values})


def task_features_asof(task_row: dict | pd.Series, task_events: pd.DataFrame, as_of: pd.Timestamp) -> dict:
    """One task's ``task_features`` row as of any timestamp, from its tasks-table row and its events (events after
    ``as_of`` and other tasks' events are ignored). Same code as the batch rows."""
    row = dict(task_row)
    at = scalar_us(as_of)
    tasks = pd.DataFrame([row])
    ev = prepare_events(task_events[task_events["task_id"] == row["task_id"]])
    ev = ev[ev["ts"] <= at]
    values = features_at(static_attributes(tasks), points_events(ev), np.array([row["task_id"]], dtype=object),
                         np.array([at], dtype=np.int64))
    out: dict[str, object] = {"task_id": row["task_id"], "event_timestamp": pd.Timestamp(at, unit="us", tz="UTC")}
    for name, v in values.items():
        x = v[0]
        if isinstance(x, pa.Scalar):
            out[name] = x.as_py()
        elif isinstance(x, (np.floating, float)):
            out[name] = None if np.isnan(x) else float(x)
        else:
            out[name] = int(x)
    return out
