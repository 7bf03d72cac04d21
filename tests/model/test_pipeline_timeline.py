"""Two more pipeline models in process on the quick profile. ``project_timeline`` on the quick simulation (30k
events: 24 eligible projects, 7 held out): a first champion (the registered model keeps the ``task_risk``
sub-folder the Serve Timeline deployment loads, and serves as a pyfunc), then a deliberately worse model (1 epoch,
hidden size 2) refused by the no-drop check, champion untouched. ``anomaly_lstm_ae`` on NAB's normal history (skipped
without the data): the same first champion / refused worse model. ~35-60 s on 2 cores (the Ray Train path is not run
here)."""

from __future__ import annotations

import json
import pickle

import pytest


def _quiet(*_a, **_k):
    return None


def test_timeline_spec_and_config():
    from sunday.pipeline import MODELS, PipelineConfig
    from sunday.pipeline.models import TrainContext, get_spec
    from sunday.pipeline.reconfigure import plan_user_configs

    assert "project_timeline" in MODELS
    spec = get_spec("project_timeline")
    assert (spec.name, spec.metric, spec.higher_is_better, spec.deployment, spec.ray_train) == (
        "project_timeline", "mae_days", False, "Timeline", True)
    assert spec.threshold({"mae_days": 9.0, "burndown_mae_days": 40.0}) == 40.0
    assert spec.threshold({}) is None
    assert PipelineConfig(models=["project_timeline"]).model_names == ["project_timeline"]
    assert plan_user_configs({"project_timeline": "3"})[0] == {"Timeline": {"version": "3"}}
    # a bad setting names itself before anything trains
    from sunday.errors import SundayError

    ctx = TrainContext(sim="nope", profile="quick", seed=0, settings={"hiddn": 4}, use_ray=False)
    with pytest.raises(SundayError, match="'hiddn'"):
        spec.train(None, ctx)


@pytest.mark.timeout(240)  # ~30 s alone on 2 cores; MLflow's model logging dominates and varies with load
def test_pipeline_timeline_promote_then_refuse_worse(settings):
    import mlflow
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.models.timeline.mlflow_model import input_frame, snapshot_project
    from sunday.models.timeline.train import TASK_RISK_DIR, load_task_risk
    from sunday.pipeline import PipelineConfig, run_pipeline

    base = dict(models=["project_timeline"], profile="quick", use_ray=False, reconfigure=False)
    first = run_pipeline(settings, PipelineConfig(**base, reason="test: first"), log=_quiet)
    v = first.verdicts["project_timeline"]
    assert v.status == "promoted" and v.version == "1" and v.metric == "mae_days", v.line
    train = json.loads((first.run_dir / "project_timeline" / "train.json").read_text())["result"]
    m = train["metrics"]
    assert train["info"]["trainer"] == "local" and train["info"]["n_holdout_projects"] >= 3
    assert v.challenger_score == pytest.approx(m["mae_days"], rel=1e-6)  # the evaluate step re-scores the same
    assert v.challenger_score <= m["burndown_mae_days"]                  # the threshold: the burn-down baseline
    assert v.gate["threshold_source"] == "the burn-down baseline's MAE (days)"
    assert v.challenger_p99_ms is not None and v.challenger_p99_ms > 0
    assert tracking.alias_version("project_timeline", "champion") == "1"
    # the holdout pickled for resuming; the registered folder keeps the task delay-risk model
    with open(first.run_dir / "project_timeline" / "holdout.pkl", "rb") as fh:
        hold = pickle.load(fh)
    assert len(hold) == train["info"]["n_holdout_snapshots"] > 0
    assert (first.run_dir / "project_timeline" / "model" / TASK_RISK_DIR).is_dir()
    folder = tracking.download_version("project_timeline", "1", settings.home / "dl")
    assert load_task_risk(folder) is not None
    out = mlflow.pyfunc.load_model("models:/project_timeline@champion").predict(
        input_frame([snapshot_project(hold, 0)]))
    assert len(out) == 1 and out["expected"].notna().all()

    worse = run_pipeline(settings, PipelineConfig(**base, reason="test: worse", overrides={
        "project_timeline": {"epochs": 1, "hidden": 2, "static_hidden": 2}}), log=_quiet)
    w = worse.verdicts["project_timeline"]
    assert w.status == "refused" and "no_drop" in w.failed_checks, w.line
    assert w.version == "2" and w.champion_version == "1" and w.challenger_score > w.champion_score
    assert w.champion_score == pytest.approx(v.challenger_score, rel=1e-6)  # the champion on the same holdout
    assert "no_drop: FAIL" in w.line
    assert tracking.alias_version("project_timeline", "champion") == "1"     # champion untouched
    assert tracking.alias_version("project_timeline", "challenger") == "2"
    mv = MlflowClient().get_model_version("project_timeline", "2")
    assert mv.tags["gate"] == "refused" and "no_drop" in mv.tags["gate_failed"]


def test_ae_spec():
    from sunday.pipeline.models import NO_SIMULATION, get_spec
    from sunday.pipeline.reconfigure import plan_user_configs

    spec = get_spec("anomaly_lstm_ae")
    assert (spec.metric, spec.higher_is_better, spec.deployment, spec.ray_train) == ("val_mse", False, None, True)
    assert spec.threshold({"val_mse": 1.0, "flat_val_mse": 1.8}) == 1.8
    assert "anomaly_lstm_ae" in NO_SIMULATION
    assert plan_user_configs({"anomaly_lstm_ae": "1"}) == ({}, ["anomaly_lstm_ae: no Serve deployment serves it"])


@pytest.mark.timeout(240)  # ~35 s alone on 2 cores (the quick profile: 8 epochs on 10k NAB windows, in process)
def test_pipeline_ae_promote_then_refuse_worse(settings, data_dir):
    if not (data_dir / "nab" / "data").is_dir():
        pytest.skip("NAB not present")
    from sunday import tracking
    from sunday.pipeline import PipelineConfig, run_pipeline

    settings = settings.model_copy(update={"data_dir": data_dir})
    base = dict(models=["anomaly_lstm_ae"], profile="quick", use_ray=False, reconfigure=False)
    first = run_pipeline(settings, PipelineConfig(**base, reason="test: first"), log=_quiet)
    v = first.verdicts["anomaly_lstm_ae"]
    assert v.status == "promoted" and v.version == "1", v.line
    train = json.loads((first.run_dir / "anomaly_lstm_ae" / "train.json").read_text())["result"]
    assert train["info"]["n_holdout_series"] >= 1 and train["info"]["data"] == "nab-probationary"
    assert v.challenger_score == pytest.approx(train["metrics"]["val_mse"], rel=1e-6)
    assert v.challenger_score < train["metrics"]["flat_val_mse"]  # beats the window-mean reconstruction
    with open(first.run_dir / "anomaly_lstm_ae" / "holdout.pkl", "rb") as fh:
        assert len(pickle.load(fh)) == train["info"]["n_holdout_series"]

    worse = run_pipeline(settings, PipelineConfig(**base, reason="test: worse", overrides={
        "anomaly_lstm_ae": {"epochs": 1, "hidden": 2, "latent": 2, "max_windows": 500}}), log=_quiet)
    w = worse.verdicts["anomaly_lstm_ae"]
    assert w.status == "refused" and "no_drop" in w.failed_checks, w.line
    assert w.champion_score == pytest.approx(v.challenger_score, rel=1e-6)
    assert tracking.alias_version("anomaly_lstm_ae", "champion") == "1"
    assert tracking.alias_version("anomaly_lstm_ae", "challenger") == "2"
