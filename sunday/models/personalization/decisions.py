"""Bandit decisions waiting for their reward: what was chosen, for whom, in which context.

``personalize-dashboard`` (and the channel choice of ``rank-notifications``) records each decision here with the
context the bandit saw; the feedback route later reads it back so the update uses that context, not whatever the
user's features are by then. The decision id doubles as the update's request id in the bandit store, so a reward
sent twice counts once. SQLite (WAL) at ``$SUNDAY_HOME/personalization/decisions.sqlite``; decisions older than
``ttl_days`` are dropped on write.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sunday.serving.errors import NotFound

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS decisions (decision_id TEXT PRIMARY KEY, bandit TEXT NOT NULL, "
    "workspace_id TEXT NOT NULL, user_id TEXT NOT NULL, arm TEXT NOT NULL, context TEXT NOT NULL, ts REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts)",
]


@dataclass(frozen=True)
class Decision:
    decision_id: str
    bandit: str
    workspace_id: str
    user_id: str
    arm: str
    context: np.ndarray
    ts: float


class DecisionLog:
    def __init__(self, path: Path | str, ttl_days: float = 30.0):
        from sunday.serving.keys import _SqliteOwner

        class _File(_SqliteOwner):
            _synchronous = "NORMAL"

            def _schema(self) -> list[str]:
                return list(_SCHEMA)

        self._file = _File(Path(path))
        self.ttl_s = ttl_days * 86400.0

    @classmethod
    def for_settings(cls, settings) -> "DecisionLog":
        return cls(Path(settings.home) / "personalization" / "decisions.sqlite")

    def record(self, bandit: str, workspace_id: str, user_id: str, arm: str, context: np.ndarray) -> str:
        from sunday.serving.keys import with_retry

        decision_id = "d_" + uuid.uuid4().hex
        now = time.time()

        def write():
            with self._file._lock:
                conn = self._file._connection()
                with conn:
                    conn.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (decision_id, bandit, workspace_id, user_id, arm,
                                  json.dumps([float(v) for v in context]), now))
                    conn.execute("DELETE FROM decisions WHERE ts < ?", (now - self.ttl_s,))

        with_retry(write)
        return decision_id

    def get(self, decision_id: str, workspace_id: str) -> Decision:
        """The decision, or :class:`NotFound` (404) (also for another workspace's decision)."""
        with self._file._lock:
            row = self._file._connection().execute(
                "SELECT decision_id, bandit, workspace_id, user_id, arm, context, ts FROM decisions "
                "WHERE decision_id = ?", (decision_id,)).fetchone()
        if row is None or row[2] != workspace_id:
            raise NotFound(f"decision_id: {decision_id!r} is unknown or expired")
        return Decision(row[0], row[1], row[2], row[3], row[4], np.asarray(json.loads(row[5]), dtype=np.float64),
                        row[6])

    def close(self) -> None:
        self._file.close()
