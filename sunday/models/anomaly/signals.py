"""Daily workspace signals for anomaly detection: one row per project and per team at the end of each UTC day.

Two paths give the same rows (tested):

* :func:`daily_signals` -- the batch builder for history: the event log (any number of workspaces) through the
  feature platform's own batch definitions (:mod:`sunday.features.compute.project` for the daily flows and the
  backlog, :mod:`~sunday.features.compute.workload` / :mod:`~sunday.features.compute.team` for open points per
  member and the Gini), plus the signals the platform does not have (stuck tasks, reassignments of one task).
* :class:`SignalTracker` -- the incremental path, one workspace: :meth:`~SignalTracker.observe` takes one event
  at a time and, when an event opens a later day, closes the open day (and the days between) and returns their
  rows. Its state is the open tasks, a bounded memory of closed tasks and a few numbers per project / user / team:
  it does not grow with the length of the history.

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
  day; the stream's last day is closed by :meth:`SignalTracker.flush` (the batch builder ends at the workspace's
  last event day, or ``until``).

An event older than the tracker's open day, or of a day already flushed (a late one), still changes the task's
state; its flows count in the next day closed. Ties in time are taken in event-id order (as the feature platform
does). A task forgotten from the bounded memory of closed tasks (``max_closed_tasks``) and reopened starts afresh.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping

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
_TODO, _IN_PROGRESS, _IN_REVIEW = STATUS_CODES["todo"], STATUS_CODES["in_progress"], STATUS_CODES["in_review"]
_CLOSED = (STATUS_CODES["done"], STATUS_CODES["cancelled"])
_STARTED = (_IN_PROGRESS, _IN_REVIEW)
_NEVER = np.iinfo(np.int64).min


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


def _fixed(value: float) -> int:
    return int(np.round(float(value) * SCALE))


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


# -- the incremental path -----------------------------------------------------------------------------------------

class _Task:
    __slots__ = ("project", "status", "assignee", "points", "last_us", "done")

    def __init__(self, project: str | None):
        self.project = project
        self.status = _TODO
        self.assignee: str | None = None
        self.points = 0
        self.last_us = _NEVER
        self.done = False

    @property
    def open(self) -> bool:
        return self.status not in _CLOSED


class _Project:
    __slots__ = ("first_day", "last_day", "backlog", "done", "points", "hours", "created", "reassigned",
                 "window", "started", "recent")

    def __init__(self, day: int, window: int):
        self.first_day = day
        self.last_day = day
        self.backlog = 0
        self.done = self.points = self.hours = self.created = self.reassigned = 0
        self.window: deque[tuple[int, int, int]] = deque()  # (day, tasks done, fixed hours) of the last days
        self.started: set[str] = set()                  # started open tasks
        self.recent: dict[str, deque[int]] = {}         # task -> days of its reassignments in the window


@dataclass
class DayRows:
    """The rows of one closed day (project and team rows as dicts with PROJECT_COLUMNS / TEAM_COLUMNS)."""

    workspace_id: str
    day: int
    projects: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)


def clean_teams(teams: Mapping[Any, Any]) -> dict[str, str]:
    """user id -> team id as strings, users without a team (None / NaN) left out."""
    return {str(u): str(t) for u, t in teams.items() if _text(t) is not None and _text(u) is not None}


def team_members(teams: Mapping[str, str]) -> dict[str, list[str]]:
    """user -> team (clean)  ->  team -> members in user-id order."""
    out: dict[str, list[str]] = {}
    for u, t in sorted(teams.items()):
        out.setdefault(t, []).append(u)
    return out


class SignalTracker:
    """Incremental daily signals of one workspace (see the module docstring); ``teams``: user id -> team id (may
    hold other workspaces' users too: they are never named by this workspace's events)."""

    def __init__(self, workspace_id: str, teams: Mapping[str, str] | None = None,
                 config: SignalConfig | None = None, members: Mapping[str, list[str]] | None = None):
        self.workspace_id = workspace_id
        self.config = config or SignalConfig()
        if members is None:
            teams = clean_teams(teams or {})
            members = team_members(teams)
        # user -> team and team -> its members in user-id order (shared with the caller when given, not copied)
        self.team_of: Mapping[str, str] = teams or {}
        self.members: Mapping[str, list[str]] = members
        self.open_day: int | None = None
        self._flushed = False
        self.tasks: dict[str, _Task] = {}
        self.closed: OrderedDict[str, _Task] = OrderedDict()
        self.projects: dict[str, _Project] = {}
        self.load: dict[str, int] = {}          # user -> open fixed-point points held
        self.team_first: dict[str, int] = {}
        self.team_last: dict[str, int] = {}
        self.assigned: dict[str, deque[tuple[int, str]]] = {}   # team -> (day, member) of recent assignments

    # -- events ------------------------------------------------------------------------------------------------
    def observe(self, event: Mapping[str, Any]) -> list[DayRows]:
        """Apply one event (a task_events dict); the rows of the days it closes (usually none)."""
        if not isinstance(event, Mapping):
            raise SundayError(f"a task event must be a mapping of field -> value, got {type(event).__name__}")
        for name in ("task_id", "event_type", "timestamp"):
            if _text(event.get(name)) is None:
                raise ValidationError(TABLE, name, "is required", key=event.get("event_id"))
        ws = _text(event.get("workspace_id"))
        if ws is not None and ws != self.workspace_id:
            raise ValidationError(TABLE, "workspace_id", f"is {ws!r}; this tracker follows {self.workspace_id!r}",
                                  key=event.get("event_id"))
        return self.apply(str(event["task_id"]), _text(event.get("project_id")), str(event["event_type"]),
                          timestamp_us(event["timestamp"]), _text(event.get("user_id")),
                          _text(event.get("to_status")), _number(event.get("story_points")),
                          _number(event.get("hours")))

    def apply(self, task_id: str, project_id: str | None, event_type: str, ts_us: int, user_id: str | None = None,
              to_status: str | None = None, story_points: float | None = None,
              hours: float | None = None) -> list[DayRows]:
        """:meth:`observe` on already parsed fields (the fast path of a replay)."""
        day = ts_us // US_PER_DAY
        out = self._advance(day)
        open_day: int = self.open_day if self.open_day is not None else day  # (set by _advance)
        t = self.tasks.get(task_id)
        if t is None:
            t = self.closed.pop(task_id, None)
            existed = t is not None
            if t is None:
                t = _Task(project_id)
            self.tasks[task_id] = t
        else:
            existed = True
        old_project = t.project
        holder_b = t.assignee
        open_b = existed and t.open
        load_b = t.points if open_b else 0
        started_b = open_b and t.status in _STARTED
        # the task's state after the event (the Timeline's rules)
        t.project = project_id
        if event_type in ("assigned", "reassigned") and user_id is not None:
            t.assignee = user_id
        if event_type == "completed":
            t.status = STATUS_CODES["done"]
        elif event_type == "status_changed" and to_status in STATUS_CODES:
            t.status = STATUS_CODES[to_status]
        if event_type in ("created", "scope_changed") and story_points is not None:
            t.points = _fixed(story_points)
        t.last_us = max(t.last_us, ts_us)
        open_a = t.open
        load_a = t.points if open_a else 0
        if holder_b != t.assignee or open_b != open_a or load_b != load_a:
            if holder_b is not None:
                self.load[holder_b] = self.load.get(holder_b, 0) - load_b
            if t.assignee is not None:
                self.load[t.assignee] = self.load.get(t.assignee, 0) + load_a
        # project stocks and flows (the event's own project, as the platform counts them)
        if started_b and old_project is not None and old_project in self.projects:
            self.projects[old_project].started.discard(task_id)
        if project_id is not None:
            p = self.projects.get(project_id)
            if p is None:
                p = self.projects[project_id] = _Project(open_day, self.config.window_days)
            p.last_day = max(p.last_day, day)
            p.backlog += int(open_a) - int(open_b)
            if open_a and t.status in _STARTED:
                p.started.add(task_id)
            if event_type == "completed" and not t.done:
                p.done += 1
                p.points += t.points
            elif event_type == "time_logged" and hours is not None:
                p.hours += _fixed(hours)
            elif event_type == "created":
                p.created += 1
            elif event_type == "reassigned":
                p.reassigned += 1
                p.recent.setdefault(task_id, deque()).append(open_day)
        if event_type == "completed":
            t.done = True
        if user_id is not None and user_id in self.team_of:
            team = self.team_of[user_id]
            self.team_first.setdefault(team, open_day)
            self.team_last[team] = max(self.team_last.get(team, open_day), day)
            if event_type in ("assigned", "reassigned"):
                self.assigned.setdefault(team, deque()).append((open_day, user_id))
        if not open_a:
            del self.tasks[task_id]
            self.closed[task_id] = t
            if len(self.closed) > self.config.max_closed_tasks:
                self.closed.popitem(last=False)
        return out

    def _advance(self, day: int) -> list[DayRows]:
        """Make ``day`` the open day, closing the open day and the days between (unless a silence longer than
        ``max_gap_days`` lies between)."""
        if self.open_day is None:
            self.open_day = day
            return []
        if day <= self.open_day:
            return []
        out = [] if self._flushed else [self.close_day()]
        if day - self.open_day - 1 <= self.config.max_gap_days:
            for d in range(self.open_day + 1, day):
                self.open_day = d
                out.append(self.close_day())
        self.open_day = day
        self._flushed = False
        return out

    def advance(self, until: Any) -> list[DayRows]:
        """Close every day before the day of ``until`` (a timestamp; a clock tick when no event comes)."""
        day = day_of(timestamp_us(until, "until"))
        return self._advance(day) if self.open_day is not None else []

    def flush(self, until: Any = None) -> list[DayRows]:
        """Close the open day and, with ``until``, the days up to its day: the rows of the days closed. An event
        of a day already closed then counts as a late one."""
        if self.open_day is None:
            return []
        end = self.open_day if until is None else day_of(timestamp_us(until, "until"))
        out = self._advance(end) if end > self.open_day else []
        if not self._flushed:
            out.append(self.close_day())
            self._flushed = True
        return out

    # -- closing a day -------------------------------------------------------------------------------------------
    def close_day(self) -> DayRows:
        """The rows of the open day (its flows are then reset; the day stays the open one until an event moves
        on)."""
        c = self.open_day
        if c is None:
            return DayRows(self.workspace_id, 0)
        cfg = self.config
        end = (c + 1) * US_PER_DAY - 1
        rows = DayRows(self.workspace_id, c)
        day = day_timestamp(c)
        for pid in sorted(self.projects):
            p = self.projects[pid]
            if p.first_day > c:
                continue
            p.window.append((c, p.done, p.hours))
            while p.window and p.window[0][0] <= c - cfg.window_days:
                p.window.popleft()
            gap = c - p.last_day
            watched = gap <= cfg.active_days or (p.backlog > 0 and gap <= cfg.dormant_days)
            if watched:
                stuck, stuck_task = -1.0, ""
                for tid in p.started:
                    idle = (end - self.tasks[tid].last_us) / US_PER_DAY
                    if idle > stuck or (idle == stuck and tid < stuck_task):
                        stuck, stuck_task = idle, tid
                stuck = max(stuck, 0.0)
                churn, churn_task = 0, ""
                for tid in list(p.recent):
                    q = p.recent[tid]
                    while q and q[0] <= c - cfg.window_days:
                        q.popleft()
                    if not q:
                        del p.recent[tid]
                        continue
                    if len(q) > churn or (len(q) == churn and tid < churn_task):
                        churn, churn_task = len(q), tid
                rows.projects.append({
                    "workspace_id": self.workspace_id, "project_id": pid, "day": day, "tasks_done": p.done,
                    "points_done": p.points / SCALE, "hours_logged": p.hours / SCALE, "tasks_created": p.created,
                    "reassignments": p.reassigned, "backlog_tasks": p.backlog,
                    "velocity": float(sum(w[1] for w in p.window)),
                    "hours_7d": sum(w[2] for w in p.window) / SCALE, "stuck_days": stuck,
                    "stuck_task": stuck_task or None, "task_reassignments": churn, "churn_task": churn_task or None})
            else:
                for tid in list(p.recent):
                    q = p.recent[tid]
                    while q and q[0] <= c - cfg.window_days:
                        q.popleft()
                    if not q:
                        del p.recent[tid]
            p.done = p.points = p.hours = p.created = p.reassigned = 0
        for team in sorted(self.team_first):
            recent = self.assigned.get(team)
            while recent and recent[0][0] <= c - cfg.share_days:
                recent.popleft()
            if self.team_first[team] > c or c - self.team_last[team] > cfg.dormant_days:
                continue
            ids = self.members[team]
            counts: dict[str, int] = {}
            for _, u in recent or ():
                counts[u] = counts.get(u, 0) + 1
            n_asg = sum(counts.values())
            a_top = min(counts, key=lambda m: (-counts[m], m)) if counts else ""
            pts = np.array([[max(self.load.get(u, 0), 0) for u in ids]], dtype=np.int64)
            vals = _balance(pts)
            total = float(vals["open_points_total"][0])
            rows.teams.append({
                "workspace_id": self.workspace_id, "team_id": team, "day": day,
                "assigned_share": counts[a_top] / n_asg if n_asg else 0.0, "assigned_14d": n_asg,
                "assigned_top": a_top or None, "open_points_gini": float(vals["open_points_gini"][0]),
                "max_member_share": float(vals["max_member_share"][0]), "open_points_total": total,
                "member_count": len(ids), "top_member": ids[int(np.argmax(pts[0]))] if total > 0 else None})
        return rows

    def state_size(self) -> int:
        """Objects held: open tasks, remembered closed tasks, projects (with their started / recent tasks), users."""
        return (len(self.tasks) + len(self.closed) + len(self.load) + sum(len(q) for q in self.assigned.values())
                + sum(1 + len(p.started) + len(p.recent) + len(p.window) for p in self.projects.values()))


def stream_signals(events: Any, users: pd.DataFrame | None = None, until: Any = None,
                   config: SignalConfig | None = None) -> DailySignals:
    """:func:`daily_signals` through :class:`SignalTracker` (events in (timestamp, event id) order): the same
    rows, from the incremental path."""
    ev = _event_frame(events)
    users = _users_frame(users)
    projects: list[dict] = []
    teams: list[dict] = []
    for ws, part in ev.groupby("workspace_id", sort=True):
        u = users[users["workspace_id"] == ws] if "workspace_id" in users.columns else users
        tracker = SignalTracker(str(ws), dict(zip(u["user_id"], u["team_id"])), config)
        for rows in _replay(tracker, part):
            projects += rows.projects
            teams += rows.teams
        end = until
        if end is None:
            end = day_timestamp(tracker.open_day) if tracker.open_day is not None else None
        for rows in tracker.flush(end):
            projects += rows.projects
            teams += rows.teams
    proj = pd.DataFrame(projects, columns=list(PROJECT_COLUMNS))
    team = pd.DataFrame(teams, columns=list(TEAM_COLUMNS))
    proj = proj.sort_values(["workspace_id", "project_id", "day"], kind="stable").reset_index(drop=True)
    team = team.sort_values(["workspace_id", "team_id", "day"], kind="stable").reset_index(drop=True)
    return DailySignals(proj, team)


def ordered_events(events: pd.DataFrame) -> Iterable[tuple]:
    """(task, project, type, ts_us, user, to_status, points, hours, event_id, workspace) tuples of an event frame
    in (timestamp, event id) order."""
    from sunday.features.compute.common import to_us

    ts = to_us(events["timestamp"].reset_index(drop=True))
    order = np.lexsort((events["event_id"].to_numpy().astype(str), ts))

    def col(name):
        if name not in events.columns:
            return [None] * len(events)
        v = events[name].to_numpy(dtype=object)[order]
        return [None if x is None or (isinstance(x, float) and x != x) else x for x in v]

    def num(name):
        if name not in events.columns:
            return [None] * len(events)
        v = pd.to_numeric(events[name], errors="coerce").to_numpy(np.float64)[order]
        return [None if x != x else float(x) for x in v]

    return zip(col("task_id"), col("project_id"), col("event_type"), ts[order].tolist(), col("user_id"),
               col("to_status"), num("story_points"), num("hours"), col("event_id"), col("workspace_id"))


def _replay(tracker: SignalTracker, events: pd.DataFrame) -> Iterable[DayRows]:
    for task, project, etype, ts, user, to_status, points, hours, _eid, _ws in ordered_events(events):
        yield from tracker.apply(str(task), project, etype, ts, user, to_status, points, hours)
