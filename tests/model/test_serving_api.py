"""The serving API (plain FastAPI app over the same plain classes the Serve deployments wrap), on a small
simulated workspace with a registered assignment model: auth (401), roles (403), workspace isolation, schema
errors (422 naming the field), rate limit (429 + Retry-After), audit records, metrics, model swap."""

from __future__ import annotations

import pytest

from tests.model.conftest import auth, body, make_client

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def api(served):
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    client, ctx = make_client(settings, sim_path)
    sample = sample_requests(settings, "demo")
    keys = {role: ctx.keys.create(sample["workspace_id"], role)[1] for role in ("viewer", "member", "admin")}
    from sunday.serving.directory import _table

    users = _table(sim_path, "users", ["user_id", "workspace_id"])
    other = users[users["workspace_id"] != sample["workspace_id"]]
    return client, ctx, sample, keys, other


def test_assign_task_answers_with_version_and_audit(api):
    client, ctx, sample, keys, _ = api
    before = ctx.audit.count(sample["workspace_id"])
    r = client.post("/api/v1/ml/assign-task", json=body(sample, top_k=3), headers=auth(keys["member"]))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["recommended_user"] in sample["candidates"]
    assert len(out["alternatives"]) == 3 and out["model_version"] == "1"
    assert out["alternatives"][0]["reasons"], "the best candidate is explained"
    assert ctx.audit.count(sample["workspace_id"]) == before + 1
    rec = ctx.audit.read(sample["workspace_id"], limit=1)[0]
    assert rec.endpoint == "assign-task" and rec.status == 200 and rec.model_version == "1"
    assert rec.latency_ms > 0 and r.headers["X-Request-ID"] == rec.request_id


def test_missing_or_wrong_key_is_401(api):
    client, _, sample, _, _ = api
    assert client.post("/api/v1/ml/assign-task", json=body(sample)).status_code == 401
    r = client.post("/api/v1/ml/assign-task", json=body(sample), headers=auth("sk_abc_notavalidsecretatall"))
    assert r.status_code == 401 and "invalid" in r.json()["detail"]


def test_roles(api):
    client, _, sample, keys, _ = api
    assert client.post("/api/v1/ml/assign-task", json=body(sample), headers=auth(keys["viewer"])).status_code == 403
    assert client.get("/api/v1/ml/admin/audit", headers=auth(keys["member"])).status_code == 403
    r = client.get("/api/v1/ml/admin/audit", headers=auth(keys["admin"]))
    assert r.status_code == 200 and all(x["workspace_id"] == sample["workspace_id"] for x in r.json()["records"])


def test_cross_workspace_is_refused(api):
    client, ctx, sample, keys, other = api
    # a user, project and task of another workspace (from the simulation when it has several, else registered)
    if other.empty:
        ctx.directory.add("user", "u-of-w-other", "w-other")
        foreign, other_ws = ["u-of-w-other"], "w-other"
    else:
        foreign, other_ws = other["user_id"].head(2).tolist(), str(other["workspace_id"].iloc[0])
    ctx.directory.add("task", "t-of-w-other", other_ws)
    member = auth(keys["member"])
    r = client.post("/api/v1/ml/assign-task", json={**body(sample), "candidates": sample["candidates"][:2] + foreign},
                    headers=member)
    assert r.status_code == 403 and "not in workspace" in r.json()["detail"]
    # a key of the other workspace cannot rank this workspace's users
    other_key = ctx.keys.create(other_ws, "admin")[1]
    r = client.post("/api/v1/ml/assign-task", json=body(sample), headers=auth(other_key))
    assert r.status_code == 403
    ev = {"event_id": "x-1", "workspace_id": other_ws, "task_id": "t-new", "event_type": "created",
          "timestamp": "2026-01-01T00:00:00Z"}
    assert client.post("/api/v1/ml/events", json={"events": [ev]}, headers=member).status_code == 403
    ev = {**ev, "workspace_id": sample["workspace_id"], "task_id": "t-of-w-other", "event_type": "commented"}
    assert client.post("/api/v1/ml/events", json={"events": [ev]}, headers=member).status_code == 403
    assert not any(r.workspace_id == other_ws for r in ctx.audit.read(sample["workspace_id"], limit=1000))


