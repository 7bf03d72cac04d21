"""The workspace monitor: the anomaly ensembles on every project's and team's daily signals, fed day by day from
the event stream, and alerts with reasons.

    monitor = WorkspaceMonitor.from_simulation(sim_path, sink=AlertStore.for_settings(settings))
    monitor.replay(events)                   # history (events in time order; repeated event ids are ignored)
    consumer = StreamingConsumer(settings, sim_path, listeners=[monitor])    # then live, one event at a time

Each event goes to its workspace's :class:`~sunday.models.anomaly.tracker.SignalTracker`; when an event opens a
later day, the tracker closes the days before it and every watched (entity, signal) gets the day's value. One
:class:`~sunday.models.anomaly.ensemble.Ensemble` per (entity, signal) scores it (:func:`daily_preset`: robust z,
EWMA and weekly-seasonal rules, each calibrated on the series' own history). Ensembles are two-sided and know
nothing of effect sizes; what a project manager needs is one-sided and large, so a day is *unusual* when its
:class:`SignalRule` holds: the value is on the side that matters and far enough from the signal's baseline (median
of its previous ``baseline_days`` values), the row's context agrees (``requires``, ``companion``), and the
ensemble's combined score reaches the rule's ``min_score`` -- or the value is past the rule's ``sure`` level,
where the rule alone decides. The direction is handled only here: the detectors see the raw series.

Which part carries which signal (:data:`RULES`, measured by ``sunday eval anomaly-sim``): the ensemble's score
gates creation spikes (0.7), workload concentration (0.3) and, barely, velocity (0.1: on a young project's
7-day rolling series the calibrated detectors score a drop to a third at only 0.2-0.6, so most of the precision
comes from the rule's hours-logged and open-work conditions); stuck tasks past 21 days and reassignment churn
(3+ reassignments of one task in a week) alert on the rule alone, the detectors still decide the 14-21-day stuck
cases.

A run of unusual days is one alert (a new unusual day within ``merge_days`` of an alert's end extends it; for
the one-task signals a different task opens a new alert); the alert names the signal, the anomaly kind it points
at, the value against its baseline, the detectors that agreed, the task or member at its peak, and a sentence of
reason. Alerts go to ``sink`` (an :class:`~sunday.models.anomaly.alerts.AlertStore`, or any callable taking a
list of alerts) each time one opens, grows or closes.

Memory is bounded: a tracker holds the open tasks, a bounded memory of closed ones and a few numbers per project,
user and team; each ensemble's state is bounded by its windows; the (entity, signal) state of an entity not
watched for ``dormant_days`` is dropped; event ids are remembered for ``dedupe_days`` to drop repeats (an event
more than ``dedupe_days`` behind the stream is ignored: it cannot be told from a repeat).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from sunday.errors import SundayError, ValidationError
from sunday.models.anomaly.alerts import AnomalyAlert
from sunday.models.anomaly.base import TailCalibration
from sunday.models.anomaly.ensemble import Ensemble, EnsembleConfig
from sunday.models.anomaly.signals import DESCRIPTIONS, SignalConfig, _number, _text, day_timestamp, timestamp_us
from sunday.models.anomaly.tracker import DayRows, SignalTracker, clean_teams, ordered_events, team_members

Sink = Callable[[list[AnomalyAlert]], Any]
#: the row column naming what a signal's value is about (a task or a member)
SUBJECT = {"stuck_days": "stuck_task", "task_reassignments": "churn_task", "max_member_share": "top_member",
           "open_points_gini": "top_member", "assigned_share": "assigned_top"}
#: signals about one task: a different task is a different alert
TASK_SUBJECT = ("stuck_days", "task_reassignments")


@dataclass(frozen=True)
class SignalRule:
    """When a day of one signal is unusual, on top of (or, past ``sure``, instead of) the ensemble's score.

    The effect must be large against the signal's baseline (median of its previous ``baseline_days`` values):
    ``direction`` ``low``: value <= ``ratio`` x baseline, baseline - value >= ``min_change`` and baseline >=
    ``min_level`` (something to drop from); ``high``: value >= ``ratio`` x baseline, value - baseline >=
    ``min_change`` and value >= ``min_level``. ``requires``: other columns of the day's row and their minimum (a
    velocity drop needs open work left). ``companion``: another column that must move the same way against its own
    baseline, by ``companion_ratio`` (completions *and* hours logged fall). Then the day is unusual when the
    ensemble's combined score reaches ``min_score`` (default: the ensemble's threshold), or without it when the
    value is past ``sure`` (the detectors abstain while a young series warms up, and a series' own earlier
    spikes can blunt them).
    """

    entity: str          # "project" | "team"
    kind: str            # the anomaly kind it points at (the simulator's names)
    direction: str       # "low" | "high"
    min_change: float
    ratio: float = 1.0
    min_level: float = 0.0
    requires: tuple[tuple[str, float], ...] = ()
    companion: str | None = None
    companion_ratio: float = 1.0
    min_score: float | None = None
    sure: float | None = None

    def __post_init__(self) -> None:
        if self.entity not in ("project", "team"):
            raise SundayError(f"SignalRule.entity must be 'project' or 'team', got {self.entity!r}")
        if self.direction not in ("low", "high"):
            raise SundayError(f"SignalRule.direction must be 'low' or 'high', got {self.direction!r}")
        for name in ("min_change", "ratio", "min_level", "companion_ratio"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise SundayError(f"SignalRule.{name} must be a number >= 0, got {v!r}")
        if self.min_score is not None and not 0 <= self.min_score <= 1:
            raise SundayError(f"SignalRule.min_score must be in [0, 1], got {self.min_score!r}")

    def effect(self, value: float, baseline: float) -> bool:
        """Is ``value`` far enough from ``baseline``, on the side that matters?"""
        if self.direction == "low":
            return (value <= self.ratio * baseline and baseline - value >= self.min_change
                    and baseline >= self.min_level)
        return value >= self.ratio * baseline and value - baseline >= self.min_change and value >= self.min_level

    def beyond_sure(self, value: float) -> bool:
        if self.sure is None:
            return False
        return value <= self.sure if self.direction == "low" else value >= self.sure


#: the signals watched and their rules (the signal preset; names are signals.PROJECT_SIGNALS / TEAM_SIGNALS)
RULES: dict[str, SignalRule] = {
    # tasks done in 7 days at most half the usual and 3 fewer, hours logged at most 0.3x usual, 10+ tasks open (a
    # project running out of work slows down too); the detectors only have to find the day unusual at all
    "velocity": SignalRule("project", "velocity_drop", "low", min_change=3, ratio=0.5, min_level=4,
                           requires=(("backlog_tasks", 10),), companion="hours_7d", companion_ratio=0.3,
                           min_score=0.1),
    # 3x the usual daily creation and 5 more, at least 6; 10+ even while the detectors warm up
    "tasks_created": SignalRule("project", "creation_spike", "high", min_change=5, ratio=3.0, min_level=6, sure=10),
    # a started task idle 2x the usual longest wait, 7 days more and 14 days at least; 21+ days on the rule alone
    "stuck_days": SignalRule("project", "stuck_task", "high", min_change=7, ratio=2.0, min_level=14, sure=21),
    # one task reassigned 3+ times in 7 days (on the rule alone: the detectors are blunted by the single
    # reassignments a zero-inflated series carries)
    "task_reassignments": SignalRule("project", "reassignment_churn", "high", min_change=2, min_level=3, sure=3),
    # one member got 70%+ of the team's 10+ assignments of the last 14 days, 30 points above the usual share
    "assigned_share": SignalRule("team", "workload_concentration", "high", min_change=0.3, min_level=0.7,
                                 requires=(("assigned_14d", 10),), min_score=0.3),
}


def daily_preset() -> tuple[EnsembleConfig, dict[str, dict[str, Any]]]:
    """The ensemble for daily workspace signals (a project lives ~100-300 days): robust z over 8 weeks, EWMA with a
    2-week half-life, the weekly seasonal rule (mean of the 2 highest scores); scores once a detector has 10 points
    and 14 statistics (about 3.5 weeks), calibrated on a year of statistics with a 10 % exponential tail and 3
    decades, at the point and 20-day timescales (the defaults -- 2 % tail, 64-statistic warm-up -- need series far
    longer than a project). No recurrence discount and no lone-detector weight (``solo``): both were off when the
    rules were chosen on the tuning seeds. The window Isolation Forest is
    left out: it needs hundreds of points to fit, more than most projects have days. Every
    setting is spelled out, so that a change of the ensemble's defaults does not move these results."""
    from sunday.models.anomaly.stats import EwmaConfig, RobustZConfig, SeasonalConfig

    cal = TailCalibration(history=365, min_history=14, tail=0.1, decades=3.0, refresh=7, timescales=(1, 20))
    config = EnsembleConfig(detectors=("robust_z", "ewma", "seasonal"), top_k=2, solo=0.0, threshold=0.7, agree=0.6,
                            recurrence_cycles=0, calibration=cal)
    args: dict[str, dict[str, Any]] = {
        "robust_z": {"config": RobustZConfig(window=56, min_points=10)},
        "ewma": {"config": EwmaConfig(halflife=14.0, min_points=10)},
        "seasonal": {"config": SeasonalConfig(cycles=4, min_cycles=2, halflife=28.0)}}
    return config, args


