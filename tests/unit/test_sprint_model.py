"""Sprint delivery model on synthetic sprints: features (time order, no look-back leaks), split, metric, estimator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sunday.models.effort.sprints import (
    CANDIDATES, ConstantBaseline, SprintDeliveryRegressor, SprintModelConfig, canonical_priority, canonical_type,
    feature_columns, normalised_mae, sprint_features, time_split,
)
from sunday.schema.planning_tables import ISSUE_COUNTS, ITERATION_COUNTS, ITERATION_VELOCITIES

BOARDS = (7, 3, 5)


def synthetic(n_rounds: int = 70, t: int = 30, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sprints of 3 boards; each delivers at most its capacity (4 points per team member + a board offset), so
    ``vel_diff = -max(0, committed - capacity)`` + noise: nonlinear, learnable, and beyond a constant's reach.
    Rows come shuffled; every 10th round one sprint is shown on two boards (same sprint id, as in JIRA)."""
    rng = np.random.default_rng(seed)
    snaps, issues, sid = [], [], 100
    for r in range(n_rounds):
        for j, b in enumerate(BOARDS):
            if not (r % 10 == 0 and j == 2):  # the shared sprint: board 5 shows board 3's sprint id
                sid += 1
            team = int(rng.integers(1, 8))
            start, added = int(rng.integers(0, 40)), int(rng.integers(0, 8))
            removed = int(rng.integers(0, min(5, start + added) + 1))
            committed = start + added - removed
            capacity = 4 * team + 3 * j
            delivered = min(committed, capacity) + int(rng.integers(-1, 2))
            done = min(delivered, int(committed * t / 100))
            row = {c: 0 for c in (*ITERATION_COUNTS, *ITERATION_VELOCITIES)}
            row.update(boardid=b, sprintid=sid, pct_elapsed=t, planday=14, no_teammember=team, no_admin=1,
                       vel_starttime=start, vel_added=added, vel_removed=removed, vel_done=done,
                       vel_todo=committed - done, no_issue_starttime=start // 3, no_issuetodo=start // 3,
                       vel_diff=float(delivered - committed))
            row["sprint_id"] = f"syn:{b}:{sid}"
            row["project_id"] = f"syn:{b}"
            snaps.append(row)
            for k in range(2 + (sid % 3)):
                issue = {c: int(rng.integers(0, 3)) for c in ISSUE_COUNTS}
                issue.update(boardid=b, sprintid=sid, pct_elapsed=t, type=("Bug", "Story", "Sub-task")[k % 3],
                             priority=("Major - P3", "Blocker", "Minor")[k % 3], gunning_fog="medium")
                issues.append(issue)
    snaps_df = pd.DataFrame(snaps).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return snaps_df, pd.DataFrame(issues)


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def frame(data):
    return sprint_features(*data)


def test_features_in_time_order_with_derived_columns(frame, data):
    snaps, _ = data
    assert len(frame) == len(snaps)
    assert list(frame["sprintid"]) == sorted(frame["sprintid"])  # rows were shuffled; output is time-ordered
    committed = frame["vel_starttime"] + frame["vel_added"] - frame["vel_removed"]
    assert np.allclose(frame["committed"], committed)
    assert np.allclose(frame["delivered"], frame["vel_diff"] + committed)
    cols = feature_columns(frame)
    assert "vel_diff" not in cols and "delivered" not in cols and "sprintid" not in cols
    assert {"h_delivered_3", "p_diff_med10", "i_n", "i_type_bug", "i_priority_blocker"} <= set(cols)


def test_issue_aggregates_count_the_sprints_rows(frame, data):
    _, issues = data
    one = frame.iloc[10]
    mine = issues[(issues["boardid"] == one["boardid"]) & (issues["sprintid"] == one["sprintid"])]
    assert one["i_n"] == len(mine)
    assert one["i_type_bug"] == (mine["type"] == "Bug").sum()
    assert one["i_type_feature"] == (mine["type"] == "Story").sum()
    assert one["i_type_subtask"] == (mine["type"] == "Sub-task").sum()
    assert one["i_priority_major"] == (mine["priority"] == "Major - P3").sum()
    assert one["i_sum_no_comment"] == mine["no_comment"].sum()
    assert one["i_fog_medium"] == len(mine)


def test_history_only_looks_back(data):
    """Changing the outcome of later sprints must not change any feature of earlier sprints."""
    snaps, issues = data
    base = sprint_features(snaps, issues)
    cut = time_split(base)
    late = snaps["sprintid"] >= base["sprintid"].iloc[cut]
    altered = snaps.copy()
    altered.loc[late, "vel_diff"] = altered.loc[late, "vel_diff"] + 50.0
    after = sprint_features(altered, issues)
    cols = feature_columns(base)
    pd.testing.assert_frame_equal(base[cols].iloc[:cut], after[cols].iloc[:cut])
    assert not base[cols].iloc[cut + 5:].equals(after[cols].iloc[cut + 5:])  # later rows do see earlier outcomes
    first = base.groupby("boardid").head(1)
    assert first["h_delivered_1"].isna().all() and (first["h_n"] == 0).all()


