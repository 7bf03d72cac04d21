"""Streaming feature updates: task events in, fresh ``user_workload`` / ``task_features`` rows out to the online
store, with the batch pipeline's own definitions.

    consumer = StreamingConsumer(settings, sim_path)      # or SimTables in memory, or None (empty history)
    consumer.process({"event_id": ..., "event_type": "assigned", "task_id": ..., "user_id": ..., ...})
    consumer.run(events)                                    # any iterable of event dicts

Each event is validated against the ``task_events`` spec (plus what its type needs: ``user_id`` for assignments,
status changes, completions, time logs and scope changes; ``hours`` for time logs; ``to_status`` for status
changes); a bad one raises :class:`~sunday.errors.ValidationError` naming the field, and nothing is pushed or
remembered. A good one is appended to the consumer's in-memory history -- which, the first time a user or task
is touched, is filled from the simulation's event log, filtered to what that user / task needs (the events of
every task the user was ever named on; the task's own events) -- and then:

* every user whose workload it changes (:func:`~sunday.features.compute.workload.affected_users`: its
  ``user_id``, and for a reassignment the previous holder) gets a ``user_workload`` row recomputed as of the
  event's timestamp with :func:`~sunday.features.compute.workload.user_workload_asof`;
* on ``created`` / ``scope_changed`` the task gets a ``task_features`` row from
  :func:`~sunday.features.compute.tasks.task_features_asof`;

and the rows are pushed to ``<group>_push`` with ``PushMode.ONLINE``; then each listener runs (the search indexer:
task vectors into the vector store). An event id seen before is ignored (at least once delivery). ``user_skills`` is left to the weekly batch (it needs the embedding model).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sunday.errors import SundayError, ValidationError

if TYPE_CHECKING:
    from sunday.features.online import OnlineFeatures
    from sunday.settings import Settings

log = logging.getLogger(__name__)
#: called after an event is processed, with the clean event and the task's tasks-table row
Listener = Callable[[dict, dict], Any]
TABLE = "task_events"
TASK_GROUP_EVENTS = ("created", "scope_changed")
#: fields an event of a type must carry (on top of the spec's required fields)
NEEDS: dict[str, tuple[str, ...]] = {
    "assigned": ("user_id",),
    "reassigned": ("user_id",),
    "completed": ("user_id",),
    "status_changed": ("user_id", "to_status"),
    "time_logged": ("user_id", "hours"),
    "scope_changed": ("user_id", "story_points"),
}


@dataclass
class Processed:
    """What one event did: the rows pushed per group (empty for a duplicate)."""

    event_id: str
    duplicate: bool = False
    rows: dict[str, list[dict]] = field(default_factory=dict)
    seconds: float = 0.0
    listener_errors: list[str] = field(default_factory=list)

    @property
    def pushed(self) -> dict[str, list[str]]:
        from sunday.features.groups import GROUPS

        return {g: [r[GROUPS[g].join_key] for r in rows] for g, rows in self.rows.items()}


@dataclass
class RunStats:
    events: int = 0
    duplicates: int = 0
    rejected: int = 0
    rows_pushed: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def validate_event(event: Mapping[str, Any]) -> dict:
    """One event dict -> a clean dict in the ``task_events`` schema (timestamp naive UTC), or ValidationError."""
    return _validated(event)[0]


TS_MIN, TS_MAX = pd.Timestamp("1970-01-01"), pd.Timestamp("2200-01-01")  # event times the features can hold


def _validated(event: Mapping[str, Any]) -> tuple[dict, pd.DataFrame]:
    from sunday.schema import get_spec, validate

    if not isinstance(event, Mapping):
        raise SundayError(f"a task event must be a mapping of field -> value, got {type(event).__name__}")
    spec = get_spec(TABLE)
    raw = dict(event)
    key = raw.get("event_id")
    ts = raw.get("timestamp")
    if ts is not None and not isinstance(ts, (pd.Timestamp, datetime, np.datetime64)):
        if isinstance(ts, str):
            try:
                ts = pd.Timestamp(ts)
            except (ValueError, TypeError):
                raise ValidationError(TABLE, "timestamp", f"cannot be read as a timestamp: {ts!r}", 0,
                                      f"event_id={key!r}") from None
        else:
            raise ValidationError(TABLE, "timestamp", f"cannot be read as a timestamp: {ts!r}", 0,
                                  f"event_id={key!r}")
    if ts is not None:
        try:
            ts = pd.Timestamp(ts)
        except (ValueError, OverflowError):
            raise ValidationError(TABLE, "timestamp", f"is out of range: {raw.get('timestamp')!r}", 0,
                                  f"event_id={key!r}") from None
        if pd.isna(ts):
            ts = None
        elif ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        if ts is not None and not TS_MIN <= ts <= TS_MAX:
            raise ValidationError(TABLE, "timestamp", f"must lie between {TS_MIN.date()} and {TS_MAX.date()}, "
                                                      f"got {ts}", 0, f"event_id={key!r}")
        raw["timestamp"] = None if ts is None else ts.to_pydatetime()
    for k, v in list(raw.items()):  # NaN / NaT / pd.NA -> None so that "required" catches them
        if v is not None and not isinstance(v, (list, tuple, dict)) and pd.isna(v):
            raw[k] = None
    table = validate(spec, [raw])
    clean = table.to_pylist()[0]
    for name in NEEDS.get(clean["event_type"], ()):
        if clean.get(name) is None:
            raise ValidationError(TABLE, name, f"is required for a '{clean['event_type']}' event", 0,
                                  f"event_id={clean['event_id']!r}")
    return clean, table.to_pandas()


class _Source:
    """Filtered reads of a simulation's observable tables (a written simulation folder, or tables in memory)."""

    def __init__(self, source: Any):
        self.path: Path | None = None
        self.tables: Mapping[str, pa.Table] | None = None
        if source is None:
            return
        if isinstance(source, (str, Path)):
            from sunday.features.compute import resolve_simulation

            self.path = resolve_simulation(Path(source))
        else:
            obs = getattr(source, "observable", source)
            if not isinstance(obs, Mapping) or "events" not in obs:
                raise SundayError("StreamingConsumer source must be a simulation folder, SimTables or a mapping of "
                                  f"tables with 'events', got {type(source).__name__}")
            self.tables = obs

    def events(self, workspace_id: str, column: str, values: list[str]) -> pd.DataFrame:
        from sunday.schema import get_spec

        schema = get_spec(TABLE).schema
        if not values or (self.path is None and self.tables is None):
            return schema.empty_table().to_pandas()
        if self.tables is not None:
            t = self.tables["events"]
            mask = pc.and_(pc.equal(t.column("workspace_id"), workspace_id),
                           pc.is_in(t.column(column), value_set=pa.array(values, pa.string())))
            t = t.filter(mask)
        else:
            folder = self.path / "events" / f"workspace_id={workspace_id}"
            files = sorted(folder.glob("*.parquet"))
            if not files:
                return schema.empty_table().to_pandas()
            import pyarrow.parquet as pq

            parts = [pq.read_table(f, filters=[(column, "in", values)]) for f in files]
            t = pa.concat_tables(parts, promote_options="default")
            if "workspace_id" in t.column_names:
                t = t.drop_columns(["workspace_id"])
            t = t.append_column("workspace_id", pa.array([workspace_id] * t.num_rows, pa.string()))
        t = t.select([c for c in schema.names if c in t.column_names])
        return t.to_pandas()

    def side(self, table: str, column: str, values: list[str]) -> pd.DataFrame:
        from sunday.schema import get_spec

        schema = get_spec(table).schema
        if not values or (self.path is None and self.tables is None):
            return schema.empty_table().to_pandas()
        if self.tables is not None:
            t = self.tables[table]
            t = t.filter(pc.is_in(t.column(column), value_set=pa.array(values, pa.string())))
        else:
            import pyarrow.parquet as pq

            files = sorted((self.path / table).glob("*.parquet"))
            parts = [pq.read_table(f, filters=[(column, "in", values)]) for f in files]
            t = pa.concat_tables(parts, promote_options="default") if parts else schema.empty_table()
        return t.to_pandas()


