"""Cost and safety around an LLM backend: per-workspace token budgets, a per-request cap, a prompt cache and input
size limits (issue 7, item 7).

* :class:`TokenBudget`: tokens spent per workspace and period (UTC day or month) in SQLite (WAL) under
  ``<home>/nlp/budget.db``. :meth:`TokenBudget.reserve` checks and records in one ``BEGIN IMMEDIATE`` transaction,
  so processes sharing the file never overspend together; :class:`~sunday.nlp.errors.TokenBudgetExceeded` carries
  ``Retry-After`` = seconds to the next period.
* :class:`PromptCache`: completions keyed by the sha256 of the canonical JSON of ``(model, messages, max_tokens,
  stop, seed)`` in SQLite under ``<home>/nlp/prompt_cache.db``; only greedy requests (``temperature == 0``) are
  cached, since sampled ones are meant to differ. Least recently used entries go first past ``max_entries``;
  ``ttl_s`` expires entries.
* :class:`GuardedLLM`: wraps any :class:`~sunday.nlp.llm.LLM`. ``chat(messages, workspace_id=...)`` refuses inputs
  over ``max_input_chars`` and requests whose prompt + ``max_tokens`` exceed ``max_request_tokens`` (or the model's
  context window) with :class:`~sunday.nlp.errors.InputTooLarge` (413), answers cache hits (``cached=True``, no
  budget spent), reserves prompt + ``max_tokens`` from the workspace budget before calling the backend and settles
  the reservation to the tokens actually used afterwards (all of it is refunded when the backend fails).
* :func:`check_text` (refuse) and :func:`chunk_text` (split on turn/sentence boundaries) for callers with long
  inputs such as meeting transcripts.

Limits (:class:`GuardConfig`; :meth:`GuardConfig.from_env` reads the optional environment overrides):

=================================  =======  ===========================================================
environment variable               default  meaning
=================================  =======  ===========================================================
``SUNDAY_LLM_BUDGET_TOKENS``       200000   tokens per workspace and period (prompt + completion)
``SUNDAY_LLM_BUDGET_PERIOD``       ``day``  ``day`` or ``month`` (UTC calendar periods)
``SUNDAY_LLM_MAX_REQUEST_TOKENS``  4096     cap per request: prompt tokens + ``max_tokens``
``SUNDAY_LLM_MAX_INPUT_CHARS``     60000    characters over all message contents of one request
``SUNDAY_LLM_CACHE``               ``1``    ``0``/``false``/``off`` turns the prompt cache off
``SUNDAY_LLM_CACHE_ENTRIES``       10000    prompt-cache size (least recently used entries are evicted)
=================================  =======  ===========================================================
"""

from __future__ import annotations

import calendar
import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from sunday.nlp.errors import InputTooLarge, TokenBudgetExceeded

if TYPE_CHECKING:  # pragma: no cover
    from sunday.nlp.llm import LLM, Completion
    from sunday.settings import Settings

PERIODS = ("day", "month")
MESSAGE_OVERHEAD_TOKENS = 8  # chat-template tokens per message (role markers, separators), an upper estimate
_BUSY_TIMEOUT_S = 30.0


# -- SQLite -------------------------------------------------------------------------------------------------------
def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with WAL and a busy timeout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # one connection per object, shared by threads (a serving app's thread pool) under the object's lock
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE``: takes the write lock up front, so a read-then-write cannot interleave with another
    process's."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# -- periods ------------------------------------------------------------------------------------------------------
