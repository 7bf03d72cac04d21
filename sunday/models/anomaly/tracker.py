"""The incremental path of the daily workspace signals (what they are, and which days have a row:
:mod:`sunday.models.anomaly.signals`).

:class:`SignalTracker` follows one workspace: :meth:`~SignalTracker.observe` takes one event at a time and, when an
event opens a later day, closes the open day (and the days between) and returns their rows (:class:`DayRows`). Its
state is the open tasks, a bounded memory of closed tasks and a few numbers per project / user / team: it does not
grow with the length of the history. :func:`stream_signals` replays an event log through trackers: the same rows as
the batch builder, :func:`~sunday.models.anomaly.signals.daily_signals` (tested).

An event older than the tracker's open day, or of a day already flushed (a late one), still changes the task's
state; its flows count in the next day closed. Ties in time are taken in event-id order (as the feature platform
does). A task forgotten from the bounded memory of closed tasks (``max_closed_tasks``) and reopened starts afresh.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from sunday.errors import SundayError, ValidationError
from sunday.features.compute.common import SCALE, STATUS_CODES, US_PER_DAY
from sunday.models.anomaly.signals import (
    _STARTED, PROJECT_COLUMNS, TABLE, TEAM_COLUMNS, DailySignals, SignalConfig, _balance, _event_frame, _number,
    _text, _users_frame, day_of, day_timestamp, timestamp_us,
)

_TODO = STATUS_CODES["todo"]
_CLOSED = (STATUS_CODES["done"], STATUS_CODES["cancelled"])
_NEVER = np.iinfo(np.int64).min


def _fixed(value: float) -> int:
    return int(np.round(float(value) * SCALE))


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
            for tid in list(p.recent):  # reassignments older than the window drop out
                q = p.recent[tid]
                while q and q[0] <= c - cfg.window_days:
                    q.popleft()
                if not q:
                    del p.recent[tid]
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
                for tid, q in p.recent.items():
                    if len(q) > churn or (len(q) == churn and tid < churn_task):
                        churn, churn_task = len(q), tid
                rows.projects.append({
                    "workspace_id": self.workspace_id, "project_id": pid, "day": day, "tasks_done": p.done,
                    "points_done": p.points / SCALE, "hours_logged": p.hours / SCALE, "tasks_created": p.created,
                    "reassignments": p.reassigned, "backlog_tasks": p.backlog,
                    "velocity": float(sum(w[1] for w in p.window)),
                    "hours_7d": sum(w[2] for w in p.window) / SCALE, "stuck_days": stuck,
                    "stuck_task": stuck_task or None, "task_reassignments": churn, "churn_task": churn_task or None})
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
