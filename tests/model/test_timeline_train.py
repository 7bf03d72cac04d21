"""The timeline job end to end on a small simulated workspace: snapshots -> train -> MLflow gate -> pyfunc.

One 30k-event simulation (no feature platform: the forecaster computes project_velocity itself), the local trainer
and a few epochs keep it well under a minute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sunday.errors import SundayError


def _quiet(*_):
    return None


@pytest.mark.timeout(180)  # ~35 s alone on 2 cores; MLflow's model logging dominates and varies with load
def test_train_register_gate_and_pyfunc(settings):
    import mlflow
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.data.pipeline import run_simulation
    from sunday.models.timeline.mlflow_model import input_frame, snapshot_project
    from sunday.models.timeline.train import MODEL_NAME, TimelineTrainConfig, train_timeline

    run_simulation(settings, events=30_000, seed=3, engine="local", name="t", progress=False)
    base = dict(sim_name="t", profile="quick", cut_every=7, seed=0)
    first = train_timeline(settings, TimelineTrainConfig(**base, overrides={"epochs": 6, "hidden": 16,
                                                                            "static_hidden": 16}), log=_quiet)
    m = first.metrics
    assert first.n_train_projects >= 10 and first.n_holdout_projects >= 3
    for key in ("mae_days", "coverage_p10_p90", "burndown_mae_days", "monte_carlo_mae_days", "mae_vs_burndown"):
        assert np.isfinite(m[key]), key
    assert 0 <= m["coverage_p10_p90"] <= 1 and "early_warning_recall" in m and "burndown_early_warning_recall" in m
    assert first.version == "1" and first.promotion.promoted and first.promotion.reason == "first champion"
    # the per-epoch loss history and the params are in the run
    client = MlflowClient()
    assert len(client.get_metric_history(first.run_id, "train_loss")) == 6
    run = client.get_run(first.run_id)
    assert run.data.params["model.epochs"] == "6" and run.data.params["model.hidden"] == "16"

    # a much smaller, shorter-trained model: a challenger; champion moves only if its holdout MAE is lower
    second = train_timeline(settings, TimelineTrainConfig(**base, overrides={"epochs": 1, "hidden": 4,
                                                                             "static_hidden": 4}), log=_quiet)
    p = second.promotion
    assert second.version == "2" and p.champion_version == "1" and p.metric == "mae_days"
    assert len(second.holdout) == len(first.holdout)  # same holdout snapshots
    assert p.champion_score == pytest.approx(first.metrics["mae_days"], rel=1e-6)  # champion re-scored on them
    assert p.promoted == (second.metrics["mae_days"] < first.metrics["mae_days"])
    assert tracking.alias_version(MODEL_NAME, "challenger") == "2"
    assert tracking.alias_version(MODEL_NAME, "champion") == ("2" if p.promoted else "1")

    # the champion as a pyfunc, from the registry: finite dates for holdout projects
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    rows = [0, len(first.holdout) // 2, len(first.holdout) - 1]
    out = model.predict(input_frame([snapshot_project(first.holdout, i) for i in rows]))
    assert len(out) == 3
    for col in ("expected", "best", "worst"):
        assert pd.to_datetime(out[col]).notna().all()
    assert (pd.to_datetime(out["best"]) <= pd.to_datetime(out["expected"])).all()
    assert (pd.to_datetime(out["expected"]) <= pd.to_datetime(out["worst"])).all()
    assert np.isfinite(out[["p10_days", "p50_days", "p90_days", "delay_days"]].to_numpy()).all()
    assert set(out["risk_class"]) <= {"on_track", "minor_delay", "major_delay", "at_risk"}
    with pytest.raises(SundayError, match="row 0: .*no history"):
        model.predict(pd.DataFrame({"project": ['{"planned_end": "2024-03-01"}']}))


def test_bad_override_names_the_setting():
    from sunday.models.timeline.train import TimelineTrainConfig

    with pytest.raises(SundayError, match="'hiddn'"):
        TimelineTrainConfig(overrides={"hiddn": 32})
    with pytest.raises(SundayError, match="'dropout'"):
        TimelineTrainConfig(overrides={"dropout": "lots"})
    with pytest.raises(SundayError, match="'epochs'"):
        TimelineTrainConfig(overrides={"epochs": 0})
    with pytest.raises(SundayError, match="'seed'.*--seed"):
        TimelineTrainConfig(overrides={"seed": 3})
    with pytest.raises(SundayError, match="--profile"):
        TimelineTrainConfig(profile="huge")
    cfg = TimelineTrainConfig(profile="quick", seed=5, overrides={"hidden": "48", "lr": 0.002})
    mc = cfg.model_config()
    assert (mc.hidden, mc.lr, mc.seed, mc.epochs) == (48, 0.002, 5, 25)


def test_too_few_projects_is_a_clear_error(settings):
    from sunday.data.pipeline import run_simulation
    from sunday.models.timeline.train import TimelineTrainConfig, train_timeline

    run_simulation(settings, events=3_000, seed=3, engine="local", name="tiny", progress=False)
    with pytest.raises(SundayError, match=r"simulation 'tiny' has only \d+ eligible project"):
        train_timeline(settings, TimelineTrainConfig(sim_name="tiny"), log=_quiet)
    with pytest.raises(SundayError, match="no simulation named 'nope'"):
        train_timeline(settings, TimelineTrainConfig(sim_name="nope"), log=_quiet)
