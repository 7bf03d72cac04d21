"""Per-workspace token-bucket rate limits for the serving API.

Each workspace has a bucket holding up to ``burst`` tokens that refills at ``rate`` tokens per second; a request
costs ``cost`` tokens (1 by default). ``acquire`` answers ``(allowed, retry_after_s)``: when refused,
``retry_after_s`` is how long until enough tokens are back (> 0); ``check`` raises :class:`RateLimited` instead,
whose ``headers()`` give the HTTP ``Retry-After``.

Two implementations with the same semantics:

* :class:`InMemoryTokenBucket`: thread-safe, one process. With N Serve replicas each replica has its own buckets,
  so a workspace gets up to N x the configured rate. Fine for one replica or tests.
* :class:`RedisTokenBucket`: one atomic Lua script per call, state in a Redis hash per workspace
  (``<prefix><workspace_id>``), shared by all replicas: the configured rate is the global rate. Time comes from the
  Redis server (``TIME``) so replica clocks do not matter. Keys expire once the bucket would be full again (no state
  is lost by that). If Redis is unreachable it *fails open* by default (allows the request, logs a warning) so a
  Redis outage does not take the API down; ``fail_open=False`` refuses instead (retry after 1 s).

:func:`make_rate_limiter` picks Redis when ``settings.redis_url`` is set, else memory.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

from sunday.serving.errors import InvalidField, RateLimited
from sunday.serving.keys import normalize_workspace

__all__ = ["InMemoryTokenBucket", "RateLimit", "RateLimitConfig", "RedisTokenBucket", "TokenBucket",
           "make_rate_limiter"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    """``rate`` tokens per second, at most ``burst`` tokens in the bucket."""

    rate: float = 10.0
    burst: float = 20.0

    def __post_init__(self) -> None:
        for name in ("rate", "burst"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise InvalidField(name, f"must be a positive number, got {v!r}", table="rate_limit")
        if self.burst < 1:
            raise InvalidField("burst", f"must be >= 1, got {self.burst!r}", table="rate_limit")


@dataclass(frozen=True)
class RateLimitConfig:
    """A default limit and per-workspace overrides (``{workspace_id: RateLimit | (rate, burst) | dict}``)."""

    default: RateLimit = field(default_factory=RateLimit)
    workspaces: dict[str, RateLimit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.default, (tuple, list)):
            object.__setattr__(self, "default", RateLimit(*self.default))
        elif isinstance(self.default, dict):
            object.__setattr__(self, "default", RateLimit(**self.default))
        clean: dict[str, RateLimit] = {}
        for ws, lim in dict(self.workspaces).items():
            if isinstance(lim, (tuple, list)):
                lim = RateLimit(*lim)
            elif isinstance(lim, dict):
                lim = RateLimit(**lim)
            elif not isinstance(lim, RateLimit):
                raise InvalidField("workspaces", f"limit for '{ws}' must be a RateLimit, (rate, burst) or dict",
                                   table="rate_limit")
            clean[normalize_workspace(ws, "workspaces")] = lim
        object.__setattr__(self, "workspaces", clean)

    def for_workspace(self, workspace_id: str) -> RateLimit:
        return self.workspaces.get(workspace_id, self.default)


class TokenBucket(ABC):
    """Per-workspace token buckets. Subclasses implement :meth:`_take`."""

    def __init__(self, config: RateLimitConfig | None = None):
        self.config = config or RateLimitConfig()

    def acquire(self, workspace_id: str, cost: float = 1) -> tuple[bool, float]:
        """Take ``cost`` tokens from the workspace's bucket: ``(True, 0.0)``, or ``(False, retry_after_s)`` with
        ``retry_after_s > 0`` when there are not enough (nothing is taken then)."""
        ws = normalize_workspace(workspace_id)
        limit = self.config.for_workspace(ws)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost <= 0:
            raise InvalidField("cost", f"must be a positive number, got {cost!r}", table="rate_limit")
        if cost > limit.burst:
            raise InvalidField("cost", f"{cost} exceeds the burst ({limit.burst}) of workspace '{ws}'",
                               table="rate_limit")
        return self._take(ws, limit, float(cost))

    def check(self, workspace_id: str, cost: float = 1) -> None:
        """``acquire``, raising :class:`RateLimited` (HTTP 429 with ``Retry-After``) when refused."""
        allowed, retry_after = self.acquire(workspace_id, cost)
        if not allowed:
            raise RateLimited(str(workspace_id), retry_after)

    @abstractmethod
    def _take(self, ws: str, limit: RateLimit, cost: float) -> tuple[bool, float]: ...


def _refill_and_take(tokens: float, last: float, now: float, limit: RateLimit, cost: float
                     ) -> tuple[float, bool, float]:
    """The bucket arithmetic (mirrored by the Lua script): new token count, allowed, retry_after."""
    tokens = min(limit.burst, tokens + max(0.0, now - last) * limit.rate)
    if tokens >= cost:
        return tokens - cost, True, 0.0
    return tokens, False, max((cost - tokens) / limit.rate, 1e-6)


class InMemoryTokenBucket(TokenBucket):
    """Thread-safe buckets in this process. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, config: RateLimitConfig | None = None, *, clock: Callable[[], float] = time.monotonic,
                 max_workspaces: int = 100_000):
        super().__init__(config)
        self.clock = clock
        self.max_workspaces = max_workspaces
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # workspace -> (tokens, last refill time)

    def _take(self, ws: str, limit: RateLimit, cost: float) -> tuple[bool, float]:
        with self._lock:
            now = self.clock()
            tokens, last = self._state.get(ws, (limit.burst, now))
            tokens, allowed, retry = _refill_and_take(tokens, last, now, limit, cost)
            self._state[ws] = (tokens, now)
            if len(self._state) > self.max_workspaces:
                self._prune(now)
            return allowed, retry

    def _prune(self, now: float) -> None:
        """Forget buckets that are full again (forgetting them changes nothing)."""
        for ws, (tokens, last) in list(self._state.items()):
            lim = self.config.for_workspace(ws)
            if tokens + (now - last) * lim.rate >= lim.burst:
                del self._state[ws]


