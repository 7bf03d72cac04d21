"""Daily workspace signals for anomaly detection: one row per project and per team at the end of each UTC day.

Two paths give the same rows (tested):

* :func:`daily_signals` (here) -- the batch builder for history: the event log (any number of workspaces) through
  the feature platform's own batch definitions (:mod:`sunday.features.compute.project` for the daily flows and the
  backlog, :mod:`~sunday.features.compute.workload` / :mod:`~sunday.features.compute.team` for open points per
  member and the Gini), plus the signals the platform does not have (stuck tasks, reassignments of one task).
* :class:`~sunday.models.anomaly.tracker.SignalTracker` -- the incremental path, one workspace, one event at a time
  (:mod:`sunday.models.anomaly.tracker`).

This module holds what both share: the signal names and row columns, :class:`SignalConfig`, the day and timestamp
helpers and the readers of event fields.

Project signals (``PROJECT_SIGNALS``; the daily flows are ``project_velocity``'s definitions):

==================== ==============================================================================================
``velocity``          tasks completed in the 7 days up to the day's end (a task counts at its first completion)
``hours_7d``          hours logged in the 7 days up to the day's end
``tasks_created``     tasks created that day
``stuck_days``        days since the last event (any type) of the project's longest-idle *started* task (status
                      ``in_progress`` or ``in_review``; 0 when none); ``stuck_task`` names it
``task_reassignments`` most ``reassigned`` events of one task in the 7 days up to the day's end; ``churn_task``
``backlog_tasks``     open tasks at the day's end
==================== ==============================================================================================

The rows also carry the day's flows (``tasks_done``, ``points_done``, ``hours_logged``, ``reassignments``).

Team signals (``TEAM_SIGNALS``): ``assigned_share``, the largest member's share of the tasks assigned to the
team's members (``assigned`` / ``reassigned`` events naming one) in the 14 days up to the day's end
(``assigned_14d`` of them, ``assigned_top`` names the member); and ``team_balance``'s ``max_member_share`` (largest
member's share of the team's open story points; ``top_member``) and ``open_points_gini`` (normalised Gini of
open points over the members of the users table), every day instead of only on active days.

Which days have a row:

* a project from the day of its first event, on every day on which it had an event in the last ``active_days``
  (14), or has open tasks and had an event in the last ``dormant_days`` (90); a team from its members' first event,
  while one of them had an event in the last ``dormant_days``;
* a workspace-wide silence longer than ``max_gap_days`` (30 days without any event) is skipped, not filled day by
  day; the stream's last day is closed by :meth:`~sunday.models.anomaly.tracker.SignalTracker.flush` (the batch
  builder ends at the workspace's last event day, or ``until``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from sunday.errors import SundayError, ValidationError
from sunday.features.compute.common import SCALE, STATUS_CODES, US_PER_DAY

PROJECT_SIGNALS = ("velocity", "hours_7d", "tasks_created", "stuck_days", "task_reassignments", "backlog_tasks")
TEAM_SIGNALS = ("assigned_share", "max_member_share", "open_points_gini")
PROJECT_COLUMNS = ("workspace_id", "project_id", "day", "tasks_done", "points_done", "hours_logged", "tasks_created",
                   "reassignments", "backlog_tasks", "velocity", "hours_7d", "stuck_days", "stuck_task",
                   "task_reassignments", "churn_task")
TEAM_COLUMNS = ("workspace_id", "team_id", "day", "assigned_share", "assigned_14d", "assigned_top",
                "open_points_gini", "max_member_share", "open_points_total", "member_count", "top_member")
#: what each signal's value is (for reasons and docs)
DESCRIPTIONS = {
    "velocity": "tasks completed in the last 7 days",
    "hours_7d": "hours logged in the last 7 days",
    "backlog_tasks": "open tasks",
    "assigned_share": "largest member's share of the team's assignments in the last 14 days",
    "tasks_created": "tasks created that day",
    "stuck_days": "days since the longest-idle started task had any activity",
    "task_reassignments": "most reassignments of one task in the last 7 days",
    "max_member_share": "largest member's share of the team's open story points",
    "open_points_gini": "Gini of open story points over the team's members",
}
TABLE = "task_events"
_IN_PROGRESS, _IN_REVIEW = STATUS_CODES["in_progress"], STATUS_CODES["in_review"]
_STARTED = (_IN_PROGRESS, _IN_REVIEW)


@dataclass
class SignalConfig:
    window_days: int = 7          # velocity, hours and reassignment windows
    share_days: int = 14          # the assignment-share window
    active_days: int = 14         # a project is watched while it had an event this recently ...
    dormant_days: int = 90        # ... or has open tasks and had one this recently (teams: a member event)
    max_gap_days: int = 30        # a longer workspace-wide silence is skipped, not filled day by day
    max_closed_tasks: int = 100_000  # closed tasks remembered (a reopened task forgotten before starts afresh)

    def __post_init__(self) -> None:
        for name in ("window_days", "share_days", "active_days", "dormant_days", "max_gap_days", "max_closed_tasks"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SundayError(f"SignalConfig.{name} must be a positive integer, got {v!r}")
        if self.dormant_days < self.active_days:
            raise SundayError(f"SignalConfig.dormant_days ({self.dormant_days}) must be >= active_days "
                              f"({self.active_days})")


def day_of(ts_us: int) -> int:
    return ts_us // US_PER_DAY


def day_end_us(day: int) -> int:
    return (day + 1) * US_PER_DAY - 1


def day_timestamp(day: int) -> pd.Timestamp:
    return pd.Timestamp(day * US_PER_DAY, unit="us")


_EPOCH = datetime(1970, 1, 1)


def timestamp_us(ts: Any, field: str = "timestamp") -> int:
    """A timestamp (datetime, pandas / numpy timestamp, ISO string; naive = UTC) -> int microseconds."""
    if isinstance(ts, datetime) and not isinstance(ts, pd.Timestamp) and ts.tzinfo is None:
        d = ts - _EPOCH
        return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError, OverflowError):
        raise ValidationError(TABLE, field, f"cannot be read as a timestamp: {ts!r}") from None
    if pd.isna(t):
        raise ValidationError(TABLE, field, "is missing")
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.value) // 1000


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return str(v)


def _number(v: Any) -> float | None:
    if v is None or v is pd.NA:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


# -- the batch builder --------------------------------------------------------------------------------------------

@dataclass
class DailySignals:
    projects: pd.DataFrame   # PROJECT_COLUMNS
    teams: pd.DataFrame      # TEAM_COLUMNS


def _event_frame(events: Any) -> pd.DataFrame:
    if hasattr(events, "to_pandas") and not isinstance(events, pd.DataFrame):
        events = events.to_pandas()
    if not isinstance(events, pd.DataFrame):
        events = pd.DataFrame(list(events))
    for c in ("event_id", "workspace_id", "task_id", "event_type", "timestamp"):
        if c not in events.columns:
            raise ValidationError(TABLE, c, "is required (a column of the event log)")
    return events


def _users_frame(users: pd.DataFrame | None) -> pd.DataFrame:
    if users is None:
        return pd.DataFrame({"user_id": [], "team_id": [], "workspace_id": []})
    for c in ("user_id", "team_id"):
        if c not in users.columns:
            raise ValidationError("users", c, "is required (user id -> team id)")
    return users


def _grid_days(event_days: np.ndarray, horizon: int, max_gap: int) -> np.ndarray:
    """Days a workspace's tracker closes: its event days and the days between them, except inside a silence
    longer than ``max_gap``; up to ``horizon``."""
    days = np.unique(event_days)
    stops = np.append(days[days <= horizon], horizon) if len(days) else np.array([horizon])
    stops = np.unique(stops)
    out = [stops[:1]]
    for a, b in zip(stops[:-1], stops[1:]):
        if b - a - 1 > max_gap:
            out.append(np.array([b]))
        else:
            out.append(np.arange(a + 1, b + 1))
    return np.concatenate(out).astype(np.int64)


def daily_signals(events: Any, users: pd.DataFrame | None = None, until: Any = None,
                  config: SignalConfig | None = None) -> DailySignals:
    """The daily project and team rows of every workspace in ``events`` (a task_events table or frame); ``users``
    (user_id, team_id) gives the teams; ``until`` (a timestamp) ends the rows, default each workspace's last
    event day."""
    config = config or SignalConfig()
    ev = _event_frame(events)
    users = _users_frame(users)
    until_day = None if until is None else day_of(timestamp_us(until, "until"))
    projects, teams = [], []
    for ws, part in ev.groupby("workspace_id", sort=True):
        u = users[users["workspace_id"] == ws] if "workspace_id" in users.columns else users
        p, t = _workspace_batch(str(ws), part, u, until_day, config)
        projects.append(p)
        teams.append(t)
    proj = pd.concat(projects, ignore_index=True) if projects else pd.DataFrame(columns=list(PROJECT_COLUMNS))
    team = pd.concat(teams, ignore_index=True) if teams else pd.DataFrame(columns=list(TEAM_COLUMNS))
    return DailySignals(proj, team)


def _argmax_rows(df: pd.DataFrame, keys: list[str], value: str, name: str) -> pd.DataFrame:
    """Per group of ``keys``: the largest ``value`` and the ``name`` holding it (ties: the smallest name)."""
    if df.empty:
        return pd.DataFrame(columns=[*keys, value, name])
    s = df.sort_values([*keys, value, name], ascending=[*([True] * len(keys)), False, True], kind="stable")
    return s.drop_duplicates(keys, keep="first")[[*keys, value, name]]


def _workspace_batch(ws: str, events: pd.DataFrame, users: pd.DataFrame, until_day: int | None,
                     config: SignalConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sunday.features.compute import project as fproject
    from sunday.features.compute import workload as fworkload
    from sunday.features.compute.common import Timeline, prepare_events, to_us
    from sunday.schema import get_spec

    ev = prepare_events(events)
    users = users[["user_id", "team_id"]] if len(users) else pd.DataFrame({"user_id": [], "team_id": []})
    vocab = fworkload.user_index(ev, users)
    tl = Timeline(ev, vocab)
    no_tasks = get_spec("tasks").schema.empty_table().to_pandas()
    W = config.window_days
    ev_day = np.floor_divide(ev["ts"].to_numpy(), US_PER_DAY)
    horizon = int(ev_day.max()) if until_day is None else int(until_day)
    grid = _grid_days(ev_day, horizon, config.max_gap_days)

    # -- projects: the platform's project_velocity flows and backlog, on every calendar day --------------------
    pv = fproject.compute(tl, no_tasks).to_pandas()
    pv["d"] = np.floor_divide(to_us(pv["event_timestamp"]), US_PER_DAY)
    has_p = ev["project_id"].notna().to_numpy()
    last_event = pd.DataFrame({"project_id": ev["project_id"].to_numpy()[has_p], "d": ev_day[has_p]})

    # stuck: segments where a task is started, from an event to the task's next event
    started = np.isin(tl.status_after, _STARTED) & pd.notna(tl.project_id)
    nxt = np.full(tl.n, np.iinfo(np.int64).max)
    if tl.n > 1:
        same = tl.task_id[1:] == tl.task_id[:-1]
        nxt[:-1] = np.where(same, tl.ts[1:], np.iinfo(np.int64).max)
    idx = np.flatnonzero(started)
    first_d = np.floor_divide(tl.ts[idx], US_PER_DAY)
    last_d = np.where(nxt[idx] == np.iinfo(np.int64).max, horizon, np.floor_divide(nxt[idx], US_PER_DAY) - 1)
    last_d = np.minimum(last_d, horizon)
    n = np.maximum(last_d - first_d + 1, 0)
    rep = np.repeat(np.arange(len(idx)), n)
    seg_day = first_d[rep] + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
    stuck = pd.DataFrame({"project_id": tl.project_id[idx][rep], "d": seg_day,
                          "stuck_task": tl.task_id[idx][rep],
                          "stuck_days": ((seg_day + 1) * US_PER_DAY - 1 - tl.ts[idx][rep]) / US_PER_DAY})
    stuck = _argmax_rows(stuck, ["project_id", "d"], "stuck_days", "stuck_task")

    # reassignments of one task in the window
    re = (tl.etype == "reassigned") & pd.notna(tl.project_id)
    r = pd.DataFrame({"project_id": tl.project_id[re], "task": tl.task_id[re],
                      "d0": np.floor_divide(tl.ts[re], US_PER_DAY)})
    r = r.loc[r.index.repeat(W)].assign(d=lambda x: x["d0"] + np.tile(np.arange(W), len(x) // W if W else 0))
    r = r.groupby(["project_id", "d", "task"], sort=False).size().rename("task_reassignments").reset_index()
    churn = _argmax_rows(r.rename(columns={"task": "churn_task"}), ["project_id", "d"], "task_reassignments",
                         "churn_task")

    rows = []
    for pid, g in pv.groupby("project_id", sort=True):
        first = int(g["d"].min())
        cal = np.arange(first, horizon + 1)
        if len(cal) == 0:
            continue
        f = g.set_index("d").reindex(cal)
        out = pd.DataFrame({"d": cal})
        for c in ("tasks_done", "points_done", "hours_logged", "tasks_created", "reassignments"):
            out[c] = f[c].fillna(0).to_numpy()
        out["backlog_tasks"] = f["backlog_tasks"].ffill().fillna(0).to_numpy()
        out["velocity"] = out["tasks_done"].rolling(W, min_periods=1).sum().to_numpy()
        hours = pd.Series(np.round(out["hours_logged"].to_numpy(np.float64) * SCALE).astype(np.int64))
        out["hours_7d"] = hours.rolling(W, min_periods=1).sum().to_numpy() / SCALE
        ld = last_event[last_event["project_id"] == pid]["d"].drop_duplicates()
        last = pd.Series(ld.to_numpy(), index=ld.to_numpy()).reindex(cal).ffill().to_numpy()
        gap = cal - last
        watched = (gap <= config.active_days) | ((out["backlog_tasks"].to_numpy() > 0) & (gap <= config.dormant_days))
        out = out[watched & np.isin(cal, grid)]
        out.insert(0, "project_id", pid)
        rows.append(out)
    proj = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["project_id", "d"])
    if len(proj):
        proj = proj.merge(stuck, on=["project_id", "d"], how="left").merge(churn, on=["project_id", "d"], how="left")
        proj["stuck_days"] = proj["stuck_days"].astype(np.float64).fillna(0.0)
        proj["task_reassignments"] = proj["task_reassignments"].astype(np.float64).fillna(0)
        proj["stuck_task"] = proj["stuck_task"].astype(object).where(proj["stuck_task"].notna(), None)
        proj["churn_task"] = proj["churn_task"].astype(object).where(proj["churn_task"].notna(), None)
    proj = _finish(proj, ws, "project_id", PROJECT_COLUMNS)
    for c in ("tasks_done", "tasks_created", "reassignments", "backlog_tasks", "task_reassignments"):
        proj[c] = proj[c].astype(np.int64)
    for c in ("points_done", "hours_logged", "velocity", "hours_7d", "stuck_days"):
        proj[c] = proj[c].astype(np.float64)

    # -- teams: open points per member (the platform's cumulative deltas), every day -----------------------------
    cum = fworkload.cumulative(fworkload.user_deltas(tl, no_tasks))
    members = users.dropna().drop_duplicates("user_id").sort_values("user_id", kind="stable")
    named = ev["user_id"].notna().to_numpy()
    ev_users = pd.DataFrame({"user_id": ev["user_id"].to_numpy()[named], "d": ev_day[named]})
    is_asg = named & ev["event_type"].isin(("assigned", "reassigned")).to_numpy()
    asg = pd.DataFrame({"user_id": ev["user_id"].to_numpy()[is_asg], "d": ev_day[is_asg]})
    S = config.share_days
    trows = []
    for tid, m in members.groupby("team_id", sort=True):
        ids = m["user_id"].to_numpy()
        d_ev = np.unique(ev_users.loc[ev_users["user_id"].isin(ids), "d"].to_numpy())
        if len(d_ev) == 0:
            continue
        cal = np.arange(int(d_ev[0]), horizon + 1)
        last = pd.Series(d_ev, index=d_ev).reindex(cal).ffill().to_numpy()
        keep = np.isin(cal, grid) & (cal - last <= config.dormant_days)
        days = cal[keep]
        if len(days) == 0:
            continue
        codes = vocab.get_indexer(ids)
        k = len(codes)
        stamps = np.repeat((days + 1) * US_PER_DAY - 1, k)
        pts = fworkload.state_at(cum, np.tile(codes, len(days)), stamps, ["c_points"])["c_points"]
        pts = np.maximum(pts.to_numpy().reshape(len(days), k), 0)
        vals = _balance(pts)
        top = np.where(vals["open_points_total"] > 0, ids[np.argmax(pts, axis=1)], None)
        # assignments per member over the share window (members in user-id order: argmax ties -> smallest id)
        mine = asg[asg["user_id"].isin(ids)]
        per = np.zeros((len(cal), k), dtype=np.int64)
        if len(mine):
            code = pd.Index(ids).get_indexer(mine["user_id"].to_numpy())
            at = mine["d"].to_numpy() - cal[0]
            ok = (at >= 0) & (at < len(cal))
            np.add.at(per, (at[ok], code[ok]), 1)
        run = np.cumsum(per, axis=0)
        win = run - np.vstack([np.zeros((S, k), np.int64), run[:-S]])[: len(cal)] if len(cal) > S else run
        win = win[keep]
        n_asg = win.sum(axis=1)
        share = np.where(n_asg > 0, win.max(axis=1) / np.maximum(n_asg, 1), 0.0)
        a_top = np.where(n_asg > 0, ids[np.argmax(win, axis=1)], None)
        trows.append(pd.DataFrame({"team_id": tid, "d": days, "assigned_share": share, "assigned_14d": n_asg,
                                   "assigned_top": a_top, **vals, "member_count": k, "top_member": top}))
    team = pd.concat(trows, ignore_index=True) if trows else pd.DataFrame(columns=["team_id", "d"])
    team = _finish(team, ws, "team_id", TEAM_COLUMNS)
    for c in ("member_count", "assigned_14d"):
        team[c] = team[c].astype(np.int64)
    for c in ("assigned_share", "open_points_gini", "max_member_share", "open_points_total"):
        team[c] = team[c].astype(np.float64)
    return proj, team


def _balance(pts: np.ndarray) -> dict[str, np.ndarray]:
    """``team_balance``'s values of each row of a (days, members) matrix of open fixed-point points."""
    from sunday.features.compute.team import gini

    total = pts.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, pts.max(axis=1) / np.maximum(total, 1), 0.0) if pts.shape[1] else \
            np.zeros(len(pts))
    return {"open_points_gini": gini(pts) if pts.shape[1] else np.zeros(len(pts)), "max_member_share": share,
            "open_points_total": total / SCALE}


def _finish(df: pd.DataFrame, ws: str, key: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("workspace_id", key, "stuck_task", "churn_task",
                                                                 "top_member", "assigned_top") else
                                          ("datetime64[ns]" if c == "day" else np.float64)) for c in columns})
    df = df.assign(workspace_id=ws, day=pd.to_datetime(df["d"].to_numpy() * US_PER_DAY, unit="us"))
    return df.sort_values([key, "day"], kind="stable")[list(columns)].reset_index(drop=True)
