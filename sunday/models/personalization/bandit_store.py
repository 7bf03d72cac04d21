"""Named bandits whose state survives a restart: SQLite (WAL) at ``$SUNDAY_HOME/personalization/bandits.sqlite``.

Tables:

* ``bandits``: name, the :class:`~sunday.models.personalization.bandit.BanditConfig` (JSON), a version counter;
* ``arm_stats``: per (bandit, arm) the sufficient statistics ``n``, ``A`` (d x d) and ``b`` (d), float64 blobs;
* ``updates``: every update appended (bandit, ts, context as JSON, arm, reward, request id).

:meth:`BanditStore.update` appends the update and adds it to its arm's statistics in one ``BEGIN IMMEDIATE``
transaction that re-reads the statistics after taking the write lock, so several stores (processes, Serve
replicas) on one file never lose an update; a request id seen before for that bandit adds nothing (idempotent
retries). :meth:`BanditStore.load` rebuilds a bandit from the statistics (bit-identical to the live one: both
apply :func:`~sunday.models.personalization.bandit.accumulate` in commit order); :meth:`BanditStore.bandit` keeps
one live bandit per name in this process and brings it up to date by replaying the updates committed since (by any
store), so its selection generator keeps running. Writes are ``synchronous=NORMAL``: a crashed or restarted process
loses nothing; pass ``synchronous="FULL"`` to survive power loss too.

:class:`ProductBandits` holds the product's two bandits (``dashboard_layout``, ``notification_channel``) and their
arm sets; :meth:`BanditStore.ensure` creates them. The context features are the caller's (the serving layer's):
only their count, ``context_dim``, is fixed here.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sunday.models.personalization.bandit import (
    BanditConfig, BanditInputError, LinearThompsonSampling, accumulate, check_context, check_reward,
)

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS bandits (name TEXT PRIMARY KEY, config TEXT NOT NULL, "
    "version INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS arm_stats (name TEXT NOT NULL, arm TEXT NOT NULL, n INTEGER NOT NULL, "
    "A BLOB NOT NULL, b BLOB NOT NULL, PRIMARY KEY (name, arm))",
    "CREATE TABLE IF NOT EXISTS updates (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, ts REAL NOT NULL, "
    "context TEXT NOT NULL, arm TEXT NOT NULL, reward REAL NOT NULL, request_id TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS updates_request ON updates (name, request_id) WHERE request_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS updates_by_name ON updates (name, id)",
]


@dataclass(frozen=True)
class ProductBandits:
    """The product's named bandits: which dashboard layout to show, which channel to notify on."""

    context_dim: int = 8
    prior_lambda: float = 1.0
    exploration: float = 0.5
    seed: int = 0
    dashboard_layout: tuple[str, ...] = ("overview", "board", "list", "timeline", "calendar", "focus")
    notification_channel: tuple[str, ...] = ("email", "push", "in_app")

    def configs(self) -> dict[str, BanditConfig]:
        common: dict[str, Any] = dict(context_dim=self.context_dim, prior_lambda=self.prior_lambda,
                                      exploration=self.exploration, seed=self.seed)
        return {"dashboard_layout": BanditConfig(arms=tuple(self.dashboard_layout), **common),
                "notification_channel": BanditConfig(arms=tuple(self.notification_channel), **common)}


def default_path() -> Path:
    from sunday.settings import get_settings

    return get_settings().home / "personalization" / "bandits.sqlite"


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype="<f8").tobytes()


