"""Workspace anomaly alerts and their store: a SQLite file in the state folder, read by project.

    store = AlertStore.for_settings(settings)          # <home>/anomaly/alerts.sqlite (WAL)
    store.upsert(alerts)                                # idempotent: replaying the same events changes nothing
    store.for_project("w000000", "w000000-p003", since="2024-03-01", limit=50)

An alert's id is a hash of (workspace, entity, signal, first day), so the same episode found again (a replay of
the same events, a restarted monitor) lands on the same row. An upsert only replaces a row with a version that has
seen at least as many days (``seen_until``): replaying an earlier part of the stream never rolls an alert back.
Reads of a project return its own alerts and those of its team (a team alert concerns every project of the
team); the project -> team links come from the monitor (:meth:`AlertStore.link_projects`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

from sunday.errors import SundayError

ENTITY_TYPES = ("project", "team")
_FIELDS = ("alert_id", "workspace_id", "entity_type", "entity_id", "project_id", "team_id", "signal", "kind",
           "start", "end", "seen_until", "open", "score", "value", "baseline", "detectors", "subject", "reason")


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id     TEXT PRIMARY KEY,
        workspace_id TEXT NOT NULL,
        entity_type  TEXT NOT NULL CHECK (entity_type IN ('project', 'team')),
        entity_id    TEXT NOT NULL,
        project_id   TEXT,
        team_id      TEXT,
        signal       TEXT NOT NULL,
        kind         TEXT NOT NULL,
        start        TEXT NOT NULL,
        "end"        TEXT NOT NULL,
        seen_until   TEXT NOT NULL,
        open         INTEGER NOT NULL,
        score        REAL NOT NULL,
        value        REAL,
        baseline     REAL,
        detectors    TEXT NOT NULL,
        subject      TEXT,
        reason       TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS alerts_project ON alerts (workspace_id, project_id, start)",
    "CREATE INDEX IF NOT EXISTS alerts_team ON alerts (workspace_id, team_id, start)",
    """CREATE TABLE IF NOT EXISTS project_teams (
        workspace_id TEXT NOT NULL,
        project_id   TEXT NOT NULL,
        team_id      TEXT NOT NULL,
        PRIMARY KEY (workspace_id, project_id)
    )""",
)


def alert_id(workspace_id: str, entity_type: str, entity_id: str, signal: str, start: str) -> str:
    key = "|".join((workspace_id, entity_type, entity_id, signal, start))
    return hashlib.sha1(key.encode()).hexdigest()[:20]


@dataclass
class AnomalyAlert:
    """One alert: a run of unusual days of one signal of one project or team, with its reason."""

    workspace_id: str
    entity_type: str            # "project" | "team"
    entity_id: str
    signal: str                 # e.g. "velocity" (see sunday.models.anomaly.signals.DESCRIPTIONS)
    kind: str                   # what it points at: velocity_drop, creation_spike, stuck_task, ...
    start: str                  # first unusual day (ISO date, UTC)
    end: str                    # last unusual day so far
    seen_until: str             # last day the alert was looked at (its end, or the first quiet day after it)
    open: bool                  # still unusual on the last day seen
    score: float                # peak combined detector score in [0, 1]
    value: float                # the signal's value at the peak
    baseline: float             # its usual value then (median of the previous weeks)
    detectors: list[str] = field(default_factory=list)  # detectors that agreed during the alert
    subject: str | None = None  # the task or member the signal names at the peak
    reason: str = ""
    project_id: str | None = None
    team_id: str | None = None
    alert_id: str = ""

    def __post_init__(self) -> None:
        if self.entity_type not in ENTITY_TYPES:
            raise SundayError(f"alert entity_type must be one of {ENTITY_TYPES}, got {self.entity_type!r}")
        if not self.alert_id:
            self.alert_id = alert_id(self.workspace_id, self.entity_type, self.entity_id, self.signal, self.start)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _day(value: Any, name: str) -> str | None:
    """A date-like value -> ISO date string (None stays None); SundayError naming ``name`` otherwise."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        import pandas as pd

        t = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise SundayError(f"{name}: cannot be read as a date: {value!r}") from None
    if pd.isna(t):
        raise SundayError(f"{name}: cannot be read as a date: {value!r}")
    return t.date().isoformat()