def period_window(period: str, now: float) -> tuple[str, float]:
    """``(key, next_start)`` of the UTC period holding ``now`` (epoch seconds): ``("2025-03-14", ...)`` for a day,
    ``("2025-03", ...)`` for a month; ``next_start`` is the epoch second the next period begins."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {list(PERIODS)}, got {period!r}")
    t = datetime.fromtimestamp(now, tz=timezone.utc)
    if period == "day":
        start = datetime(t.year, t.month, t.day, tzinfo=timezone.utc)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86_400
    days = calendar.monthrange(t.year, t.month)[1]
    start = datetime(t.year, t.month, 1, tzinfo=timezone.utc)
    return start.strftime("%Y-%m"), start.timestamp() + days * 86_400


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


class _SqliteFile:
    """One SQLite file (WAL) opened on first use, its ``SCHEMA`` statements run then; a lock for this process."""

    SCHEMA: tuple[str, ...] = ()

    def __init__(self, path: Path, clock: Callable[[], float]):
        self.path = Path(path)
        self.clock = clock
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = _connect(self.path)
            for statement in self.SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- budget -------------------------------------------------------------------------------------------------------
class TokenBudget(_SqliteFile):
    """Tokens per workspace and period, in SQLite (safe across processes sharing ``path``).

    ``limit_per_period`` applies to every workspace; ``per_workspace`` overrides it for named ones. ``clock``
    (epoch seconds) is injectable for tests."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS usage (workspace_id TEXT NOT NULL, period TEXT NOT NULL, "
              "tokens INTEGER NOT NULL, PRIMARY KEY (workspace_id, period))",)

    def __init__(self, path: Path, limit_per_period: int, period: str = "day",
                 per_workspace: Mapping[str, int] | None = None, clock: Callable[[], float] = time.time):
        if period not in PERIODS:
            raise ValueError(f"period must be one of {list(PERIODS)}, got {period!r}")
        super().__init__(path, clock)
        self.limit_per_period = _positive_int("limit_per_period", limit_per_period)
        self.period = period
        self.per_workspace = {str(k): _positive_int(f"per_workspace[{k!r}]", v)
                              for k, v in (per_workspace or {}).items()}

    def limit(self, workspace_id: str) -> int:
        """The workspace's tokens per period."""
        return self.per_workspace.get(workspace_id, self.limit_per_period)

    def _window(self) -> tuple[str, int]:
        now = self.clock()
        key, next_start = period_window(self.period, now)
        return key, max(1, math.ceil(next_start - now))

    def _used(self, key: str, workspace_id: str) -> int:
        row = self.conn.execute("SELECT tokens FROM usage WHERE workspace_id = ? AND period = ?",
                                (workspace_id, key)).fetchone()
        return int(row[0]) if row else 0

    def used(self, workspace_id: str) -> int:
        """Tokens the workspace has spent in the current period."""
        with self._lock:
            return self._used(self._window()[0], workspace_id)

    def remaining(self, workspace_id: str) -> int:
        return max(0, self.limit(workspace_id) - self.used(workspace_id))

    def _refuse(self, workspace_id: str, used: int, requested: int, retry_after: int) -> None:
        limit = self.limit(workspace_id)
        if used + requested > limit:
            # a request larger than the whole budget never fits: no Retry-After to promise
            raise TokenBudgetExceeded(workspace_id, used, requested, limit,
                                      retry_after if requested <= limit else None)

    def check(self, workspace_id: str, requested: int) -> None:
        """Raise :class:`TokenBudgetExceeded` (``retry_after_s`` = seconds to the next period) when ``requested``
        more tokens would exceed the workspace's limit. Records nothing; :meth:`reserve` checks and records
        atomically."""
        with self._lock:
            key, retry = self._window()
            self._refuse(workspace_id, self._used(key, workspace_id), int(requested), retry)

    def record(self, workspace_id: str, tokens: int) -> int:
        """Add ``tokens`` (negative: a refund, never below zero) to the current period; returns the new total."""
        with self._lock:
            key, _ = self._window()
            with _transaction(self.conn):
                return self._add(key, workspace_id, int(tokens))

    def reserve(self, workspace_id: str, requested: int) -> int:
        """Check and record ``requested`` tokens in one transaction; returns the new total. Settle the
        reservation with ``record(workspace_id, actual - requested)`` once the real usage is known."""
        with self._lock:
            key, retry = self._window()
            with _transaction(self.conn):
                self._refuse(workspace_id, self._used(key, workspace_id), int(requested), retry)
                return self._add(key, workspace_id, int(requested))

    def _add(self, key: str, workspace_id: str, tokens: int) -> int:
        self.conn.execute(
            "INSERT INTO usage (workspace_id, period, tokens) VALUES (?, ?, max(0, ?)) "
            "ON CONFLICT (workspace_id, period) DO UPDATE SET tokens = max(0, usage.tokens + ?)",
            (workspace_id, key, tokens, tokens))
        return self._used(key, workspace_id)


