"""The serving feature cache: TTL, per-entity entries, the async (replica-local) path, invalidation."""

from __future__ import annotations

import asyncio

import pytest

from sunday.serving.feature_cache import CachedFeatures


class Store:
    """A small in-memory store with the online store's columnar ``get_columns`` answer; counts reads."""

    def __init__(self):
        self.values = {"u1": 1.0, "u2": 2.0, "u3": 3.0}
        self.reads: list[list[str]] = []

    def get_columns(self, groups, rows):
        ids = [r["user_id"] for r in rows]
        self.reads.append(ids)
        return {"user_id": ids, "open_points": [self.values.get(u) for u in ids]}


def test_ttl_and_partial_hits():
    now = [0.0]
    store = Store()
    cache = CachedFeatures(store, ttl_s=2.0, clock=lambda: now[0])
    rows = [{"user_id": "u1"}, {"user_id": "u2"}]
    assert cache.get_columns("user_workload", rows) == {"user_id": ["u1", "u2"], "open_points": [1.0, 2.0]}
    store.values["u1"] = 10.0
    now[0] = 1.0
    out = cache.get_columns("user_workload", [{"user_id": "u2"}, {"user_id": "u3"}, {"user_id": "u1"}])
    assert out["open_points"] == [2.0, 3.0, 1.0]  # u1 still cached (stale within the TTL), only u3 read
    assert store.reads[-1] == ["u3"]
    now[0] = 2.5
    assert cache.get_columns("user_workload", [{"user_id": "u1"}])["open_points"] == [10.0]  # expired: re-read
    cache.invalidate([{"user_id": "u3"}])
    cache.get_columns("user_workload", [{"user_id": "u3"}])
    assert store.reads[-1] == ["u3"]
    assert cache.get_columns("user_workload", []) == {}


def test_async_path_fetches_only_misses():
    store = Store()
    cache = CachedFeatures(None, ttl_s=60)
    calls = []

    async def fetch(groups, rows):
        calls.append([r["user_id"] for r in rows])
        return store.get_columns(groups, rows)

    rows = [{"user_id": "u1"}, {"user_id": "u2"}]
    first = asyncio.run(cache.aget_columns(["user_workload"], rows, fetch))
    second = asyncio.run(cache.aget_columns(["user_workload"], rows + [{"user_id": "u3"}], fetch))
    assert first["open_points"] == [1.0, 2.0] and second["open_points"] == [1.0, 2.0, 3.0]
    assert calls == [["u1", "u2"], ["u3"]]


def test_bad_ttl():
    with pytest.raises(ValueError, match="ttl_s"):
        CachedFeatures(Store(), ttl_s=-1)
