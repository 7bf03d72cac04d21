"""A short-TTL read-through cache over the online store (what the feature deployment serves).

Candidates repeat across requests (a team is ranked for task after task), so their ``user_workload`` /
``user_skills`` rows are read once per ``ttl_s`` instead of once per request. A streaming update lands in the
online store and is visible here within ``ttl_s`` (default 2 s) -- the staleness a user accepts for the speed.
Entries are per (group set, entity key); the cache holds at most ``max_entries`` (oldest dropped first).

Two levels in the Serve app: the ``Features`` deployment (shared, reads the store) and, in each model replica, a
local instance in front of it (:meth:`CachedFeatures.aget_columns`), so a hit costs no call at all. Both use the
same TTL: a row is at most ``2 * ttl_s`` old.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable, Mapping, Sequence


class CachedFeatures:
    def __init__(self, online: Any, ttl_s: float = 2.0, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        if ttl_s < 0:
            raise ValueError(f"ttl_s must be >= 0, got {ttl_s}")
        self.online, self.ttl_s, self.max_entries, self.clock = online, float(ttl_s), int(max_entries), clock
        self._rows: OrderedDict[tuple, tuple[float, dict]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_columns(self, what: str | Sequence[str], entity_rows: Sequence[Mapping[str, Any]]) -> dict[str, list]:
        """The same answer as :meth:`OnlineFeatures.get_columns` (columnar, one value per row)."""
        groups, rows, keys, found, missing = self._lookup(what, entity_rows)
        if missing:
            self._store(keys, found, missing, self.online.get_columns(list(groups), [rows[i] for i in missing]))
        return self._answer(rows, found)

    async def aget_columns(self, what: str | Sequence[str], entity_rows: Sequence[Mapping[str, Any]],
                           fetch: Callable[[list[str], list[Mapping[str, Any]]], Awaitable[dict[str, list]]]
                           ) -> dict[str, list]:
        """:meth:`get_columns` whose misses come from ``await fetch(groups, rows)`` (e.g. the feature
        deployment's handle): a replica-local cache in front of the shared one."""
        groups, rows, keys, found, missing = self._lookup(what, entity_rows)
        if missing:
            self._store(keys, found, missing, await fetch(list(groups), [rows[i] for i in missing]))
        return self._answer(rows, found)

    def _lookup(self, what, entity_rows):
        groups = (what,) if isinstance(what, str) else tuple(what)
        rows = list(entity_rows)
        keys = [(groups, tuple(sorted((k, str(v)) for k, v in r.items()))) for r in rows]
        now = self.clock()
        found: dict[int, dict] = {}
        with self._lock:
            for i, k in enumerate(keys):
                hit = self._rows.get(k)
                if hit is not None and now - hit[0] <= self.ttl_s:
                    found[i] = hit[1]
        missing = [i for i in range(len(rows)) if i not in found]
        self.hits += len(found)
        self.misses += len(missing)
        return groups, rows, keys, found, missing

    def _store(self, keys, found: dict[int, dict], missing: list[int], cols: Mapping[str, list]) -> None:
        now = self.clock()
        names = list(cols)
        with self._lock:
            for j, i in enumerate(missing):
                row = {n: cols[n][j] for n in names}
                found[i] = row
                self._rows[keys[i]] = (now, row)
                self._rows.move_to_end(keys[i])
            while len(self._rows) > self.max_entries:
                self._rows.popitem(last=False)

    @staticmethod
    def _answer(rows, found: dict[int, dict]) -> dict[str, list]:
        names = list(found[0]) if rows else []
        return {n: [found[i][n] for i in range(len(rows))] for n in names}

    def invalidate(self, entity_rows: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Drop cached rows of those entities (all when None): called after a streaming push."""
        with self._lock:
            if entity_rows is None:
                self._rows.clear()
                return
            want = {tuple(sorted((k, str(v)) for k, v in r.items())) for r in entity_rows}
            for k in [k for k in self._rows if k[1] in want]:
                del self._rows[k]
