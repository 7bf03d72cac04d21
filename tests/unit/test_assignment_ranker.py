"""Assignment ranker: pair features, Gini, the LambdaMART blend's ranking, reasons, persistence and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sunday.features.groups import skill_vocab
from sunday.models.assignment.gini import gini, gini_after_each
from sunday.models.assignment.metrics import evaluate, ranking_metrics
from sunday.models.assignment.pairs import BLOCKS, FEATURES, group_sizes, pair_features
from sunday.models.assignment.ranker import AssignmentRanker, InvalidInput, RankWeights

VOCAB = skill_vocab()


def team_pairs(n_tasks: int, seed: int = 0, team: int = 8) -> pd.DataFrame:
    """Tasks each given to the candidate with the best skill match, less a load penalty, plus noise."""
    rng = np.random.default_rng(seed)
    rows = []
    users = [(f"u{u}", rng.poisson(2.0, len(VOCAB)).astype(float)) for u in range(team)]
    for t in range(n_tasks):
        req = list(rng.choice(VOCAB, 2, replace=False))
        loads = rng.gamma(2.0, 3.0, team)
        utility = [np.mean([np.log1p(c[VOCAB.index(s)]) for s in req]) - 0.08 * loads[i] + rng.normal(0, 0.15)
                   for i, (_, c) in enumerate(users)]
        best = int(np.argmax(utility))
        for i, (uid, counts) in enumerate(users):
            fit = np.mean([np.log1p(counts[VOCAB.index(s)]) for s in req]) - 0.05 * loads[i]
            rows.append({"task_id": f"t{t:04d}", "user_id": uid, "required_skills": req, "skill_counts": counts,
                         "open_points": loads[i], "open_task_count": int(loads[i] // 3), "story_points": 3.0,
                         "completed_count": int(counts.sum()), "mean_completion_hours": 20.0 + i,
                         "assigned": float(i == best),
                         "completed": float(rng.random() < 1 / (1 + np.exp(-5 * (fit - 0.8)))) if i == best else np.nan,
                         "quality": float(np.clip(2.5 + fit, 0, 5)) if i == best else np.nan})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def fitted():
    df = team_pairs(400)
    train = df[df.task_id < "t0300"].reset_index(drop=True)
    hold = df[df.task_id >= "t0300"].reset_index(drop=True)
    ranker = AssignmentRanker().fit(train, train.assigned, train.completed, train.quality)
    return ranker, hold


# -- pair features -------------------------------------------------------------------------------------------
def test_pair_features_columns_blocks_and_unknowns():
    assert FEATURES == BLOCKS["skill"] + BLOCKS["workload"] + BLOCKS["task"]
    X = pair_features(team_pairs(3))
    assert list(X.columns) == FEATURES and X.dtypes.eq("float64").all()
    assert X["text_score"].isna().all()  # no text model in this source
    assert X["skill_match"].notna().all()
    shares = X["open_points_share"].groupby(team_pairs(3)["task_id"]).sum()
    assert np.allclose(shares, 1.0)


def test_pair_features_same_alone_or_in_a_batch():
    df = team_pairs(5)
    batch = pair_features(df)
    alone = pair_features(df[df.task_id == "t0002"])
    pd.testing.assert_frame_equal(batch[df.task_id == "t0002"], alone)


def test_text_rank_matches_pandas_min_rank():
    df = pd.DataFrame({"task_id": ["a"] * 5 + ["b"] * 3, "user_id": list("uvwxyuvw"),
                       "text_score": [0.3, 0.9, 0.3, np.nan, -1, 2, 2, 1]})
    X = pair_features(df)
    expect = df.groupby("task_id")["text_score"].rank(ascending=False, method="min")
    np.testing.assert_array_equal(X["text_rank"].to_numpy(), expect.to_numpy())


def test_pair_frame_errors():
    with pytest.raises(ValueError, match="task_id"):
        pair_features(pd.DataFrame({"user_id": ["a"]}))
    with pytest.raises(ValueError, match="contiguous"):
        group_sizes(pd.Series(["a", "b", "a"]))
    assert group_sizes(pd.Series(["a", "a", "b"])).tolist() == [2, 1]


# -- Gini ----------------------------------------------------------------------------------------------------
def test_gini_values():
    assert gini(np.zeros(4)) == 0.0
    assert gini(np.ones(5)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 10.0])) == pytest.approx(1.0)  # normalised, as team_balance's
    assert gini(np.array([1.0, 3.0])) == pytest.approx(0.5)
    loads = np.array([1.0, 5.0, 2.0])
    after = gini_after_each(loads, 3.0)
    for i in range(3):
        trial = loads.copy()
        trial[i] += 3
        assert after[i] == pytest.approx(gini(trial))
    assert after.argmin() == 0  # giving it to the least loaded evens things out most


# -- ranker --------------------------------------------------------------------------------------------------
def test_ranker_learns_the_assignment_rule(fitted):
    ranker, hold = fitted
    m = evaluate(ranker, AssignmentDataLike(hold))
    assert m["top1"] > 0.6  # random would be 1/8
    assert m["mrr"] > 0.75
    skill_only = ranking_metrics(hold.task_id.to_numpy(), pair_features(hold)["skill_match"].to_numpy(),
                                 hold.assigned.to_numpy())
    assert m["top1"] > skill_only["top1"]  # it learned the load penalty too
    assert m["completion_auc"] > 0.55


class AssignmentDataLike:
    def __init__(self, df):
        self.pairs = df
        self.assigned = df.assigned.to_numpy()
        self.completed = df.completed.to_numpy()
        self.quality = df.quality.to_numpy()


def _one(hold):
    cand = hold[hold.task_id == "t0350"].drop(columns=["task_id", "required_skills", "story_points", "assigned",
                                                       "completed", "quality"])
    task = {"task_id": "new", "title": "Fix login", "required_skills": ["backend", "security"], "story_points": 5}
    return task, cand


def test_rank_returns_every_candidate_ordered_with_reasons(fitted):
    ranker, hold = fitted
    task, cand = _one(hold)
    recs = ranker.rank(task, cand)
    assert sorted(r.user_id for r in recs) == sorted(cand.user_id)
    finals = [r.final_score for r in recs]
    assert finals == sorted(finals, reverse=True)
    assert sum(r.score for r in recs) == pytest.approx(1.0)
    for r in recs:
        assert 0 <= r.completion_probability <= 1 and 0 <= r.expected_quality <= 5
        assert 0 <= r.gini_after <= 1 and r.estimated_hours > 0
        assert len(r.reasons) <= 3 and all(x["feature"] in FEATURES for x in r.reasons)
    assert all(len(r.reasons) >= 1 for r in recs[:3]) and all(r.reasons == [] for r in recs[3:])
    assert all(r.reasons for r in ranker.rank(task, cand, explain=None))


def test_balance_weight_moves_work_to_the_least_loaded(fitted):
    ranker, hold = fitted
    task, cand = _one(hold)
    only_balance = ranker.rank(task, cand, weights={"score": 0, "completion": 0, "quality": 0, "balance": 1})
    assert only_balance[0].user_id == cand.loc[cand.open_points.idxmin(), "user_id"]
    default = ranker.rank(task, cand)
    assert default[0].gini_after >= only_balance[0].gini_after


def test_rank_bad_input(fitted):
    ranker, hold = fitted
    task, cand = _one(hold)
    with pytest.raises(InvalidInput, match="empty"):
        ranker.rank(task, [])
    with pytest.raises(InvalidInput, match="more than once"):
        ranker.rank(task, pd.concat([cand, cand.iloc[:1]]))
    with pytest.raises(InvalidInput, match="user_id"):
        ranker.rank(task, [{"open_points": 1.0}])
    with pytest.raises(InvalidInput, match="'title' or 'description'"):
        ranker.rank({"task_id": "x", "title": "  "}, cand, require_text=True)
    with pytest.raises(ValueError, match="unknown weight"):
        ranker.rank(task, cand, weights={"speed": 1})
    with pytest.raises(ValueError, match="finite and >= 0"):
        RankWeights.of({"score": -1})


def test_save_load_round_trip(fitted, tmp_path):
    ranker, hold = fitted
    task, cand = _one(hold)
    ranker.save(tmp_path / "m")
    again = AssignmentRanker.load(tmp_path / "m")
    a, b = ranker.rank(task, cand), again.rank(task, cand)
    assert [r.user_id for r in a] == [r.user_id for r in b]
    assert [r.final_score for r in a] == pytest.approx([r.final_score for r in b])
    assert [r.reasons for r in a] == [r.reasons for r in b]


def test_fit_errors():
    df = team_pairs(3)
    with pytest.raises(ValueError, match="assigned has"):
        AssignmentRanker().fit(df, df.assigned[:-1])
    with pytest.raises(ValueError, match="no pairs"):
        AssignmentRanker().fit(df.iloc[:0], [])


def test_rank_many_equals_rank_one_by_one(fitted):
    from sunday.models.assignment.ranker import RankRequest

    ranker, hold = fitted
    reqs = []
    for k, tid in enumerate(["t0350", "t0351", "t0352"]):
        cand = hold[hold.task_id == tid].drop(columns=["task_id", "required_skills", "story_points", "assigned",
                                                       "completed", "quality"])
        task = {"task_id": "new", "title": f"task {k}", "required_skills": ["backend"], "story_points": 2 + k}
        reqs.append(RankRequest(task, cand, {"balance": 0.5} if k == 1 else None))
    together = ranker.rank_many(reqs)
    for req, got in zip(reqs, together):
        alone = ranker.rank(req.task, req.candidates, weights=req.weights)
        assert [r.user_id for r in got] == [r.user_id for r in alone]
        assert [r.final_score for r in got] == pytest.approx([r.final_score for r in alone])
        assert [r.reasons for r in got] == [r.reasons for r in alone]
    assert ranker.rank_many([]) == []
