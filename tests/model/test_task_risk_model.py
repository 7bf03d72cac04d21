"""At-risk tasks: the delay-risk model on a small simulation, time-ordered split, vs the days-to-due rule.

Measured on this simulation (80k events, seed 1, default DelayRiskConfig; 2 570 training / 1 120 test rows):
model AUC 0.893 vs days-to-due 0.733 (project late share 0.592), delayed F 0.464 vs 0.173, delayed-vs-not F
0.779 vs 0.645. The asserts keep a margin below those figures; the label-permutation control must fall to chance.
"""

from __future__ import annotations

import numpy as np
import pytest

from sunday.models.timeline.task_risk import TaskDelayRisk, evaluate_task_risk, task_snapshots


@pytest.fixture(scope="module")
def sim():
    from sunday.data.simulator import SimConfig, simulate_tables

    return simulate_tables(SimConfig(n_events=80_000, seed=1))


@pytest.fixture(scope="module")
def snaps(sim):
    return task_snapshots(sim)


@pytest.fixture(scope="module")
def result(sim, snaps):
    return evaluate_task_risk(sim, snapshots=snaps)


def test_model_beats_chance_and_days_to_due(result):
    rows = {r["row"]: r for r in result["rows"]}
    model, dd, share = rows["lgbm+rf"], rows["days-to-due<k"], rows["project-late-share"]
    assert result["n_train_rows"] > 1500 and result["n_test_rows"] > 700
    assert 0.3 < result["test_delayed_share"] < 0.7
    assert model["auc"] > 0.80, model
    assert model["auc"] > dd["auc"] + 0.08, (model["auc"], dd["auc"])
    assert model["auc"] > share["auc"] + 0.08, (model["auc"], share["auc"])
    assert model["f"] > dd["f"] + 0.1, (model["f"], dd["f"])
    assert model["f_any"] >= dd["f_any"], (model["f_any"], dd["f_any"])
    assert model["mmae"] < 1.0


def test_permuted_labels_fall_to_chance(result, snaps):
    """The same pipeline trained on shuffled labels must score ~0.5: the AUC above comes from the features, not
    from the split or the label construction."""
    from sunday.models.delay.risk import DelayRiskConfig, delayed_auc

    split = result["split_at"]
    rng = np.random.default_rng(0)
    shuffled = snaps.copy()
    shuffled["delay_days"] = rng.permutation(shuffled["delay_days"].to_numpy())
    shuffled["completed_at"] = snaps["as_of"].min()  # every row usable for training
    m = TaskDelayRisk(DelayRiskConfig(n_estimators=60, rf_trees=60, tune_threshold=False)).fit_snapshots(
        shuffled, until=split)
    test = snaps[(snaps["as_of"] >= split) & snaps["delay_days"].notna()]
    auc = delayed_auc(result["model"].classes_for(test), m.p_delayed(test))
    assert abs(auc - 0.5) < 0.08, auc
