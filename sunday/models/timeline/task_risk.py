"""At-risk tasks inside a project: the delay-risk classifier on point-in-time task snapshots of a workspace.

The timeline service flags the open tasks of a project that are likely to finish after their due date. The learner
is :class:`sunday.models.delay.risk.DelayRiskClassifier` (LightGBM + Random Forest blend, balanced class weights,
P(delayed) threshold tuned on inner-CV predictions of the training rows) -- reused as is: its ``_encode`` handles any
feature frame generically (object / category columns are categorical, the rest numeric; nothing JIRA-specific), so
this module only builds a different feature frame and labels.

Features (:func:`task_risk_features`): one row per task of the workspace that has a due date and was created at or
before ``as_of``, from what is observable at ``as_of`` only -- the ``task_events`` at or before ``as_of`` and the
attributes of the ``tasks`` table that are fixed at creation (priority, due date, created_at, project, required
skills, dependencies, title / description length). The tasks table's ``status`` / ``assignee_id`` /
``story_points`` are end-of-log values and are never read; neither is any hidden ``truth/...`` table. The tasks
schema has no task *type*: a ``type`` column is used when the tasks frame has one (the simulator's ``kind`` is
hidden truth and is not). :data:`FEATURE_SOURCES` says where every column comes from.

* the task: ``priority``, ``status`` at ``as_of`` (categorical), ``story_points`` now and at creation,
  ``age_days``, ``days_to_due`` (negative once overdue), ``plan_days`` (due - created), ``elapsed_fraction``,
  ``days_in_status``, ``days_since_assigned``, counts of ``reassignments`` / ``comments`` / ``scope_changes`` /
  ``status_changes`` / ``review_cycles`` / ``blocked_count``, ``hours_logged``, required skills, dependencies and
  ``open_dependencies`` (dependencies not done / cancelled at ``as_of``), description length;
* the assignee at ``as_of`` (the feature pipeline's :func:`sunday.features.compute.workload.workload_at`, the same
  code as the ``user_workload`` group): open tasks / points, hours logged in 7 days, capacity use, completions,
  on-time rate, mean completion hours;
* history, only from outcomes visible at ``as_of``: among the project's tasks whose due date passed before
  ``as_of`` (on time or late is known from that moment; tasks cancelled by their due date left out), the share not
  done by the due date -- all of them and the last 30 -- and the same over the workspace's last 100; the mean
  log(1 + delay days) of the project's last 30 late tasks completed before ``as_of``; the project's open overdue
  tasks, completions and creations of the last 14 days, and open tasks.

Labels (:func:`delay_labels`): tasks with a due date and an observable ``completed`` event; delay days =
(first completion - due date) in days, clipped at 0; classes of :func:`~sunday.models.delay.risk.risk_classes` with
the cut points of :func:`~sunday.models.delay.risk.class_thresholds` over the delayed tasks of the *workspace* --
the counterpart of the paper's "project" (a whole tracker such as Apache or JBoss, thousands of issues); the
simulated projects (~100 tasks) are too small for stable percentiles.

Training (:class:`TaskDelayRisk`): snapshots of every task at weekly cuts (:func:`task_snapshots`) while it is open
and before its due date; label = the task's eventual class. With ``until`` (a time split) only cuts before
``until`` and tasks completed by ``until`` are used, and the class cut points come from those tasks: nothing after
the split reaches the model. Tasks never completed in the log (still open, or cancelled) have no label.

Reasons (:func:`at_risk_tasks`): TreeSHAP contributions (LightGBM ``pred_contrib``) of the LightGBM half of the blend,
linearised to the log-odds of delayed vs non-delay: for feature j, ``sum_k w_k c_kj - c_0j`` with ``c_kj`` the
contribution to class k's raw score and ``w_k = P(k) / P(delayed)`` over the delayed classes. The Random Forest
half is not explained. Without a LightGBM member (``rf_weight=1``) the reasons are the features with the largest
standardised values (z-score vs the training rows) -- a description, not an attribution.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.features.compute.common import (
    SCALE, STATUS_CODES, US_PER_DAY, Timeline, day_end, fixed, group_cumsum, group_starts, last_valid,
    prepare_events, scalar_us, to_us,
)
from sunday.models.delay.risk import (
    CLASS_NAMES, N_CLASSES, DelayRiskClassifier, DelayRiskConfig, _last_k_rate, class_thresholds,
    decide, delayed_auc, delayed_prf, macro_auc, macro_mae, risk_classes,
)

NEVER = np.iinfo(np.int64).max
NOT_SET = np.iinfo(np.int64).min
STATUS_NAMES = tuple(sorted(STATUS_CODES, key=lambda name: STATUS_CODES[name]))
OPEN_STATUSES = ("todo", "in_progress", "in_review", "blocked")
PROJECT_RECENT_K = 30
WORKSPACE_RECENT_K = 100
RECENT_DAYS = 14
N_REASONS = 3
TASK_COLUMNS = ("task_id", "project_id", "priority", "created_at", "due_date")
EVENT_COLUMNS = ("event_id", "task_id", "event_type", "timestamp")

CATEGORICAL = ("priority", "status")
NUMERIC = (
    "story_points", "initial_story_points", "points_changed", "age_days", "days_to_due", "plan_days",
    "elapsed_fraction", "days_in_status", "assigned", "days_since_assigned", "reassignments", "comments",
    "scope_changes", "status_changes", "review_cycles", "blocked_count", "hours_logged", "required_skill_count",
    "dependency_count", "open_dependencies", "description_length",
    "assignee_open_tasks", "assignee_open_points", "assignee_hours_7d", "assignee_utilisation",
    "assignee_completed", "assignee_on_time_rate", "assignee_mean_completion_hours",
    "project_due_passed", "project_late_share", "project_late_share_recent", "project_late_logdelay",
    "project_overdue_open", "project_done_14d", "project_created_14d", "project_open_tasks",
    "workspace_late_share_recent",
)
FEATURES: tuple[str, ...] = CATEGORICAL + NUMERIC
#: identification / display columns of a feature frame (not features)
ID_COLUMNS = ("task_id", "workspace_id", "project_id", "as_of", "created_at", "due_date")

_EV = "task_events at or before as_of"
FEATURE_SOURCES: dict[str, str] = {
    "priority": "tasks.priority (fixed at creation)",
    "type": "tasks.type when the tasks frame has it (the schema has none)",
    "status": _EV + " (latest status_changed / completed)",
    "story_points": _EV + " (latest created / scope_changed points)",
    "initial_story_points": "the created event's points",
    "points_changed": _EV,
    "age_days": "tasks.created_at", "days_to_due": "tasks.due_date", "plan_days": "tasks.created_at/due_date",
    "elapsed_fraction": "tasks.created_at/due_date",
    "days_in_status": _EV, "assigned": _EV, "days_since_assigned": _EV, "reassignments": _EV, "comments": _EV,
    "scope_changes": _EV, "status_changes": _EV, "review_cycles": _EV, "blocked_count": _EV, "hours_logged": _EV,
    "required_skill_count": "tasks.required_skills", "dependency_count": "tasks.dependencies",
    "open_dependencies": "tasks.dependencies + " + _EV, "description_length": "tasks.title/description",
    **{c: "user_workload definitions (workload_at) over " + _EV + " + users.weekly_capacity_hours"
       for c in NUMERIC if c.startswith("assignee_")},
    **{c: "other tasks' due dates + " + _EV for c in NUMERIC if c.startswith(("project_", "workspace_"))},
}


# ------------------------------------------------------------------------------------------------- the workspace


@dataclass
class WorkspaceLog:
    """One workspace's observable tasks / users / events, prepared once for any number of ``as_of`` times.

    The per-task times it keeps (first completion, first close, ...) come from the whole log; every feature
    compares them with ``as_of``, so a time after ``as_of`` only ever counts as "not yet"."""

    workspace_id: str
    tasks: pd.DataFrame  # one row per task_id (index), the creation-time attributes
    users: pd.DataFrame
    ev: pd.DataFrame
    tl: Timeline
    tl_code: np.ndarray  # task code of each timeline row
    cum: pd.DataFrame  # user workload cumulative deltas
    capacity: np.ndarray  # per user code
    completed_us: np.ndarray  # per task code: first observable completion (NEVER if none)
    close_us: np.ndarray  # first done / cancelled
    cancel_us: np.ndarray
    first_us: np.ndarray  # first event (NEVER if none)
    end_us: int  # the last event of the log

    @property
    def task_index(self) -> pd.Index:
        return self.tasks.index


def _as_frames(data: Any, workspace_id: str | None) -> tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(workspace_id, tasks, users, events) frames of one workspace from WorkspaceFrames, SimTables, a mapping of
    Arrow tables or a mapping of DataFrames (``tasks`` and ``events``/``task_events``; ``users`` optional)."""
    from sunday.features.compute.frame import WorkspaceFrames, frames_from_tables

    if isinstance(data, WorkspaceFrames):
        if workspace_id is not None and str(workspace_id) != str(data.workspace_id):
            raise SundayError(f"the frames hold workspace {data.workspace_id!r}, not {workspace_id!r}")
        return str(data.workspace_id), data.tasks, data.users, data.events
    obs = getattr(data, "observable", data)
    if not isinstance(obs, Mapping):
        raise SundayError("tables_or_frames must be WorkspaceFrames, SimTables or a mapping of tables")
    if "tasks" not in obs:
        raise SundayError("no 'tasks' table given")
    ev_key = "events" if "events" in obs else "task_events"
    if ev_key not in obs:
        raise SundayError("no 'events' (task_events) table given")
    if not isinstance(obs["tasks"], pd.DataFrame):
        if "workspaces" in obs:
            f = frames_from_tables(obs, workspace_id)
            return str(f.workspace_id), f.tasks, f.users, f.events
        obs = {k: v.to_pandas() for k, v in obs.items() if hasattr(v, "to_pandas")}
    tasks, events = obs["tasks"], obs[ev_key]
    users = obs.get("users")
    if users is None:
        users = pd.DataFrame({"user_id": pd.Series([], dtype=object), "weekly_capacity_hours": []})
    if "workspace_id" in tasks.columns:
        ids = pd.unique(tasks["workspace_id"].dropna())
        if workspace_id is None:
            if len(ids) > 1:
                raise SundayError(f"{len(ids)} workspaces: name the one to use")
            workspace_id = str(ids[0]) if len(ids) else "workspace"
        else:
            tasks = tasks[tasks["workspace_id"] == workspace_id]
            if "workspace_id" in events.columns:
                events = events[events["workspace_id"] == workspace_id]
            if "workspace_id" in users.columns:
                users = users[users["workspace_id"] == workspace_id]
    return str(workspace_id or "workspace"), tasks, users, events


