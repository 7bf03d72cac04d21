"""The timeline sweep (Ray Tune + Optuna + ASHA), tiny: 2 trials of 2 epochs on a small simulated workspace."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]


def test_tiny_sweep_reports_every_epoch_and_saves_usable_params(ray_session, tmp_path):
    from sunday.data.simulator import SimConfig, simulate_tables
    from sunday.models.timeline.data import build_snapshots, split_projects
    from sunday.models.timeline.train import TimelineTrainConfig
    from sunday.models.timeline.tuning import METRIC, SweepConfig, sweep
    from sunday.sweeps import save_best

    snap = build_snapshots(simulate_tables(SimConfig(n_events=25_000, seed=3)), cut_every=7)
    tr, _holdout = split_projects(snap, 0.3, seed=0)
    train = snap.take(tr)  # the sweep only ever gets the job's training projects
    result = sweep(train, SweepConfig(num_samples=2, max_epochs=2, grace_epochs=1, max_concurrent=2, seed=0),
                   storage_path=tmp_path / "ray_results")

    assert len(result["trials"]) == 2
    for t in result["trials"]:
        assert t["error"] is None and np.isfinite(t[f"best_{METRIC}"]) and t[f"best_{METRIC}"] > 0
        assert 1 <= t["best_epoch"] <= t["epochs"] <= 2
        assert set(t["params"]) == {"hidden", "dropout", "lr", "risk_weight"}
    assert result[f"best_{METRIC}"] == min(t[f"best_{METRIC}"] for t in result["trials"])
    assert result["n_inner_projects"] + result["n_val_projects"] == train.meta["project_id"].nunique()

    path = save_best(result, tmp_path / "tune" / "timeline_best.json")
    best = json.loads(path.read_text())
    assert best == result["best_params"] and best["static_hidden"] == best["hidden"]
    cfg = TimelineTrainConfig(overrides=best).model_config()  # the job accepts the sweep's output as --params
    assert cfg.hidden == best["hidden"] and cfg.epochs == best["epochs"]
