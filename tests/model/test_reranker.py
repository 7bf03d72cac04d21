"""The reranker on real QMSum train pairs: a short fine-tune ranks positives above negatives more often than the
untrained start; save/load round trip; the training job registers a challenger in a temporary MLflow store.

Kept small for 2 CPU cores: the smallest train meetings, short pairs (``max_length`` 96), the lower encoder
layers frozen, a few dozen pairs.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import linked_subset

SMALL_TRAIN = ["ES2005a", "IS1004a", "ES2013a"]  # three of the smallest train meetings


def _meetings(data_dir, ids):
    from sunday.nlp.passages import load_qmsum

    return [m for m in load_qmsum(data_dir / "qmsum", "train") if m.meeting_id in ids]


def _pairwise_accuracy(reranker, groups) -> float:
    """Share of (positive, negative) pairs of a group where the positive scores higher."""
    wins = []
    for g in groups:
        s = reranker.score(g.query, list(g.texts))
        wins += [float(s[0] > x) for x in s[1:]]
    return float(np.mean(wins))


@pytest.mark.timeout(240)
def test_short_finetune_separates_relevant_passages_and_round_trips(data_dir, tmp_path):
    from sunday.nlp.reranker import CrossEncoderReranker, RerankerConfig, build_groups

    meetings = _meetings(data_dir, SMALL_TRAIN)
    if len(meetings) < 2:
        pytest.skip("QMSum train meetings missing")
    cfg = RerankerConfig(max_length=96, negatives=3, random_negatives=3, margin=2, dense_negatives=False,
                         max_pairs=48, epochs=3, batch_size=16, lr=1e-4, warmup=0.0, freeze_layers=4, seed=0)
    groups = build_groups(meetings, cfg)  # random negatives: far from the spans, an easy, learnable signal
    assert groups and all(g.labels[0] == 1.0 and sum(g.labels) == 1.0 for g in groups)
    model = CrossEncoderReranker.new(cfg)
    before = _pairwise_accuracy(model, groups)
    history = model.fit(groups)
    after = _pairwise_accuracy(model, groups)
    losses = [r["loss"] for r in history if "loss" in r]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert after >= max(before + 0.1, 0.65), (before, after)

    top = model.rerank(groups[0].query, list(groups[0].texts), top_k=2)
    assert len(top) == 2 and top[0][1] >= top[1][1]
    path = model.save(tmp_path / "reranker")
    again = CrossEncoderReranker.load(path)
    assert again.config == cfg and again.info["trained_pairs"] == model.info["trained_pairs"]
    pairs = [(groups[0].query, t) for t in groups[0].texts]
    np.testing.assert_allclose(again.score_pairs(pairs), model.score_pairs(pairs), rtol=1e-4, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="no saved reranker"):
        CrossEncoderReranker.load(tmp_path)


@pytest.mark.timeout(300)
def test_train_job_registers_a_challenger(data_dir, tmp_path, monkeypatch):
    from sunday import tracking
    from sunday.nlp.errors import ModelMissing
    from sunday.nlp.reranker import MODEL_NAME, RerankerConfig, load_reranker
    from sunday.nlp.reranker_mlflow import RerankerJobConfig, train_and_register
    from sunday.settings import Settings

    subset = linked_subset(data_dir, tmp_path / "data",
                           [f"qmsum/data/ALL/train/{m}.json" for m in SMALL_TRAIN])
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("SUNDAY_DATA_DIR", str(subset))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = Settings().ensure_dirs()
    with pytest.raises(ModelMissing, match="run python train_jobs/reranker.py"):
        load_reranker(settings)
    cfg = RerankerConfig(max_length=96, negatives=2, max_pairs=12, batch_size=12, freeze_layers=5,
                         dense_negatives=False)
    job = RerankerJobConfig(holdout=0.34, holdout_depth=4, holdout_queries=3, score_before=False, model=cfg)
    result = train_and_register(settings, job, log=lambda *_: None, progress=False)
    assert result.version == "1" and result.n_holdout_meetings == 1
    for key in ("dense_R@10", "rerank_R@10", "rerank_MRR"):
        assert 0 <= result.metrics[key] <= 1, key
    assert tracking.alias_version(MODEL_NAME, "challenger") == "1"
    from mlflow import MlflowClient

    assert len(MlflowClient().get_metric_history(result.run_id, "train_loss")) >= 1
    loaded = load_reranker(settings, "challenger")
    assert loaded.info["registered_version"] == "1" and loaded.config.max_length == 96
    # the gate: champion only when the reranker beats the dense order alone on the held-out queries
    beats_dense = result.metrics["rerank_MRR"] > result.metrics["dense_MRR"]
    assert result.promotion.promoted == beats_dense
    assert (tracking.alias_version(MODEL_NAME, "champion") == "1") == beats_dense
    if not beats_dense:
        assert "dense order" in result.promotion.reason
        with pytest.raises(ModelMissing):
            load_reranker(settings, "champion")