# -- cache --------------------------------------------------------------------------------------------------------
def prompt_key(model: str, messages: list[dict], max_tokens: int, stop: list[str] | str | None,
               seed: int | None) -> str:
    """sha256 of the canonical JSON (sorted keys, no whitespace) of the request fields that decide the output."""
    payload = {"model": model, "messages": messages, "max_tokens": max_tokens,
               "stop": [stop] if isinstance(stop, str) else stop, "seed": seed}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class PromptCache(_SqliteFile):
    """Completions keyed by :func:`prompt_key`, in SQLite; least recently used entries beyond ``max_entries`` are
    evicted, entries older than ``ttl_s`` (when set) are misses. Values are the completion's fields as a dict."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL, "
              "accessed REAL NOT NULL)", "CREATE INDEX IF NOT EXISTS cache_accessed ON cache (accessed)")

    def __init__(self, path: Path, max_entries: int = 10_000, ttl_s: float | None = None,
                 clock: Callable[[], float] = time.time):
        super().__init__(path, clock)
        self.max_entries = _positive_int("max_entries", max_entries)
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}")
        self.ttl_s = ttl_s

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored value, or None (missing or expired); a hit refreshes the entry's recency."""
        with self._lock:
            now = self.clock()
            row = self.conn.execute("SELECT value, created FROM cache WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if self.ttl_s is not None and now - row[1] > self.ttl_s:
                self.conn.execute("DELETE FROM cache WHERE key = ?", (key,))
                return None
            self.conn.execute("UPDATE cache SET accessed = ? WHERE key = ?", (now, key))
            return json.loads(row[0])

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        with self._lock:
            now = self.clock()
            with _transaction(self.conn):
                self.conn.execute("INSERT OR REPLACE INTO cache (key, value, created, accessed) VALUES (?, ?, ?, ?)",
                                  (key, json.dumps(dict(value), ensure_ascii=False), now, now))
                self.conn.execute("DELETE FROM cache WHERE key IN (SELECT key FROM cache ORDER BY accessed DESC, "
                                  "created DESC LIMIT -1 OFFSET ?)", (self.max_entries,))

    def __len__(self) -> int:
        with self._lock:
            return int(self.conn.execute("SELECT count(*) FROM cache").fetchone()[0])


# -- config -------------------------------------------------------------------------------------------------------
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a positive integer, got {raw!r}") from None
    return _positive_int(name, value)


@dataclass
class GuardConfig:
    """Limits of :class:`GuardedLLM`. Plain defaults here; :meth:`from_env` applies the environment overrides
    listed in the module docstring."""

    budget_tokens: int = 200_000  # per workspace and period, prompt + completion tokens
    period: str = "day"
    per_workspace: dict[str, int] = field(default_factory=dict)  # workspace -> its own budget_tokens
    max_request_tokens: int = 4096  # prompt tokens + max_tokens of one request
    max_input_chars: int = 60_000  # all message contents of one request
    cache: bool = True
    cache_entries: int = 10_000
    cache_ttl_s: float | None = None

    def __post_init__(self) -> None:
        for name in ("budget_tokens", "max_request_tokens", "max_input_chars", "cache_entries"):
            _positive_int(name, getattr(self, name))
        if self.period not in PERIODS:
            raise ValueError(f"period must be one of {list(PERIODS)}, got {self.period!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "GuardConfig":
        """Defaults, then the ``SUNDAY_LLM_*`` environment variables, then ``overrides``."""
        env = os.environ if environ is None else environ
        d = cls()
        values: dict[str, Any] = {
            "budget_tokens": _env_int(env, "SUNDAY_LLM_BUDGET_TOKENS", d.budget_tokens),
            "period": (env.get("SUNDAY_LLM_BUDGET_PERIOD") or d.period).strip().lower(),
            "max_request_tokens": _env_int(env, "SUNDAY_LLM_MAX_REQUEST_TOKENS", d.max_request_tokens),
            "max_input_chars": _env_int(env, "SUNDAY_LLM_MAX_INPUT_CHARS", d.max_input_chars),
            "cache_entries": _env_int(env, "SUNDAY_LLM_CACHE_ENTRIES", d.cache_entries),
        }
        raw = (env.get("SUNDAY_LLM_CACHE") or "").strip().lower()
        if raw and raw not in _TRUE | _FALSE:
            raise ValueError(f"SUNDAY_LLM_CACHE must be one of 1/0/true/false/on/off, got {raw!r}")
        values["cache"] = raw not in _FALSE
        values.update(overrides)
        return cls(**values)


# -- size limits and chunking ------------------------------------------------------------------------------------
def check_text(field: str, text: str, limit: int, unit: str = "characters",
               count: Callable[[str], int] | None = None) -> str:
    """``text`` unchanged, or :class:`InputTooLarge` naming ``field`` when its size (characters, or ``count(text)``
    in ``unit``) is over ``limit``."""
    size = len(text) if count is None else int(count(text))
    if size > limit:
        raise InputTooLarge(field, size, limit, unit)
    return text


_TURN = re.compile(r"\n(?=[ \t]*[^\n:]{1,40}:\s)")  # a new line that starts a "Speaker: ..." turn
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")


def _units(text: str) -> list[str]:
    """Speaker turns / paragraphs / lines, each split further into sentences."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        parts = _TURN.split(block) if _TURN.search(block) else block.split("\n")
        for part in parts:
            out.extend(s.strip() for s in _SENTENCE.split(part.strip()) if s.strip())
    return out


def _split_words(unit: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """A unit longer than ``max_tokens`` split on words (on characters for a single over-long word)."""
    pieces: list[str] = []
    current: list[str] = []
    for word in unit.split():
        if count(word) > max_tokens:
            if current:
                pieces.append(" ".join(current))
                current = []
            step = max(1, len(word) * max_tokens // max(1, count(word)))
            pieces.extend(word[i:i + step] for i in range(0, len(word), step))
            continue
        if current and count(" ".join(current + [word])) > max_tokens:
            pieces.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def chunk_text(text: str, max_tokens: int, count_tokens: Callable[[str], int], overlap: int = 1) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (by ``count_tokens``), on speaker-turn, line and
    sentence boundaries; a sentence longer than a chunk is split on words. Consecutive chunks share up to
    ``overlap`` trailing units (sentences/turns) when they fit in half a chunk. Empty text gives no chunks."""
    _positive_int("max_tokens", max_tokens)
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    units: list[tuple[str, int]] = []
    for unit in _units(text):
        n = count_tokens(unit)
        if n > max_tokens:
            units.extend((p, count_tokens(p)) for p in _split_words(unit, max_tokens, count_tokens))
        else:
            units.append((unit, n))
    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    for unit, n in units:
        if current and size + 1 + n > max_tokens:  # +1: the separator
            chunks.append("\n".join(u for u, _ in current))
            carried: list[tuple[str, int]] = []
            for u, m in reversed(current[len(current) - overlap:] if overlap else []):
                if sum(k + 1 for _, k in carried) + m + 1 + n + 1 > max_tokens or m > max_tokens // 2:
                    break
                carried.insert(0, (u, m))
            current = carried
            size = sum(m + 1 for _, m in current)
        current.append((unit, n))
        size += n + 1
    if current:
        chunks.append("\n".join(u for u, _ in current))
    return chunks


# -- the guarded backend -------------------------------------------------------------------------------------------
def _content_text(messages: list[dict]) -> list[str]:
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m:
            raise ValueError(f"messages[{i}] must be a {{'role', 'content'}} mapping")
        content = m.get("content")
        out.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    return out


class GuardedLLM:
    """An LLM backend behind budgets, caps and a cache; see the module docstring. ``model``, ``context_window`` and
    ``count_tokens`` are the backend's. ``for_workspace(id)`` gives a view with the plain :class:`LLM` signature."""

    def __init__(self, llm: "LLM", config: GuardConfig | None = None, home: Path | None = None, *,
                 budget: TokenBudget | None = None, cache: PromptCache | None = None):
        self.llm = llm
        self.config = config or GuardConfig()
        if budget is None or (cache is None and self.config.cache):
            if home is None:
                raise ValueError("GuardedLLM needs home (the state folder) or an explicit budget and cache")
            folder = Path(home) / "nlp"
        self.budget = budget or TokenBudget(folder / "budget.db", self.config.budget_tokens, self.config.period,
                                            self.config.per_workspace)
        self.cache = cache if cache is not None else (
            PromptCache(folder / "prompt_cache.db", self.config.cache_entries, self.config.cache_ttl_s)
            if self.config.cache else None)

    @classmethod
    def for_settings(cls, settings: "Settings | None" = None, llm: "LLM | None" = None,
                     config: GuardConfig | None = None) -> "GuardedLLM":
        """The configured backend (:func:`sunday.nlp.llm.make_llm` unless ``llm`` is given) behind the limits of
        ``config`` (default: :meth:`GuardConfig.from_env`), state under ``<home>/nlp``."""
        from sunday.settings import get_settings

        settings = settings or get_settings()
        if llm is None:
            from sunday.nlp.llm import make_llm

            llm = make_llm(settings)
        return cls(llm, config or GuardConfig.from_env(), settings.home)

    # the LLM protocol's attributes
    @property
    def model(self) -> str:
        return self.llm.model

    @property
    def context_window(self) -> int:
        return self.llm.context_window

    def count_tokens(self, text: str) -> int:
        return self.llm.count_tokens(text)

    def estimate_prompt_tokens(self, messages: list[dict]) -> int:
        """Tokens of the message contents plus :data:`MESSAGE_OVERHEAD_TOKENS` per message (an upper estimate of
        the chat template)."""
        return sum(self.llm.count_tokens(t) for t in _content_text(messages)) + MESSAGE_OVERHEAD_TOKENS * len(messages)

    def check_request(self, messages: list[dict], max_tokens: int) -> int:
        """The estimated prompt tokens, or :class:`InputTooLarge` when the input or the request is over a limit."""
        _positive_int("max_tokens", max_tokens)
        texts = _content_text(messages)
        check_text("messages", "".join(texts), self.config.max_input_chars)
        prompt = self.estimate_prompt_tokens(messages)
        if prompt + max_tokens > self.config.max_request_tokens:
            raise InputTooLarge("prompt", prompt + max_tokens, self.config.max_request_tokens,
                                "tokens (prompt + max_tokens)")
        window = getattr(self.llm, "context_window", None)
        if window and prompt + max_tokens > window:
            raise InputTooLarge("prompt", prompt + max_tokens, int(window),
                                f"tokens (prompt + max_tokens; the context window of {self.model})")
        return prompt

    def chat(self, messages: list[dict], *, workspace_id: str, max_tokens: int = 256, temperature: float = 0.0,
             stop: list[str] | str | None = None, seed: int | None = None) -> "Completion":
        """The backend's completion, within the workspace's budget; a greedy request seen before comes from the
        cache (``cached=True``) without spending budget."""
        if not isinstance(workspace_id, str) or not workspace_id.strip():
            raise ValueError("workspace_id must be a non-empty string")
        prompt = self.check_request(messages, max_tokens)
        key = None
        if self.cache is not None and temperature == 0:
            key = prompt_key(self.model, messages, max_tokens, stop, seed)
            hit = self.cache.get(key)
            if hit is not None:
                return self._completion(hit, cached=True)
        reserved = prompt + max_tokens
        self.budget.reserve(workspace_id, reserved)
        try:
            out = self.llm.chat(messages, max_tokens=max_tokens, temperature=temperature, stop=stop, seed=seed)
        except BaseException:
            self.budget.record(workspace_id, -reserved)
            raise
        self.budget.record(workspace_id, int(out.prompt_tokens) + int(out.completion_tokens) - reserved)
        if key is not None:
            self.cache.put(key, {f.name: getattr(out, f.name) for f in dataclasses.fields(out) if f.name != "cached"})
        return out

    @staticmethod
    def _completion(value: Mapping[str, Any], cached: bool) -> "Completion":
        from sunday.nlp.llm import Completion

        names = {f.name for f in dataclasses.fields(Completion)}
        return Completion(**{k: v for k, v in value.items() if k in names}, cached=cached)

    def for_workspace(self, workspace_id: str) -> "WorkspaceLLM":
        return WorkspaceLLM(self, workspace_id)

    def close(self) -> None:
        self.budget.close()
        if self.cache is not None:
            self.cache.close()


class WorkspaceLLM:
    """A :class:`GuardedLLM` bound to one workspace: the plain ``LLM`` protocol (``chat`` without
    ``workspace_id``), for code written against any backend."""

    def __init__(self, guarded: GuardedLLM, workspace_id: str):
        self.guarded, self.workspace_id = guarded, workspace_id

    @property
    def model(self) -> str:
        return self.guarded.model

    @property
    def context_window(self) -> int:
        return self.guarded.context_window

    def count_tokens(self, text: str) -> int:
        return self.guarded.count_tokens(text)

    def chat(self, messages: list[dict], *, max_tokens: int = 256, temperature: float = 0.0,
             stop: list[str] | str | None = None, seed: int | None = None) -> "Completion":
        return self.guarded.chat(messages, workspace_id=self.workspace_id, max_tokens=max_tokens,
                                 temperature=temperature, stop=stop, seed=seed)
