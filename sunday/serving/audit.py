"""Append-only, durable audit log of the serving API: one record per prediction (who, what, model version, latency).

Storage is a SQLite file in the state folder (``<home>/serving/audit.db``, see :func:`default_audit_log`):

* **Append-only, enforced by the database:** triggers ``ABORT`` every ``UPDATE`` and ``DELETE`` on the table
  (whoever runs them, the sqlite3 shell included); ids come from ``AUTOINCREMENT`` and are never reused. A user
  with write access to the *file* can still drop the table or delete the file: protect the state folder with file
  permissions and back it up.
* **Durable:** WAL journal with ``synchronous=FULL`` and every :meth:`AuditLog.record` is its own committed
  transaction before it returns. A record acknowledged to the caller survives the process being killed
  (SIGKILL, OOM, a Serve replica dying) and, with FULL, a power loss too. The ingress should write the record
  *before* answering the request, and answer 503 when :class:`AuditUnavailable` is raised.
* **Several writers:** every Serve replica opens the same file (a local disk: SQLite WAL does not work on network
  file systems). Writers take a blocking ``flock`` on ``audit.db.lock`` around their INSERT, so a waiting writer is
  woken as soon as the lock is free; SQLite's own busy handler alone sleeps in steps up to 100 ms and starved one
  of four tight-loop writers for 3 to 5 s in a test here (with the flock the worst wait was about 0.4 s on this
  overloaded 2-core machine). The kernel drops the flock of a killed process, so a dead replica never blocks the
  others; a *stopped* (SIGSTOP) process holding it would. Behind the flock, SQLite still serialises writers with a
  busy timeout (10 s) and :func:`sunday.serving.keys.with_retry` retries 'database is locked' with backoff up to
  ``deadline_s`` (30 s) before giving up with :class:`AuditUnavailable` (writers that skip the flock, such as the
  sqlite3 shell, are still safe, just not fair).

Request summaries are stored as JSON, with secret-looking fields (``authorization``, ``token``, ``api_key``,
``password``, ``secret``, ...) and anything shaped like an API key replaced by ``"[redacted]"``, long strings and
lists shortened and the whole summary capped at ``max_request_chars``.
"""

from __future__ import annotations

import builtins
import json
import os
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: rely on SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

from sunday.serving.errors import AuditUnavailable, InvalidField
from sunday.serving.keys import Principal, _SqliteOwner, with_retry

__all__ = ["AuditLog", "AuditRecord", "default_audit_log", "summarize_request"]

_SECRET_NAME = re.compile(r"(authori[sz]ation|token|api[_-]?key|password|passwd|secret|cookie|credential)", re.I)
_TOKEN_LIKE = re.compile(r"sk_[0-9a-f]{16}_[A-Za-z0-9_\-]+")
REDACTED = "[redacted]"

_COLUMNS = ("id", "ts", "key_id", "workspace_id", "role", "endpoint", "request", "status", "model_name",
            "model_version", "latency_ms", "request_id")


