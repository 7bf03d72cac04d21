"""The personalization service's bandit path without models: decisions, feedback, idempotence, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.errors import SundayError
from sunday.models.personalization.bandit_store import BanditStore
from sunday.models.personalization.context import CONTEXT_FEATURES, context_vector, user_contexts
from sunday.models.personalization.decisions import DecisionLog
from sunday.models.personalization.service import PersonalizationService, Unavailable
from sunday.serving.errors import NotFound


class _Features:
    """A fixed online-feature answer (the same columnar shape as OnlineFeatures.get_columns)."""

    def __init__(self, rows: dict[str, dict]):
        self.rows = rows

    def get_columns(self, group, rows):
        assert group == "user_workload"
        names = ("open_task_count", "open_points", "hours_logged_7d", "capacity_utilisation", "completion_rate",
                 "on_time_rate", "reassignment_count")
        return {n: [self.rows.get(r["user_id"], {}).get(n) for r in rows] for n in names}


@pytest.fixture()
def service(tmp_path):
    feats = _Features({"u1": {"open_task_count": 3, "open_points": 8, "hours_logged_7d": 30,
                              "capacity_utilisation": 0.75, "completion_rate": 0.9, "on_time_rate": 0.8,
                              "reassignment_count": 1}})
    s = PersonalizationService(BanditStore(tmp_path / "b.sqlite"), DecisionLog(tmp_path / "d.sqlite"), feats)
    yield s
    s.bandits.close()
    s.decisions.close()


def test_context_vector_defaults_and_scale():
    x = context_vector(None)
    assert len(x) == len(CONTEXT_FEATURES) and x[0] == 1.0
    assert x[5] == 0.5 and x[6] == 0.5  # unknown rates sit at the middle
    y = context_vector({"open_task_count": 3, "hours_logged_7d": 40, "capacity_utilisation": 9.0,
                        "completion_rate": float("nan")})
    assert y[1] == pytest.approx(np.log1p(3)) and y[3] == pytest.approx(1.0)
    assert y[4] == 2.0 and y[5] == 0.5  # clipped; NaN -> default


def test_user_contexts_reads_the_workload_group():
    feats = _Features({"a": {"open_task_count": 1}})
    a, b = user_contexts(feats, ["a", "b"])
    assert a[1] == pytest.approx(np.log1p(1)) and b[1] == 0.0


def test_dashboard_decision_then_feedback_updates_once(service):
    out = service.personalize_dashboard({"workspace_id": "w", "user_id": "u1", "top_k": 3})
    assert out["layout"] in service.bandits.config("dashboard_layout").arms
    assert out["recommender"] == "none" and out["tasks"] == []
    assert out["context"]["log_open_tasks"] == pytest.approx(np.log1p(3))
    before = service.bandits.load("dashboard_layout").counts[out["layout"]]
    r = service.feedback({"workspace_id": "w", "decision_id": out["decision_id"], "reward": 0.7})
    assert r["accepted"] and r["arm"] == out["layout"] and r["bandit"] == "dashboard_layout"
    again = service.feedback({"workspace_id": "w", "decision_id": out["decision_id"], "reward": 0.7})
    assert not again["accepted"]
    bandit = service.bandits.load("dashboard_layout")
    assert bandit.counts[out["layout"]] == before + 1
    # the update used the decision's context
    logged = service.bandits.updates("dashboard_layout")[-1]
    assert np.allclose(logged["context"], [out["context"][n] for n in CONTEXT_FEATURES])


def test_feedback_bad_input(service):
    out = service.personalize_dashboard({"workspace_id": "w", "user_id": "u9"})
    d = out["decision_id"]
    with pytest.raises(SundayError, match="arm"):
        service.feedback({"workspace_id": "w", "decision_id": d, "reward": 1.0, "arm": "no-such-layout"})
    other = next(a for a in service.bandits.config("dashboard_layout").arms if a != out["layout"])
    with pytest.raises(SundayError, match="chose"):
        service.feedback({"workspace_id": "w", "decision_id": d, "reward": 1.0, "arm": other})
    with pytest.raises(SundayError, match="reward"):
        service.feedback({"workspace_id": "w", "decision_id": d, "reward": 1.5})
    with pytest.raises(NotFound):
        service.feedback({"workspace_id": "other", "decision_id": d, "reward": 1.0})
    with pytest.raises(NotFound):
        service.feedback({"workspace_id": "w", "decision_id": "d_nope", "reward": 1.0})
    assert service.bandits.updates("dashboard_layout") == []  # nothing was applied


def test_routes_without_models_say_which_job_trains_them(service):
    with pytest.raises(Unavailable, match="train_jobs/notifications.py"):
        service.rank_notifications({"workspace_id": "w", "user_id": "u1", "notifications": []})
    with pytest.raises(Unavailable, match="train_jobs/priority.py"):
        service.score_priority({"workspace_id": "w", "task_ids": ["t1"]})


def test_state_survives_a_restart(tmp_path):
    feats = _Features({})
    s = PersonalizationService(BanditStore(tmp_path / "b.sqlite"), DecisionLog(tmp_path / "d.sqlite"), feats)
    ids = [s.personalize_dashboard({"workspace_id": "w", "user_id": f"u{i}"})["decision_id"] for i in range(5)]
    for i, d in enumerate(ids):
        s.feedback({"workspace_id": "w", "decision_id": d, "reward": i / 4})
    stats = s.bandits.load("dashboard_layout").state()
    s.bandits.close()
    s.decisions.close()
    s2 = PersonalizationService(BanditStore(tmp_path / "b.sqlite"), DecisionLog(tmp_path / "d.sqlite"), feats)
    again = s2.bandits.load("dashboard_layout").state()
    for k in stats:
        assert np.array_equal(stats[k], again[k])
    assert not s2.feedback({"workspace_id": "w", "decision_id": ids[0], "reward": 0.0})["accepted"]
