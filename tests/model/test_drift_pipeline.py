"""Drift-triggered retraining for real, in process: the pipeline registers priority_scorer and
notification_ranker with their training references (their holdout answers, shaped as the prediction log logs
them); served score-priority answers on a shifted request mix (tasks that are critical today) are logged; the
monitor compares them with the training reference, finds drift, starts the pipeline (no stub), which retrains and
gates the model; a second pass within the cooldown does not start it again."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.timeout(600)]


def test_drift_starts_the_pipeline(settings, tmp_path):
    import pyarrow.compute as pc

    from sunday.data.simulator.writer import read_simulation
    from sunday.features.platform import simulation_path
    from sunday.models.personalization.bandit_store import BanditStore
    from sunday.models.personalization.decisions import DecisionLog
    from sunday.models.personalization.service import PersonalizationService
    from sunday.monitoring.drift import DriftConfig
    from sunday.monitoring.job import MonitorConfig, run_monitor
    from sunday.monitoring.predictions import PredictionLog, prediction_rows
    from sunday.monitoring.reference import load_reference
    from sunday.pipeline import PipelineConfig, run_pipeline

    quiet = lambda *_a, **_k: None  # noqa: E731
    first = run_pipeline(settings, PipelineConfig(models=["priority_scorer", "notification_ranker"], profile="quick",
                                                  events=20_000, reason="test: first"), log=quiet)
    assert {v.status for v in first.verdicts.values()} == {"promoted"}, [v.line for v in first.verdicts.values()]
    for name, columns in (("priority_scorer", {"current_priority", "pred_priority", "pred_score", "pred_prob_low",
                                               "pred_prob_critical"}),
                          ("notification_ranker", {"type", "n_notifications", "pred_score"})):
        saved = json.loads((first.run_dir / name / "register.json").read_text())["result"]["reference"]
        assert saved["saved"] is True, saved
        ref, version = load_reference(settings, name, "1")
        assert version == "1" and columns <= set(ref.columns) and len(ref) == saved["rows"] > 100, ref.columns
    ref = load_reference(settings, "priority_scorer", "1")[0]
    ref_critical = (ref["pred_priority"] == "critical").mean()  # the holdout's own mix
    assert 0 < ref_critical < 0.3

    # serve v1 on the pipeline's simulation and log its answers to a shifted mix: only critical tasks
    tables = read_simulation(simulation_path(settings, json.loads((first.run_dir / "extract.json").read_text())["result"]["sim"]))
    service = PersonalizationService(BanditStore(tmp_path / "b.sqlite"), DecisionLog(tmp_path / "d.sqlite"), None,
                                     tables)
    service.reconfigure({"champions": {"priority_scorer": "champion"}})
    tasks = tables["tasks"]
    critical = tasks.filter(pc.equal(tasks["priority"], "critical"))["task_id"].to_pylist()[:300]
    log = PredictionLog(tmp_path / "predictions.db")
    start = time.time()
    for i in range(0, len(critical), 25):
        body = {"task_ids": critical[i:i + 25], "explain": False}
        answer = service.score_priority(body)
        log.append(prediction_rows("score-priority", "priority_scorer", answer["model_version"], body, answer))
    served = log.read("priority_scorer")
    assert len(served) == len(critical) and (served["pred_priority"] == "critical").mean() > 2 * ref_critical

    config = MonitorConfig(models=("priority_scorer",), window_hours=(time.time() - start) / 3600 + 0.01,
                           min_rows=100, drift=DriftConfig(min_rows=50), profile="quick", cooldown_hours=1,
                           html=False)
    res = run_monitor(settings, config, log=log)
    m = res.models[0]
    assert m.status == "drift" and m.reference == "training reference v1", m.line()
    assert {"current_priority", "pred_priority"} <= set(m.report.drifted_features), m.line()
    trig = m.trigger
    assert trig["status"] == "started" and trig["reason"].startswith("drift: priority_scorer v1"), trig
    assert trig["ok"] and trig["verdict"] in ("promoted", "refused") and trig["version"] == "2", trig

    print(f"\n{m.line()}\n{trig}")
    again = run_monitor(settings, config, log=log)  # within the cooldown: not started twice
    assert again.models[0].status == "drift" and again.models[0].trigger["status"] == "cooldown"
    log.close()
