"""``sunday eval qmsum-search`` on two real val meetings, with a reranker trained here on two train meetings for a
few steps (option ``reranker="train"``): the table's rows, metric ranges, anchors and notes."""

from __future__ import annotations

import pytest

from tests.conftest import linked_subset

VAL = ["TS3010a", "TS3010b"]  # the two smallest val meetings
TRAIN = ["ES2005a", "IS1004a"]


@pytest.mark.timeout(300)
def test_qmsum_search_on_a_subset(data_dir, tmp_path, monkeypatch):
    import sunday.evaluation.qmsum_search  # noqa: F401 - registers the evaluation
    from sunday.evaluation import run_evaluation

    files = [f"qmsum/data/ALL/val/{m}.json" for m in VAL] + [f"qmsum/data/ALL/train/{m}.json" for m in TRAIN]
    subset = linked_subset(data_dir, tmp_path / "data", files)
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    options = {"reranker": "train", "depth": 8, "max_queries": 6, "progress": False,
               "methods": ["bm25", "dense", "hybrid", "dense+rerank"],
               "train": {"max_pairs": 12, "max_length": 96, "freeze_layers": 5, "negatives": 2,
                         "batch_size": 12}}
    result, path = run_evaluation("qmsum-search", subset, tmp_path / "eval", **options)
    assert path.is_file()
    by = {r["row"]: r for r in result.rows}
    for method in ("bm25", "dense", "hybrid", "dense+rerank"):
        row = by[f"all/{method}"]
        assert row["n"] == 6
        for k in ("R@5", "R@10", "MRR"):
            assert 0 <= row[k] <= 1
        assert row["R@5"] <= row["R@10"]
    assert "product/dense" in by and not any(r.startswith("academic/") for r in by)
    assert result.anchors[0].row == "all/dense+rerank" and result.anchors[0].metric == "R@10"
    assert result.anchors[0].value == pytest.approx(by["all/bm25"]["R@10"] + 0.10, abs=1e-3)
    assert any(n.startswith("target:") for n in result.notes)
    assert any("trained here" in n for n in result.notes)
    assert result.meta["n_queries"] == 6

    with pytest.raises(ValueError, match="unknown option"):
        run_evaluation("qmsum-search", subset, tmp_path / "eval", rerankr="none")
    with pytest.raises(ValueError, match="option reranker"):
        run_evaluation("qmsum-search", subset, tmp_path / "eval", reranker="no/such/folder", progress=False)
