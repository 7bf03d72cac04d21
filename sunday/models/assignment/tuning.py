"""Ray Tune sweep of the LambdaMART ranker: Optuna search, ASHA early stopping, tracked in MLflow.

The sweep never sees the job's holdout: it splits the *training* decisions by time once more (the latest
``val_fraction`` validate). Each trial grows a LightGBM lambdarank model and reports validation NDCG@1 (= top-1
accuracy: one relevant candidate per task) and NDCG@3 every ``report_every`` boosting rounds; ASHA stops the weak
trials early on that curve, Optuna proposes the next configuration from the finished ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METRIC = "ndcg@1"


@dataclass
class SweepConfig:
    num_samples: int = 12
    max_rounds: int = 400
    report_every: int = 25
    grace_reports: int = 2  # ASHA grace period, in reports
    val_fraction: float = 0.2
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    seed: int = 0


def search_space() -> dict[str, Any]:
    from ray import tune

    return {
        "learning_rate": tune.loguniform(0.01, 0.2),
        "num_leaves": tune.randint(7, 64),
        "min_child_samples": tune.randint(5, 100),
        "colsample_bytree": tune.uniform(0.5, 1.0),
        "subsample": tune.uniform(0.5, 1.0),
        "reg_lambda": tune.loguniform(1e-3, 10.0),
    }


def _trainable(params: dict[str, Any], data: dict[str, Any], max_rounds: int, report_every: int, seed: int) -> None:
    import lightgbm as lgb
    from ray import tune

    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=max_rounds, subsample_freq=1, random_state=seed,
                           n_jobs=1, verbose=-1, **params)

    def report(env) -> None:
        it = env.iteration + 1
        if it % report_every == 0 or it == max_rounds:
            scores = {name: float(value) for _, name, value, _ in env.evaluation_result_list}
            tune.report({METRIC: scores.get("ndcg@1", float("nan")), "ndcg@3": scores.get("ndcg@3", float("nan")),
                         "rounds": it})

    model.fit(data["X"], data["y"], group=data["group"], eval_set=[(data["Xv"], data["yv"])],
              eval_group=[data["groupv"]], eval_at=[1, 3], callbacks=[report])


def sweep(train, config: SweepConfig | None = None, storage_path: Path | None = None) -> dict[str, Any]:
    """Run the sweep on ``train`` (an AssignmentData); returns best params, its score and every trial."""
    from sunday.sweeps import asha_optuna_fit

    from sunday.models.assignment.dataset import time_split
    from sunday.models.assignment.pairs import group_sizes, pair_features

    config = config or SweepConfig()
    inner, val = time_split(train, config.val_fraction)

    def arrays(d) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (pair_features(d.pairs).to_numpy(), d.assigned.astype(int), group_sizes(d.pairs["task_id"]))

    X, y, g = arrays(inner)
    Xv, yv, gv = arrays(val)
    data = {"X": X, "y": y, "group": g, "Xv": Xv, "yv": yv, "groupv": gv}
    results = asha_optuna_fit(_trainable, data, config.cpus_per_trial, search_space(), METRIC, "max",
                              max(1, config.max_rounds // config.report_every), config.grace_reports,
                              config.num_samples, config.max_concurrent, config.seed, "assignment-sweep", storage_path,
                              max_rounds=config.max_rounds, report_every=config.report_every, seed=config.seed)
    best = results.get_best_result(metric=METRIC, mode="max", scope="all")
    trials = []
    for r in results:
        if r.metrics is None:
            continue
        df = r.metrics_dataframe
        best_val = float(df[METRIC].max()) if df is not None and METRIC in df else float("nan")
        trials.append({"params": r.config, "best_" + METRIC: best_val,
                       "rounds": int(r.metrics.get("rounds", 0)), "error": None if r.error is None else str(r.error)})
    df = best.metrics_dataframe
    best_row = df.loc[df[METRIC].idxmax()]
    params = dict(best.config)
    params["n_estimators"] = int(best_row["rounds"])
    return {"best_params": params, "best_" + METRIC: float(best_row[METRIC]), "trials": trials,
            "n_inner_tasks": inner.n_tasks, "n_val_tasks": val.n_tasks,
            "stopped_early": sum(t["rounds"] < config.max_rounds for t in trials)}
