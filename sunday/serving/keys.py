"""API keys per workspace, roles and workspace isolation for the serving API.

Keys live in a SQLite file in the state folder (``<home>/serving/keys.db``, see :func:`default_keystore`), in WAL
mode with a busy timeout, so several processes (Serve replicas, the ``sunday keys`` CLI) share it safely.

**Tokens.** ``create`` returns ``sk_<key_id>_<secret>`` where ``key_id`` is 16 hex digits and ``secret`` is
``secrets.token_urlsafe(32)`` (256 random bits). The token is shown once and never stored.

**Why one SHA-256 and not scrypt/PBKDF2.** Slow, salted KDFs exist to protect *low-entropy* secrets (human
passwords) against offline guessing. Our secrets are 256-bit uniformly random: inverting SHA-256 of such a value is
infeasible however fast the hash is, and a salt adds nothing because no two tokens collide and no precomputed table
can cover 2^256 values. This is the standard practice for machine-generated API keys (GitHub, Stripe). The benefit
is speed: verification runs on *every* request, and a single SHA-256 costs about a microsecond where scrypt with
safe parameters costs tens of milliseconds of CPU per request (a cheap denial-of-service). The stored hash is looked
up by ``key_id`` (the public part of the token) and compared with :func:`hmac.compare_digest` (constant time).

**Cache and revocation.** ``verify`` keeps successfully verified keys in a small in-process cache for
``cache_ttl`` seconds (default 5). ``revoke`` in the *same* process takes effect at once; in *other* processes
(other replicas, or after ``sunday keys revoke``) it takes effect within ``cache_ttl`` seconds. Expiry is checked on
every call, cache hit or not, so an expired key is refused on time. Unknown or invalid tokens are not cached.

**Roles.** ``viewer < member < admin``; :func:`require` raises :class:`Forbidden` below the needed role.

**Isolation.** Every key belongs to exactly one workspace. :func:`check_workspace` raises :class:`Forbidden` when a
request names another workspace. This holds for admin keys too: ``admin`` means "administers its own workspace",
never "reads other workspaces". There is no cross-workspace (super-user) key by design; operators use the CLI.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import os
import random
import re
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Callable, TypeVar

from sunday.serving.errors import Forbidden, InvalidField, NotFound, Unauthorized

__all__ = [
    "KeyInfo", "KeyStore", "Principal", "Role", "bearer_token", "check_workspace", "default_keystore",
    "normalize_workspace", "open_sqlite", "require", "with_retry",
]

T = TypeVar("T")

TOKEN_PREFIX = "sk_"
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_MAX_FIELD = 200


# --------------------------------------------------------------------------- roles and principals


class Role(Enum):
    """Roles, ordered ``VIEWER < MEMBER < ADMIN`` (comparisons use the rank, not the name)."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def parse(cls, value: "Role | str") -> "Role":
        """A :class:`Role` from a role or its name (case-insensitive); :class:`InvalidField` ('role') otherwise."""
        if isinstance(value, Role):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        known = ", ".join(r.value for r in cls)
        raise InvalidField("role", f"must be one of {known}, got {value!r}")

    def _cmp(self, other: object) -> int:
        if isinstance(other, (Role, str)):
            return self.rank - Role.parse(other).rank
        return NotImplemented  # type: ignore[return-value]

    def __lt__(self, other: object) -> bool:
        c = self._cmp(other)
        return c if c is NotImplemented else c < 0

    def __le__(self, other: object) -> bool:
        c = self._cmp(other)
        return c if c is NotImplemented else c <= 0

    def __gt__(self, other: object) -> bool:
        c = self._cmp(other)
        return c if c is NotImplemented else c > 0

    def __ge__(self, other: object) -> bool:
        c = self._cmp(other)
        return c if c is NotImplemented else c >= 0

    def __str__(self) -> str:
        return self.value


