"""The vector store's access rules: every search is limited to a workspace and to what the caller may see."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.errors import ValidationError
from sunday.nlp.vectorstore import VectorStore


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 384)).astype(np.float32)


@pytest.fixture()
def store(tmp_path):
    vs = VectorStore(path=tmp_path / "qdrant")
    V = _vectors(5)
    vs.upsert("tasks", ["open", "secret", "other-ws", "in-p1", "open2"], V, [
        {"workspace_id": "w1"},
        {"workspace_id": "w1", "visibility": "restricted", "allowed_users": ["u1"]},
        {"workspace_id": "w2"},
        {"workspace_id": "w1", "project_id": "p1"},
        {"workspace_id": "w1"},
    ])
    yield vs, V
    vs.close()


def keys(hits):
    return {h.key for h in hits}


def test_workspace_isolation_and_visibility(store):
    vs, V = store
    assert keys(vs.search("tasks", V[2], workspace_id="w1")) == {"open", "in-p1", "open2"}
    assert keys(vs.search("tasks", V[2], workspace_id="w2")) == {"other-ws"}
    assert "secret" in keys(vs.search("tasks", V[1], workspace_id="w1", user_id="u1"))
    assert "secret" not in keys(vs.search("tasks", V[1], workspace_id="w1", user_id="u2"))
    assert "secret" in keys(vs.search("tasks", V[1], workspace_id="w1", include_restricted=True))
    assert keys(vs.search("tasks", V[0], workspace_id="w1", project_ids=["p1"])) == {"in-p1"}
    best = vs.search("tasks", V[4], workspace_id="w1")[0]
    assert best.key == "open2" and best.score == pytest.approx(1.0, abs=1e-4)


def test_upsert_replaces_and_persists(store, tmp_path):
    vs, V = store
    vs.upsert("tasks", ["open"], V[:1], [{"workspace_id": "w1", "title": "new"}])
    assert vs.count("tasks") == 5 and vs.count("tasks", "w1") == 4
    vs.close()
    again = VectorStore(path=tmp_path / "qdrant")
    assert again.count("tasks") == 5
    assert again.search("tasks", V[0], workspace_id="w1")[0].payload["title"] == "new"
    again.close()


@pytest.mark.parametrize("call, field", [
    (lambda vs, V: vs.search("tasks", V[0], workspace_id=""), "workspace_id"),
    (lambda vs, V: vs.search("nope", V[0], workspace_id="w1"), "collection"),
    (lambda vs, V: vs.search("tasks", V[0][:10], workspace_id="w1"), "vector"),
    (lambda vs, V: vs.upsert("tasks", ["x"], V[:1], [{}]), "workspace_id"),
    (lambda vs, V: vs.upsert("tasks", ["x"], V[:1], [{"workspace_id": "w", "visibility": "public"}]), "visibility"),
    (lambda vs, V: vs.upsert("tasks", ["x", "y"], V[:1], [{"workspace_id": "w"}]), "keys"),
    (lambda vs, V: vs.upsert("tasks", ["x"], np.full((1, 384), np.nan), [{"workspace_id": "w"}]), "vector"),
])
def test_bad_input_names_the_field_and_keeps_data(store, call, field):
    vs, V = store
    with pytest.raises(ValidationError) as err:
        call(vs, V)
    assert err.value.field == field
    assert vs.count("tasks") == 5


def test_embedded_fast_search_matches_qdrants_own(tmp_path):
    """The embedded store's vectorised search gives Qdrant's own filtered search's hits, after reopening too."""
    rng = np.random.default_rng(1)
    n = 600
    payloads = [{"workspace_id": f"w{i % 3}", "project_id": None if i % 5 == 0 else f"p{i % 4}",
                 "visibility": "restricted" if i % 7 == 0 else "workspace",
                 "allowed_users": [f"u{i % 2}"] if i % 7 == 0 else []} for i in range(n)]
    V = _vectors(n, seed=2)
    vs = VectorStore(path=tmp_path / "q")
    vs.upsert("documents", [f"k{i}" for i in range(n)], V, payloads)
    vs.delete("documents", ["k3", "k6"])
    cases = [dict(workspace_id="w0"), dict(workspace_id="w1", user_id="u1"),
             dict(workspace_id="w2", include_restricted=True), dict(workspace_id="w0", project_ids=["p1", "p2"]),
             dict(workspace_id="w9")]

    def both(store):
        for case in cases:
            q = rng.normal(size=384)
            fast = store.search("documents", q, limit=20, **case)
            slow = store.search("documents", q, limit=20, force_qdrant=True, **case)
            assert [h.key for h in fast] == [h.key for h in slow], case
            assert np.allclose([h.score for h in fast], [h.score for h in slow], atol=1e-4)
            assert "k3" not in {h.key for h in fast}

    both(vs)
    vs.close()
    again = VectorStore(path=tmp_path / "q")
    both(again)
    again.close()