def _check_columns(frame: pd.DataFrame, needed: Iterable[str], table: str) -> None:
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise SundayError(f"{table}: missing required field(s) {missing}")


def _first_per_code(codes: np.ndarray, ts: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, NEVER, dtype=np.int64)
    ok = mask & (codes >= 0)
    np.minimum.at(out, codes[ok], ts[ok])
    return out


def prepare_workspace(data: Any, workspace_id: str | None = None) -> WorkspaceLog:
    """A :class:`WorkspaceLog` from ``tables_or_frames`` (see :func:`task_risk_features`)."""
    if isinstance(data, WorkspaceLog):
        return data
    from sunday.features.compute import workload

    ws, tasks, users, events = _as_frames(data, workspace_id)
    _check_columns(tasks, TASK_COLUMNS, "tasks")
    _check_columns(events, EVENT_COLUMNS, "task_events")
    t = tasks.drop_duplicates("task_id").reset_index(drop=True)
    attrs = pd.DataFrame(index=pd.Index(t["task_id"].astype(str).to_numpy(), name="task_id"))
    attrs["project_id"] = t["project_id"].astype(object).where(t["project_id"].notna(), "").astype(str).to_numpy()
    attrs["priority"] = t["priority"].astype(object).to_numpy()
    if "type" in t.columns:
        attrs["type"] = t["type"].astype(object).to_numpy()
    attrs["created_us"] = to_us(t["created_at"].reset_index(drop=True))
    attrs["due_us"] = to_us(t["due_date"].reset_index(drop=True))

    def list_len(col: str) -> np.ndarray:
        if col not in t.columns:
            return np.zeros(len(t), np.int64)
        return np.array([len(v) if isinstance(v, (list, tuple, np.ndarray)) else 0 for v in t[col]], np.int64)

    attrs["required_skill_count"] = list_len("required_skills")
    attrs["dependency_count"] = list_len("dependencies")
    text = [t[c].fillna("").astype(str).str.len().to_numpy() if c in t.columns else 0 for c in ("title", "description")]
    attrs["description_length"] = (np.asarray(text[0]) + np.asarray(text[1])).astype(np.int64) if len(t) else []
    deps = t["dependencies"] if "dependencies" in t.columns else pd.Series([None] * len(t))
    attrs["dependencies"] = [list(v) if isinstance(v, (list, tuple, np.ndarray)) else [] for v in deps]

    ev = prepare_events(events)
    user_frame = users if "user_id" in users.columns else pd.DataFrame({"user_id": pd.Series([], dtype=object)})
    if "weekly_capacity_hours" not in user_frame.columns:
        user_frame = user_frame.assign(weekly_capacity_hours=np.nan)
    vocab = workload.user_index(ev, user_frame)
    tl = Timeline(ev, vocab)
    code = attrs.index.get_indexer(pd.Index(tl.task_id.astype(str) if tl.n else tl.task_id)).astype(np.int64)
    n = len(attrs)
    closed = ~tl.open_after
    cancel = (tl.etype == "status_changed") & (ev["to_status"].to_numpy()[tl.index] == "cancelled") if tl.n \
        else np.zeros(0, bool)
    cum = workload.cumulative(workload.user_deltas(tl, t))
    return WorkspaceLog(
        workspace_id=ws, tasks=attrs, users=user_frame, ev=ev, tl=tl, tl_code=code, cum=cum,
        capacity=workload.capacities(user_frame, vocab),
        completed_us=_first_per_code(code, tl.ts, tl.etype == "completed", n),
        close_us=_first_per_code(code, tl.ts, closed, n),
        cancel_us=_first_per_code(code, tl.ts, cancel, n),
        first_us=_first_per_code(code, tl.ts, np.ones(tl.n, bool), n),
        end_us=int(ev["ts"].max()) if len(ev) else NOT_SET,
    )