_RANK = {Role.VIEWER: 1, Role.MEMBER: 2, Role.ADMIN: 3}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the verified key, its workspace and role. Holds no secret."""

    key_id: str
    workspace_id: str
    role: Role
    name: str | None = None


@dataclass(frozen=True)
class KeyInfo:
    """A stored key as listed (never the secret or its hash). Times are UTC."""

    key_id: str
    workspace_id: str
    role: Role
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at is not None:
            return "revoked"
        now = now or datetime.now(timezone.utc)
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


def normalize_workspace(workspace_id: object, field: str = "workspace_id") -> str:
    """A workspace id as a clean string; :class:`InvalidField` naming ``field`` when empty or malformed."""
    if isinstance(workspace_id, bool) or not isinstance(workspace_id, (str, int)):
        raise InvalidField(field, f"must be a non-empty string, got {type(workspace_id).__name__}")
    ws = str(workspace_id).strip()
    if not ws:
        raise InvalidField(field, "must not be empty")
    if len(ws) > _MAX_FIELD:
        raise InvalidField(field, f"must be at most {_MAX_FIELD} characters")
    if not ws.isprintable():
        raise InvalidField(field, "must not contain control characters")
    return ws


def require(principal: Principal, role: Role | str) -> Principal:
    """Raise :class:`Forbidden` unless ``principal`` has at least ``role``; returns the principal."""
    needed = Role.parse(role)
    if principal.role < needed:
        raise Forbidden(f"this needs role '{needed}' or higher; key {principal.key_id} has role '{principal.role}'")
    return principal


def check_workspace(principal: Principal, workspace_id: object) -> Principal:
    """Raise :class:`Forbidden` unless ``workspace_id`` is the principal's own workspace (admins included: a key
    is always scoped to its one workspace). The message does not say whether the other workspace exists."""
    ws = normalize_workspace(workspace_id)
    if not hmac.compare_digest(ws.encode(), principal.workspace_id.encode()):
        raise Forbidden(f"key {principal.key_id} may not access workspace '{ws}'")
    return principal


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; :class:`Unauthorized` when absent/malformed."""
    if not authorization:
        raise Unauthorized("missing Authorization header (expected 'Bearer sk_...')")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header (expected 'Bearer sk_...')")
    return token.strip()


def hash_token(token: str) -> str:
    """SHA-256 hex digest of the whole token (see the module docstring for why this is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _parse_token(token: object) -> str | None:
    """The key id inside a well-formed token, else None."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 256:
        return None
    parts = token.split("_", 2)
    if len(parts) != 3 or not _KEY_ID_RE.match(parts[1]) or len(parts[2]) < 16:
        return None
    return parts[1]


# --------------------------------------------------------------------------- SQLite helpers (shared with audit)


def _is_busy(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def with_retry(fn: Callable[[], T], *, deadline_s: float = 30.0) -> T:
    """Run ``fn``, retrying with jittered exponential backoff while SQLite says 'database is locked/busy'
    (on top of the connection's busy timeout), for at most ``deadline_s`` seconds; other errors propagate."""
    start = time.monotonic()
    delay = 0.002
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() - start >= deadline_s:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.2)


