"""Monitoring on the served state: the plain API logs its assign-task and score-priority answers to the prediction
log (a failing log never fails a request), and the drift job over those logged rows -- a training reference from a
first phase of ordinary requests, then requests with an injected shift (big, critical, skill-heavy tasks) --
flags the shifted columns, logs the drift to MLflow, writes the .prom file and the HTML report, and records the
pipeline call it would start (dry run)."""

from __future__ import annotations

import time

import pytest

from tests.model.conftest import auth, make_client

pytestmark = pytest.mark.timeout(900)
URL = "/api/v1/ml"


@pytest.fixture(scope="module")
def api(served, tmp_path_factory):
    from sunday.monitoring.predictions import PredictionLog
    from sunday.serving.directory import _table
    from sunday.serving.launch import sample_requests

    settings, sim_path = served
    client, ctx = make_client(settings, sim_path, nlp=False, timeline=False, anomaly=False)
    assert type(ctx.extra["predictions"]).__name__ == "PredictionLog"  # build_local_context creates it
    ctx.extra["predictions"].close()
    # this module's own log: other tests of the session also log to the state's default one
    ctx.extra["predictions"] = PredictionLog(tmp_path_factory.mktemp("monitor") / "predictions.db", flush_s=0.05)
    sample = sample_requests(settings, "demo")
    keys = {role: auth(ctx.keys.create(sample["workspace_id"], role)[1]) for role in ("viewer", "member")}
    tasks = _table(sim_path, "tasks", ["task_id", "workspace_id"])
    ids = tasks.loc[tasks["workspace_id"] == sample["workspace_id"], "task_id"].astype(str).tolist()
    yield {"client": client, "ctx": ctx, "settings": settings, "sample": sample, "keys": keys, "task_ids": ids}
    ctx.extra["predictions"].close()


def assign(api, i: int, shifted: bool) -> dict:
    cands = api["sample"]["candidates"]
    if shifted:
        task = {"title": f"Migrate the billing platform {i}", "description": "rewrite, data migration, rollout",
                "required_skills": ["python", "sql", "devops", "security", "frontend"], "story_points": 13 + i % 8,
                "priority": "critical"}
        cands = cands[:4]
    else:
        task = {"title": f"Fix a small bug {i}", "description": "typo in the settings page",
                "required_skills": ["python"], "story_points": 1 + i % 3, "priority": ["low", "medium"][i % 2]}
        cands = cands[:12]
    r = api["client"].post(f"{URL}/assign-task", json={"task": task, "candidates": cands, "explain": False},
                           headers=api["keys"]["member"])
    assert r.status_code == 200, r.text
    return r.json()


def test_api_logs_predictions_and_a_failing_log_does_not_fail(api):
    log = api["ctx"].extra["predictions"]
    out = assign(api, 0, shifted=False)
    r = api["client"].post(f"{URL}/score-priority", json={"task_ids": api["task_ids"][:5]},
                           headers=api["keys"]["viewer"])
    assert r.status_code == 200, r.text
    assert log.flush(10)
    rows = log.read("task_assignment")
    assert len(rows) == len(out["alternatives"]) and rows["version"].iloc[0] == out["model_version"]
    assert rows["pred_score"].tolist() == pytest.approx([a["score"] for a in out["alternatives"]])
    assert rows["task_story_points"].iloc[0] == 1 and rows["rank"].tolist() == list(range(1, len(rows) + 1))
    pr = log.read("priority_scorer")
    assert len(pr) == 5 and set(pr["pred_priority"]) <= {"low", "medium", "high", "critical"}

    class Failing:
        def submit(self, *a, **k):
            raise RuntimeError("prediction log down")

    ctx = api["ctx"]
    ctx.extra["predictions"] = Failing()
    try:
        before = ctx.extra.get("prediction_log_errors", 0)
        assign(api, 1, shifted=False)  # still 200
        assert ctx.extra["prediction_log_errors"] == before + 1
    finally:
        ctx.extra["predictions"] = log


def test_drift_job_flags_an_injected_shift(api):
    import mlflow
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.monitoring.drift import DriftConfig
    from sunday.monitoring.job import MonitorConfig, prom_path, run_monitor
    from sunday.monitoring.reference import save_reference

    settings, log = api["settings"], api["ctx"].extra["predictions"]
    for i in range(12):  # phase 1: the "training" distribution
        assign(api, i, shifted=False)
    assert log.flush(10)
    phase1 = log.read("task_assignment")
    version = str(phase1["version"].iloc[-1])
    save_reference(settings, "task_assignment", version, phase1, source="test: phase 1 of the served requests")
    split = time.time()
    time.sleep(0.05)
    for i in range(20):  # phase 2: shifted tasks
        assign(api, i, shifted=True)
    assert log.flush(10)
    now = time.time() + 1
    config = MonitorConfig(models=("task_assignment", "priority_scorer"), window_hours=(now - split) / 3600,
                           min_rows=40, drift=DriftConfig(min_rows=30), trigger=False, cooldown_hours=0)
    res = run_monitor(settings, config, log=log, now=now)
    m = {x.model: x for x in res.models}["task_assignment"]
    assert m.status == "drift", m.line()
    assert m.reference == f"training reference v{version}" and m.report.rows_current == 80
    drifted = set(m.report.drifted_features)
    assert {"task_story_points", "task_priority", "task_n_skills", "n_candidates"} <= drifted, m.line()
    table = m.report.table().set_index("feature")
    assert table.loc["task_story_points", "psi"] > 1.0
    assert m.trigger["status"] == "dry-run" and "task_assignment" in m.trigger["would_call"]
    assert {x.model: x for x in res.models}["priority_scorer"].status == "skipped"  # 5 + 0 rows: too few
    # MLflow: the run's metrics and artifacts
    tracking.configure(settings)
    run = MlflowClient().get_run(m.run_id)
    assert run.data.metrics["drift_share"] == pytest.approx(m.report.drift_share)
    assert run.data.metrics["psi.task_story_points"] == pytest.approx(table.loc["task_story_points", "psi"])
    assert run.data.tags["model"] == "task_assignment" and run.data.tags["drifted"] == "true"
    arts = {a.path for a in MlflowClient().list_artifacts(m.run_id)}
    assert {"drift_table.csv", "drift_summary.json", "report"} <= arts
    assert mlflow.get_experiment(run.info.experiment_id).name == "monitoring"
    # Prometheus textfile and the HTML report
    prom = prom_path(settings).read_text()
    assert f'sunday_drift_score{{model="task_assignment",version="{version}"}}' in prom
    assert 'sunday_drift_detected{model="task_assignment"} 1' in prom
    assert m.html and "<html" in open(m.html).read().lower()
    print(f"\n{m.line()}\nHTML: {m.html_engine} {m.html_note}")
    print(m.report.table()[["feature", "psi", "p_value", "drifted"]].to_string())
