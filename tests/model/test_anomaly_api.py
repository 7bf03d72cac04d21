"""``GET /api/v1/ml/anomalies/{project}`` on the plain FastAPI app over the served state (the monitor replays the
``demo`` simulation at start and then follows ingested events): a project's alerts and its team's, newest first,
with reasons; since / until / limit; auth (401), roles (viewer may read), workspace isolation (403), unknown project
(404), bad parameters (422 naming the field); audited; and a spike streamed through ``/events`` becomes an alert
readable by project."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.model.conftest import auth, make_client

pytestmark = pytest.mark.timeout(900)
URL = "/api/v1/ml/anomalies"


@pytest.fixture(scope="module")
def api(served):
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    client, ctx = make_client(settings, sim_path, nlp=False, timeline=False)
    sample = sample_requests(settings, "demo")
    ws = sample["workspace_id"]
    keys = {role: ctx.keys.create(ws, role)[1] for role in ("viewer", "member")}
    alerts = ctx.backend.alerts.query(ws, limit=10_000)
    return client, ctx, ws, keys, alerts


def _project_with_alerts(alerts) -> str:
    counts = pd.Series([a.project_id for a in alerts if a.project_id is not None]).value_counts()
    assert len(counts), "the demo simulation's replay raised project alerts"
    return str(counts.index[0])


def test_alerts_of_a_project_and_its_team(api):
    client, ctx, ws, keys, alerts = api
    project = _project_with_alerts(alerts)
    before = ctx.audit.count(ws)
    r = client.get(f"{URL}/{project}", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    out = r.json()
    team = ctx.backend.alerts.team_of(ws, project)
    assert out["project_id"] == project and out["team_id"] == team and out["count"] == len(out["alerts"]) > 0
    starts = [a["start"] for a in out["alerts"]]
    assert starts == sorted(starts, reverse=True)
    for a in out["alerts"]:
        assert a["project_id"] == project or (a["entity_type"] == "team" and a["team_id"] == team)
        assert a["reason"] and a["kind"] and a["start"] <= a["end"] and 0 <= a["score"] <= 1
    rec = ctx.audit.read(ws, limit=1)[0]
    assert ctx.audit.count(ws) == before + 1
    assert rec.endpoint == "anomalies" and rec.status == 200 and rec.model_name == "anomaly_monitor"
    assert r.headers["X-Request-ID"] == rec.request_id


def test_since_until_and_limit(api):
    client, _, _, keys, alerts = api
    project = _project_with_alerts(alerts)
    mine = [a for a in alerts if a.project_id == project]
    a = mine[len(mine) // 2]
    h = auth(keys["viewer"])
    r = client.get(f"{URL}/{project}", params={"since": a.start, "until": a.start}, headers=h)
    assert r.status_code == 200
    got = r.json()["alerts"]
    assert a.alert_id in {x["alert_id"] for x in got}
    assert all(x["end"] >= a.start and x["start"] <= a.start for x in got)
    r = client.get(f"{URL}/{project}", params={"limit": 1}, headers=h)
    assert r.status_code == 200 and r.json()["count"] == 1
    r = client.get(f"{URL}/{project}", params={"since": "2100-01-01"}, headers=h)
    assert r.status_code == 200 and r.json()["alerts"] == []


def test_errors(api):
    client, ctx, ws, keys, alerts = api
    project = _project_with_alerts(alerts)
    h = auth(keys["viewer"])
    assert client.get(f"{URL}/{project}").status_code == 401
    r = client.get(f"{URL}/nobody-p1", headers=h)
    assert r.status_code == 404 and "nobody-p1" in r.json()["detail"]
    ctx.directory.add("project", "p-of-w-other", "w-other")
    r = client.get(f"{URL}/p-of-w-other", headers=h)
    assert r.status_code == 403 and "not in workspace" in r.json()["detail"]
    r = client.get(f"{URL}/{project}", params={"since": "last tuesday"}, headers=h)
    assert r.status_code == 422 and "since" in str(r.json()["detail"][0]["loc"])
    r = client.get(f"{URL}/{project}", params={"limit": 0}, headers=h)
    assert r.status_code == 422 and "limit" in str(r.json()["detail"][0]["loc"])
    r = client.get(f"{URL}/{project}", params={"since": "2024-06-01", "until": "2024-05-01"}, headers=h)
    assert r.status_code == 422 and "since" in r.json()["detail"]


def test_a_streamed_spike_is_readable_by_project(api, served):
    """25 tasks created in one project on the day after the history, then an event of the next day: the monitor
    (a listener of the streaming consumer) closes the day and the spike is an alert of that project."""
    from sunday.features.compute import list_workspaces
    from sunday.features.compute.frame import read_events

    client, _, ws, keys, _ = api
    _, sim_path = served
    assert ws in set(list_workspaces(sim_path)["workspace_id"])
    ev = read_events(sim_path, ws).to_pandas()
    last = ev["timestamp"].max()
    project = str(ev[ev["timestamp"] > last - pd.Timedelta(days=3)]["project_id"].value_counts().index[0])
    day = (last + pd.Timedelta(days=1)).normalize() + pd.Timedelta(hours=9)
    events = [{"event_id": f"spike-{i}", "workspace_id": ws, "project_id": project, "task_id": f"spike-t{i}",
               "event_type": "created", "timestamp": (day + pd.Timedelta(minutes=i)).isoformat() + "Z"}
              for i in range(25)]
    events.append({"event_id": "spike-next", "workspace_id": ws, "project_id": project, "task_id": "spike-t0",
                   "event_type": "commented", "timestamp": (day + pd.Timedelta(days=1)).isoformat() + "Z"})
    r = client.post("/api/v1/ml/events", json={"events": events}, headers=auth(keys["member"]))
    assert r.status_code == 200 and r.json()["accepted"] == 26, r.text
    r = client.get(f"{URL}/{project}", params={"since": day.date().isoformat()}, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    spikes = [a for a in r.json()["alerts"] if a["signal"] == "tasks_created"]
    assert spikes and spikes[0]["start"] == day.date().isoformat() and spikes[0]["value"] == 25
    assert spikes[0]["kind"] == "creation_spike" and "25 tasks created" in spikes[0]["reason"]


@pytest.mark.ray
def test_serve_app_monitor_and_endpoint(ray_session, served):
    """The Ray Serve app: the Events deployment's monitor turns streamed events into alerts, the ingress reads them
    from the store (a minimal app: no text encoder, timeline or NLP deployment)."""
    import os
    import socket
    import sys
    from pathlib import Path

    import httpx
    from ray import serve

    from sunday.features.compute.frame import read_events
    from sunday.serving.keys import default_keystore
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import serve_apps.app as sa

    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
                        "SUNDAY_HOME": str(settings.home), "MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri}}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sample = sample_requests(settings, "demo")
    ws = sample["workspace_id"]
    keys = default_keystore(settings)
    member, viewer = keys.create(ws, "member")[1], keys.create(ws, "viewer")[1]
    ev = read_events(sim_path, ws).to_pandas()
    last = ev["timestamp"].max()
    project = str(ev[ev["timestamp"] > last - pd.Timedelta(days=3)]["project_id"].value_counts().index[0])
    day = (last + pd.Timedelta(days=3)).normalize() + pd.Timedelta(hours=9)  # not the plain test's day
    events = [{"event_id": f"serve-spike-{i}", "workspace_id": ws, "project_id": project,
               "task_id": f"serve-spike-t{i}", "event_type": "created",
               "timestamp": (day + pd.Timedelta(minutes=i)).isoformat() + "Z"} for i in range(20)]
    events.append({"event_id": "serve-spike-next", "workspace_id": ws, "project_id": project,
                   "task_id": "serve-spike-t0", "event_type": "commented",
                   "timestamp": (day + pd.Timedelta(days=1)).isoformat() + "Z"})
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(sa.build_app({"home": str(settings.home), "embeddings": False, "timeline": False, "nlp": False,
                                "rate": 10_000.0, "burst": 10_000.0, "max_replicas": 1, "runtime_env": env}),
                  name="sunday-anomaly", route_prefix="/", blocking=False)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            r = c.post("/api/v1/ml/events", json={"events": events}, headers=auth(member))
            assert r.status_code == 200 and r.json()["accepted"] == 21, r.text
            r = c.get(f"{URL}/{project}", params={"since": day.date().isoformat()}, headers=auth(viewer))
            assert r.status_code == 200, r.text
            spikes = [a for a in r.json()["alerts"] if a["signal"] == "tasks_created"]
            assert spikes and spikes[0]["start"] == day.date().isoformat() and spikes[0]["value"] == 20
            assert c.get(f"{URL}/nobody-p1", headers=auth(viewer)).status_code == 404
    finally:
        try:
            serve.delete("sunday-anomaly")
        finally:
            serve.shutdown()