def open_sqlite(path: Path, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000) -> sqlite3.Connection:
    """A connection in autocommit mode (each statement commits, or use explicit BEGIN IMMEDIATE), WAL journal,
    the given ``synchronous`` level and a busy timeout; usable from several threads under the caller's lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():  # owner-only file (SQLite gives its -wal/-shm files the same mode)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        with_retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        conn.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        conn.close()
        raise
    return conn


def run_script(conn: sqlite3.Connection, statements: list[str]) -> None:
    """Run DDL statements in one write transaction (BEGIN IMMEDIATE), retrying while the database is locked."""

    def attempt() -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in statements:
                conn.execute(stmt)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    with_retry(attempt)


class _SqliteOwner:
    """One lazily opened connection per process (reopened after fork), guarded by a lock."""

    _synchronous = "FULL"

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._inherited: builtins.list[sqlite3.Connection] = []  # never close a connection from another process

    def _schema(self) -> builtins.list[str]:  # pragma: no cover - overridden
        return []

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            if self._conn is not None:
                self._inherited.append(self._conn)
            conn = open_sqlite(self.path, synchronous=self._synchronous)
            try:
                run_script(conn, self._schema())
            except BaseException:
                conn.close()
                raise
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- the key store


def _to_epoch(value: datetime | float | int | None, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # naive datetimes are read as UTC
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidField(field, f"must be a datetime or a unix timestamp, got {type(value).__name__}")


def _to_dt(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc)


@dataclass
class _Cached:
    principal: Principal
    expires_at: float | None
    cached_until: float


class KeyStore(_SqliteOwner):
    """API keys in a SQLite file; see the module docstring. ``clock`` (unix seconds) is injectable for tests and is
    used both for key expiry and for the cache TTL."""

    _synchronous = "FULL"  # key changes are rare; make them survive power loss too

    def __init__(self, path: Path | str, *, cache_ttl: float = 5.0, cache_size: int = 10_000,
                 clock: Callable[[], float] = time.time):
        super().__init__(path)
        if cache_ttl < 0:
            raise InvalidField("cache_ttl", "must be >= 0", table="keystore")
        self.cache_ttl = float(cache_ttl)
        self.cache_size = int(cache_size)
        self.clock = clock
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        with self._lock:
            self._connection()  # create the file and schema now, so errors surface at start-up

    def _schema(self) -> builtins.list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS api_keys (
                key_id       TEXT PRIMARY KEY,
                workspace_id TEXT NOT NULL,
                role         TEXT NOT NULL CHECK (role IN ('viewer', 'member', 'admin')),
                name         TEXT,
                key_hash     TEXT NOT NULL,
                created_at   REAL NOT NULL,
                expires_at   REAL,
                revoked_at   REAL
            )""",
            "CREATE INDEX IF NOT EXISTS api_keys_workspace ON api_keys (workspace_id)",
        ]

    # -- writes --
    def create(self, workspace_id: str, role: Role | str, name: str | None = None,
               expires_at: datetime | float | None = None) -> tuple[str, str]:
        """Create a key; returns ``(key_id, token)``. Only a hash of the token is stored: show it once."""
        ws = normalize_workspace(workspace_id)
        r = Role.parse(role)
        if name is not None:
            name = str(name).strip() or None
            if name is not None and len(name) > _MAX_FIELD:
                raise InvalidField("name", f"must be at most {_MAX_FIELD} characters")
        now = self.clock()
        exp = _to_epoch(expires_at, "expires_at")
        if exp is not None and exp <= now:
            raise InvalidField("expires_at", "must be in the future")
        while True:
            key_id = secrets.token_hex(8)
            token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            try:
                with self._lock:
                    conn = self._connection()
                    with_retry(lambda: conn.execute(
                        "INSERT INTO api_keys (key_id, workspace_id, role, name, key_hash, created_at, expires_at)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (key_id, ws, r.value, name, hash_token(token), now, exp)))
                return key_id, token
            except sqlite3.IntegrityError:  # 64-bit key id collision: astronomically unlikely, draw again
                continue

    def revoke(self, key_id: str) -> bool:
        """Revoke a key: True when it was active, False when it was already revoked; :class:`NotFound` when
        unknown. Immediate in this process, within ``cache_ttl`` seconds in others."""
        key_id = str(key_id).strip()
        now = self.clock()
        with self._lock:
            conn = self._connection()
            cur = with_retry(lambda: conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (now, key_id)))
            changed = cur.rowcount > 0
            if not changed:
                exists = conn.execute("SELECT 1 FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
                if not exists:
                    raise NotFound(f"unknown API key id '{key_id}'")
            for h in [h for h, c in self._cache.items() if c.principal.key_id == key_id]:
                del self._cache[h]
        return changed

    # -- reads --
    def list(self, workspace_id: str | None = None) -> builtins.list[KeyInfo]:
        """Keys (all, or of one workspace), oldest first; never secrets or hashes."""
        sql = "SELECT key_id, workspace_id, role, name, created_at, expires_at, revoked_at FROM api_keys"
        args: tuple = ()
        if workspace_id is not None:
            sql += " WHERE workspace_id = ?"
            args = (normalize_workspace(workspace_id),)
        sql += " ORDER BY created_at, key_id"
        with self._lock:
            conn = self._connection()
            rows = with_retry(lambda: conn.execute(sql, args).fetchall())
        return [KeyInfo(k, ws, Role(r), n, _to_dt(c), _to_dt(e), _to_dt(rv)) for k, ws, r, n, c, e, rv in rows]

    def verify(self, token: str | None) -> Principal | None:
        """The :class:`Principal` of a valid token; None when malformed, unknown, revoked or expired."""
        key_id = _parse_token(token)
        if key_id is None:
            return None
        digest = hash_token(token)  # type: ignore[arg-type]
        now = self.clock()
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                if now < hit.cached_until and (hit.expires_at is None or now < hit.expires_at):
                    return hit.principal
                del self._cache[digest]
            conn = self._connection()
            row = with_retry(lambda: conn.execute(
                "SELECT workspace_id, role, name, key_hash, expires_at, revoked_at FROM api_keys WHERE key_id = ?",
                (key_id,)).fetchone())
        if row is None:
            return None
        ws, role, name, stored, exp, revoked = row
        if not hmac.compare_digest(stored.encode(), digest.encode()):
            return None
        if revoked is not None or (exp is not None and now >= exp):
            return None
        principal = Principal(key_id=key_id, workspace_id=ws, role=Role(role), name=name)
        if self.cache_ttl > 0:
            with self._lock:
                self._cache[digest] = _Cached(principal, exp, now + self.cache_ttl)
                self._cache.move_to_end(digest)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return principal

    def authenticate(self, authorization: str | None) -> Principal:
        """``verify`` for an ``Authorization`` header value; raises :class:`Unauthorized` instead of None."""
        principal = self.verify(bearer_token(authorization))
        if principal is None:
            raise Unauthorized("invalid, revoked or expired API key")
        return principal

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()


def keystore_path(settings) -> Path:
    return Path(settings.home) / "serving" / "keys.db"


def default_keystore(settings, **kwargs) -> KeyStore:
    """The key store of a state folder: ``<settings.home>/serving/keys.db``."""
    return KeyStore(keystore_path(settings), **kwargs)