def test_validation_errors_name_the_field(api):
    client, _, sample, keys, _ = api
    bad = body(sample)
    bad["task"]["story_points"] = -2
    r = client.post("/api/v1/ml/assign-task", json=bad, headers=auth(keys["member"]))
    assert r.status_code == 422 and "story_points" in str(r.json()["detail"][0]["loc"])
    r = client.post("/api/v1/ml/assign-task", json={**body(sample), "candidates": []}, headers=auth(keys["member"]))
    assert r.status_code == 422 and "candidates" in str(r.json()["detail"][0]["loc"])
    r = client.post("/api/v1/ml/assign-task", json={**body(sample), "task": {"title": " "}},
                    headers=auth(keys["member"]))
    assert r.status_code == 422 and "title" in r.json()["detail"]
    r = client.post("/api/v1/ml/assign-task", json={**body(sample), "candidates": ["nobody-1"]},
                    headers=auth(keys["member"]))
    assert r.status_code == 404 and "nobody-1" in r.json()["detail"]


def test_rate_limit_429_with_retry_after(served):
    settings, sim_path = served
    client, ctx = make_client(settings, sim_path, rate=0.5, burst=2)
    from sunday.serving.launch import sample_requests

    sample = sample_requests(settings, "demo")
    token = ctx.keys.create(sample["workspace_id"], "viewer")[1]
    codes = [client.get("/api/v1/ml/models", headers=auth(token)) for _ in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert float(codes[2].headers["Retry-After"]) > 0


def test_events_update_features_and_directory(api):
    client, ctx, sample, keys, _ = api
    ws, user = sample["workspace_id"], sample["candidates"][0]
    events = [{"event_id": "e-new-1", "workspace_id": ws, "task_id": "t-new-1", "event_type": "created",
               "timestamp": "2030-01-01T00:00:00Z", "story_points": 5, "project_id": sample["project_id"]},
              {"event_id": "e-new-2", "workspace_id": ws, "task_id": "t-new-1", "event_type": "assigned",
               "timestamp": "2030-01-01T01:00:00Z", "user_id": user}]
    r = client.post("/api/v1/ml/events", json={"events": events}, headers=auth(keys["member"]))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and r.json()["pushed"].get("user_workload", 0) >= 1
    assert ctx.directory.workspace_of("task", "t-new-1") == ws
    again = client.post("/api/v1/ml/events", json={"events": events}, headers=auth(keys["member"]))
    assert again.json()["duplicates"] == 2


def test_model_swap_keeps_serving(api):
    client, ctx, sample, keys, _ = api
    model = ctx.backend.assignment
    model.reconfigure({"version": "2"})
    r = client.post("/api/v1/ml/assign-task", json=body(sample), headers=auth(keys["member"]))
    assert r.status_code == 200 and r.json()["model_version"] == "2"
    model.reconfigure({"alias": "champion"})
    assert client.post("/api/v1/ml/assign-task", json=body(sample),
                       headers=auth(keys["member"])).json()["model_version"] == "1"
    with pytest.raises(Exception, match="unknown user_config"):
        model.reconfigure({"versoin": "2"})


def test_metrics_count_requests(api):
    client, _, _, _, _ = api
    text = client.get("/metrics").text
    assert 'sunday_api_requests_total{endpoint="assign-task"' in text
    assert "sunday_api_latency_ms_bucket" in text


def test_predict_timeline_from_the_feature_store(api):
    client, ctx, sample, keys, _ = api
    viewer = auth(keys["viewer"])
    r = client.post("/api/v1/ml/predict-timeline", json={"project_id": sample["project_id"], "mc_samples": 5},
                    headers=viewer)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["best"] <= out["expected"] <= out["worst"] and out["model_version"] == "1"
    assert abs(sum(out["risk"].values()) - 1) < 1e-6 and out["drivers"]["features"]
    assert isinstance(out["at_risk_tasks"], list)
    rec = ctx.audit.read(sample["workspace_id"], limit=1)[0]
    assert rec.endpoint == "predict-timeline" and rec.model_version == "1"


def test_predict_timeline_bad_input(api):
    client, ctx, sample, keys, _ = api
    viewer = auth(keys["viewer"])
    day = {"event_timestamp": "2026-01-01T00:00:00Z", "tasks_done": -1}
    r = client.post("/api/v1/ml/predict-timeline", json={"project_id": sample["project_id"], "history": [day]},
                    headers=viewer)
    assert r.status_code == 422 and "tasks_done" in str(r.json()["detail"][0]["loc"])
    r = client.post("/api/v1/ml/predict-timeline", json={"project_id": sample["project_id"], "history": []},
                    headers=viewer)
    assert r.status_code == 422 and "history" in r.json()["detail"]
    assert client.post("/api/v1/ml/predict-timeline", json={"project_id": "nope"},
                       headers=viewer).status_code == 404
    ctx.directory.add("project", "p-of-w-other", "w-other")
    assert client.post("/api/v1/ml/predict-timeline", json={"project_id": "p-of-w-other"},
                       headers=viewer).status_code == 403
