"""The personalization and priority routes on the plain FastAPI app over the served state (champions of
``priority_scorer``, ``notification_ranker`` and ``personalization_cf`` trained by the ``served`` fixture):
personalize-dashboard -> feedback (bandit update once per decision), rank-notifications, score-priority; bad input
(unknown arm, reward outside [0, 1], empty notification list, unknown type) is 422 naming the field, other
workspaces' ids 403 and unknown ids 404; every call is audited."""

from __future__ import annotations

import pytest

from tests.model.conftest import auth, make_client

pytestmark = pytest.mark.timeout(900)
URL = "/api/v1/ml"


@pytest.fixture(scope="module")
def api(served):
    from sunday.serving.directory import _table
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    client, ctx = make_client(settings, sim_path, nlp=False, timeline=False, anomaly=False)
    sample = sample_requests(settings, "demo")
    ws = sample["workspace_id"]
    keys = {role: auth(ctx.keys.create(ws, role)[1]) for role in ("viewer", "member")}
    tasks = _table(sim_path, "tasks", ["task_id", "workspace_id", "project_id", "due_date"])
    users = _table(sim_path, "users", ["user_id", "workspace_id"])
    other = users.loc[users["workspace_id"] != ws, "user_id"]
    return {"client": client, "ctx": ctx, "ws": ws, "keys": keys, "sample": sample,
            "tasks": tasks[tasks["workspace_id"] == ws].reset_index(drop=True),
            "other_user": str(other.iloc[0]) if len(other) else None}


def _detail(r) -> str:
    return str(r.json()["detail"])


def test_models_lists_the_personalization_champions(api):
    r = api["client"].get(f"{URL}/models", headers=api["keys"]["viewer"])
    names = {m["name"] for m in r.json()["models"]}
    assert {"priority_scorer", "notification_ranker", "personalization_cf"} <= names


def test_dashboard_then_feedback(api):
    c, keys, user = api["client"], api["keys"], api["sample"]["candidates"][0]
    before = api["ctx"].audit.count(api["ws"])
    r = c.post(f"{URL}/personalize-dashboard", json={"user_id": user, "top_k": 4}, headers=keys["viewer"])
    assert r.status_code == 200, r.text
    out = r.json()
    arms = api["ctx"].backend.personal.bandits.config("dashboard_layout").arms
    assert out["layout"] in arms and out["recommender"] in ("model", "popularity")
    assert 0 < len(out["tasks"]) <= 4 and set(t["id"] for t in out["tasks"]) <= set(api["tasks"]["task_id"])
    assert all(p["id"] != user for p in out["collaborators"])
    d = out["decision_id"]
    r = c.post(f"{URL}/personalization/feedback", json={"decision_id": d, "reward": 0.8}, headers=keys["viewer"])
    assert r.status_code == 200 and r.json()["accepted"] and r.json()["arm"] == out["layout"], r.text
    r = c.post(f"{URL}/personalization/feedback", json={"decision_id": d, "reward": 0.8}, headers=keys["viewer"])
    assert r.status_code == 200 and not r.json()["accepted"]
    assert api["ctx"].audit.count(api["ws"]) == before + 3

    r = c.post(f"{URL}/personalization/feedback", json={"decision_id": d, "reward": 1.5}, headers=keys["viewer"])
    assert r.status_code == 422 and "reward" in str(r.json()["detail"][0]["loc"])
    r = c.post(f"{URL}/personalization/feedback", json={"decision_id": d, "reward": 1, "arm": "nope"},
               headers=keys["viewer"])
    assert r.status_code == 422 and "arm" in _detail(r) and "overview" in _detail(r)
    r = c.post(f"{URL}/personalization/feedback", json={"decision_id": "d_unknown", "reward": 1},
               headers=keys["viewer"])
    assert r.status_code == 404 and "decision_id" in _detail(r)
    if api["other_user"]:
        r = c.post(f"{URL}/personalize-dashboard", json={"user_id": api["other_user"]}, headers=keys["viewer"])
        assert r.status_code == 403
    r = c.post(f"{URL}/personalize-dashboard", json={"user_id": "u-nobody"}, headers=keys["viewer"])
    assert r.status_code == 404


def _notifications(api, n: int) -> list[dict]:
    tasks, users = api["tasks"], api["sample"]["candidates"]
    kinds = ("assigned", "comment", "status_changed", "due_soon", "mention", "completed", "reassigned")
    out = []
    for i in range(n):
        t = tasks.iloc[(i * 7) % len(tasks)]
        out.append({"notification_id": f"n{i}", "type": kinds[i % len(kinds)], "task_id": str(t["task_id"]),
                    "project_id": str(t["project_id"]), "sender_id": users[(i + 1) % len(users)],
                    "created_at": f"2024-11-{1 + i % 28:02d}T09:{i % 60:02d}:00Z"})
    return out


def test_rank_notifications(api):
    c, keys, user = api["client"], api["keys"], api["sample"]["candidates"][0]
    notes = _notifications(api, 50)
    r = c.post(f"{URL}/rank-notifications", json={"user_id": user, "notifications": notes}, headers=keys["member"])
    assert r.status_code == 200, r.text
    out = r.json()
    ranked = out["notifications"]
    assert sorted(x["rank"] for x in ranked) == list(range(1, 51))
    assert sorted(x["index"] for x in ranked) == list(range(50))
    scores = [x["score"] for x in sorted(ranked, key=lambda x: x["rank"])]
    assert scores == sorted(scores, reverse=True)
    assert all(x["notification_id"] == notes[x["index"]]["notification_id"] for x in ranked)
    assert out["channel"] in ("email", "push", "in_app") and out["decision_id"]
    assert len(set(scores)) > 1, "the model tells notifications apart"

    r = c.post(f"{URL}/rank-notifications", json={"user_id": user, "notifications": []}, headers=keys["member"])
    assert r.status_code == 422 and "notifications" in str(r.json()["detail"][0]["loc"])
    bad = [dict(notes[0], type="fax")]
    r = c.post(f"{URL}/rank-notifications", json={"user_id": user, "notifications": bad}, headers=keys["member"])
    assert r.status_code == 422 and "type" in _detail(r) and "fax" in _detail(r)
    r = c.post(f"{URL}/rank-notifications", json={"user_id": user, "notifications": notes[:2]},
               headers=keys["viewer"])
    assert r.status_code == 403  # member role needed


def test_score_priority(api):
    c, keys = api["client"], api["keys"]
    ids = api["tasks"]["task_id"].astype(str).head(5).tolist()
    r = c.post(f"{URL}/score-priority", json={"task_ids": ids}, headers=keys["viewer"])
    assert r.status_code == 200, r.text
    scores = r.json()["scores"]
    assert [s["task_id"] for s in scores] == ids
    for s in scores:
        assert s["priority"] in ("low", "medium", "high", "critical") and 0 <= s["score"] <= 1
        assert sum(s["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert s["priority"] == max(s["probabilities"], key=s["probabilities"].get)
        assert s["reasons"] and all("contribution" in x for x in s["reasons"])
        assert s["current_priority"] in ("low", "medium", "high", "critical")
    r = c.post(f"{URL}/score-priority", json={"task_ids": ["t-nope"]}, headers=keys["viewer"])
    assert r.status_code == 404
    r = c.post(f"{URL}/score-priority", json={"task_ids": []}, headers=keys["viewer"])
    assert r.status_code == 422
