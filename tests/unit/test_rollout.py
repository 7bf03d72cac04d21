"""Rollout of a challenger beside the champion (:mod:`sunday.serving.rollout`) with fake models: canary routing
share and stability, sliding-window statistics, the rollback rule (error rate, p99, p99 ratio, min_requests), shadow
answers never returned, a failing canary challenger falling back to the champion."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from sunday.errors import SundayError
from sunday.serving.rollout import (CHALLENGER, CHAMPION, ModelRollout, RolloutConfig, RolloutController,
                                    VersionStats, assignment_key, same_top1)


class FakeModel:
    """A RegistryModel stand-in: versions '1' (champion) and '2' (challenger alias); answers name the version."""

    name = "fake"
    aliases = {"champion": "1", "challenger": "2"}

    def __init__(self, alias="champion", version=None, fail=None, user=None):
        self.fail, self.user, self.calls = fail, user, 0
        self.reconfigure({"alias": alias, "version": version})

    def reconfigure(self, config):
        config = dict(config or {})
        unknown = set(config) - {"alias", "version"}
        if unknown:
            raise SundayError(f"unknown {unknown}")
        v = config.get("version") or self.aliases[config.get("alias") or "champion"]
        self.current = SimpleNamespace(version=str(v))

    def info(self):
        return {"name": self.name, "version": self.current.version}

    def answer(self, items):
        self.calls += 1
        if self.fail == "raise":
            raise RuntimeError("challenger broke")
        out = []
        for it in items:
            if self.fail == "500":
                out.append({"error": "boom", "status": 500})
            else:
                out.append({"recommended_user": self.user or it["best"], "model_version": self.current.version})
        return out


async def run(model, items):
    return model.answer(items)


def rollout(config, challenger_kw=None, tmp_path=None):
    champ = FakeModel()
    r = ModelRollout(champ, lambda alias, version: FakeModel(alias or "champion", version, **(challenger_kw or {})),
                     compare=same_top1, log_dir=tmp_path)
    r.reconfigure({"alias": "champion", "rollout": config})
    return r


def test_config_validation_names_the_field():
    assert RolloutConfig.from_dict(None).mode == "off"
    for bad, field in [({"mode": "blue"}, "mode"), ({"share": 1.5}, "share"), ({"challenger": {}}, "challenger"),
                       ({"max_error_rate": 2}, "max_error_rate"), ({"min_requests": 0}, "min_requests"),
                       ({"min_requests": 50, "window": 10}, "window"), ({"colour": 1}, "colour")]:
        with pytest.raises(SundayError, match=field):
            RolloutConfig.from_dict(bad)


def test_canary_share_within_tolerance_and_stable_per_key():
    ctl = RolloutController(RolloutConfig(mode="canary", share=0.05))
    keys = [f"task-{i}" for i in range(20_000)]
    sides = [ctl.route(k) for k in keys]
    share = sides.count(CHALLENGER) / len(keys)
    assert abs(share - 0.05) < 0.006, share  # binomial sd ~0.0015
    assert [ctl.route(k) for k in keys[:2000]] == sides[:2000]  # the same key, the same side
    other = RolloutController(RolloutConfig(mode="canary", share=0.05))
    assert [other.route(k) for k in keys[:2000]] == sides[:2000]  # across replicas too (no process state)
    salted = RolloutController(RolloutConfig(mode="canary", share=0.05, salt="b"))
    assert [salted.route(k) for k in keys[:2000]] != sides[:2000]
    assert ctl.state()["routed"][CHALLENGER] == sides.count(CHALLENGER) + sides[:2000].count(CHALLENGER)
    assert all(RolloutController(RolloutConfig(mode="shadow")).route(k) == CHAMPION for k in keys[:100])
    assert all(RolloutController(RolloutConfig(mode="canary", share=1.0)).route(k) == CHALLENGER for k in keys[:100])


def test_version_stats_window():
    s = VersionStats(window=10)
    for i in range(20):
        s.record(ok=i % 4 != 0, latency_ms=float(i))
    assert s.count == 10 and s.total == 20 and s.total_errors == 5
    assert s.errors == 2 and s.error_rate == pytest.approx(0.2)  # 12 and 16 in the window 10..19
    assert s.p50 == 14.0 and s.p99 == 19.0
    assert VersionStats().p99 is None and VersionStats().error_rate == 0.0


def test_no_rollback_before_min_requests_then_rollback_on_error_rate(tmp_path):
    ctl = RolloutController(RolloutConfig(mode="canary", max_error_rate=0.1, min_requests=20, max_p99_ratio=None),
                            model="fake", champion_version="1", challenger_version="2", log_dir=tmp_path)
    for i in range(19):
        assert ctl.record(CHALLENGER, ok=False, latency_ms=1.0) is None  # 100 % errors but only 19 requests
    assert ctl.mode == "canary" and not ctl.events
    d = ctl.record(CHALLENGER, ok=False, latency_ms=1.0)
    assert d is not None and d.rollback and "error rate 1.000 (20/20) > max_error_rate 0.1" in d.reason
    assert ctl.mode == "off" and ctl.route("any") == CHAMPION
    ev = ctl.state()["events"]
    assert len(ev) == 1 and ev[0]["challenger"]["errors"] == 20 and ev[0]["challenger_version"] == "2"
    logged = [json.loads(x) for x in (tmp_path / "fake.events.jsonl").read_text().splitlines()]
    assert logged[0]["reason"] == d.reason
    assert ctl.record(CHALLENGER, ok=False, latency_ms=1.0) is None and len(ctl.events) == 1  # once


def test_error_rate_under_threshold_keeps_the_rollout():
    ctl = RolloutController(RolloutConfig(mode="canary", max_error_rate=0.1, min_requests=20, max_p99_ratio=None))
    for i in range(200):
        ctl.record(CHALLENGER, ok=i % 20 != 0, latency_ms=1.0)  # 5 % errors
    assert ctl.mode == "canary" and ctl.check().rollback is False


def test_rollback_on_p99_ms_and_on_p99_ratio():
    ctl = RolloutController(RolloutConfig(mode="canary", max_error_rate=None, max_p99_ms=100, max_p99_ratio=None,
                                          min_requests=50))
    for i in range(49):
        ctl.record(CHALLENGER, True, 500.0)
    assert ctl.mode == "canary"
    d = ctl.record(CHALLENGER, True, 500.0)
    assert d.rollback and "p99 500.0 ms > max_p99_ms 100" in d.reason

    ctl = RolloutController(RolloutConfig(mode="shadow", max_error_rate=None, max_p99_ratio=1.5, min_requests=50))
    for i in range(100):
        ctl.record(CHAMPION, True, 10.0)
    for i in range(60):  # 1.2 x: fine
        assert ctl.record(CHALLENGER, True, 12.0) is None
    for i in range(10):  # the slow tail: the window's p99 becomes 40 ms = 4 x
        d = ctl.record(CHALLENGER, True, 40.0) or d
    assert d.rollback and "4.00 x champion p99 10.0 ms > max_p99_ratio 1.5" in d.reason
    # the ratio is not judged before the champion has min_requests itself
    ctl = RolloutController(RolloutConfig(mode="canary", max_error_rate=None, max_p99_ratio=1.5, min_requests=50))
    ctl.record(CHAMPION, True, 1.0)
    for i in range(60):
        assert ctl.record(CHALLENGER, True, 100.0) is None


def test_canary_answers_by_the_challenger_for_its_share():
    r = rollout({"mode": "canary", "share": 0.3, "min_requests": 10})
    items = [{"best": f"u{i}"} for i in range(400)]
    keys = [f"t{i}" for i in range(400)]
    out = asyncio.run(r.score(items, keys, run))
    assert [o["recommended_user"] for o in out] == [f"u{i}" for i in range(400)]  # in order
    by_ch = [o["model_version"] == "2" for o in out]
    assert by_ch == [r.controller.share_of(k) < 0.3 for k in keys]
    assert 0.22 < sum(by_ch) / 400 < 0.38
    st = r.state()
    assert st["stats"][CHALLENGER]["count"] == sum(by_ch) and st["stats"][CHAMPION]["count"] == 400 - sum(by_ch)
    assert r.info()["rollout"] == {"mode": "canary", "challenger_version": "2", "rolled_back": False}


@pytest.mark.parametrize("fail", ["raise", "500"])
def test_canary_challenger_failure_falls_back_to_champion_and_counts(fail):
    r = rollout({"mode": "canary", "share": 0.5, "min_requests": 30, "max_error_rate": 0.05}, {"fail": fail})
    items = [{"best": f"u{i}"} for i in range(40)]
    keys = [f"t{i}" for i in range(40)]
    out = asyncio.run(r.score(items, keys, run))
    n_ch = sum(r.controller.share_of(k) < 0.5 for k in keys)
    assert all(o["model_version"] == "1" and "error" not in o for o in out)  # every request answered
    assert [o["recommended_user"] for o in out] == [f"u{i}" for i in range(40)]
    st = r.state()
    assert st["stats"][CHALLENGER]["errors"] == n_ch and st["stats"][CHAMPION]["count"] == 40
    if n_ch >= 30:  # rolled back within the batch, after min_requests
        assert st["mode"] == "off"
    more = asyncio.run(r.score(items * 2, keys * 2, run))
    assert all(o["model_version"] == "1" for o in more)
    assert r.state()["mode"] == "off" and r.challenger is None
    ev = r.state()["events"][0]
    assert ev["challenger"]["error_rate"] == 1.0 and ev["challenger"]["count"] == 30


def test_shadow_never_changes_the_answer(tmp_path):
    plain = FakeModel()
    r = rollout({"mode": "shadow", "min_requests": 5, "max_error_rate": 0.5}, {"user": "u0"}, tmp_path)
    items = [{"best": f"u{i}"} for i in range(20)]
    keys = [f"t{i}" for i in range(20)]

    async def go():
        out = await r.score(items, keys, run)
        assert r.challenger.calls == 0  # the challenger runs after the answers are handed back
        await r.drain()
        return out

    out = asyncio.run(go())
    assert out == plain.answer(items)  # exactly the champion's answers
    st = r.state()
    assert st["mode"] == "shadow" and st["stats"][CHALLENGER]["count"] == 20
    assert st["shadow"]["compared"] == 20 and st["shadow"]["agreed"] == 1  # only u0 agrees
    lines = (tmp_path / "fake.shadow.jsonl").read_text().splitlines()
    assert len(lines) == 20 and json.loads(lines[0])["challenger"]["recommended_user"] == "u0"


def test_shadow_challenger_errors_roll_back_without_touching_answers():
    r = rollout({"mode": "shadow", "min_requests": 10, "max_error_rate": 0.05}, {"fail": "raise"})
    items = [{"best": f"u{i}"} for i in range(12)]

    async def go():
        out = await r.score(items, [None] * 12, run)
        await r.drain()
        return out

    out = asyncio.run(go())
    assert all(o["model_version"] == "1" for o in out)
    st = r.state()
    assert st["mode"] == "off" and st["events"][0]["mode"] == "shadow" and r.challenger is None


def test_reconfigure_off_keeps_history_and_rejects_the_champion_as_challenger():
    r = rollout({"mode": "canary", "share": 1.0, "min_requests": 1, "max_error_rate": 0.0}, {"fail": "500"})
    asyncio.run(r.score([{"best": "a"}], ["k"], run))
    assert r.state()["mode"] == "off" and len(r.state()["events"]) == 1
    r.reconfigure({"rollout": {"mode": "off"}})
    assert r.state()["mode"] == "off" and len(r.state()["events"]) == 1
    with pytest.raises(SundayError, match="the champion itself"):
        r.reconfigure({"rollout": {"mode": "canary", "challenger": {"version": "1"}}})
    r.reconfigure({"rollout": {"mode": "shadow", "challenger": {"version": "2"}}})
    assert r.state()["mode"] == "shadow" and r.state()["challenger_version"] == "2"
    assert len(r.state()["events"]) == 1


def test_assignment_key():
    assert assignment_key({"task": {"task_id": "T-9"}}, "rid") == "T-9"
    assert assignment_key({"task": {"task_id": "new-task"}}, "rid") == "rid"
    assert assignment_key({"rollout_key": "x", "task": {"task_id": "T-9"}}) == "x"
    assert assignment_key({"task": {}}) is None


def test_serve_config_rollout_parses():
    """The rollout documented in serve_apps/serve_config.yaml is a valid RolloutConfig (a bare YAML `off` too)."""
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "serve_apps" / "serve_config.yaml").read_text())
    app = next(a for a in cfg["applications"] if a["name"] == "sunday")
    uc = next(d for d in app["deployments"] if d["name"] == "Assignment")["user_config"]
    assert set(uc) == {"alias", "rollout"}
    assert RolloutConfig.from_dict(uc["rollout"]).mode == "off"
    assert RolloutConfig.from_dict(yaml.safe_load("mode: off")).mode == "off"


def test_one_replicas_rollback_rolls_back_every_replica(tmp_path):
    """Two replicas (two ModelRollouts on one state folder): replica A's challenger fails and rolls back; replica B,
    which saw no error, reads A's event and rolls back too; a replica started later with the same config starts
    rolled back; a changed config (another salt) is a new rollout and is not."""
    config = {"mode": "canary", "share": 1.0, "challenger": {"alias": "challenger"}, "min_requests": 5,
              "window": 20, "sync_s": 0}
    a = rollout(config, {"fail": "500"}, tmp_path)
    b = rollout(config, None, tmp_path)
    assert a.controller.rollout_id == b.controller.rollout_id and b.controller.active
    keys = [f"k{i}" for i in range(10)]
    items = [{"best": "x"} for _ in keys]
    out = asyncio.run(a.score(items, keys, run))
    assert all(r["model_version"] == "1" for r in out)  # the challenger's 500s were answered by the champion
    assert a.controller.mode == "off" and a.challenger is None
    event = json.loads((tmp_path / "fake.events.jsonl").read_text().splitlines()[-1])
    assert event["rollout_id"] == a.controller.rollout_id and event["replica"]
    out = asyncio.run(b.score(items, keys, run))  # replica B: no error of its own
    assert b.controller.mode == "off" and b.challenger is None
    assert all(r["model_version"] == "1" for r in out)
    assert b.controller.events[-1].reason.startswith("rolled back by replica ")
    assert "error rate" in b.controller.events[-1].reason
    lines = (tmp_path / "fake.events.jsonl").read_text().splitlines()
    assert len(lines) == 1  # B did not echo the event
    late = rollout(config, None, tmp_path)  # a replica that starts after the rollback
    assert late.controller.mode == "off" and late.challenger is None and late.controller.events
    fresh = rollout({**config, "salt": "attempt-2"}, None, tmp_path)  # a new rollout of the same versions
    assert fresh.controller.active and fresh.challenger is not None


def test_rollback_sync_is_rate_limited(tmp_path):
    ctl = RolloutController(RolloutConfig(mode="canary", share=0.5, sync_s=3600), "fake", "1", "2", tmp_path)
    other = RolloutController(RolloutConfig(mode="canary", share=0.5, sync_s=3600), "fake", "1", "2", tmp_path)
    for _ in range(60):
        other.record(CHALLENGER, False, 1.0)
    assert other.mode == "off"
    ctl.route("k")  # read at start; the next read is an hour away
    assert ctl.mode == "canary"
    assert ctl.sync(force=True) is not None and ctl.mode == "off"