# KEYS[1] bucket hash; ARGV: rate, burst, cost, now (seconds; "" = Redis server TIME)
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now
if ARGV[4] == nil or ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[4])
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
  if retry < 0.000001 then retry = 0.000001 end
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, string.format('%.17g', retry)}
"""


class RedisTokenBucket(TokenBucket):
    """Buckets in Redis, one atomic Lua script per ``acquire`` (see the module docstring).

    ``redis`` is a URL (``redis://host:6379/0``) or a ``redis.Redis`` client. ``clock`` (seconds) overrides the
    Redis server time, for tests only."""

    def __init__(self, redis, config: RateLimitConfig | None = None, *, prefix: str = "sunday:ratelimit:",
                 fail_open: bool = True, clock: Callable[[], float] | None = None, socket_timeout: float = 0.5):
        super().__init__(config)
        import redis as redis_lib

        self._errors = (redis_lib.exceptions.ConnectionError, redis_lib.exceptions.TimeoutError)
        if isinstance(redis, str):
            redis = redis_lib.Redis.from_url(redis, socket_timeout=socket_timeout,
                                             socket_connect_timeout=socket_timeout)
        self.client = redis
        self.prefix = prefix
        self.fail_open = fail_open
        self.clock = clock
        self._script = self.client.register_script(_LUA)

    def key(self, workspace_id: str) -> str:
        return f"{self.prefix}{workspace_id}"

    def _take(self, ws: str, limit: RateLimit, cost: float) -> tuple[bool, float]:
        now = "" if self.clock is None else repr(float(self.clock()))
        try:
            allowed, retry = self._script(keys=[self.key(ws)], args=[repr(float(limit.rate)),
                                                                     repr(float(limit.burst)), repr(cost), now])
        except self._errors as exc:
            log.warning("rate limiter: Redis unreachable (%s); %s", exc,
                        "allowing the request" if self.fail_open else "refusing the request")
            return (True, 0.0) if self.fail_open else (False, 1.0)
        return bool(int(allowed)), (0.0 if int(allowed) else float(retry))


def make_rate_limiter(settings, config: RateLimitConfig | None = None, **kwargs) -> TokenBucket:
    """:class:`RedisTokenBucket` when ``settings.redis_url`` is set, else :class:`InMemoryTokenBucket`."""
    url = getattr(settings, "redis_url", None)
    if url:
        return RedisTokenBucket(url, config, **kwargs)
    return InMemoryTokenBucket(config, **kwargs)