# --------------------------------------------------------------------------------------------------- features


def _last_at(ev_code: np.ndarray, ev_ts: np.ndarray, q_code: np.ndarray, q_ts: np.ndarray) -> np.ndarray:
    """For each query (task code, time): the row of the task's last event at or before the time (-1: none).
    ``ev_*`` are in the timeline's (task, ts, seq) order, so ties keep the log order."""
    ne = len(ev_code)
    code = np.concatenate([ev_code, q_code])
    ts = np.concatenate([ev_ts, q_ts])
    kind = np.concatenate([np.zeros(ne, np.int8), np.ones(len(q_code), np.int8)])  # an event at q_ts counts
    order = np.lexsort((kind, ts, code))
    is_ev = kind[order] == 0
    lv = last_valid(is_ev, group_starts(code[order]))
    res = np.where(lv >= 0, order[np.maximum(lv, 0)], -1)
    out = np.full(len(q_code), -1, dtype=np.int64)
    out[order[~is_ev] - ne] = res[~is_ev]
    return out


def _take(values: np.ndarray, idx: np.ndarray, default) -> np.ndarray:
    if len(values) == 0:
        return np.full(len(idx), default)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], default)


def _open_at(start: np.ndarray, end: np.ndarray, q: np.ndarray) -> np.ndarray:
    """How many intervals [start, end) hold each query time (intervals with end > start)."""
    s, e = np.sort(start), np.sort(end)
    return (np.searchsorted(s, q, side="right") - np.searchsorted(e, q, side="right")).astype(float)


def _window_count(times: np.ndarray, q: np.ndarray, width: int) -> np.ndarray:
    """Events with time in (q - width, q]."""
    t = np.sort(times)
    return (np.searchsorted(t, q, side="right") - np.searchsorted(t, q - width, side="right")).astype(float)


def _history(log: WorkspaceLog, project: np.ndarray, at: np.ndarray) -> dict[str, np.ndarray]:
    """Project / workspace history at each query time, from other tasks' outcomes visible then."""
    a = log.tasks
    due = a["due_us"].to_numpy(np.int64)
    created = a["created_us"].to_numpy(np.int64)
    has_due = due != NOT_SET
    # on time or late is known once the due date has passed; tasks cancelled by then have no outcome
    item = has_due & (log.cancel_us > due)
    late = (log.completed_us > due).astype(float)
    comp = log.completed_us
    delay_days = np.where(item & (comp < NEVER) & (comp > due), (comp - due) / US_PER_DAY, np.nan)
    proj = a["project_id"].to_numpy()
    n = len(at)
    out = {c: np.full(n, np.nan) for c in ("project_due_passed", "project_late_share", "project_late_share_recent",
                                           "project_late_logdelay", "project_overdue_open", "project_done_14d",
                                           "project_created_14d", "project_open_tasks",
                                           "workspace_late_share_recent")}
    atf = at.astype(float)
    if item.any():
        _, out["workspace_late_share_recent"] = _last_k_rate(due[item].astype(float), late[item], atf,
                                                              WORKSPACE_RECENT_K)
    first = np.where(log.first_us < NEVER, log.first_us, created)  # when the task appeared
    for p in np.unique(project):
        q = np.flatnonzero(project == p)
        m = proj == p
        mi = m & item
        qa = atf[q]
        if mi.any():
            n_all, share_all = _last_k_rate(due[mi].astype(float), late[mi], qa, 1 << 62)
            _, share_recent = _last_k_rate(due[mi].astype(float), late[mi], qa, PROJECT_RECENT_K)
            out["project_due_passed"][q] = n_all
            out["project_late_share"][q] = share_all
            out["project_late_share_recent"][q] = share_recent
            ml = mi & ~np.isnan(delay_days)
            if ml.any():
                _, ld = _last_k_rate(comp[ml].astype(float), np.log1p(delay_days[ml]), qa, PROJECT_RECENT_K)
                out["project_late_logdelay"][q] = ld
            od = mi & (log.close_us > due)  # open past the due date for a while (late)
            out["project_overdue_open"][q] = _open_at(due[od] + 1, log.close_us[od], at[q])
        else:
            out["project_due_passed"][q] = 0.0
            out["project_overdue_open"][q] = 0.0
        out["project_done_14d"][q] = _window_count(comp[m & (comp < NEVER)], at[q], RECENT_DAYS * US_PER_DAY)
        seen = m & (first != NOT_SET)
        out["project_created_14d"][q] = _window_count(first[seen], at[q], RECENT_DAYS * US_PER_DAY)
        out["project_open_tasks"][q] = _open_at(first[seen], log.close_us[seen], at[q])
    return out


