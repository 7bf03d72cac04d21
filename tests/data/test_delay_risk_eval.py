"""``sunday eval delay-risk`` on the real JBoss issues only (the smallest of the six projects, 3,526 issues)."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.data.importers.delayed_issues import project_files, read_snapshots
from sunday.evaluation.delay_risk import (PAPER_RF, PAPER_SOURCE, PAPER_SPLIT, TIME_SPLIT, DelayRiskEvaluation,
                                          labels, paper_split, time_split)
from sunday.models.delay.risk import LEAKY_COLUMNS, TIMES, build_features
from tests.conftest import linked_subset

PROJECT = "jboss"
RUN_TIMES = ("creation", "discussion")


@pytest.fixture(scope="module")
def jboss_dir(data_dir, tmp_path_factory):
    files = [f"delayed_issues/{PROJECT}_{t}.csv" for t in TIMES]
    return linked_subset(data_dir, tmp_path_factory.mktemp("delay"), files)


@pytest.fixture(scope="module")
def result(jboss_dir):
    # two of the three prediction times (one per worker) to stay well under a minute; the full run has all three
    return DelayRiskEvaluation().run(jboss_dir, workers=2, progress=False, times=list(RUN_TIMES))


@pytest.fixture(scope="module")
def frames(jboss_dir):
    files = project_files(jboss_dir / "delayed_issues")[PROJECT]
    return {t: read_snapshots(files[t], PROJECT, t) for t in TIMES}


def _row(result, key):
    rows = [r for r in result.rows if r["row"] == key]
    assert len(rows) == 1, key
    return rows[0]


def test_rows_per_time_and_split(result):
    assert result.key == "row"
    assert {r["time"] for r in result.rows} == set(RUN_TIMES)
    for t in RUN_TIMES:
        paper, timed = _row(result, f"{PROJECT}/{t}"), _row(result, f"{PROJECT}/{t} [{TIME_SPLIT}]")
        assert paper["split"] == PAPER_SPLIT and timed["split"] == TIME_SPLIT
        for r in (paper, timed):
            assert r["n_train"] + r["n_test"] == 3526 and r["n_test"] == 706
            for m in ("precision", "recall", "f", "auc", "auc_macro", "auc_due_set"):
                assert 0.0 <= r[m] <= 1.0, (r["row"], m)
            assert 0.0 <= r["mmae"] <= 3.0
            assert 0.05 <= r["threshold"] <= 0.95
        _row(result, f"mean/{t}")
    anchored = {(a.row, a.metric) for a in result.anchors if a.source == PAPER_SOURCE}
    assert anchored == {(f"{PROJECT}/discussion", m) for m in ("precision", "recall", "f", "auc")}
    assert result.meta["projects"][PROJECT]["class_counts"] == [1626, 637, 619, 644]


def test_quality_on_the_paper_split(result):
    """Measured (LightGBM + RF, strict features): discussion F 0.59, AUC 0.93; creation AUC 0.77."""
    disc, cre = _row(result, f"{PROJECT}/discussion"), _row(result, f"{PROJECT}/creation")
    assert disc["auc"] >= 0.88 and disc["f"] >= 0.50
    assert cre["auc"] > 0.70  # the issue's creation-time target
    assert disc["f"] > cre["f"] and disc["mmae"] < cre["mmae"]  # more known at the end of discussion
    assert disc["f"] < PAPER_RF[PROJECT][2]  # honest: below the paper's 0.77 on JBoss
    assert any(n.startswith("target F (end of discussion") for n in result.notes)
    assert any(n.startswith("target creation-time AUC") for n in result.notes)


def test_splits(frames):
    issues, (q33, q66) = labels(frames)
    assert (q33, q66) == (11.0, 64.0)
    tr, te = time_split(issues)
    assert len(tr) == 2820 and len(te) == 706
    assert issues.loc[tr, "openeddate"].max() <= issues.loc[te, "openeddate"].min()
    ptr, pte = paper_split(issues)
    assert len(set(ptr) & set(pte)) == 0 and len(ptr) + len(pte) == len(issues)
    share = lambda keys: np.bincount(issues.loc[keys, "y"], minlength=4) / len(keys)  # noqa: E731
    assert np.allclose(share(ptr), share(pte), atol=0.01)  # stratified


def test_features_known_at_prediction_time(frames):
    X = build_features(frames, "creation")
    assert not set(LEAKY_COLUMNS) & set(X.columns)
    due = frames["due"].set_index("issuekey").reindex(X.index)
    later = due["ProgressTime"].to_numpy() > 0
    assert 0.2 < later.mean() < 0.4  # JBoss: 71% of the due dates are set at creation
    assert X.loc[later, "RemainingDay"].isna().all()
    assert (X.loc[~later, "RemainingDay"] >= 0).all()
