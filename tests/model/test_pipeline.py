"""The pipeline end to end in process on a small simulation (no Ray: personalization_cf is not in it): stop after
``train`` and resume without retraining, a gated promotion (first champion), a refused one (a deliberately worse
model: the no-drop check fails and names itself; champion untouched), the verdicts in MLflow and the JSON state."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.timeout(600)]


def test_pipeline_resume_promote_and_refuse(settings):
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.pipeline import PipelineConfig, run_pipeline

    quiet = lambda *_a, **_k: None  # noqa: E731
    models = ["priority_scorer", "workload_predictor"]
    first = run_pipeline(settings, PipelineConfig(models=models, profile="quick", reason="test: first",
                                                  events=20_000, stop_after="train"), log=quiet)
    assert first.stopped_after == "train" and {v.status for v in first.verdicts.values()} == {"pending"}
    assert (first.run_dir / "priority_scorer" / "train.json").is_file()
    assert (first.run_dir / "priority_scorer" / "model").is_dir()
    tracking.configure(settings)
    assert tracking.alias_version("priority_scorer", "champion") is None  # nothing registered yet

    resumed = run_pipeline(settings, PipelineConfig(resume=first.run_id), log=quiet)
    assert resumed.run_id == first.run_id and resumed.mlflow_run_id == first.mlflow_run_id
    for name in models:  # the trained models were reused, not retrained
        assert resumed.steps[f"{name}/train"]["skipped"] is True
        assert resumed.steps[f"{name}/promote"]["skipped"] is False
        v = resumed.verdicts[name]
        assert v.status == "promoted" and v.version == "1", v.line
        assert tracking.alias_version(name, "champion") == "1" and tracking.alias_version(name, "challenger") == "1"
    assert resumed.reconfigure["summary"] == "no Ray dashboard: no Serve app to reconfigure"
    saved = json.loads((first.run_dir / "result.json").read_text())
    assert saved["verdicts"]["priority_scorer"]["status"] == "promoted"

    worse = run_pipeline(settings, PipelineConfig(
        models=["priority_scorer"], profile="quick", reason="test: worse", events=20_000,
        overrides={"priority_scorer": {"n_estimators": 2, "max_depth": 1}}), log=quiet)
    v = worse.verdicts["priority_scorer"]
    assert v.status == "refused" and "no_drop" in v.failed_checks, v.line
    assert v.version == "2" and v.champion_version == "1" and v.challenger_score < v.champion_score
    assert "gate refused: failed" in v.line and "no_drop: FAIL" in v.line
    assert tracking.alias_version("priority_scorer", "champion") == "1"      # champion untouched
    assert tracking.alias_version("priority_scorer", "challenger") == "2"
    mv = MlflowClient().get_model_version("priority_scorer", "2")
    assert mv.tags["gate"] == "refused" and "no_drop" in mv.tags["gate_failed"]
    gate_state = json.loads((worse.run_dir / "priority_scorer" / "gate.json").read_text())
    assert gate_state["status"] == "done" and gate_state["result"]["failed"] == v.failed_checks

    # the MLflow parent run and its nested step runs
    client = MlflowClient()
    parent = client.get_run(worse.mlflow_run_id)
    assert parent.data.tags["reason"] == "test: worse"
    nested = client.search_runs([parent.info.experiment_id],
                                f"tags.mlflow.parentRunId = '{worse.mlflow_run_id}'")
    assert {"extract", "validate", "priority_scorer/train", "priority_scorer/gate", "priority_scorer/promote"} <= {
        r.info.run_name for r in nested}


def test_resume_unknown_run(settings):
    from sunday.errors import SundayError
    from sunday.pipeline import PipelineConfig, run_pipeline

    with pytest.raises(SundayError, match="no pipeline run"):
        run_pipeline(settings, PipelineConfig(resume="nope"), log=lambda *_: None)
