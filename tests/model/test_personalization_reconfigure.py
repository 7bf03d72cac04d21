"""``PersonalizationService.reconfigure`` (the Serve ``Personalization`` deployment's ``user_config``, set by the
pipeline after a promotion): a registered version swaps in place, an alias is followed, the same version is not
reloaded, and bad configs name what is wrong without switching anything."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.timeout(300)]


def test_reconfigure_swaps_the_priority_model_in_place(settings, tmp_path):
    from sunday import tracking
    from sunday.data.pipeline import run_simulation
    from sunday.data.simulator.writer import read_simulation
    from sunday.errors import SundayError
    from sunday.features.platform import simulation_path
    from sunday.models.personalization.bandit_store import BanditStore
    from sunday.models.personalization.decisions import DecisionLog
    from sunday.models.personalization.service import PersonalizationService
    from sunday.models.priority.job import train_and_register
    from sunday.models.priority.scorer import PriorityConfig

    run_simulation(settings, events=8_000, seed=2, engine="local", name="t", progress=False)
    first = train_and_register(settings, "t", PriorityConfig(n_estimators=20), 0.7, register=True)
    second = train_and_register(settings, "t", PriorityConfig(n_estimators=5, max_depth=2), 0.7, register=True)
    assert (first.version, second.version) == ("1", "2")
    tracking.configure(settings)
    assert tracking.alias_version("priority_scorer", "champion") == "1"  # v2 is the challenger at most

    tables = read_simulation(simulation_path(settings, "t"))
    service = PersonalizationService(BanditStore(tmp_path / "b.sqlite"), DecisionLog(tmp_path / "d.sqlite"), None,
                                     tables)
    assert service.priority is None
    info = service.reconfigure({"champions": {"priority_scorer": "champion"}})  # follow an alias
    assert [(m["name"], m["version"], m["alias"]) for m in info] == [("priority_scorer", "1", "champion")]
    task = str(tables["tasks"]["task_id"][0])
    v1 = service.score_priority({"task_ids": [task], "explain": False})
    assert v1["model_version"] == "1"

    old = service.priority
    service.reconfigure({"champions": {"priority_scorer": "2"}})  # pin a version
    assert service.priority is not old and service.priority.version == "2"
    v2 = service.score_priority({"task_ids": [task], "explain": False})
    assert v2["model_version"] == "2"
    assert v2["scores"][0]["probabilities"] != v1["scores"][0]["probabilities"]  # another model answers
    assert old.version == "1"  # a request holding the old model finishes on it

    same = service.priority
    service.reconfigure({"champions": {"priority_scorer": 2}})
    assert service.priority is same  # already at version 2: not reloaded

    for bad, match in (({"champion": {}}, "unknown key"), ({"champions": ["priority_scorer"]}, "champions: must map"),
                       ({"champions": {"nope": "1"}}, "unknown model"),
                       ({"champions": {"priority_scorer": "99"}}, "version '99'"),
                       ({"champions": {"priority_scorer": "no-such-alias"}}, "no 'no-such-alias' version"),
                       ({"champions": {"priority_scorer": "1", "notification_ranker": "champion"}},
                        "notification_ranker")):
        with pytest.raises(SundayError, match=match):
            service.reconfigure(bad)
        assert service.priority is same  # nothing switched
