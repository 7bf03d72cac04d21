"""Ray Tune sweep of the timeline forecaster: Optuna search, ASHA early stopping, tracked in MLflow.

The sweep never sees the job's holdout: it is given the job's *training* snapshots and splits their projects once
more (``val_fraction`` of them validate; whole projects on one side only). Each trial trains the network epoch by
epoch (the same loop as :func:`~sunday.models.timeline.forecaster.train_epochs`) and reports the validation MAE
(days) of p50 after every epoch with ``tune.report``; ASHA stops the weak trials early on that curve, Optuna
proposes the next configuration from the finished ones. Searched: ``hidden`` (= ``static_hidden``), ``dropout``,
``lr``, ``risk_weight``. The best configuration's ``epochs`` is the epoch where its validation MAE was lowest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

METRIC = "val_mae_days"
SEARCHED = ("hidden", "dropout", "lr", "risk_weight")


@dataclass
class SweepConfig:
    num_samples: int = 8
    max_epochs: int = 25
    grace_epochs: int = 3  # ASHA grace period, in epochs (= reports)
    val_fraction: float = 0.25
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    seed: int = 0
    base: dict[str, Any] | None = None  # fixed TimelineConfig settings (e.g. batch_size); searched keys win


def search_space() -> dict[str, Any]:
    from ray import tune

    return {
        "hidden": tune.choice([16, 32, 48, 64]),
        "dropout": tune.uniform(0.0, 0.35),
        "lr": tune.loguniform(1e-3, 1e-2),
        "risk_weight": tune.uniform(0.1, 0.6),
    }


def trial_config(params: dict[str, Any], base: dict[str, Any] | None, epochs: int, seed: int):
    from sunday.models.timeline.forecaster import TimelineConfig

    return TimelineConfig(**{**(base or {}), "hidden": int(params["hidden"]), "static_hidden": int(params["hidden"]),
                             "dropout": float(params["dropout"]), "lr": float(params["lr"]),
                             "risk_weight": float(params["risk_weight"]), "epochs": int(epochs), "seed": seed,
                             "threads": 1, "calibration_fraction": 0.0})


def validation_mae(net, data, scale: float) -> float:
    """MAE (days) of p50 of ``net`` on ``data`` (clipped at 0 like the forecaster's predictions)."""
    import torch

    net.eval()
    with torch.no_grad():
        q, _ = net(torch.from_numpy(data.series), torch.from_numpy(data.static))
    p50 = np.maximum(q.numpy()[:, 1], 0.0) * scale
    return float(np.abs(p50 - data.target * scale).mean())


def _trainable(params: dict[str, Any], data: dict[str, Any], max_epochs: int, seed: int,
               base: dict[str, Any] | None) -> None:
    import torch
    from ray import tune

    from sunday.models.timeline.forecaster import build_net, local_step, train_epochs

    torch.set_num_threads(1)
    cfg = trial_config(params, base, max_epochs, seed)
    net = build_net(cfg)

    def on_epoch(row: dict[str, Any]) -> None:
        mae = validation_mae(net, data["valid"], cfg.target_scale)
        tune.report({METRIC: mae, "train_loss": float(row["loss"]), "epochs": int(row["epoch"]) + 1})

    train_epochs(net, data["train"], cfg, local_step(net, cfg), on_epoch=on_epoch)


def sweep(train, config: SweepConfig | None = None, storage_path: Path | None = None) -> dict[str, Any]:
    """Run the sweep on ``train`` (the job's training Snapshots); returns best params, its score and every trial."""
    from sunday.sweeps import asha_optuna_fit

    from sunday.errors import SundayError
    from sunday.models.timeline.data import split_projects
    from sunday.models.timeline.forecaster import TimelineConfig, fit_stats, make_arrays

    config = config or SweepConfig()
    if config.num_samples < 1 or config.max_epochs < 1:
        raise SundayError("the sweep needs at least 1 trial and 1 epoch")
    if train.meta["project_id"].nunique() < 4:
        raise SundayError(f"the sweep needs at least 4 training projects, got {train.meta['project_id'].nunique()}")
    tr, va = split_projects(train, config.val_fraction, seed=config.seed + 17)
    inner, valid = train.take(tr), train.take(va)
    scale = float((config.base or {}).get("target_scale", TimelineConfig().target_scale))
    stats = fit_stats(inner.static)
    data = {"train": make_arrays(inner, stats, scale), "valid": make_arrays(valid, stats, scale)}
    results = asha_optuna_fit(_trainable, data, config.cpus_per_trial, search_space(), METRIC, "min",
                              config.max_epochs, max(1, min(config.grace_epochs, config.max_epochs)),
                              config.num_samples, config.max_concurrent, config.seed, "timeline-sweep", storage_path,
                              max_epochs=config.max_epochs, seed=config.seed, base=config.base)
    trials = []
    for r in results:
        df = r.metrics_dataframe
        if r.metrics is None or df is None or METRIC not in df or df[METRIC].isna().all():
            trials.append({"params": r.config, "best_" + METRIC: float("nan"), "best_epoch": 0, "epochs": 0,
                           "error": None if r.error is None else str(r.error)})
            continue
        row = df.loc[df[METRIC].idxmin()]
        trials.append({"params": {k: r.config[k] for k in SEARCHED}, "best_" + METRIC: float(row[METRIC]),
                       "best_epoch": int(row["epochs"]), "epochs": int(df["epochs"].max()),
                       "error": None if r.error is None else str(r.error)})
    scored = [t for t in trials if t["best_" + METRIC] == t["best_" + METRIC]]
    if not scored:
        errors = "; ".join(t["error"] for t in trials if t["error"]) or "no trial reported"
        raise SundayError(f"every sweep trial failed: {errors}")
    best = min(scored, key=lambda t: t["best_" + METRIC])
    p = best["params"]
    params = {"hidden": int(p["hidden"]), "static_hidden": int(p["hidden"]), "dropout": float(p["dropout"]),
              "lr": float(p["lr"]), "risk_weight": float(p["risk_weight"]), "epochs": best["best_epoch"]}
    return {"best_params": params, "best_" + METRIC: best["best_" + METRIC], "trials": trials,
            "n_inner_projects": int(inner.meta["project_id"].nunique()),
            "n_val_projects": int(valid.meta["project_id"].nunique()),
            "n_inner_snapshots": len(inner), "n_val_snapshots": len(valid), "max_epochs": config.max_epochs,
            "stopped_early": sum(0 < t["epochs"] < config.max_epochs for t in trials)}