def pair_features(log: WorkspaceLog, task_ids: Iterable[str], at: Iterable) -> pd.DataFrame:
    """Feature rows of (task, as_of) pairs of one workspace, point in time (events <= as_of); one row per pair in
    the given order. ``at``: timestamps or int64 microseconds."""
    from sunday.features.compute.workload import workload_at

    task_ids = np.asarray(list(task_ids), dtype=object)
    at = np.asarray(at)
    at = at.astype(np.int64) if np.issubdtype(at.dtype, np.integer) else to_us(pd.Series(at))
    if len(at) != len(task_ids):
        raise ValueError("task_ids and at differ in length")
    qc = log.task_index.get_indexer(pd.Index(task_ids)).astype(np.int64)
    if (qc < 0).any():
        raise SundayError(f"task(s) not in the workspace's tasks table: {list(task_ids[qc < 0][:3])}")
    tl = log.tl
    a = log.tasks.iloc[qc]
    li = _last_at(log.tl_code, tl.ts, qc, at)
    n = len(qc)
    status = _take(tl.status_after, li, STATUS_CODES["todo"]).astype(np.int64)
    assignee = _take(tl.assignee_after, li, -1).astype(np.int64)
    points = _take(tl.points_after_f, li, np.nan).astype(float)
    start = tl.start
    initial = _take(tl.points_after_f[start] if tl.n else tl.points_after_f, li, np.nan).astype(float)

    def running(mask: np.ndarray) -> np.ndarray:
        if tl.n == 0:
            return np.zeros(n)
        return _take(group_cumsum(mask.astype(np.int64), start), li, 0).astype(float)

    et = tl.etype
    to_status = log.ev["to_status"].to_numpy()[tl.index] if tl.n else np.zeros(0, object)
    is_status = (et == "status_changed") | (et == "completed")
    last_status = _take(last_valid(is_status, start) if tl.n else np.zeros(0, np.int64), li, -1)
    status_ts = np.where(last_status >= 0, _take(tl.ts, last_status, 0), NOT_SET)
    assign_ts = _take(tl.assign_ts_after, li, NOT_SET)
    hours = (_take(group_cumsum(np.where(et == "time_logged", fixed(tl.hours), 0), start), li, 0) / SCALE
             if tl.n else np.zeros(n))

    created = a["created_us"].to_numpy(np.int64)
    due = a["due_us"].to_numpy(np.int64)
    has_due = due != NOT_SET
    day = float(US_PER_DAY)
    age = np.where(created != NOT_SET, (at - created) / day, np.nan)
    to_due = np.where(has_due, (due - at) / day, np.nan)
    plan = np.where(has_due & (created != NOT_SET), (due - created) / day, np.nan)
    status_since = np.where(status_ts != NOT_SET, status_ts, created)

    feats: dict[str, Any] = {
        "task_id": task_ids.astype(str), "workspace_id": log.workspace_id,
        "project_id": a["project_id"].to_numpy(), "as_of": pd.to_datetime(at, unit="us"),
        "created_at": pd.to_datetime(np.where(created != NOT_SET, created, NOT_SET), unit="us"),
        "due_date": pd.to_datetime(np.where(has_due, due, NOT_SET), unit="us"),
        "priority": a["priority"].to_numpy(),
        "status": np.array(STATUS_NAMES, dtype=object)[status],
        "story_points": points, "initial_story_points": initial,
        "points_changed": (np.nan_to_num(points, nan=-1) != np.nan_to_num(initial, nan=-1)).astype(float),
        "age_days": age, "days_to_due": to_due, "plan_days": plan,
        "elapsed_fraction": np.where(plan > 0, age / np.where(plan > 0, plan, 1.0), np.nan),
        "days_in_status": np.where(status_since != NOT_SET, (at - status_since) / day, np.nan),
        "assigned": (assignee >= 0).astype(float),
        "days_since_assigned": np.where(assign_ts != NOT_SET, (at - assign_ts) / day, np.nan),
        "reassignments": running(et == "reassigned"), "comments": running(et == "commented"),
        "scope_changes": running(et == "scope_changed"), "status_changes": running(et == "status_changed"),
        "review_cycles": running((et == "status_changed") & (to_status == "in_review")),
        "blocked_count": running((et == "status_changed") & (to_status == "blocked")),
        "hours_logged": hours,
        "required_skill_count": a["required_skill_count"].to_numpy(float),
        "dependency_count": a["dependency_count"].to_numpy(float),
        "description_length": a["description_length"].to_numpy(float),
    }
    if "type" in a.columns:
        feats["type"] = a["type"].to_numpy()
    # dependencies not done / cancelled at as_of (dependencies outside the workspace ignored)
    deps = a["dependencies"].to_numpy()
    lens = np.array([len(d) for d in deps], dtype=np.int64)
    open_deps = np.zeros(n)
    if lens.sum():
        flat = np.concatenate([np.asarray(d, dtype=object) for d in deps if len(d)])
        row = np.repeat(np.arange(n), lens)
        dc = log.task_index.get_indexer(pd.Index(flat.astype(str)))
        ok = dc >= 0
        still = ok & (log.close_us[np.maximum(dc, 0)] > at[row])
        np.add.at(open_deps, row[still], 1.0)
    feats["open_dependencies"] = open_deps
    # the assignee's workload: the user_workload group's definitions (events <= as_of)
    cap = np.where(assignee >= 0, log.capacity[np.maximum(assignee, 0)] if len(log.capacity) else np.nan, np.nan)
    w = workload_at(log.cum, assignee, at, cap)
    has = assignee >= 0
    for name, src in (("assignee_open_tasks", "open_task_count"), ("assignee_open_points", "open_points"),
                      ("assignee_hours_7d", "hours_logged_7d"), ("assignee_utilisation", "capacity_utilisation"),
                      ("assignee_completed", "completed_count"), ("assignee_on_time_rate", "on_time_rate"),
                      ("assignee_mean_completion_hours", "mean_completion_hours")):
        feats[name] = np.where(has, np.asarray(w[src], dtype=float), np.nan)
    feats.update(_history(log, a["project_id"].to_numpy(), at))
    out = pd.DataFrame(feats)
    extra = [c for c in out.columns if c not in ID_COLUMNS and c not in FEATURES]
    return out[list(ID_COLUMNS) + list(FEATURES) + extra]