class StreamingConsumer:
    """Consumes task events one at a time and keeps the online ``user_workload`` / ``task_features`` fresh."""

    def __init__(self, settings: "Settings | None" = None, source: Any = None,
                 online: "OnlineFeatures | None" = None, listeners: Iterable[Listener] = ()):
        if settings is None:
            from sunday.settings import get_settings

            settings = get_settings()
        self.settings = settings
        self._source = _Source(source)
        if online is None:
            from sunday.features.online import OnlineFeatures

            online = OnlineFeatures(settings)
        self.online = online
        self.listeners = list(listeners)
        self._frames: list[pd.DataFrame] = []   # loaded / received events, concatenated on demand
        self._events: pd.DataFrame | None = None
        self._event_ids: set[str] = set()   # every event in the history
        self._received: set[str] = set()    # events processed by this consumer (a repeat is a duplicate)
        self._users_loaded: set[str] = set()
        self._tasks_loaded: set[str] = set()
        self._users = pd.DataFrame()
        self._tasks = pd.DataFrame()

    # -- history -----------------------------------------------------------------------------------------------
    @property
    def history(self) -> pd.DataFrame:
        """Every event the consumer holds (loaded from the simulation or received), in the task_events schema."""
        if self._events is None:
            from sunday.schema import get_spec

            frames = [f for f in self._frames if len(f)]
            self._events = (pd.concat(frames, ignore_index=True) if frames
                            else get_spec(TABLE).schema.empty_table().to_pandas())
            self._frames = [self._events]
        return self._events

    def _add_events(self, df: pd.DataFrame) -> None:
        if df.empty:
            return
        seen = self._event_ids
        df = df[[e not in seen for e in df["event_id"]]].drop_duplicates("event_id")
        if df.empty:
            return
        self._event_ids.update(df["event_id"].tolist())
        self._frames.append(df)
        self._events = None

    def _load_task(self, workspace_id: str, task_id: str) -> None:
        if task_id in self._tasks_loaded:
            return
        self._tasks_loaded.add(task_id)
        self._add_events(self._source.events(workspace_id, "task_id", [task_id]))
        self._add_task_rows(self._source.side("tasks", "task_id", [task_id]))

    def _load_user(self, workspace_id: str, user_id: str) -> None:
        if user_id in self._users_loaded:
            return
        self._users_loaded.add(user_id)
        named = self._source.events(workspace_id, "user_id", [user_id])
        tasks = sorted(set(named["task_id"].dropna()) - self._tasks_loaded)
        if tasks:
            self._tasks_loaded.update(tasks)
            self._add_events(self._source.events(workspace_id, "task_id", tasks))
            self._add_task_rows(self._source.side("tasks", "task_id", tasks))
        users = self._source.side("users", "user_id", [user_id])
        if len(users):
            self._users = pd.concat([self._users, users], ignore_index=True) if len(self._users) else users

    def _add_task_rows(self, rows: pd.DataFrame) -> None:
        if rows.empty:
            return
        self._tasks = pd.concat([self._tasks, rows], ignore_index=True) if len(self._tasks) else rows
        self._tasks = self._tasks.drop_duplicates("task_id", keep="last").reset_index(drop=True)

    def add_task(self, row: Mapping[str, Any]) -> None:
        """Register a task's tasks-table row (title, description, skills, priority, due date, dependencies) for a
        task that is not in the simulation; without it a streamed task is described by its events only."""
        from sunday.schema import validate

        clean = validate("tasks", [dict(row)]).to_pandas()
        self._add_task_rows(clean)

    def _task_row(self, event: dict) -> dict:
        t = self._tasks
        if len(t):
            hit = t[t["task_id"] == event["task_id"]]
            if len(hit):
                return hit.iloc[-1].to_dict()
        # a task created in the stream: what its events say (no text, skills, due date or dependencies)
        return {"task_id": event["task_id"], "workspace_id": event["workspace_id"],
                "project_id": event.get("project_id"), "title": "", "description": "", "required_skills": [],
                "story_points": event.get("story_points"), "priority": None, "status": "todo",
                "created_at": event["timestamp"], "due_date": None, "dependencies": []}

    def _tasks_frame(self) -> pd.DataFrame:
        if len(self._tasks):
            return self._tasks
        from sunday.schema import get_spec

        return get_spec("tasks").schema.empty_table().to_pandas()

    def _users_frame(self) -> pd.DataFrame:
        if len(self._users):
            return self._users
        from sunday.schema import get_spec

        return get_spec("users").schema.empty_table().to_pandas()

    # -- processing --------------------------------------------------------------------------------------------
    def compute(self, event: Mapping[str, Any]) -> tuple[dict, dict[str, list[dict]] | None]:
        """Validate ``event``, add it to the history and return (clean event, rows per group) without pushing;
        rows are None for an event id processed before."""
        from sunday.features.compute import affected_users, task_features_asof, user_workload_asof

        ev, frame = _validated(event)
        if ev["event_id"] in self._received:
            return ev, None
        ws, task = ev["workspace_id"], ev["task_id"]
        self._load_task(ws, task)
        if ev.get("user_id") is not None:
            self._load_user(ws, ev["user_id"])
        users = affected_users(self.history, ev)
        for u in users:
            self._load_user(ws, u)
        new = ev["event_id"] not in self._event_ids  # (it may already be in the loaded log: a replay)
        self._add_events(frame)
        try:
            as_of = pd.Timestamp(ev["timestamp"]).tz_localize("UTC")
            history, tasks, users_df = self.history, self._tasks_frame(), self._users_frame()
            rows: dict[str, list[dict]] = {}
            wl = [user_workload_asof(history, tasks, users_df, u, as_of) for u in users]
            if wl:
                rows["user_workload"] = wl
            if ev["event_type"] in TASK_GROUP_EVENTS:
                task_events = history[history["task_id"] == task]
                rows["task_features"] = [task_features_asof(self._task_row(ev), task_events, as_of)]
        except Exception:
            if new:  # forget the event: it was not processed
                h = self.history
                self._events = h[h["event_id"] != ev["event_id"]].reset_index(drop=True)
                self._frames = [self._events]
                self._event_ids.discard(ev["event_id"])
            raise
        return ev, rows

    def process(self, event: Mapping[str, Any]) -> Processed:
        """Validate, remember, recompute and push one event. Raises SundayError (nothing pushed) for a bad one."""
        from sunday.features.online import conform_rows

        t0 = time.perf_counter()
        ev, rows = self.compute(event)
        if rows is None:
            return Processed(event_id=ev["event_id"], duplicate=True, seconds=time.perf_counter() - t0)
        frames = {g: conform_rows(g, r) for g, r in rows.items()}  # check every group before pushing any
        for g, df in frames.items():
            self.online._push(g, df)
        self._received.add(ev["event_id"])
        errors = self._notify(ev)
        return Processed(event_id=ev["event_id"], rows=rows, seconds=time.perf_counter() - t0,
                         listener_errors=errors)

    def _notify(self, ev: dict) -> list[str]:
        """Call each listener (e.g. the search indexer) with the event and its task row. The features are already
        pushed, so a listener's failure is logged and reported in ``Processed.listener_errors``, not raised."""
        errors = []
        for listener in self.listeners:
            try:
                listener(ev, self._task_row(ev))
            except Exception as exc:  # noqa: BLE001 - reported, the event itself is processed
                name = getattr(listener, "__qualname__", type(listener).__name__)
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                log.warning("listener %s failed on event %s: %s", name, ev.get("event_id"), exc)
        return errors

    def run(self, events: Iterable[Mapping[str, Any]], on_error: str = "raise") -> RunStats:
        """Process every event of ``events`` in order. ``on_error``: ``raise`` (stop at the first bad event) or
        ``skip`` (count and remember its message, go on)."""
        if on_error not in ("raise", "skip"):
            raise SundayError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        stats = RunStats()
        t0 = time.perf_counter()
        for event in events:
            try:
                done = self.process(event)
            except SundayError as e:
                if on_error == "raise":
                    raise
                stats.rejected += 1
                stats.errors.append(str(e))
                continue
            stats.events += 1
            stats.duplicates += int(done.duplicate)
            for g, r in done.rows.items():
                stats.rows_pushed[g] = stats.rows_pushed.get(g, 0) + len(r)
        stats.seconds = time.perf_counter() - t0
        return stats
