"""The history LambdaMART fixer recommender on a small synthetic tracker: learns, and stays point-in-time."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.models.assignment.triage import HistoryLambdaMARTAssignee, TriageConfig

TOPICS = {
    "ana": "parser grammar token syntax ast",
    "bo": "render paint layout css pixel",
    "cy": "network socket http proxy dns",
    "di": "crash memory leak pointer heap",
    "ed": "ui button dialog menu toolbar",
    "fa": "build compile linker makefile gradle",
}


def reports(n: int, seed: int = 0):
    """Each developer owns a topic; reports mix topic words with shared noise; the team changes over time."""
    rng = np.random.default_rng(seed)
    devs = list(TOPICS)
    texts, labels = [], []
    common = "the a when after error fails bug please fix issue version".split()
    for i in range(n):
        active = devs[:4] if i < n // 2 else devs[2:]  # ana and bo leave, ed and fa join
        d = active[int(rng.integers(len(active)))]
        words = list(rng.choice(TOPICS[d].split(), 3)) + list(rng.choice(common, 6))
        other = TOPICS[devs[int(rng.integers(len(devs)))]].split()
        words += list(rng.choice(other, 2))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(d)
    return texts, labels


@pytest.fixture(scope="module")
def model_and_test():
    texts, labels = reports(600)
    model = HistoryLambdaMARTAssignee(TriageConfig(lgbm=TriageConfig().lgbm)).fit(texts[:480], labels[:480])
    return model, texts[480:], labels[480:]


def test_learns_owners(model_and_test):
    model, texts, labels = model_and_test
    ranked = model.rank(texts, 3)
    top1 = np.mean([r[0] == y for r, y in zip(ranked, labels)])
    assert top1 > 0.6  # 4 active developers: chance is 0.25
    assert all(len(r) <= 3 and len(set(r)) == len(r) for r in ranked)
    assert model.predict(texts[:2]).shape == (2,)


def test_training_pairs_use_only_earlier_reports():
    """Relabel the last 20 reports: the neighbour and history features of every earlier report stay the same
    (the text score is cross-fitted on purpose, see the module doc, so it may move)."""
    texts, labels = reports(120, seed=1)
    rng = np.random.default_rng(3)
    changed = labels[:100] + list(rng.permutation(labels[100:])[::-1])
    a = HistoryLambdaMARTAssignee(TriageConfig(folds=3)).training_pairs(texts, labels)
    b = HistoryLambdaMARTAssignee(TriageConfig(folds=3)).training_pairs(texts, changed)
    cols = ["knn_score", "history_count", "recent_count", "since_last"]
    both = a.merge(b, on=["task_id", "user_id"], suffixes=("_a", "_b"))
    early = both[both.task_id <= 100]  # report 100's own label is not in its history either
    assert len(early) > 200
    for c in cols:
        np.testing.assert_allclose(early[f"{c}_a"].to_numpy(), early[f"{c}_b"].to_numpy(), equal_nan=True)
    late = both[both.task_id > 101]
    assert any(not np.allclose(late[f"{c}_a"], late[f"{c}_b"], equal_nan=True) for c in cols)  # the check bites


def test_bad_input():
    with pytest.raises(ValueError, match="at least"):
        HistoryLambdaMARTAssignee().fit(["a b"] * 3, ["x"] * 3)
    with pytest.raises(ValueError, match="empty or missing"):
        HistoryLambdaMARTAssignee().fit(["a"] * 20, ["x"] * 19 + [None])
    texts, labels = reports(100)
    model = HistoryLambdaMARTAssignee().fit(texts, labels)
    assert model.rank([]) == []
    with pytest.raises(ValueError, match="k must be"):
        model.rank(["x"], 0)
