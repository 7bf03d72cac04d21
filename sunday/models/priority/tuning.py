"""Ray Tune sweep of the priority scorer's XGBoost settings: Optuna search, ASHA early stopping.

Data: the job's *training* period only (tasks whose features were cut before the job's split, ``train_fraction`` of
the creation-time range, as :mod:`sunday.models.priority.job`); inside it a second time split (``val_fraction``:
the last share of those tasks) is the validation set, so the job's holdout never enters. Each trial boosts up to
``max_rounds`` trees and reports the validation macro-F1 every ``report_every`` rounds (XGBoost callback); ASHA
stops the weak trials on that curve, Optuna proposes the next configuration. The best trial's settings (with its
best round count as ``n_estimators``) are what ``train_jobs/priority.py --params`` takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

METRIC = "macro_f1"


@dataclass(frozen=True)
class PrioritySweepConfig:
    num_samples: int = 12
    max_rounds: int = 400
    report_every: int = 25
    grace_reports: int = 2
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    train_fraction: float = 0.7  # the job's split: only the period before it is swept on
    val_fraction: float = 0.8  # inner split of that period: the last 20% validates
    seed: int = 0


def search_space() -> dict[str, Any]:
    from ray import tune

    return {
        "learning_rate": tune.loguniform(0.01, 0.3),
        "max_depth": tune.randint(2, 9),
        "min_child_weight": tune.loguniform(0.5, 50.0),
        "subsample": tune.uniform(0.5, 1.0),
        "colsample_bytree": tune.uniform(0.4, 1.0),
        "reg_lambda": tune.loguniform(1e-2, 20.0),
        "class_weight_power": tune.uniform(0.0, 1.0),
    }


def sweep_data(tables: Any, train_fraction: float, val_fraction: float, horizon_hours: float = 24.0
               ) -> dict[str, Any]:
    """Features and labels of the job's training period, split into inner-train / validation by time."""
    from sunday.evaluation.priority_sim import time_split
    from sunday.models.priority.features import priority_features, priority_labels

    X = priority_features(tables, horizon_hours=horizon_hours)
    y = priority_labels(tables, X["task_id"]).to_numpy(np.float64)
    train, _test, _split = time_split(X, train_fraction)
    keep = train & ~np.isnan(y)
    Xt, yt = X[keep].reset_index(drop=True), y[keep].astype(np.int64)
    inner, val, split = time_split(Xt, val_fraction)
    return {"X": Xt[inner].reset_index(drop=True), "y": yt[inner], "Xv": Xt[val].reset_index(drop=True),
            "yv": yt[val], "split": str(split)}


def _trainable(params: dict[str, Any], data: dict[str, Any], max_rounds: int, report_every: int, seed: int) -> None:
    import xgboost as xgb
    from ray import tune
    from sklearn.metrics import f1_score

    from sunday.models.priority.scorer import PriorityConfig, PriorityScorer, check_features

    cfg = PriorityConfig(**{**params, "n_estimators": max_rounds, "seed": seed, "n_jobs": 1})
    model = PriorityScorer(cfg)
    Xval = check_features(data["Xv"]).to_numpy(np.float64)

    class Report(xgb.callback.TrainingCallback):
        def after_iteration(self, booster, epoch, evals_log) -> bool:
            rounds = epoch + 1
            if rounds % report_every == 0 or rounds == max_rounds:
                p = booster.inplace_predict(Xval)
                f1 = float(f1_score(data["yv"], np.asarray(p).argmax(axis=1), average="macro",
                                    labels=[0, 1, 2, 3], zero_division=0))
                tune.report({METRIC: f1, "rounds": rounds})
            return False

    model.fit(data["X"], data["y"], callbacks=[Report()])


def sweep(tables: Any, config: PrioritySweepConfig | None = None, storage_path: Path | None = None
          ) -> dict[str, Any]:
    """Run the sweep; returns the best settings, their validation macro-F1 and every trial."""
    from sunday.sweeps import asha_optuna_fit

    config = config or PrioritySweepConfig()
    data = sweep_data(tables, config.train_fraction, config.val_fraction)
    results = asha_optuna_fit(_trainable, data, config.cpus_per_trial, search_space(), METRIC, "max",
                              max(1, config.max_rounds // config.report_every), config.grace_reports,
                              config.num_samples, config.max_concurrent, config.seed, "priority-sweep", storage_path,
                              max_rounds=config.max_rounds, report_every=config.report_every, seed=config.seed)
    trials = []
    for r in results:
        df = r.metrics_dataframe
        if df is None or METRIC not in df:
            trials.append({"params": r.config, f"best_{METRIC}": float("nan"), "rounds": 0,
                           "error": None if r.error is None else str(r.error)})
            continue
        row = df.loc[df[METRIC].idxmax()]
        trials.append({"params": r.config, f"best_{METRIC}": float(row[METRIC]), "rounds": int(row["rounds"]),
                       "rounds_run": int(df["rounds"].max()), "error": None if r.error is None else str(r.error)})
    ok = [t for t in trials if np.isfinite(t[f"best_{METRIC}"])]
    if not ok:
        raise RuntimeError(f"every priority sweep trial failed: {[t['error'] for t in trials][:3]}")
    best = max(ok, key=lambda t: t[f"best_{METRIC}"])
    params = {**best["params"], "n_estimators": best["rounds"]}
    return {"best_params": params, f"best_{METRIC}": best[f"best_{METRIC}"], "trials": trials,
            "n_inner": len(data["y"]), "n_val": len(data["yv"]), "val_split": data["split"],
            "stopped_early": sum(t.get("rounds_run", 0) < config.max_rounds for t in ok), "config": asdict(config)}