def _array(blob: bytes, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").reshape(shape).astype(np.float64)


class BanditStore:
    """Named :class:`LinearThompsonSampling` bandits persisted in one SQLite file (safe for several processes)."""

    def __init__(self, path: Path | str | None = None, synchronous: str = "NORMAL"):
        from sunday.serving.keys import _SqliteOwner

        class _File(_SqliteOwner):
            _synchronous = synchronous

            def _schema(self) -> list[str]:
                return list(_SCHEMA)

        self.path = Path(path) if path is not None else default_path()
        self._file = _File(self.path)
        self._lock = self._file._lock
        self._configs: dict[str, tuple[str, BanditConfig]] = {}
        self._live: dict[str, tuple[LinearThompsonSampling, int]] = {}

    @classmethod
    def for_settings(cls, settings) -> "BanditStore":
        return cls(Path(settings.home) / "personalization" / "bandits.sqlite")

    # -- plumbing ---------------------------------------------------------------------------------------------------
    def _run(self, fn, write: bool = False):
        """``fn(conn)`` under this store's lock; in a ``BEGIN IMMEDIATE`` transaction when ``write``, retried while
        another writer holds the file."""
        from sunday.serving.keys import with_retry

        def attempt():
            conn = self._file._connection()
            if not write:
                return fn(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(conn)
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        with self._lock:
            return with_retry(attempt)

    def _config_row(self, conn, name: str) -> BanditConfig:
        row = conn.execute("SELECT config FROM bandits WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM bandits ORDER BY name")]
            raise BanditInputError("name", f"is {name!r}, not one of the stored bandits {known}")
        cached = self._configs.get(name)
        if cached is not None and cached[0] == row[0]:
            return cached[1]
        config = BanditConfig.from_dict(json.loads(row[0]))
        self._configs[name] = (row[0], config)
        return config

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "BanditStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- bandits ----------------------------------------------------------------------------------------------------
    def create(self, name: str, config: BanditConfig, exist_ok: bool = True) -> bool:
        """Register a bandit with an empty posterior; True if created. An existing one with the same config is kept
        (``exist_ok``); one with a different config is an error naming ``config`` (delete it first)."""
        if not isinstance(name, str) or not name:
            raise BanditInputError("name", f"must be a non-empty string, got {name!r}")
        if not isinstance(config, BanditConfig):
            raise BanditInputError("config", f"must be a BanditConfig, got {type(config).__name__}")
        text = json.dumps(config.to_dict(), sort_keys=True)
        d = config.context_dim

        def run(conn) -> bool:
            row = conn.execute("SELECT config FROM bandits WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if row[0] != text:
                    raise BanditInputError("config", f"bandit {name!r} exists with another config {row[0]}; "
                                                     "delete it to change its arms or prior")
                if not exist_ok:
                    raise BanditInputError("name", f"bandit {name!r} exists")
                return False
            conn.execute("INSERT INTO bandits (name, config, version, created_at) VALUES (?, ?, 0, ?)",
                         (name, text, time.time()))
            A0, b0 = _blob(np.eye(d) * config.prior_lambda), _blob(np.zeros(d))
            conn.executemany("INSERT INTO arm_stats (name, arm, n, A, b) VALUES (?, ?, 0, ?, ?)",
                             [(name, a, A0, b0) for a in config.arms])
            return True

        return self._run(run, write=True)

    def ensure(self, product: ProductBandits | None = None) -> dict[str, BanditConfig]:
        """Create the product's bandits (:class:`ProductBandits`) where missing; returns their configs."""
        configs = (product or ProductBandits()).configs()
        for name, config in configs.items():
            self.create(name, config)
        return configs

    def names(self) -> list[str]:
        return [r[0] for r in self._run(lambda c: c.execute("SELECT name FROM bandits ORDER BY name").fetchall())]

    def config(self, name: str) -> BanditConfig:
        return self._run(lambda c: self._config_row(c, name))

    def delete(self, name: str) -> None:
        """Remove a bandit, its statistics and its updates."""
        def run(conn) -> None:
            for table in ("bandits", "arm_stats", "updates"):
                conn.execute(f"DELETE FROM {table} WHERE name = ?", (name,))

        self._run(run, write=True)
        with self._lock:
            self._live.pop(name, None)
            self._configs.pop(name, None)

    # -- updates ----------------------------------------------------------------------------------------------------
    def update(self, name: str, context: Any, arm: str, reward: float, request_id: str | None = None,
               ts: float | None = None) -> bool:
        """Append one update and add it to the arm's statistics (one transaction). Returns False, adding nothing,
        when ``request_id`` was already recorded for this bandit."""
        if request_id is not None and (not isinstance(request_id, str) or not request_id):
            raise BanditInputError("request_id", f"must be a non-empty string or None, got {request_id!r}")
        config = self.config(name)
        x = check_context(context, config.context_dim)
        if arm not in config.arms:
            raise BanditInputError("arm", f"is {arm!r}, not one of the arms {list(config.arms)}")
        r = check_reward(reward)
        stamp = time.time() if ts is None else float(ts)
        d = config.context_dim

        def run(conn) -> bool:
            current = self._config_row(conn, name)  # re-read under the write lock (a concurrent delete/recreate)
            if current.context_dim != d or arm not in current.arms:
                raise BanditInputError("config", f"bandit {name!r} changed while updating; retry")
            if request_id is not None and conn.execute(
                    "SELECT 1 FROM updates WHERE name = ? AND request_id = ?", (name, request_id)).fetchone():
                return False
            conn.execute("INSERT INTO updates (name, ts, context, arm, reward, request_id) VALUES (?, ?, ?, ?, ?, ?)",
                         (name, stamp, json.dumps(x.tolist()), arm, r, request_id))
            n, A_blob, b_blob = conn.execute("SELECT n, A, b FROM arm_stats WHERE name = ? AND arm = ?",
                                             (name, arm)).fetchone()
            A, b = _array(A_blob, (d, d)), _array(b_blob, (d,))
            accumulate(A, b, x, r)
            conn.execute("UPDATE arm_stats SET n = ?, A = ?, b = ? WHERE name = ? AND arm = ?",
                         (n + 1, _blob(A), _blob(b), name, arm))
            conn.execute("UPDATE bandits SET version = version + 1 WHERE name = ?", (name,))
            return True

        return self._run(run, write=True)

    def updates(self, name: str, after_id: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The logged updates of a bandit with id > ``after_id``, oldest first."""
        sql = "SELECT id, ts, context, arm, reward, request_id FROM updates WHERE name = ? AND id > ? ORDER BY id"
        params: tuple = (name, int(after_id))
        if limit is not None:
            sql += " LIMIT ?"
            params += (int(limit),)
        rows = self._run(lambda c: c.execute(sql, params).fetchall())
        return [{"id": i, "ts": t, "context": json.loads(ctx), "arm": a, "reward": r, "request_id": q}
                for i, t, ctx, a, r, q in rows]

    # -- reading bandits --------------------------------------------------------------------------------------------
    def load(self, name: str, seed: int | None = None) -> LinearThompsonSampling:
        """A fresh bandit rebuilt from the stored statistics (``seed`` overrides the config's)."""
        return self._snapshot(name, seed)[0]

    def replay(self, name: str, seed: int | None = None) -> LinearThompsonSampling:
        """A bandit rebuilt from the updates log alone (for audits: equals :meth:`load`)."""
        config = self.config(name)
        if seed is not None:
            config = BanditConfig.from_dict({**config.to_dict(), "seed": seed})
        bandit = LinearThompsonSampling(config)
        for u in self.updates(name):
            bandit.update(u["context"], u["arm"], u["reward"])
        return bandit

    def bandit(self, name: str) -> LinearThompsonSampling:
        """This process's live bandit for ``name``, brought up to date with every committed update."""
        with self._lock:
            live = self._live.get(name)
            if live is None:
                # statistics and cursor read in one snapshot, so no update is applied twice or missed
                bandit, cursor = self._snapshot(name)
                self._live[name] = (bandit, cursor)
                return bandit
            bandit, cursor = live
            for u in self.updates(name, after_id=cursor):
                bandit.update(u["context"], u["arm"], u["reward"])
                cursor = u["id"]
            self._live[name] = (bandit, cursor)
            return bandit

    def _snapshot(self, name: str, seed: int | None = None) -> tuple[LinearThompsonSampling, int]:
        def run(conn):
            conn.execute("BEGIN")  # a read transaction: one consistent snapshot of stats and log
            try:
                config = self._config_row(conn, name)
                rows = {arm: (n, A, b) for arm, n, A, b in conn.execute(
                    "SELECT arm, n, A, b FROM arm_stats WHERE name = ?", (name,))}
                top = conn.execute("SELECT COALESCE(MAX(id), 0) FROM updates WHERE name = ?", (name,)).fetchone()[0]
            finally:
                conn.execute("COMMIT")
            return config, rows, top

        config, rows, top = self._run(run)
        if seed is not None:
            config = BanditConfig.from_dict({**config.to_dict(), "seed": seed})
        d = config.context_dim
        A = np.stack([_array(rows[a][1], (d, d)) for a in config.arms])
        b = np.stack([_array(rows[a][2], (d,)) for a in config.arms])
        n = np.array([rows[a][0] for a in config.arms], dtype=np.int64)
        return LinearThompsonSampling.from_state(config, A, b, n), int(top)

    def select(self, name: str, context: Any) -> str:
        """The live bandit's choice for ``context``."""
        return self.bandit(name).select(context)
