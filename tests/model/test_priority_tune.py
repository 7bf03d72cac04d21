"""The priority sweep on Ray Tune (Optuna + ASHA) on a small simulation: trials report the validation macro-F1,
the job's holdout never enters the sweep, and the best settings load into the job's config."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(600)


def test_priority_sweep(ray_session, tmp_path):
    import numpy as np

    from sunday.data.simulator import SimConfig, simulate_tables
    from sunday.models.priority.scorer import PriorityConfig
    from sunday.models.priority.tuning import METRIC, PrioritySweepConfig, sweep, sweep_data
    from sunday.sweeps import save_best

    tables = simulate_tables(SimConfig(n_events=30_000, seed=3))
    cfg = PrioritySweepConfig(num_samples=3, max_rounds=50, report_every=25, grace_reports=1, max_concurrent=1)
    data = sweep_data(tables, cfg.train_fraction, cfg.val_fraction)
    from sunday.evaluation.priority_sim import time_split
    from sunday.models.priority.features import priority_features

    X = priority_features(tables)
    _train, test, split = time_split(X, cfg.train_fraction)
    held = set(X.loc[test, "task_id"])
    assert not held & (set(data["X"]["task_id"]) | set(data["Xv"]["task_id"])), "the job's holdout leaked in"
    assert data["Xv"]["created_at"].min() >= data["X"]["created_at"].max() - np.timedelta64(1, "D")

    result = sweep(tables, cfg, storage_path=tmp_path / "ray_results")
    ok = [t for t in result["trials"] if np.isfinite(t[f"best_{METRIC}"])]
    assert len(ok) == 3
    assert all(0 < t[f"best_{METRIC}"] <= 1 for t in ok)
    assert result[f"best_{METRIC}"] == max(t[f"best_{METRIC}"] for t in ok)
    best = PriorityConfig.from_dict(result["best_params"])  # the job's --params accepts it
    assert best.n_estimators in (25, 50)
    assert save_best(result, tmp_path / "best.json").exists()
