"""What the Ray Tune sweeps share (``sunday.models.{assignment,priority,timeline}.tuning``): Optuna search under a
concurrency limit, ASHA early stopping, a named run under the state folder, and the best settings as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


def asha_optuna_fit(trainable: Callable, data: dict[str, Any], cpus_per_trial: float, space: dict[str, Any],
                    metric: str, mode: str, max_t: int, grace_period: int, num_samples: int, max_concurrent: int,
                    search_seed: int, name: str, storage_path: Path | None = None, **trainable_params: Any):
    """``tune.Tuner(...).fit()`` of ``trainable(params, data=..., **trainable_params)`` with ``cpus_per_trial``:
    ``num_samples`` Optuna trials (``max_concurrent`` at once, seeded with ``search_seed``), ASHA on ``training_iteration`` up to
    ``max_t`` reports (``grace_period`` first, halving); the ResultGrid."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    fn = tune.with_resources(tune.with_parameters(trainable, data=data, **trainable_params), {"cpu": cpus_per_trial})
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                              reduction_factor=2)
    search = ConcurrencyLimiter(OptunaSearch(seed=search_seed), max_concurrent=max_concurrent)
    run_config = tune.RunConfig(name=name, verbose=0,
                                storage_path=None if storage_path is None else str(Path(storage_path).resolve()))
    tuner = tune.Tuner(fn, param_space=space,
                       tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search, scheduler=scheduler,
                                                   num_samples=num_samples),
                       run_config=run_config)
    return tuner.fit()


def save_best(result: dict[str, Any], path: Path) -> Path:
    """Write a sweep's ``best_params`` as JSON (the training job's ``--params`` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result["best_params"], indent=2))
    return path
