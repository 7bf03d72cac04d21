"""The fixer-recommendation text baselines on tiny synthetic reports where a keyword decides the assignee."""

from __future__ import annotations

import pytest

from sunday.models.assignment.text_baselines import MostFrequentAssignee, TfidfSvmAssignee

KEYWORDS = {"compiler": "alice", "debugger": "bob", "formatter": "carol", "refactoring": "dave"}


def _data():
    texts, labels = [], []
    fillers = ["crash when opening the view", "wrong result after saving", "slow on large files",
               "null pointer exception in editor", "ui freezes sometimes"]
    for word, who in KEYWORDS.items():
        n = 6 if who == "alice" else 3  # alice is the majority
        for i in range(n):
            texts.append(f"{word} problem: {fillers[i % len(fillers)]}")
            labels.append(who)
    return texts, labels


def test_svm_gets_top1_from_keyword():
    texts, labels = _data()
    model = TfidfSvmAssignee().fit(texts, labels)
    queries = [f"the {w} misbehaves badly" for w in KEYWORDS]
    assert list(model.predict(queries)) == list(KEYWORDS.values())
    ranked = model.rank(queries, k=3)
    assert all(len(r) == 3 and len(set(r)) == 3 for r in ranked)
    assert [r[0] for r in ranked] == list(KEYWORDS.values())
    assert len(model.rank(queries, k=10)[0]) == 4  # k beyond the classes: every class, once


def test_most_frequent_returns_majority():
    texts, labels = _data()
    model = MostFrequentAssignee().fit(texts, labels)
    assert list(model.predict(["anything at all", "debugger"])) == ["alice", "alice"]
    assert model.rank(["x"], k=2) == [["alice", "bob"]]  # ties (3 each) broken by name


def test_binary_and_single_class():
    svm = TfidfSvmAssignee().fit(["compiler bug", "compiler crash", "debugger bug", "debugger hang"],
                                 ["alice", "alice", "bob", "bob"])
    assert svm.rank(["debugger again"], k=5) == [["bob", "alice"]]
    one = TfidfSvmAssignee().fit(["a report", "another report"], ["alice", "alice"])
    assert one.rank(["anything"], k=3) == [["alice"]]


@pytest.mark.parametrize("cls", [MostFrequentAssignee, TfidfSvmAssignee])
def test_empty_input_raises(cls):
    with pytest.raises(ValueError, match="empty"):
        cls().fit([], [])
    with pytest.raises(ValueError, match="length"):
        cls().fit(["a text"], ["alice", "bob"])
    with pytest.raises(ValueError, match="empty or missing"):
        cls().fit(["a text", "b text"], ["alice", None])
    model = cls().fit(["compiler bug", "debugger bug"], ["alice", "bob"])
    with pytest.raises(ValueError, match="k must"):
        model.rank(["x"], k=0)
