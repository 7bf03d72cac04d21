"""``sunday eval qmsum-summary`` on real QMSum files: the scorer check on the published HMNet outputs, and the
extractive method on the two smallest val meetings (a scored table with sane ROUGE, resumable from its cache)."""

from __future__ import annotations

import json

import pytest

from sunday.evaluation.qmsum_summary import (
    ANCHORS, QMSumSummaryEvaluation, parse_methods, rouge, scorer_check, split_sentences,
)
from tests.conftest import linked_subset

MEETINGS = ("TS3010a", "TS3010b")  # the two smallest val meetings


def test_scorer_reproduces_the_measured_check(data_dir):
    folder = data_dir / "qmsum" / "model_output"
    if not (folder / "preds.txt").is_file():
        pytest.skip(f"{folder} not present")
    got = scorer_check(folder)
    assert got["n"] == 279
    for metric, expected in (("r1", 36.09), ("r2", 11.37), ("rLsum", 31.26)):
        assert abs(got[metric] - expected) <= 0.3, (metric, got)


def test_rouge_helpers():
    assert split_sentences("One here. Two there! Three?") == "One here.\nTwo there!\nThree?"
    same = rouge("The group discussed the price.", "The group discussed the price.")
    assert same == {"r1": 100.0, "r2": 100.0, "rLsum": 100.0}
    assert parse_methods("extractive,oracle:hybrid") == ["extractive", "oracle:hybrid"]
    with pytest.raises(ValueError, match="methods"):
        parse_methods(["abstractive"])


@pytest.fixture(scope="module")
def small_dir(data_dir, tmp_path_factory):
    files = ["qmsum/model_output/preds.txt", "qmsum/model_output/refs.txt"]
    files += [f"qmsum/data/ALL/val/{m}.json" for m in MEETINGS]
    return linked_subset(data_dir, tmp_path_factory.mktemp("qmsum"), files)


@pytest.mark.timeout(300)  # MiniLM loads and embeds two meetings (~20 s on 2 free cores)
def test_extractive_on_two_val_meetings(small_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    ev = QMSumSummaryEvaluation()
    result = ev.run(small_dir, methods="extractive,oracle:extractive", progress=False)
    rows = {r["row"]: r for r in result.rows}
    assert {"scorer-check/hmnet-test", "extractive/general", "extractive/specific", "extractive/all",
            "oracle:extractive/specific"} <= set(rows)
    assert "oracle:extractive/general" not in rows  # general queries carry no spans
    assert rows["extractive/general"]["n"] == 2
    for key in ("extractive/all", "oracle:extractive/specific"):
        r = rows[key]
        assert 12 < r["r1"] < 60 and 1 < r["r2"] < 30 and 10 < r["rLsum"] < 55, r
    assert {a.source.split(" ")[0] for a in result.anchors} >= {n.split(" ")[0] for n in ANCHORS}
    state = tmp_path / "state" / "eval" / "qmsum-summary" / "val"
    preds = [json.loads(x) for x in (state / "extractive.preds.jsonl").read_text().splitlines()]
    assert len(preds) == rows["extractive/all"]["n"] and all(p["prediction"] and p["reference"] for p in preds)
    again = ev.run(small_dir, methods=["extractive"], progress=False)  # answered from the cache
    assert {r["row"]: r["r1"] for r in again.rows if r["method"] == "extractive"} == {
        k: v["r1"] for k, v in rows.items() if v["method"] == "extractive"}
