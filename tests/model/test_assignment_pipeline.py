"""Model behaviour, end to end on a small simulated workspace: features -> pairs -> train -> MLflow gate -> serve.

One module-scoped run (simulate 30k events, build the feature platform, train twice) keeps the cost to about a
minute or two; every test reads from it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, ray_session):
    import os

    from sunday.data.pipeline import run_simulation
    from sunday.features.platform import build_platform
    from sunday.models.assignment.train import TrainConfig, train_assignment
    from sunday.settings import Settings

    home = tmp_path_factory.mktemp("assign") / "state"
    old = os.environ.get("SUNDAY_HOME")
    os.environ["SUNDAY_HOME"] = str(home)
    try:
        settings = Settings().ensure_dirs()
        run_simulation(settings, events=30_000, seed=3, engine="local", name="t")
        build_platform(settings, sim_name="t", engine="local", progress=False, accept_drift=True)
        cfg = TrainConfig(sim_name="t", profile="quick", seed=0)
        first = train_assignment(settings, cfg, log=lambda *_: None)
        second = train_assignment(settings, TrainConfig(sim_name="t", profile="quick", seed=0,
                                                        lgbm_overrides={"n_estimators": 5, "num_leaves": 2}),
                                  log=lambda *_: None)
        yield settings, first, second
    finally:
        if old is None:
            os.environ.pop("SUNDAY_HOME", None)
        else:
            os.environ["SUNDAY_HOME"] = old


def test_pairs_are_point_in_time(pipeline):
    settings, first, _ = pipeline
    pairs = first.holdout.pairs
    # one decision per task, candidates = the assignee's team, exactly one assignee each
    assert (first.holdout.pairs.groupby("task_id").size() >= 2).all()
    per_task = pd.Series(first.holdout.assigned).groupby(pairs["task_id"].to_numpy()).sum()
    assert (per_task == 1).all()
    # features are as of before the decision: no candidate has completed work stamped after it
    assert pairs["timestamp"].notna().all()
    assert (pairs["completed_count"].fillna(0) >= 0).all()
    known = np.isfinite(first.holdout.quality)
    assert known.any() and (first.holdout.assigned[known] == 1).all()  # outcomes only for the assignee


def test_model_beats_rules_on_holdout(pipeline):
    _, first, _ = pipeline
    m = first.metrics
    assert m["n_tasks"] >= 50
    assert m["top1"] > m["baseline_least_loaded_top1"] + 0.1
    assert m["mrr"] > 0.5


def test_registry_gate(pipeline):
    from sunday import tracking

    _, first, second = pipeline
    assert first.promotion.promoted and first.version == "1"
    # a 5-stump model is worse on the same holdout: challenger, not champion
    assert second.version == "2" and not second.promotion.promoted
    assert second.promotion.champion_version == "1"
    assert second.promotion.champion_score == pytest.approx(first.metrics["mrr"])
    assert tracking.alias_version("task_assignment", "champion") == "1"
    assert tracking.alias_version("task_assignment", "challenger") == "2"


def test_service_from_registry_ranks_a_team(pipeline):
    from sunday.models.assignment.service import AssignmentService, UnknownUser
    from sunday.models.assignment.ranker import InvalidInput

    settings, first, _ = pipeline
    service = AssignmentService.from_registry(settings, embeddings=False)
    assert service.version == "1"
    rows = first.holdout.pairs[first.holdout.pairs["task_id"] == first.holdout.pairs["task_id"].iloc[0]]
    team = rows["user_id"].tolist()
    answer = service.recommend({"title": "Fix flaky login test", "description": "timeout in CI",
                                "required_skills": ["backend", "qa"], "story_points": 3}, team)
    assert answer["recommended_user"] in team and answer["model_version"] == "1"
    assert [a["user_id"] for a in answer["alternatives"]][0] == answer["recommended_user"]
    assert answer["alternatives"][0]["reasons"]
    with pytest.raises(UnknownUser, match="nobody-here"):
        service.recommend({"title": "x"}, team + ["nobody-here"])
    with pytest.raises(InvalidInput, match="'title' or 'description'"):
        service.recommend({"title": " ", "description": ""}, team)
    with pytest.raises(InvalidInput, match="non-empty"):
        service.recommend({"title": "x"}, [])
    with pytest.raises(InvalidInput, match="priority"):
        service.recommend({"title": "x", "priority": "urgent!"}, team)
