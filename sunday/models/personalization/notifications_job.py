"""Training, MLflow logging, registration and the champion gate of ``notification_ranker``
(what ``train_jobs/notifications.py`` runs).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_NAME = "notification_ranker"
EXPERIMENT = "notification-ranker"
GATE_METRIC = "ndcg_10_ips"


@dataclass
class NotifyJobConfig:
    sim_name: str | None = "demo"
    events: int = 200_000
    seed: int = 0
    train_share: float = 0.7
    objective: str = "binary"
    n_estimators: int = 300
    register: bool = True
    model_name: str = MODEL_NAME


@dataclass
class NotifyJobResult:
    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model_dir: Path
    source: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    holdout: Any = None  # {"test", "propensity", "floor"}: what the gate re-scores a model on


def _source(settings, job: NotifyJobConfig) -> tuple[str | None, int]:
    """(simulation folder or None to simulate, seed of the notification stream)."""
    from sunday.errors import SundayError
    from sunday.features.platform import simulation_path

    if job.sim_name:
        try:
            path = simulation_path(settings, job.sim_name)
        except SundayError:
            return None, job.seed
        manifest = json.loads((path / "manifest.json").read_text())
        return str(path), int(manifest.get("config", {}).get("seed", job.seed))
    return None, job.seed


def train_and_register(settings, job: NotifyJobConfig, log=print) -> NotifyJobResult:
    """Data -> features -> time split -> ranker -> holdout metrics -> MLflow run, registered version, gate."""
    from sunday import tracking
    from sunday.errors import SundayError
    from sunday.evaluation.notify_sim import baseline_scores, fit_ranker, load_notify_data, score_row, time_split
    from sunday.models.personalization.notifications import (
        NotificationRanker, RankerConfig, _pyfunc_class, ips_relevance, ndcg_at_k, position_propensity,
    )

    if not 0 < job.train_share < 1:
        raise SundayError(f"--train-share must be between 0 and 1, got {job.train_share}")
    if job.n_estimators < 1:
        raise SundayError(f"--n-estimators must be at least 1, got {job.n_estimators}")
    seconds: dict[str, float] = {}
    sim, seed = _source(settings, job)
    t0 = time.perf_counter()
    data = load_notify_data(job.events, seed, sim)
    seconds["data"] = time.perf_counter() - t0
    train, test, cut = time_split(data.frame, job.train_share)
    log(f"{'simulation ' + sim if sim else f'{job.events:,} simulated events (seed {seed})'}: "
        f"{len(data.frame):,} seen notifications; split at {cut:%Y-%m-%d}: {len(train):,} train rows, "
        f"{len(test):,} holdout rows")
    config = RankerConfig(objective=job.objective, n_estimators=job.n_estimators, seed=seed)
    t0 = time.perf_counter()
    model = fit_ranker(train, config)
    seconds["fit"] = time.perf_counter() - t0
    prop_model = model if job.objective == "binary" else fit_ranker(train, RankerConfig(n_estimators=100, seed=seed))
    propensity = position_propensity(prop_model, train)
    sess, pos = test["session_id"].to_numpy(), test["position"].to_numpy()
    rel = ips_relevance(test["clicked"].to_numpy(), pos, propensity)

    def gate_score(ranker: NotificationRanker) -> float:
        return ndcg_at_k(sess, ranker.predict(test), rel, 10, tiebreak=pos, pooled=True)[0]

    row = score_row("ranker", test, model.predict(test), propensity, model.predict(test, logged_position=True))
    logged = score_row("logged-order", test, baseline_scores(train, test, seed)["logged-order"], propensity)
    metrics = {k.replace("@", "_"): float(v) for k, v in row.items() if k not in ("method", "sessions")}
    metrics.update({f"logged_order_{k.replace('@', '_')}": float(v) for k, v in logged.items()
                    if k.startswith("ndcg")})
    metrics[GATE_METRIC] = gate_score(model)
    metrics["holdout_sessions"] = float(row["sessions"])
    model_dir = model.save(Path(tempfile.mkdtemp(prefix="notify-ranker-")) / "model")

    run_id = version = promotion = None
    if job.register:
        import mlflow

        from sunday.models.personalization.notifications import FEATURES

        with tracking.run(settings, EXPERIMENT, run_name=f"notify-{job.objective}",
                          tags={"data": "simulated-notifications", "objective": job.objective}) as run:
            run_id = run.info.run_id
            mlflow.log_params(tracking.flat_params(config, "model."))
            mlflow.log_params({"train_share": job.train_share, "cut": str(cut), "train_rows": len(train),
                               "holdout_rows": len(test), "propensity": ",".join(f"{v:.3f}" for v in propensity),
                               **{f"source.{k}": v for k, v in data.source.items()}})
            mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            mlflow.log_dict(model.feature_importance(), "feature_importance.json")
            example = test[FEATURES].head(5).reset_index(drop=True)
            _info, version, promotion = tracking.register_and_promote(
                model_dir, _pyfunc_class()(), job.model_name, GATE_METRIC, metrics[GATE_METRIC],
                NotificationRanker.load, gate_score, higher_is_better=True, input_example=example,
                floor=metrics["logged_order_ndcg_10_ips"], floor_name="the logged (newest-first) order")
    return NotifyJobResult(metrics, run_id, version, promotion, model_dir, data.source, seconds,
                           holdout={"test": test, "propensity": propensity,
                                    "floor": metrics["logged_order_ndcg_10_ips"]})