def test_features_refuse_mixed_times(data):
    snaps, issues = data
    with pytest.raises(ValueError, match="one prediction time"):
        sprint_features(pd.concat([snaps, snaps.assign(pct_elapsed=80)]), issues)
    with pytest.raises(ValueError, match="issue rows"):
        sprint_features(snaps, issues.assign(pct_elapsed=80))


def test_time_split_keeps_a_shared_sprint_together():
    frame = pd.DataFrame({"sprintid": [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]})
    assert time_split(frame, 0.8) == 10  # rows 8-10 are one sprint: all train, none test
    frame = pd.DataFrame({"sprintid": [1, 2, 3, 4, 5, 6, 7, 7, 8, 9]})
    cut = time_split(frame, 0.7)  # row 7 is sprint 7 like row 6: the cut moves past it
    assert cut == 8 and frame["sprintid"].iloc[cut - 1] < frame["sprintid"].iloc[cut]
    with pytest.raises(ValueError):
        time_split(frame, 1.0)


def test_canonical_names():
    assert [canonical_type(t) for t in ("Bug", "Sub-task", "Dev. Sub-task", "Feature Request", "Story",
                                        "Improvement", "Technical task", "Epic", "Umbrella", None)] == [
        "bug", "subtask", "subtask", "feature", "feature", "feature", "task", "epic", "other", "other"]
    assert [canonical_priority(p) for p in ("Major - P3", "Blocker - P1", "Trivial", "Optional", None)] == [
        "major", "blocker", "trivial", "other", "other"]


def test_normalised_mae():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # IQR = 3 - 1 = 2
    assert normalised_mae(y, y + 1.0) == pytest.approx(0.5)
    assert normalised_mae(y, y, scale=np.array([0.0, 0.0, 10.0, 20.0, 20.0])) == 0.0
    assert np.isnan(normalised_mae(np.zeros(5), np.ones(5)))  # IQR 0: no figure


def test_model_beats_the_baselines_and_picks_on_validation(frame):
    cut = time_split(frame)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    model = SprintDeliveryRegressor().fit(train, train["vel_diff"], groups=train["sprintid"])
    assert model.chosen_ in ("blend-lgbm", "blend-all")
    assert set(model.validation_scores_) == set(CANDIDATES)  # every member is fitted, so all are scored
    pred = model.predict(test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()
    y = test["vel_diff"].to_numpy()
    median = ConstantBaseline("median").fit(None, train["vel_diff"]).predict(test)
    mean = ConstantBaseline("mean").fit(None, train["vel_diff"]).predict(test)
    ours = np.abs(pred - y).mean()
    assert ours < 0.6 * min(np.abs(median - y).mean(), np.abs(mean - y).mean())
    members = model.predict_members(test)
    assert np.allclose(np.mean(list(members.values()), axis=0), pred)


def test_delivered_target_extrapolates_the_committed_term():
    """Delivered velocity is flat (10) while commitments in test exceed all training ones: the delivered-target
    model keeps vel_diff = 10 - committed; trees on vel_diff itself cannot go below their training range."""
    rng = np.random.default_rng(1)
    n = 200
    committed = np.concatenate([rng.uniform(10, 30, 150), rng.uniform(60, 80, 50)])
    X = pd.DataFrame({"committed": committed, "vel_starttime": committed, "noise": rng.normal(size=n)})
    y = 10.0 - committed
    cfg = dict(n_estimators=100, min_child_samples=5)
    feats = ["committed", "vel_starttime", "noise"]
    delivered = SprintDeliveryRegressor(SprintModelConfig(select="lgbm-delivered", **cfg), features=feats)
    direct = SprintDeliveryRegressor(SprintModelConfig(select="lgbm-diff", **cfg), features=feats)
    err_delivered = np.abs(delivered.fit(X[:150], y[:150]).predict(X[150:]) - y[150:]).mean()
    err_direct = np.abs(direct.fit(X[:150], y[:150]).predict(X[150:]) - y[150:]).mean()
    assert err_delivered < 1.0 < 30.0 < err_direct


def test_config_and_input_checks(frame):
    with pytest.raises(ValueError, match="unknown candidate"):
        SprintModelConfig(candidates=("forest",))
    with pytest.raises(ValueError, match="select"):
        SprintModelConfig(select="best")
    with pytest.raises(ValueError, match="objective"):
        SprintModelConfig(objective="l2")
    with pytest.raises(RuntimeError, match="not fitted"):
        SprintDeliveryRegressor().predict(frame)
    with pytest.raises(ValueError, match="committed"):
        SprintDeliveryRegressor().fit(frame.drop(columns=["committed"]), frame["vel_diff"])
    with pytest.raises(ValueError, match="at least 10"):
        SprintDeliveryRegressor().fit(frame.iloc[:5], frame["vel_diff"].iloc[:5])
    huber = SprintModelConfig(objective="huber", huber_delta=3.0).lgbm_params()
    assert huber["objective"] == "huber" and huber["alpha"] == 3.0