def task_risk_features(tables_or_frames: Any, workspace_id: str | None, as_of) -> pd.DataFrame:
    """One row per task of the workspace with a due date, created at or before ``as_of``: the features of the
    module docstring (columns :data:`ID_COLUMNS` + :data:`FEATURES`), computed from events <= ``as_of`` only.

    ``tables_or_frames``: ``simulate_tables(...)``'s SimTables, a name -> Arrow table mapping, a name -> DataFrame
    mapping (``tasks`` + ``events``, ``users`` optional), :class:`~sunday.features.compute.frame.WorkspaceFrames`,
    or a :class:`WorkspaceLog` (prepared once, for many ``as_of``). Rows are ordered by task id; closed tasks are
    included (``status`` done / cancelled)."""
    log = prepare_workspace(tables_or_frames, workspace_id)
    at = scalar_us(as_of)
    a = log.tasks
    keep = (a["due_us"].to_numpy() != NOT_SET) & (a["created_us"].to_numpy() != NOT_SET) & \
           (a["created_us"].to_numpy() <= at)
    ids = np.sort(a.index.to_numpy()[keep].astype(str))
    return pair_features(log, ids, np.full(len(ids), at, dtype=np.int64))


# ----------------------------------------------------------------------------------------------------- labels


def _completion_table(log: WorkspaceLog) -> pd.DataFrame:
    a = log.tasks
    due = a["due_us"].to_numpy(np.int64)
    comp = log.completed_us
    ok = (due != NOT_SET) & (comp < NEVER)
    return pd.DataFrame({
        "task_id": a.index.to_numpy()[ok].astype(str), "workspace_id": log.workspace_id,
        "project_id": a["project_id"].to_numpy()[ok], "due_date": pd.to_datetime(due[ok], unit="us"),
        "completed_at": pd.to_datetime(comp[ok], unit="us"),
        "delay_days": np.clip((comp[ok] - due[ok]) / US_PER_DAY, 0.0, None),
    })


def delay_labels(tables_or_frames: Any, workspace_id: str | None = None,
                 thresholds: tuple[float, float] | None = None, until=None) -> pd.DataFrame:
    """Tasks with a due date and an observable ``completed`` event (at or before ``until`` when given): delay days
    = first completion - due date (days, clipped at 0) and the class (0 non-delay .. 3 major, ``class_name``).
    ``thresholds`` default to :func:`class_thresholds` of these tasks' delays (the workspace's cut points); the
    ones used are in ``.attrs["thresholds"]``."""
    log = prepare_workspace(tables_or_frames, workspace_id)
    out = _completion_table(log)
    if until is not None:
        out = out[out["completed_at"] <= pd.Timestamp(scalar_us(until), unit="us")]
    out = out.sort_values("task_id").reset_index(drop=True)
    if thresholds is None:
        thresholds = class_thresholds(out["delay_days"])
    out["y"] = risk_classes(out["delay_days"].to_numpy(float), thresholds)
    out["class_name"] = np.array(CLASS_NAMES, dtype=object)[out["y"].to_numpy()]
    out.attrs["thresholds"] = tuple(float(x) for x in thresholds)
    return out


# -------------------------------------------------------------------------------------------------- snapshots


def workspace_ids(tables: Any) -> list[str]:
    obs = getattr(tables, "observable", tables)
    if isinstance(obs, Mapping) and "tasks" in obs:
        t = obs["tasks"]
        col = t["workspace_id"] if isinstance(t, pd.DataFrame) else t.column("workspace_id").to_pandas()
        return sorted(str(w) for w in pd.unique(col.dropna()))
    return [str(getattr(tables, "workspace_id", "workspace"))]


def task_snapshots(tables: Any, workspaces: Iterable[str] | None = None, cut_every_days: float = 7.0,
                   first_cut_days: float = 14.0, margin_days: float = 21.0) -> pd.DataFrame:
    """Training rows: every task at every cut (day ends every ``cut_every_days`` from ``first_cut_days`` after a
    workspace's first event to ``margin_days`` before its last) at which it exists, is open and is not yet due.

    Columns: the feature frame, plus ``completed_at`` and ``delay_days`` (NaN when the task has no completion in
    the log: no label) -- labels are attached here but only :class:`TaskDelayRisk` decides which it may use."""
    parts = []
    for ws in (workspaces if workspaces is not None else workspace_ids(tables)):
        log = prepare_workspace(tables, ws)
        if log.end_us == NOT_SET:
            continue
        t0 = int(log.ev["ts"].min())
        step = int(cut_every_days * US_PER_DAY)
        cuts = np.arange(int(day_end(np.array([t0 + int(first_cut_days * US_PER_DAY)]))[0]),
                         log.end_us - int(margin_days * US_PER_DAY) + 1, step, dtype=np.int64)
        a = log.tasks
        due, created = a["due_us"].to_numpy(np.int64), a["created_us"].to_numpy(np.int64)
        ok = (due != NOT_SET) & (created != NOT_SET)
        rows_t, rows_c = [], []
        for c in cuts:
            m = ok & (created <= c) & (due > c) & (log.close_us > c)
            rows_t.append(np.flatnonzero(m))
            rows_c.append(np.full(int(m.sum()), c, dtype=np.int64))
        if not rows_t:
            continue
        ti, ci = np.concatenate(rows_t), np.concatenate(rows_c)
        f = pair_features(log, a.index.to_numpy()[ti].astype(str), ci)
        f = f[f["status"].isin(OPEN_STATUSES)].reset_index(drop=True)
        lab = _completion_table(log).set_index("task_id")
        f["completed_at"] = lab["completed_at"].reindex(f["task_id"]).to_numpy()
        f["delay_days"] = lab["delay_days"].reindex(f["task_id"]).to_numpy(float)
        parts.append(f)
    if not parts:
        raise SundayError("no task snapshot: no workspace with due-dated tasks open at a cut")
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------------------------------------------ model