@dataclass
class MonitorConfig:
    rules: dict[str, SignalRule] = field(default_factory=lambda: dict(RULES))
    signals: SignalConfig = field(default_factory=SignalConfig)
    ensemble: EnsembleConfig | None = None          # None: daily_preset()
    detector_args: dict[str, dict[str, Any]] | None = None
    baseline_days: int = 28
    min_baseline: int = 7      # values needed before a day may alert
    merge_days: int = 7
    dedupe_days: int = 7

    def __post_init__(self) -> None:
        from sunday.models.anomaly.signals import PROJECT_COLUMNS, PROJECT_SIGNALS, TEAM_COLUMNS, TEAM_SIGNALS

        known = {**{s: "project" for s in PROJECT_SIGNALS}, **{s: "team" for s in TEAM_SIGNALS}}
        for name, rule in self.rules.items():
            if name not in known:
                raise SundayError(f"MonitorConfig.rules: unknown signal {name!r}; known: {', '.join(known)}")
            if rule.entity != known[name]:
                raise SundayError(f"MonitorConfig.rules[{name!r}].entity must be {known[name]!r}")
            cols = PROJECT_COLUMNS if rule.entity == "project" else TEAM_COLUMNS
            for c in [c for c, _ in rule.requires] + ([rule.companion] if rule.companion else []):
                if c not in cols:
                    raise SundayError(f"MonitorConfig.rules[{name!r}]: unknown {rule.entity} column {c!r}")
        for name in ("baseline_days", "min_baseline", "merge_days", "dedupe_days"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (v == 0 and name != "merge_days"):
                raise SundayError(f"MonitorConfig.{name} must be a positive integer, got {v!r}")
        if self.min_baseline > self.baseline_days:
            raise SundayError("MonitorConfig.min_baseline must be <= baseline_days")
        if self.ensemble is None:
            self.ensemble, args = daily_preset()
            if self.detector_args is None:
                self.detector_args = args


class _Watch:
    """One (entity, signal): its ensemble, recent values and the alert it may have open."""

    __slots__ = ("ensemble", "history", "companion", "alert", "last_day", "end_day")

    def __init__(self, ensemble: Ensemble, baseline_days: int):
        self.ensemble = ensemble
        self.history: deque[float] = deque(maxlen=baseline_days)
        self.companion: deque[float] = deque(maxlen=baseline_days)
        self.alert: AnomalyAlert | None = None
        self.last_day = -1
        self.end_day = -1


@dataclass
class ReplayStats:
    events: int = 0
    duplicates: int = 0
    days: int = 0
    alerts: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def _iso(day: int) -> str:
    return day_timestamp(day).date().isoformat()


def _fmt(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def reason(signal: str, value: float, baseline: float, subject: str | None, day: str,
           row: Mapping[str, Any] | None = None, companion_baseline: float | None = None) -> str:
    """One sentence for a project manager (``row``: the day's signal row, for context)."""
    row = row or {}
    if signal == "velocity":
        drop = 1 - value / baseline if baseline > 0 else 1.0
        out = (f"velocity dropped: {_fmt(value)} tasks completed in the 7 days to {day}, against a usual "
               f"{_fmt(baseline)} ({drop:.0%} lower)")
        if "hours_7d" in row and companion_baseline is not None:
            out += f"; {_fmt(float(row['hours_7d']))} hours logged against a usual {_fmt(companion_baseline)}"
        if "backlog_tasks" in row:
            out += f"; {int(row['backlog_tasks'])} tasks still open"
        return out
    if signal == "tasks_created":
        return (f"task creation spiked: {_fmt(value)} tasks created on {day}, against a usual {_fmt(baseline)} "
                "a day")
    if signal == "stuck_days":
        return (f"task {subject} looks stuck: started but no activity for {value:.0f} days (the longest wait of a "
                f"started task is usually {baseline:.0f} days)")
    if signal == "task_reassignments":
        return f"task {subject} is being passed around: reassigned {_fmt(value)} times in 7 days"
    if signal == "assigned_share":
        n = row.get("assigned_14d")
        of = f" of the team's {int(n)} assignments" if n is not None else " of the team's assignments"
        return (f"work is concentrating on {subject}: {value:.0%}{of} in the 14 days to {day}, against a usual "
                f"{baseline:.0%}")
    if signal == "max_member_share":
        return (f"work is concentrating on {subject}: {value:.0%} of the team's open story points, against a usual "
                f"{baseline:.0%}")
    if signal == "open_points_gini":
        return f"open work is unevenly spread: Gini {value:.2f} against a usual {baseline:.2f}"
    return f"{DESCRIPTIONS.get(signal, signal)}: {value:g} against a usual {baseline:g}"


class WorkspaceMonitor:
    """Anomaly monitoring of every workspace in an event stream (see the module docstring).

    ``teams``: user id -> team id (the users table), ``projects``: project id -> team id (the projects table);
    both optional (without ``teams`` no team signal is computed)."""

    def __init__(self, config: MonitorConfig | None = None, sink: Sink | None = None,
                 teams: Mapping[str, str] | None = None, projects: Mapping[str, str] | None = None):
        self.config = config or MonitorConfig()
        self.sink = sink
        self.user_team = clean_teams(teams or {})
        self.team_members = team_members(self.user_team)
        self.project_team = clean_teams(projects or {})
        self.trackers: dict[str, SignalTracker] = {}
        self._watches: dict[tuple[str, str, str, str], _Watch] = {}
        self._seen: dict[str, dict[str, int]] = {}      # workspace -> event id -> day
        self._lock = threading.RLock()
        self._linked: set[tuple[str, str]] = set()     # (workspace, project) linked to its team in the sink
        self._feed_from: int | None = None               # days before this are not fed (a replay's warm-up)
        self.days_closed = 0
        self.alerts_emitted = 0
        self.entity_days = {"project": 0, "team": 0}   # (entity, day) rows fed

    @classmethod
    def from_tables(cls, users: pd.DataFrame | None = None, projects: pd.DataFrame | None = None,
                    config: MonitorConfig | None = None, sink: Sink | None = None) -> "WorkspaceMonitor":
        teams = dict(zip(users["user_id"], users["team_id"])) if users is not None and len(users) else {}
        proj = dict(zip(projects["project_id"], projects["team_id"])) if projects is not None and len(projects) \
            else {}
        return cls(config, sink, teams, proj)

    @classmethod
    def from_simulation(cls, sim_path: Path | str, config: MonitorConfig | None = None,
                        sink: Sink | None = None) -> "WorkspaceMonitor":
        """A monitor knowing the teams of a written simulation's users and projects (events are not read)."""
        from sunday.features.compute import resolve_simulation
        from sunday.serving.directory import _table

        sim = resolve_simulation(Path(sim_path))
        return cls.from_tables(_table(sim, "users", ["user_id", "team_id"]),
                               _table(sim, "projects", ["project_id", "team_id"]), config, sink)

    # -- events ------------------------------------------------------------------------------------------------
    def __call__(self, event: Mapping[str, Any], task_row: Mapping[str, Any] | None = None) -> list[AnomalyAlert]:
        """The StreamingConsumer listener: ``observe(event)``."""
        return self.observe(event)

    def observe(self, event: Mapping[str, Any]) -> list[AnomalyAlert]:
        """One event (a task_events dict): the alerts that opened, grew or closed on the days it closed."""
        if not isinstance(event, Mapping):
            raise SundayError(f"a task event must be a mapping of field -> value, got {type(event).__name__}")
        for name in ("event_id", "workspace_id", "task_id", "event_type", "timestamp"):
            if _text(event.get(name)) is None:
                raise ValidationError("task_events", name, "is required", key=event.get("event_id"))
        ts = timestamp_us(event["timestamp"])
        with self._lock:
            out = self._apply(str(event["workspace_id"]), str(event["event_id"]), str(event["task_id"]),
                              _text(event.get("project_id")), str(event["event_type"]), ts,
                              _text(event.get("user_id")), _text(event.get("to_status")),
                              _number(event.get("story_points")), _number(event.get("hours")))
        return out or []

    def _tracker(self, ws: str) -> SignalTracker:
        t = self.trackers.get(ws)
        if t is None:
            t = self.trackers[ws] = SignalTracker(ws, self.user_team, self.config.signals, self.team_members)
            self._seen[ws] = {}
        return t

    def _apply(self, ws: str, event_id: str, task: str, project: str | None, etype: str, ts: int,
               user: str | None, to_status: str | None, points: float | None, hours: float | None
               ) -> list[AnomalyAlert] | None:
        """Apply one parsed event; None when it is ignored (a repeat, or older than the dedupe memory)."""
        tracker = self._tracker(ws)
        seen = self._seen[ws]
        day = ts // 86_400_000_000
        if event_id in seen:
            return None
        if tracker.open_day is not None and day < tracker.open_day - self.config.dedupe_days:
            return None  # older than the dedupe memory: cannot be told from a repeat
        seen[event_id] = day
        closed = tracker.apply(task, project, etype, ts, user, to_status, points, hours)
        if project is not None and (ws, project) not in self._linked:
            self._linked.add((ws, project))
            team = self.project_team.get(project)
            if team is not None and self.sink is not None and hasattr(self.sink, "link_projects"):
                self.sink.link_projects(ws, {project: team})
        return self._days(ws, closed) if closed else []

    def replay(self, events: Any, flush: bool = True, feed_from: Any = None) -> ReplayStats:
        """Feed a whole event log (a task_events table / frame, any workspaces) in (timestamp, event id) order;
        with ``flush`` close each workspace's last day too. ``feed_from`` (a timestamp): days before it only update
        the signal state, their values are not fed to the detectors and raise no alert (a faster warm-up from a
        long history: the task states need every event, the detectors only the last months)."""
        from sunday.models.anomaly.signals import _event_frame

        t0 = time.perf_counter()
        ev = _event_frame(events)
        stats = ReplayStats()
        before = self.alerts_emitted
        d0 = self.days_closed
        with self._lock:
            self._feed_from = None if feed_from is None else timestamp_us(feed_from, "feed_from") // 86_400_000_000
            try:
                for task, project, etype, ts, user, to_status, points, hours, eid, ws in ordered_events(ev):
                    done = self._apply(str(ws), str(eid), str(task), project, etype, ts, user, to_status, points,
                                       hours)
                    stats.events += 1
                    stats.duplicates += int(done is None)
                if flush:
                    self.flush()
            finally:
                self._feed_from = None
        stats.days = self.days_closed - d0
        stats.alerts = self.alerts_emitted - before
        stats.seconds = time.perf_counter() - t0
        return stats

    def flush(self, until: Any = None) -> list[AnomalyAlert]:
        """Close every workspace's open day (and, with ``until``, the days up to it)."""
        out: list[AnomalyAlert] = []
        with self._lock:
            for ws, tracker in self.trackers.items():
                out += self._days(ws, tracker.flush(until))
        return out

    def advance(self, until: Any) -> list[AnomalyAlert]:
        """Close every workspace's days before ``until``'s day (a clock tick when no event comes)."""
        out: list[AnomalyAlert] = []
        with self._lock:
            for ws, tracker in self.trackers.items():
                out += self._days(ws, tracker.advance(until))
        return out

    # -- days ------------------------------------------------------------------------------------------------------
    def _days(self, ws: str, closed: list[DayRows]) -> list[AnomalyAlert]:
        out: list[AnomalyAlert] = []
        rules = self.config.rules
        project_rules = [(s, r) for s, r in rules.items() if r.entity == "project"]
        team_rules = [(s, r) for s, r in rules.items() if r.entity == "team"]
        for rows in closed:
            self.days_closed += 1
            if self._feed_from is None or rows.day >= self._feed_from:
                self.entity_days["project"] += len(rows.projects)
                self.entity_days["team"] += len(rows.teams)
                for row in rows.projects:
                    for signal, _ in project_rules:
                        out += self._feed(ws, "project", row["project_id"], signal, rows.day, row)
                for row in rows.teams:
                    for signal, _ in team_rules:
                        out += self._feed(ws, "team", row["team_id"], signal, rows.day, row)
            self._prune(ws, rows.day)
        if out:
            self.alerts_emitted += len(out)
            if self.sink is not None:
                self.sink(out)
        return out

    def _prune(self, ws: str, day: int) -> None:
        seen = self._seen[ws]
        horizon = day - self.config.dedupe_days
        if seen and len(seen) > 64 and day % 7 == 0:
            for k in [k for k, d in seen.items() if d < horizon]:
                del seen[k]
        if day % 30 == 0:
            dormant = day - self.config.signals.dormant_days
            for key in [k for k, w in self._watches.items() if k[0] == ws and w.last_day < dormant]:
                del self._watches[key]

    def _feed(self, ws: str, entity_type: str, entity_id: str, signal: str, day: int,
              row: Mapping[str, Any]) -> list[AnomalyAlert]:
        cfg = self.config
        rule = cfg.rules[signal]
        value = float(row[signal])
        subject = row.get(SUBJECT.get(signal, ""))
        key = (ws, entity_type, entity_id, signal)
        w = self._watches.get(key)
        if w is None:
            ens = Ensemble(cfg.ensemble, signal=f"{entity_type} {entity_id} {signal}", detector_args=cfg.detector_args)
            w = self._watches[key] = _Watch(ens, cfg.baseline_days)
        point = w.ensemble.update(value, np.datetime64(day, "D"))
        w.ensemble.alerts.clear()  # (this monitor keeps its own one-sided alerts; keep the ensemble's state bounded)
        ready = len(w.history) >= cfg.min_baseline
        baseline = float(np.median(w.history)) if ready else math.nan
        w.history.append(value)
        w.last_day = day
        hot = ready and rule.effect(value, baseline) and all(float(row[c]) >= m for c, m in rule.requires)
        cb = None
        if rule.companion is not None:
            other = float(row[rule.companion])
            if hot:
                cb = float(np.median(w.companion))
                hot = other <= rule.companion_ratio * cb if rule.direction == "low" else \
                    other >= rule.companion_ratio * cb
            w.companion.append(other)
        ens_cfg = cfg.ensemble
        assert ens_cfg is not None  # (set by MonitorConfig.__post_init__)
        min_score = ens_cfg.threshold if rule.min_score is None else rule.min_score
        hot = hot and (point.score >= min_score or rule.beyond_sure(value))
        a = w.alert
        iso = _iso(day)
        out: list[AnomalyAlert] = []
        if hot and a is not None and a.open and signal in TASK_SUBJECT and subject != a.subject:
            a.open, a.seen_until = False, iso  # another task: its own alert
            out.append(_copy(a))
            a = w.alert = None
        if hot:
            agreed = [n for n, s in point.scores.items() if s >= ens_cfg.agree]
            if a is not None and (a.open or day - w.end_day <= cfg.merge_days) and \
                    (signal not in TASK_SUBJECT or subject == a.subject):
                a.end, a.seen_until, a.open = iso, iso, True
                w.end_day = day
                a.detectors = [n for n in ens_cfg.detectors if n in set(a.detectors) | set(agreed)]
                if point.score > a.score or (point.score == a.score and value != a.value and
                                             (value > a.value) == (rule.direction == "high")):
                    a.score = point.score
                    a.value, a.baseline, a.subject = value, baseline, subject
                    a.reason = reason(signal, value, baseline, subject, iso, row, cb)
                out.append(_copy(a))
                return out
            team = entity_id if entity_type == "team" else self.project_team.get(entity_id)
            a = AnomalyAlert(ws, entity_type, entity_id, signal, rule.kind, iso, iso, iso, True, point.score, value,
                             baseline, agreed, subject, reason(signal, value, baseline, subject, iso, row, cb),
                             project_id=entity_id if entity_type == "project" else None, team_id=team)
            w.alert, w.end_day = a, day
            out.append(_copy(a))
            return out
        if a is not None and a.open:
            a.open, a.seen_until = False, iso
            out.append(_copy(a))
        return out

    # -- inspection ------------------------------------------------------------------------------------------------
    def state_size(self) -> int:
        """Numbers / objects held (bounded: independent of the stream's length)."""
        return (sum(t.state_size() for t in self.trackers.values())
                + sum(w.ensemble.state_size() + len(w.history) for w in self._watches.values())
                + sum(len(s) for s in self._seen.values()))

    def watched(self) -> int:
        return len(self._watches)


def _copy(a: AnomalyAlert) -> AnomalyAlert:
    return AnomalyAlert(**{**a.to_dict(), "detectors": list(a.detectors)})


def serving_monitor(settings, sim_path: Path | str, history_days: int = 180,
                    config: MonitorConfig | None = None) -> "WorkspaceMonitor":
    """The monitor a server runs beside its streaming consumer: alerts into the state folder's
    :class:`~sunday.models.anomaly.alerts.AlertStore`, the simulation's event log replayed as history (days older
    than ``history_days`` before its end only update the task states), the last day left open for the live
    stream. Idempotent: a restarted server replays into the same alert rows."""
    from sunday.features.compute import list_workspaces, resolve_simulation
    from sunday.features.compute.frame import read_events
    from sunday.models.anomaly.alerts import AlertStore

    sim = resolve_simulation(Path(sim_path))
    monitor = WorkspaceMonitor.from_simulation(sim, config, sink=AlertStore.for_settings(settings))
    for ws in list_workspaces(sim)["workspace_id"]:
        events = read_events(sim, ws).to_pandas()
        if len(events):
            end = pd.Timestamp(events["timestamp"].max())
            monitor.replay(events, flush=False, feed_from=end - pd.Timedelta(days=history_days))
    return monitor
