"""Rollout with real registered models (the ``served`` state: ``task_assignment`` v1 champion, v2 a weaker model):
the assignment champion and challenger in process (:class:`~sunday.serving.rollout.ModelRollout`, as the Serve
``Assignment`` deployment holds them), the online features of the simulation.

* canary: the challenger answers its share of the tasks (stable per task id), a challenger that breaks is
  answered around by the champion and rolled back once its error rate passes the threshold;
* shadow: the returned answers are exactly the champion's, the challenger's are compared (top-1 agreement) and
  logged, and a slow challenger is rolled back on its p99 vs the champion's."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytestmark = pytest.mark.timeout(600)

TITLES = ["Fix flaky login test", "Write the release notes", "Migrate the billing tables", "Design the settings page",
          "Profile the search endpoint", "Update the on-call runbook", "Add SSO to the admin console"]
SKILLS = [["python"], ["writing"], ["sql"], ["design"], ["python", "sql"], ["devops"], ["security"]]


@pytest.fixture(scope="module")
def env(served):
    from sunday.features.online import OnlineFeatures
    from sunday.serving.feature_cache import CachedFeatures
    from sunday.serving.launch import sample_requests
    from sunday.serving.models import AssignmentModel

    settings, _ = served
    features = CachedFeatures(OnlineFeatures(settings), ttl_s=600)
    champion = AssignmentModel(settings, embeddings=False)
    assert champion.current.version == "1"
    return settings, features, champion, sample_requests(settings, "demo")


def items(sample, n, start=0):
    out = []
    for i in range(start, start + n):
        out.append({"task": {"task_id": f"T-{i}", "title": TITLES[i % len(TITLES)], "description": "",
                             "required_skills": SKILLS[i % len(SKILLS)], "story_points": 1 + i % 8,
                             "priority": ["low", "medium", "high"][i % 3]},
                    "candidates": sample["candidates"][: 4 + i % 8], "top_k": 3, "explain": False})
    return out


def make_rollout(env, tmp_path, config):
    from sunday.serving.models import AssignmentModel
    from sunday.serving.rollout import ModelRollout, same_top1

    settings, features, champion, _ = env
    r = ModelRollout(champion, lambda alias, v: AssignmentModel(settings, alias, v, embeddings=False),
                     compare=same_top1, log_dir=tmp_path)
    r.reconfigure({"alias": "champion", "rollout": config})
    return r


def runner(features, slow_ms=0.0, broken=False, challenger_version="2"):
    async def run(model, batch):
        if model.current.version == challenger_version:
            if broken:
                raise RuntimeError("challenger lost its booster")
            if slow_ms:
                time.sleep(slow_ms / 1e3)
        return model.recommend_batch(batch, features)

    return run


async def drive(r, reqs, run, batch=16):
    from sunday.serving.rollout import assignment_key

    out = []
    for s in range(0, len(reqs), batch):
        part = reqs[s:s + batch]
        out += await r.score(part, [assignment_key(i) for i in part], run)
    await r.drain()
    return out


def test_canary_share_and_rollback_on_errors(env, tmp_path):
    settings, features, champion, sample = env
    r = make_rollout(env, tmp_path, {"mode": "canary", "share": 0.2, "challenger": {"version": "2"},
                                     "min_requests": 20, "max_error_rate": 0.05, "max_p99_ratio": None})
    reqs = items(sample, 240)
    out = asyncio.run(drive(r, reqs, runner(features)))
    ctl = r.controller
    expect = [ctl.share_of(f"T-{i}") < 0.2 for i in range(240)]
    got = [o["model_version"] == "2" for o in out]
    assert got == expect  # the challenger answered exactly its keys
    share = sum(got) / len(got)
    print(f"\ncanary: share 0.2 -> observed {share:.3f} ({sum(got)}/{len(got)})")
    assert 0.12 < share < 0.28
    for req, o in zip(reqs, out):
        assert "error" not in o and o["recommended_user"] in req["candidates"]
    st = r.state()
    assert st["mode"] == "canary" and st["stats"]["challenger"]["errors"] == 0 and not st["events"]
    # stable: the same tasks again land on the same side
    again = asyncio.run(drive(r, reqs[:64], runner(features)))
    assert [o["model_version"] for o in again] == [o["model_version"] for o in out[:64]]

    # the challenger breaks: every request still answers (by the champion) and the errors are counted
    more = items(sample, 400, start=1000)
    out = asyncio.run(drive(r, more, runner(features, broken=True)))
    assert all("error" not in o and o["model_version"] == "1" for o in out)
    st = r.state()
    ev = st["events"]
    assert st["mode"] == "off" and r.challenger is None and len(ev) == 1
    print(f"canary rollback: {ev[0]['reason']}; challenger {ev[0]['challenger']}")
    # 0 errors in the first ~50 challenger requests: the rate passes 5 % at the 3rd-5th failure
    assert ev[0]["challenger"]["error_rate"] > 0.05 and ev[0]["challenger"]["errors"] <= 6
    logged = [json.loads(x) for x in (tmp_path / "task_assignment.events.jsonl").read_text().splitlines()]
    assert logged[-1]["reason"] == ev[0]["reason"] and logged[-1]["challenger_version"] == "2"
    assert r.info()["rollout"] == {"mode": "off", "challenger_version": "2", "rolled_back": True}


def test_shadow_returns_the_champion_and_rolls_back_a_slow_challenger(env, tmp_path):
    settings, features, champion, sample = env
    reqs = items(sample, 96, start=5000)
    plain = asyncio.run(drive(make_rollout(env, tmp_path / "plain", {"mode": "off"}), reqs, runner(features)))
    r = make_rollout(env, tmp_path, {"mode": "shadow", "challenger": {"version": "2"}, "min_requests": 40,
                                     "max_error_rate": 0.05, "max_p99_ratio": 3.0})
    out = asyncio.run(drive(r, reqs, runner(features)))
    assert out == plain  # shadow never changes what is returned
    assert all(o["model_version"] == "1" for o in out)
    st = r.state()
    sh = st["shadow"]
    assert st["mode"] == "shadow" and st["stats"]["challenger"]["count"] == 96 and sh["compared"] == 96
    print(f"\nshadow: top-1 agreement v2 vs v1 {sh['agreement']:.3f} ({sh['agreed']}/{sh['compared']}); "
          f"p99 champion {st['stats']['champion']['p99_ms']:.1f} ms, challenger "
          f"{st['stats']['challenger']['p99_ms']:.1f} ms")
    lines = [json.loads(x) for x in (tmp_path / "task_assignment.shadow.jsonl").read_text().splitlines()]
    assert len(lines) == 96 and {x["challenger"]["model_version"] for x in lines} == {"2"}
    assert sum(bool(x["agree"]) for x in lines) == sh["agreed"]

    # the challenger becomes slow (+ 10x the champion's p99 per batch): rolled back on the p99 ratio after its first
    # slow batch (16 of the window's 112 latencies > the 1 % tail)
    slow = max(100.0, 10 * st["stats"]["champion"]["p99_ms"])
    out = asyncio.run(drive(r, items(sample, 96, start=6000), runner(features, slow_ms=slow)))
    assert all(o["model_version"] == "1" for o in out)
    st = r.state()
    assert st["mode"] == "off" and len(st["events"]) == 1
    ev = st["events"][0]
    print(f"shadow rollback: {ev['reason']}")
    assert "max_p99_ratio 3.0" in ev["reason"] and ev["mode"] == "shadow"


@pytest.mark.ray
def test_canary_through_serve(ray_session, served):
    """The Serve app (Assignment behind ``@serve.batch``) with ``assignment_config.rollout``: a 50 % canary of
    version 2 answers exactly its keys' requests (concurrent requests, so batches mix both sides); redeployed with
    a p99 threshold the challenger cannot meet, it is rolled back after ``min_requests`` and the champion answers
    the rest."""
    import os
    import socket
    import sys
    from pathlib import Path

    from ray import serve

    from sunday.serving.launch import sample_requests
    from sunday.serving.rollout import RolloutConfig, RolloutController

    settings, _ = served
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import serve_apps.app as sa

    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    env = {"env_vars": {"PYTHONPATH": path, "SUNDAY_HOME": str(settings.home),
                        "MLFLOW_TRACKING_URI": settings.resolved_mlflow_uri}}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sample = sample_requests(settings, "demo")

    def deploy(rollout):
        serve.run(sa.build_app({"home": str(settings.home), "embeddings": False, "timeline": False, "nlp": False,
                                "anomaly": False, "personalization": False, "max_replicas": 1, "runtime_env": env,
                                "assignment_config": {"alias": "champion", "rollout": rollout}}),
                  name="rollout", route_prefix="/rollout", blocking=False)
        return serve.get_deployment_handle("Assignment", "rollout")

    def ask(handle, reqs):
        return [r.result(timeout_s=120) for r in [handle.recommend.remote(i) for i in reqs]]

    canary = {"mode": "canary", "share": 0.5, "challenger": {"version": "2"}, "min_requests": 10,
              "max_error_rate": 0.05, "max_p99_ratio": None}
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        handle = deploy(canary)
        reqs = items(sample, 48, start=9000)
        out = ask(handle, reqs)
        ref = RolloutController(RolloutConfig.from_dict(canary))
        expect = ["2" if ref.share_of(i["task"]["task_id"]) < 0.5 else "1" for i in reqs]
        assert [o["model_version"] for o in out] == expect
        st = handle.rollout_state.remote().result(timeout_s=60)
        print(f"\nserve canary: {expect.count('2')}/48 by v2; stats {st['stats']}")
        assert st["mode"] == "canary" and st["stats"]["challenger"]["count"] == expect.count("2")
        info = handle.info.remote().result(timeout_s=60)
        assert info["rollout"]["challenger_version"] == "2"

        # redeployed with another rollout (serve.run from Python starts a new replica; a `serve deploy` of a config
        # file that changes only user_config calls reconfigure on the live one)
        handle = deploy({**canary, "max_p99_ms": 0.001})
        out = ask(handle, items(sample, 64, start=9100))
        assert all("error" not in o for o in out)
        st = handle.rollout_state.remote().result(timeout_s=60)
        print(f"serve rollback: {st['events'][0]['reason'] if st['events'] else None}")
        assert st["mode"] == "off" and len(st["events"]) == 1 and "max_p99_ms 0.001" in st["events"][0]["reason"]
        assert st["events"][0]["challenger"]["count"] == 10  # judged at min_requests, not before
        assert sum(o["model_version"] == "2" for o in out) >= 10
        after = ask(handle, items(sample, 16, start=9200))
        assert all(o["model_version"] == "1" for o in after)
    finally:
        try:
            serve.delete("rollout")
        finally:
            serve.shutdown()


def test_timeline_deployment_class_with_rollout_config(served):
    """The Timeline deployment's class in process (no Serve, batching off): a rollout user_config is applied (off:
    no challenger), answers carry the champion's version, an unknown rollout key is refused naming it."""
    import sys
    from pathlib import Path

    from sunday.errors import SundayError
    from sunday.serving.directory import ProjectCatalog
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import serve_apps.app as sa

    t = sa.Timeline.func_or_class(str(settings.home), batching=False)
    asyncio.run(t.reconfigure({"alias": "champion", "rollout": {"mode": "off"}}))
    item = ProjectCatalog(settings, sim_path).project(sample_requests(settings, "demo")["project_id"])
    out = asyncio.run(t.predict(item))
    assert "error" not in out and out["model_version"] == "1"
    assert t.rollout_state()["mode"] == "off" and t.info()["version"] == "1"
    with pytest.raises(SundayError, match="colour"):
        asyncio.run(t.reconfigure({"rollout": {"mode": "shadow", "colour": "blue"}}))
    with pytest.raises(SundayError, match="champion itself"):  # only one timeline version is registered
        asyncio.run(t.reconfigure({"rollout": {"mode": "canary", "challenger": {"version": "1"}}}))
