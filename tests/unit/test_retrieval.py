"""Retrieval pieces on tiny hand-made meetings: tokenizer, BM25, dense over the vector store (a fake embedder),
fusion, metrics, query cases and the reranker's training groups. No model is loaded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sunday.nlp.passages import Meeting, Query, Turn, turn_passages
from sunday.nlp.retrieval import (
    BM25Retriever, DenseRetriever, HybridRetriever, MeetingDenseRetriever, evaluate_cases, hit_at_k, mean_metrics,
    mrr, passage_ids, query_cases, recall_at_k, rrf_fuse, tokenize,
)

TOPICS = [
    ("Alice", "the remote control needs a bigger battery and rubber buttons"),
    ("Bob", "we should budget twelve euros for the production cost"),
    ("Carol", "marketing says users want a fancy look and feel, fruit colours"),
    ("Alice", "the battery could be a kinetic one, charged by shaking"),
    ("Bob", "the evaluation meeting is next week, everyone prepares slides"),
    ("Carol", "voice recognition was too expensive so we dropped it"),
]


def _meeting(mid: str = "M1", queries: list[Query] | None = None) -> Meeting:
    turns = [Turn(s, t + " {vocalsound} " + " ".join(["filler"] * 8)) for s, t in TOPICS]
    return Meeting(mid, "train", "product", turns, queries or [])


class FakeEmbedder:
    """Bag-of-words hashed into 384 dims, normalised: texts sharing words are close."""

    def embed(self, texts):
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in tokenize(t):
                out[i, hash(w) % 384] += 1.0
            out[i] /= max(np.linalg.norm(out[i]), 1e-6)
            if not out[i].any():
                out[i, 0] = 1.0
        return out


def test_tokenizer_lowercases_drops_stopwords_and_stems():
    assert tokenize("The Batteries were CHARGING, um, quickly!") == ["battery", "charg", "quick"]
    assert tokenize("don't 12 euros") == ["dont", "12", "euro"]
    assert tokenize("") == []
    assert "discuss" in tokenize("discussed") and tokenize("bus") == ["bus"]


def test_bm25_ranks_the_matching_passage_first():
    passages = turn_passages("M1", _meeting().turns, max_words=20)
    assert len(passages) == 6  # one turn each (16 words per turn)
    bm25 = BM25Retriever(passages)
    top = bm25.retrieve("what about the battery?", k=3)
    assert [p.start_turn for p, _ in top[:2]] == [0, 3] or [p.start_turn for p, _ in top[:2]] == [3, 0]
    assert top[0][1] >= top[1][1] >= top[2][1]
    assert len(bm25.retrieve("battery", k=100)) == 6
    with pytest.raises(ValueError, match="k must be"):
        bm25.retrieve("battery", k=0)
    with pytest.raises(ValueError, match="passages"):
        BM25Retriever([])


def test_metrics():
    ranked = ["a", "b", "c", "d", "e"]
    assert recall_at_k(ranked, {"b", "e", "z"}, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"b", "e"}, 5) == 1.0
    assert mrr(ranked, {"c", "e"}) == pytest.approx(1 / 3)
    assert mrr(ranked, {"z"}) == 0.0
    assert hit_at_k(ranked, {"d"}, 3) == 0.0 and hit_at_k(ranked, {"d"}, 4) == 1.0
    assert math.isnan(recall_at_k(ranked, set(), 5)) and math.isnan(mrr(ranked, set()))
    m = mean_metrics([{"R@5": 1.0, "R@10": 1.0, "MRR": 0.5}, {"R@5": 0.0, "R@10": float("nan"), "MRR": 1.0}])
    assert m == {"R@5": 0.5, "R@10": 1.0, "MRR": 0.75, "n": 2}


def test_dense_retriever_filters_by_meeting_and_rebuilds_passages():
    a = turn_passages("A", _meeting("A").turns, max_words=20)
    b = turn_passages("B", _meeting("B").turns, max_words=20)
    dense = DenseRetriever(FakeEmbedder(), workspace_id="ws1")
    assert dense.index(a + b) == 12
    hits = dense.retrieve("kinetic battery charged by shaking", k=3, doc_ids=["B"])
    assert all(p.doc_id == "B" for p, _ in hits)
    assert hits[0][0] == b[3]  # the whole Passage round-trips through the payload
    assert len(dense.retrieve("battery", k=50)) == 12  # no doc filter: the workspace
    other = DenseRetriever(FakeEmbedder(), store=dense.store, workspace_id="ws2")
    assert other.retrieve("battery", k=5) == []  # another workspace sees nothing
    per = MeetingDenseRetriever(dense, "A")
    hybrid = HybridRetriever([BM25Retriever(a), per], depth=6)
    top = hybrid.retrieve("kinetic battery", k=2)
    assert top[0][0] == a[3] and len(top) == 2


def test_rrf_fuse_prefers_passages_ranked_high_by_both():
    ps = turn_passages("M1", _meeting().turns, max_words=20)
    one = [(ps[0], 3.0), (ps[1], 2.0), (ps[2], 1.0)]
    two = [(ps[1], 0.9), (ps[2], 0.8), (ps[0], 0.1)]
    fused = rrf_fuse([one, two], k=3)
    assert passage_ids(fused)[0] == ps[1].passage_id and len(fused) == 3


def _queries() -> list[Query]:
    return [Query("M1:specific:0", "specific", "What about the battery?", "kinetic", ((0, 0), (3, 3))),
            Query("M1:specific:1", "specific", "What did they decide on voice recognition?", "dropped", ((5, 5),)),
            Query("M1:general:0", "general", "Summarize the meeting.", "...", ()),
            Query("M1:specific:2", "specific", "No span", "", ())]


def test_query_cases_and_evaluate_cases():
    meeting = _meeting(queries=_queries())
    cases = query_cases([meeting], max_words=20)
    assert [c.query_id for c in cases] == ["M1:specific:0", "M1:specific:1"]
    assert cases[0].relevant == {"M1:0", "M1:3"}

    class Oracle:  # a "reranker" that knows the battery passages
        def score(self, query, texts):
            return np.array([1.0 if "battery" in t else 0.0 for t in texts])

    rows = evaluate_cases(cases, FakeEmbedder(), Oracle(), methods=["bm25", "dense", "hybrid", "dense+rerank"],
                          depth=6)
    assert len(rows) == 8 and {r["method"] for r in rows} == {"bm25", "dense", "hybrid", "dense+rerank"}
    rr = [r for r in rows if r["method"] == "dense+rerank" and r["query_id"] == "M1:specific:0"][0]
    assert rr["R@5"] == 1.0 and rr["MRR"] == 1.0
    corpus = evaluate_cases(cases + query_cases([_meeting("M2", _queries())], 20), FakeEmbedder(),
                            methods=["bm25", "dense"], scope="corpus")
    assert all(0 <= r["R@10"] <= 1 for r in corpus)
    with pytest.raises(ValueError, match="need a reranker"):
        evaluate_cases(cases, FakeEmbedder(), None, methods=["dense+rerank"])


def test_build_groups_positive_first_and_negatives_outside_the_spans():
    from sunday.nlp.reranker import RerankerConfig, build_groups, holdout_split

    meeting = _meeting(queries=_queries())
    cfg = RerankerConfig(max_words=20, negatives=2, random_negatives=1, margin=0, dense_negatives=False)
    groups = build_groups([meeting], cfg)
    assert len(groups) == 2
    passages = turn_passages("M1", meeting.turns, max_words=20)
    text_turn = {p.text: p.start_turn for p in passages}
    battery = groups[0]
    assert battery.labels == (1.0, 0.0, 0.0)
    assert text_turn[battery.texts[0]] in (0, 3)
    assert all(text_turn[t] not in (0, 3) for t in battery.texts[1:])
    assert len(set(battery.texts)) == 3
    with_margin = build_groups([meeting], RerankerConfig(max_words=20, negatives=2, margin=1, dense_negatives=False))
    assert all(text_turn[t] not in (0, 1, 2, 3, 4) for t in with_margin[0].texts[1:])
    assert sum(len(g.texts) for g in build_groups([meeting], RerankerConfig(
        max_words=20, negatives=2, max_pairs=3, dense_negatives=False))) == 3
    with pytest.raises(ValueError, match="embedder"):
        build_groups([meeting], RerankerConfig(max_words=20, dense_negatives=True))
    ms = [_meeting(f"M{i}") for i in range(10)]
    train, held = holdout_split(ms, 0.2, seed=0)
    assert len(held) == 2 and not {m.meeting_id for m in train} & {m.meeting_id for m in held}
    assert [m.meeting_id for m in holdout_split(ms, 0.2, seed=0)[1]] == [m.meeting_id for m in held]


def test_reranker_config_checks_name_the_setting():
    from sunday.nlp.reranker import RerankerConfig

    with pytest.raises(ValueError, match="'negatives'"):
        RerankerConfig(negatives=0)
    with pytest.raises(ValueError, match="'loss'"):
        RerankerConfig(loss="hinge")
    with pytest.raises(ValueError, match=r"unknown reranker setting\(s\) \['epoch'\]"):
        RerankerConfig.from_dict({"epoch": 2})
    with pytest.raises(ValueError, match="'epochs' must be int"):
        RerankerConfig.from_dict({"epochs": "two"})
    assert RerankerConfig.from_dict({"epochs": "2", "dense_negatives": "true", "lr": 1e-4}).epochs == 2