class TaskDelayRisk:
    """Per-task delay risk: :class:`DelayRiskClassifier` on :func:`task_snapshots` rows.

    ``fit(tables, until=None)`` -> self; ``predict_proba(X)`` (n, 4) over non-delay/minor/medium/major;
    ``p_delayed(X)`` = 1 - P(non-delay); ``predict(X)`` classes by the tuned rule; ``save`` / ``load``.
    ``X`` is a :func:`task_risk_features` frame (extra columns ignored)."""

    def __init__(self, config: DelayRiskConfig | None = None, cut_every_days: float = 7.0,
                 margin_days: float = 21.0):
        self.config = config or DelayRiskConfig()
        self.cut_every_days = float(cut_every_days)
        self.margin_days = float(margin_days)

    # -- training
    def fit(self, tables: Any, until=None, workspaces: Iterable[str] | None = None) -> "TaskDelayRisk":
        snaps = task_snapshots(tables, workspaces, cut_every_days=self.cut_every_days, margin_days=self.margin_days)
        return self.fit_snapshots(snaps, until=until)

    def training_rows(self, snaps: pd.DataFrame, until=None) -> pd.DataFrame:
        """The labelled rows usable with a time split at ``until``: cuts before it, tasks completed by it."""
        rows = snaps[snaps["delay_days"].notna()]
        if until is not None:
            u = pd.Timestamp(scalar_us(until), unit="us")
            rows = rows[(rows["as_of"] < u) & (rows["completed_at"] <= u)]
        return rows

    def fit_snapshots(self, snaps: pd.DataFrame, until=None) -> "TaskDelayRisk":
        rows = self.training_rows(snaps, until)
        if rows.empty:
            raise SundayError("no labelled task snapshot to train on")
        tasks = rows.drop_duplicates("task_id")
        self.thresholds_: dict[str, tuple[float, float]] = {"*": class_thresholds(tasks["delay_days"])}
        for ws, g in tasks.groupby("workspace_id"):
            if (g["delay_days"] > 0).sum() >= 30:
                self.thresholds_[str(ws)] = class_thresholds(g["delay_days"])
        y = self.classes_for(rows)
        self.feature_names_ = [c for c in FEATURES] + (["type"] if "type" in rows.columns else [])
        X = rows[self.feature_names_]
        self.classifier_ = DelayRiskClassifier(self.config).fit(X, y)
        num = X[[c for c in self.feature_names_ if c not in self.classifier_.categories_]].astype(float)
        self.stats_ = {"mean": num.mean().to_dict(), "std": num.std().replace(0, 1).fillna(1).to_dict()}
        self.n_rows_, self.n_tasks_ = int(len(rows)), int(len(tasks))
        self.until_ = None if until is None else str(pd.Timestamp(scalar_us(until), unit="us"))
        return self

    def thresholds_for(self, workspace_id) -> tuple[float, float]:
        return self.thresholds_.get(str(workspace_id), self.thresholds_["*"])

    def classes_for(self, rows: pd.DataFrame) -> np.ndarray:
        """Classes of labelled rows (``delay_days``) with their workspace's cut points."""
        y = np.zeros(len(rows), dtype=np.int64)
        ws = rows["workspace_id"].astype(str).to_numpy()
        d = rows["delay_days"].to_numpy(float)
        for w in np.unique(ws):
            m = ws == w
            y[m] = risk_classes(d[m], self.thresholds_for(w))
        return y

    # -- prediction
    def _X(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise SundayError(f"task features: missing required field(s) {missing}")
        return X[self.feature_names_]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.classifier_.predict_proba(self._X(X))

    def p_delayed(self, X: pd.DataFrame) -> np.ndarray:
        return 1.0 - self.predict_proba(X)[:, 0]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return decide(self.predict_proba(X), self.classifier_.threshold_, self.classifier_.weights_)

    @property
    def threshold_(self) -> float | None:
        return self.classifier_.threshold_

    def feature_importance(self) -> dict[str, float]:
        return self.classifier_.feature_importance()

    def explain(self, X: pd.DataFrame, n: int = N_REASONS) -> list[list[dict[str, Any]]]:
        """Per row, up to ``n`` reasons (features raising the risk most), see the module docstring."""
        X = self._X(X)
        clf = self.classifier_
        lgbm = [m for kind, m in clf.members_ if kind == "lgbm"]
        names = self.feature_names_
        out: list[list[dict[str, Any]]] = []
        if lgbm:
            Xe = clf._encode(X)
            contrib = np.asarray(lgbm[0].predict(Xe, pred_contrib=True, num_threads=1), dtype=float)
            F = len(names)
            c = contrib.reshape(len(X), N_CLASSES, F + 1)[:, :, :F]
            p = np.asarray(lgbm[0].predict_proba(Xe, num_threads=1), dtype=float)
            w = p[:, 1:] / np.maximum(p[:, 1:].sum(1, keepdims=True), 1e-12)
            effect = np.einsum("nk,nkf->nf", w, c[:, 1:, :]) - c[:, 0, :]
            kind = "lgbm_contrib"
        else:
            effect = np.zeros((len(X), len(names)))
            for j, name in enumerate(names):
                if name in clf.categories_:
                    continue
                v = pd.to_numeric(X[name], errors="coerce").to_numpy(float)
                effect[:, j] = np.nan_to_num((v - self.stats_["mean"][name]) / self.stats_["std"][name], nan=0.0)
            effect = np.abs(effect)
            kind = "zscore"
        for i in range(len(X)):
            order = np.argsort(-effect[i], kind="stable")[:n]
            reasons = []
            for j in order:
                if effect[i, j] <= 0:
                    break
                v = X.iloc[i, j]
                value = None if pd.isna(v) else (str(v) if names[j] in clf.categories_ else round(float(v), 3))
                reasons.append({"feature": names[j], "value": value, "effect": round(float(effect[i, j]), 4),
                                "kind": kind})
            out.append(reasons)
        return out

    # -- persistence
    def save(self, path: str | Path) -> Path:
        """A folder: ``model.pkl`` (the fitted blend: LightGBM + scikit-learn forest, pickled) and ``meta.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with open(path / "model.pkl", "wb") as fh:
            pickle.dump({"classifier": self.classifier_, "stats": self.stats_, "thresholds": self.thresholds_},
                        fh, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {"features": self.feature_names_, "config": {k: v for k, v in asdict(self.config).items()},
                "cut_every_days": self.cut_every_days, "margin_days": self.margin_days, "until": self.until_,
                "n_rows": self.n_rows_, "n_tasks": self.n_tasks_,
                "thresholds": {k: list(v) for k, v in self.thresholds_.items()}}
        (path / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TaskDelayRisk":
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        base = [c for c in meta["features"] if c != "type"]
        if base != list(FEATURES):
            raise SundayError(f"{path}: model was trained on other features than this code computes; retrain it")
        cfg = dict(meta["config"])
        cfg["threshold_grid"] = tuple(cfg["threshold_grid"])
        cfg["weight_grid"] = tuple(cfg["weight_grid"])
        self = cls(DelayRiskConfig(**cfg), meta["cut_every_days"], meta["margin_days"])
        with open(path / "model.pkl", "rb") as fh:
            blob = pickle.load(fh)  # noqa: S301 - our own file
        self.classifier_, self.stats_ = blob["classifier"], blob["stats"]
        self.thresholds_ = {k: tuple(v) for k, v in blob["thresholds"].items()}
        self.feature_names_ = list(meta["features"])
        self.n_rows_, self.n_tasks_, self.until_ = meta["n_rows"], meta["n_tasks"], meta["until"]
        return self


# ------------------------------------------------------------------------------------------------ the service


def check_task_frame(frame: pd.DataFrame, model: TaskDelayRisk) -> None:
    """SundayError naming the field when the frame cannot be scored."""
    if not isinstance(frame, pd.DataFrame):
        raise SundayError(f"tasks must be a DataFrame of task_risk_features rows, got {type(frame).__name__}")
    needed = ["task_id", "due_date", "days_to_due", "status"] + [c for c in model.feature_names_
                                                                  if c not in ("days_to_due", "status")]
    _check_columns(frame, needed, "tasks")
    if frame["task_id"].isna().any():
        raise SundayError("tasks: field 'task_id' is missing in some row(s)")
    due = pd.to_datetime(frame["due_date"], errors="coerce")
    bad = due.isna() | pd.to_numeric(frame["days_to_due"], errors="coerce").isna()
    if bad.any():
        raise SundayError(f"tasks: field 'due_date' is missing or not a date for task(s) "
                          f"{frame.loc[bad, 'task_id'].astype(str).tolist()[:5]}")


def at_risk_tasks(model: TaskDelayRisk, features_frame: pd.DataFrame, top: int | None = 10,
                  include_overdue: bool = True, n_reasons: int = N_REASONS) -> list[dict[str, Any]]:
    """Open tasks of a :func:`task_risk_features` frame ranked by P(delayed) (ties: nearest due date first).

    Each: ``task_id``, ``project_id``, ``p_delayed``, ``risk_class`` (the class name), ``at_risk`` (the model's
    tuned rule), ``overdue``, ``due_date`` (ISO), ``days_to_due``, ``reasons`` (see the module docstring).
    An open task already past its due date *is* delayed (observed): ``p_delayed`` 1 and a class at least the one its
    days overdue already reach; ``include_overdue=False`` leaves such tasks out. The model was trained on tasks
    before their due date, so for overdue tasks only the delayed class comes from it."""
    check_task_frame(features_frame, model)
    f = features_frame[features_frame["status"].isin(OPEN_STATUSES)]
    if not include_overdue:
        f = f[f["days_to_due"].astype(float) >= 0]
    if f.empty:
        return []
    f = f.reset_index(drop=True)
    proba = model.predict_proba(f)
    p = 1.0 - proba[:, 0]
    cls = model.predict(f)
    overdue = f["days_to_due"].to_numpy(float) < 0
    if overdue.any():
        ws = f["workspace_id"].astype(str).to_numpy() if "workspace_id" in f.columns else np.full(len(f), "*")
        so_far = np.zeros(len(f), dtype=np.int64)
        for w in np.unique(ws[overdue]):
            m = overdue & (ws == w)
            so_far[m] = risk_classes(-f["days_to_due"].to_numpy(float)[m], model.thresholds_for(w))
        delayed_cls = 1 + proba[:, 1:].argmax(axis=1)
        cls = np.where(overdue, np.maximum(delayed_cls, so_far), cls)
        p = np.where(overdue, 1.0, p)
    order = np.lexsort((f["task_id"].astype(str).to_numpy(), f["days_to_due"].to_numpy(float), -p))
    if top is not None:
        order = order[:int(top)]
    reasons = model.explain(f.iloc[order], n=n_reasons) if len(order) else []
    out = []
    for r, i in enumerate(order):
        row = f.iloc[i]
        rs = reasons[r]
        if overdue[i]:
            rs = [{"feature": "days_to_due", "value": round(float(row["days_to_due"]), 3), "effect": None,
                   "kind": "overdue"}] + rs[: max(n_reasons - 1, 0)]
        out.append({
            "task_id": str(row["task_id"]), "project_id": None if "project_id" not in f.columns
            else (None if pd.isna(row["project_id"]) else str(row["project_id"])),
            "p_delayed": float(p[i]), "risk_class": CLASS_NAMES[int(cls[i])], "at_risk": bool(cls[i] > 0),
            "overdue": bool(overdue[i]), "due_date": pd.Timestamp(row["due_date"]).isoformat(),
            "days_to_due": float(row["days_to_due"]), "status": str(row["status"]), "reasons": rs,
        })
    return out


# ------------------------------------------------------------------------------------------------- evaluation


def _scores(y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    prec, rec, f = delayed_prf(y, pred)
    t = y > 0
    fl = pred > 0
    tp = float((t & fl).sum())
    pa = tp / fl.sum() if fl.sum() else 0.0
    ra = tp / t.sum() if t.sum() else float("nan")
    return {"auc": delayed_auc(y, p), "precision": prec, "recall": rec, "f": f,
            "f_any": 2 * pa * ra / (pa + ra) if (pa + ra) > 0 else 0.0, "flagged_share": float(fl.mean())}


def _rule(train_y: np.ndarray, train_score: np.ndarray, test_score: np.ndarray,
          grid: Iterable[float]) -> tuple[np.ndarray, float]:
    """A one-score baseline: delayed when score >= c (c tuned for the delayed F on the training rows), and then the
    most common delayed class of the training rows."""
    counts = np.bincount(train_y, minlength=N_CLASSES)
    k = int(1 + np.argmax(counts[1:]))
    best_c, best_f = float("inf"), -1.0
    for c in grid:
        f = delayed_prf(train_y, np.where(train_score >= c, k, 0))[2]
        if f > best_f + 1e-12:
            best_c, best_f = float(c), f
    return np.where(test_score >= best_c, k, 0), best_c


def evaluate_task_risk(tables: Any, train_fraction: float = 0.7, cut_every_days: float = 7.0,
                       margin_days: float = 21.0, config: DelayRiskConfig | None = None,
                       snapshots: pd.DataFrame | None = None) -> dict[str, Any]:
    """Time-ordered evaluation on a simulation: cuts before the split time (``train_fraction`` of the cut range)
    with tasks completed by then train the model; cuts from the split time on are the test rows (labelled: tasks
    completed by the end of the log). Rows: the model and baselines, each with ``auc`` (P(delayed) / score, delayed
    vs non-delay), ``precision`` / ``recall`` / ``f`` (delayed classes, exact class, the paper's definition),
    ``f_any`` (delayed vs not, any class), ``flagged_share``; the model also ``auc_macro`` and ``mmae``.

    Baselines (thresholds tuned on the training rows for ``f``, then the commonest delayed class):
    ``days-to-due<k`` (score -days_to_due), ``project-late-share`` (NaN: the training late share), and
    ``logistic(days_to_due, late-share)`` (a logistic regression on both, a simple combined rule)."""
    import time

    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    snaps = snapshots if snapshots is not None else task_snapshots(tables, cut_every_days=cut_every_days,
                                                                   margin_days=margin_days)
    data_s = time.perf_counter() - t0
    lo, hi = snaps["as_of"].min(), snaps["as_of"].max()
    split = lo + (hi - lo) * float(train_fraction)
    model = TaskDelayRisk(config, cut_every_days=cut_every_days, margin_days=margin_days)
    t1 = time.perf_counter()
    model.fit_snapshots(snaps, until=split)
    fit_s = time.perf_counter() - t1
    train = model.training_rows(snaps, until=split)
    test_all = snaps[snaps["as_of"] >= split]
    test = test_all[test_all["delay_days"].notna()]
    if test.empty:
        raise SundayError("no labelled test row after the split time")
    y_tr, y_te = model.classes_for(train), model.classes_for(test)
    proba = model.predict_proba(test)
    pred = model.predict(test)
    rows = [{"row": "lgbm+rf", **_scores(y_te, 1 - proba[:, 0], pred), "auc_macro": macro_auc(y_te, proba),
             "mmae": macro_mae(y_te, pred)}]
    # baselines
    dd_tr, dd_te = -train["days_to_due"].to_numpy(float), -test["days_to_due"].to_numpy(float)
    grid = -np.arange(0.0, 30.01, 0.25)
    pr, k = _rule(y_tr, dd_tr, dd_te, grid)
    rows.append({"row": "days-to-due<k", **_scores(y_te, dd_te, pr), "k_days": -k})
    fill = float((y_tr > 0).mean())
    ls_tr = train["project_late_share"].fillna(fill).to_numpy(float)
    ls_te = test["project_late_share"].fillna(fill).to_numpy(float)
    pr, c = _rule(y_tr, ls_tr, ls_te, np.arange(0.0, 1.001, 0.01))
    rows.append({"row": "project-late-share", **_scores(y_te, ls_te, pr), "cut": c})
    Z_tr = np.column_stack([train["days_to_due"].to_numpy(float), ls_tr])
    Z_te = np.column_stack([test["days_to_due"].to_numpy(float), ls_te])
    lr = LogisticRegression(class_weight="balanced", max_iter=1000).fit(Z_tr, (y_tr > 0).astype(int))
    s_tr, s_te = lr.predict_proba(Z_tr)[:, 1], lr.predict_proba(Z_te)[:, 1]
    pr, c = _rule(y_tr, s_tr, s_te, np.arange(0.05, 0.951, 0.01))
    rows.append({"row": "logistic(days_to_due,late-share)", **_scores(y_te, s_te, pr), "cut": c})
    censored = int(test_all["delay_days"].isna().sum())
    imp = model.feature_importance()
    total = sum(imp.values()) or 1.0
    return {
        "rows": rows, "split_at": str(split), "n_train_rows": int(len(train)), "n_train_tasks": model.n_tasks_,
        "n_test_rows": int(len(test)), "n_test_tasks": int(test["task_id"].nunique()),
        "n_test_censored": censored, "n_workspaces": int(snaps["workspace_id"].nunique()),
        "test_delayed_share": float((y_te > 0).mean()),
        "test_class_counts": np.bincount(y_te, minlength=N_CLASSES).tolist(),
        "thresholds": {k: list(v) for k, v in model.thresholds_.items()},
        "decision_threshold": model.threshold_,
        "top_features": {k: round(v / total, 4) for k, v in list(imp.items())[:10]},
        "data_s": data_s, "fit_s": fit_s, "model": model,
    }