class AlertStore:
    """Alerts in a SQLite file (WAL; one connection per process, guarded by a lock). ``":memory:"`` for tests."""

    def __init__(self, path: Path | str):
        self.path = path if path == ":memory:" else Path(path)
        self._lock = threading.RLock()
        self._conn = None
        self._pid = -1
        with self._lock:
            self._connection()

    @classmethod
    def for_settings(cls, settings) -> "AlertStore":
        return cls(Path(settings.home) / "anomaly" / "alerts.sqlite")

    def _connection(self):
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self.path == ":memory:":
            import sqlite3

            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            from sunday.serving.keys import open_sqlite

            conn = open_sqlite(self.path, synchronous="NORMAL")
        from sunday.serving.keys import run_script

        try:
            run_script(conn, list(_SCHEMA))
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()  # (a forked child opens its own)
        return conn

    def _write(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        from sunday.serving.keys import with_retry

        def run() -> None:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        with self._lock:
            with_retry(run)

    def upsert(self, alerts: Iterable[AnomalyAlert]) -> int:
        """Insert new alerts, update known ones with a version that has seen as many days or more; returns the
        number of alerts given."""
        now = time.time()
        rows = []
        for a in alerts:
            d = a.to_dict()
            d["detectors"] = json.dumps(list(a.detectors))
            d["open"] = int(bool(a.open))
            rows.append(tuple(d[k] for k in _FIELDS) + (now, now))
        cols = ", ".join(f'"{c}"' for c in _FIELDS)
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in _FIELDS if c != "alert_id")
        marks = ", ".join("?" * (len(_FIELDS) + 2))
        self._write(f"INSERT INTO alerts ({cols}, created_at, updated_at) VALUES ({marks}) "
                    f"ON CONFLICT(alert_id) DO UPDATE SET {updates}, updated_at = excluded.updated_at "
                    "WHERE excluded.seen_until >= alerts.seen_until", rows)
        return len(rows)

    __call__ = upsert  # a store is a monitor's alert sink

    def link_projects(self, workspace_id: str, teams: Mapping[str, str]) -> None:
        """Record which team each project belongs to (reads by project include its team's alerts)."""
        rows = [(workspace_id, str(p), str(t)) for p, t in teams.items() if p is not None and t is not None]
        self._write("INSERT INTO project_teams (workspace_id, project_id, team_id) VALUES (?, ?, ?) "
                    "ON CONFLICT(workspace_id, project_id) DO UPDATE SET team_id = excluded.team_id", rows)

    def team_of(self, workspace_id: str, project_id: str) -> str | None:
        with self._lock:
            row = self._connection().execute(
                "SELECT team_id FROM project_teams WHERE workspace_id = ? AND project_id = ?",
                (workspace_id, project_id)).fetchone()
        return None if row is None else row[0]

    def query(self, workspace_id: str, project_id: str | None = None, team_id: str | None = None,
              since: Any = None, until: Any = None, limit: int = 100,
              include_team: bool = True) -> list[AnomalyAlert]:
        """Alerts of a workspace overlapping [since, until] (dates, both optional), newest first. With
        ``project_id``: the project's alerts and, with ``include_team``, those of its team (``team_id``, or the
        linked team); with only ``team_id``: the team's alerts."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise SundayError(f"limit: must be an integer between 1 and 10000, got {limit!r}")
        lo, hi = _day(since, "since"), _day(until, "until")
        if lo is not None and hi is not None and lo > hi:
            raise SundayError(f"since ({lo}) is after until ({hi})")
        where, args = ["workspace_id = ?"], [workspace_id]
        if project_id is not None:
            team = team_id if team_id is not None else (self.team_of(workspace_id, project_id) if include_team
                                                       else None)
            if include_team and team is not None:
                where.append("(project_id = ? OR (entity_type = 'team' AND team_id = ?))")
                args += [project_id, team]
            else:
                where.append("project_id = ?")
                args.append(project_id)
        elif team_id is not None:
            where.append("team_id = ?")
            args.append(team_id)
        if lo is not None:
            where.append('"end" >= ?')
            args.append(lo)
        if hi is not None:
            where.append("start <= ?")
            args.append(hi)
        cols = ", ".join(f'"{c}"' for c in _FIELDS)
        sql = f"SELECT {cols} FROM alerts WHERE {' AND '.join(where)} ORDER BY start DESC, alert_id LIMIT ?"
        with self._lock:
            rows = self._connection().execute(sql, (*args, limit)).fetchall()
        out = []
        for r in rows:
            d = dict(zip(_FIELDS, r))
            d["detectors"] = json.loads(d["detectors"])
            d["open"] = bool(d["open"])
            out.append(AnomalyAlert(**d))
        return out

    def for_project(self, workspace_id: str, project_id: str, since: Any = None, until: Any = None,
                    limit: int = 100) -> list[AnomalyAlert]:
        """The project's alerts and its team's, overlapping [since, until], newest first."""
        return self.query(workspace_id, project_id=project_id, since=since, until=until, limit=limit)

    def count(self, workspace_id: str | None = None) -> int:
        with self._lock:
            conn = self._connection()
            if workspace_id is None:
                return int(conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
            return int(conn.execute("SELECT COUNT(*) FROM alerts WHERE workspace_id = ?",
                                    (workspace_id,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