def _shorten(value: Any, max_str: int, max_items: int, depth: int = 0) -> Any:
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= max_items:
                out["..."] = f"{len(value) - max_items} more keys"
                break
            k = str(k)
            out[k] = REDACTED if _SECRET_NAME.search(k) else _shorten(v, max_str, max_items, depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        out_list = [_shorten(v, max_str, max_items, depth + 1) for v in items[:max_items]]
        if len(items) > max_items:
            out_list.append(f"... {len(items) - max_items} more items")
        return out_list
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if hasattr(value, "model_dump"):  # pydantic models
        return _shorten(value.model_dump(), max_str, max_items, depth + 1)
    text = _TOKEN_LIKE.sub(REDACTED, str(value))
    return text if len(text) <= max_str else text[:max_str] + f"...(+{len(text) - max_str} chars)"


def summarize_request(request: Any, max_chars: int = 2000, max_str: int = 200, max_items: int = 20) -> str | None:
    """A short JSON summary of a request body, secrets redacted; always valid JSON of at most ~``max_chars``."""
    if request is None:
        return None
    if isinstance(request, (str, bytes)):
        text = request.decode("utf-8", "replace") if isinstance(request, bytes) else request
        try:
            request = json.loads(text)
        except ValueError:
            request = text
    text = json.dumps(_shorten(request, max_str, max_items), default=str, ensure_ascii=False,
                      separators=(",", ":"), allow_nan=True)
    if len(text) > max_chars:
        text = json.dumps({"_truncated": True, "_chars": len(text), "preview": text[:max(0, max_chars - 60)]},
                          ensure_ascii=False, separators=(",", ":"))
    return text


@dataclass(frozen=True)
class AuditRecord:
    """One audit record. ``ts`` is UTC; ``request`` is the JSON summary (a string) or None."""

    id: int
    ts: datetime
    key_id: str | None
    workspace_id: str | None
    role: str | None
    endpoint: str
    request: str | None
    status: int
    model_name: str | None
    model_version: str | None
    latency_ms: float | None
    request_id: str | None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ts"] = self.ts.isoformat()
        return d


def _epoch(value: datetime | float | int | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidField(field, f"must be a datetime or a unix timestamp, got {type(value).__name__}", table="audit")


class AuditLog(_SqliteOwner):
    """The audit log file; see the module docstring. One instance per process (thread-safe)."""

    _synchronous = "FULL"

    def __init__(self, path: Path | str, *, deadline_s: float = 30.0, max_request_chars: int = 2000):
        super().__init__(path)
        self.deadline_s = deadline_s
        self.max_request_chars = max_request_chars
        self._flock_fd: int | None = None
        self._flock_pid = -1
        with self._lock:
            with_retry(self._connection, deadline_s=deadline_s)

    def _schema(self) -> builtins.list[str]:
        abort = "SELECT RAISE(ABORT, 'audit_log is append-only')"
        return [
            """CREATE TABLE IF NOT EXISTS audit_log (
                id            INTEGER PRIMARY KEY AUTOINCREMENT,
                ts            REAL NOT NULL,
                key_id        TEXT,
                workspace_id  TEXT,
                role          TEXT,
                endpoint      TEXT NOT NULL,
                request       TEXT,
                status        INTEGER NOT NULL,
                model_name    TEXT,
                model_version TEXT,
                latency_ms    REAL,
                request_id    TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS audit_log_workspace ON audit_log (workspace_id, id)",
            "CREATE INDEX IF NOT EXISTS audit_log_ts ON audit_log (ts)",
            f"CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log BEGIN {abort}; END",
            f"CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log BEGIN {abort}; END",
        ]

    def _writer_lock(self) -> int | None:
        """This process's fd of ``<db>.lock`` (reopened after fork: flock belongs to the open file description)."""
        if fcntl is None:
            return None
        if self._flock_fd is None or self._flock_pid != os.getpid():
            self._flock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._flock_pid = os.getpid()
        return self._flock_fd

    def close(self) -> None:
        with self._lock:
            if self._flock_fd is not None and self._flock_pid == os.getpid():
                os.close(self._flock_fd)
            self._flock_fd = None
        super().close()

    def record(self, *, endpoint: str, status: int, principal: Principal | None = None, key_id: str | None = None,
               workspace_id: str | None = None, role: str | None = None, request: Any = None,
               model_name: str | None = None, model_version: str | None = None, latency_ms: float | None = None,
               request_id: str | None = None, ts: datetime | float | None = None) -> int:
        """Append one record and commit it (durably) before returning its id.

        ``principal`` fills ``key_id``/``workspace_id``/``role`` (explicit arguments win). ``request`` is any
        JSON-able body (dict, pydantic model, JSON string); it is summarised with :func:`summarize_request`.
        Raises :class:`AuditUnavailable` when the record cannot be written."""
        if not endpoint or not isinstance(endpoint, str):
            raise InvalidField("endpoint", "must be a non-empty string", table="audit")
        if isinstance(status, bool) or not isinstance(status, int):
            raise InvalidField("status", f"must be an int HTTP status, got {status!r}", table="audit")
        if principal is not None:
            key_id = key_id if key_id is not None else principal.key_id
            workspace_id = workspace_id if workspace_id is not None else principal.workspace_id
            role = role if role is not None else str(principal.role)
        row = (
            _epoch(ts, "ts") if ts is not None else time.time(),
            key_id, None if workspace_id is None else str(workspace_id), None if role is None else str(role),
            endpoint, summarize_request(request, self.max_request_chars), int(status), model_name,
            None if model_version is None else str(model_version),
            None if latency_ms is None else float(latency_ms), request_id,
        )
        sql = ("INSERT INTO audit_log (ts, key_id, workspace_id, role, endpoint, request, status, model_name,"
               " model_version, latency_ms, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        try:
            with self._lock:
                conn = self._connection()
                fd = self._writer_lock()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    # autocommit mode: the INSERT is one transaction, committed (WAL fsync'd) when execute returns
                    cur = with_retry(lambda: conn.execute(sql, row), deadline_s=self.deadline_s)
                finally:
                    if fd is not None:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                return int(cur.lastrowid)
        except (sqlite3.Error, OSError) as exc:
            raise AuditUnavailable(f"audit log {self.path} could not be written: {exc}") from exc

    def read(self, workspace_id: str | None = None, since: datetime | float | None = None, limit: int = 100,
             *, key_id: str | None = None) -> builtins.list[AuditRecord]:
        """Records, newest first: optionally of one workspace / key, at or after ``since``; at most ``limit``."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidField("limit", f"must be an int in 1..100000, got {limit!r}", table="audit")
        where, args = [], []
        if workspace_id is not None:
            where.append("workspace_id = ?")
            args.append(str(workspace_id))
        if key_id is not None:
            where.append("key_id = ?")
            args.append(key_id)
        if since is not None:
            where.append("ts >= ?")
            args.append(_epoch(since, "since"))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            conn = self._connection()
            rows = with_retry(lambda: conn.execute(sql, args).fetchall(), deadline_s=self.deadline_s)
        return [AuditRecord(r[0], datetime.fromtimestamp(r[1], tz=timezone.utc), *r[2:]) for r in rows]

    def count(self, workspace_id: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM audit_log", ()
        if workspace_id is not None:
            sql, args = sql + " WHERE workspace_id = ?", (str(workspace_id),)
        with self._lock:
            conn = self._connection()
            return int(with_retry(lambda: conn.execute(sql, args).fetchone()[0]))


def audit_path(settings) -> Path:
    return Path(settings.home) / "serving" / "audit.db"


def default_audit_log(settings, **kwargs) -> AuditLog:
    """The audit log of a state folder: ``<settings.home>/serving/audit.db``."""
    return AuditLog(audit_path(settings), **kwargs)
