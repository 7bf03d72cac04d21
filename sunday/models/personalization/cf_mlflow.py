"""The collaborative-filtering training job and its MLflow registry (the model: :mod:`.cf`).

:func:`train_and_register` (behind ``train_jobs/personalization_cf.py``) reads a simulation's observable tables,
splits the interactions per user by time (the protocol of ``sunday eval cf-sim``), trains on the training part (Ray
Train or in process), scores the held-out part (NDCG@10, recall@10, HR@10, MRR, with the popularity and team
baselines beside), logs params / metrics / per-epoch loss / the model to MLflow and registers
``personalization_cf`` (a pyfunc, ``CfPyfunc``, around the model folder): ``challenger`` always, ``champion`` when
its held-out NDCG@10 beats the champion's re-scored on the same holdout. The registered model is the one trained
on the training part (so a champion and a challenger from the same data are scored on rows neither saw).
:func:`load_registered` loads a registered version by alias. MLflow is imported only when used.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sunday.errors import SundayError
from sunday.models.personalization.cf import CFConfig, CFRecommender

MODEL_NAME = "personalization_cf"
EXPERIMENT = "personalization-cf"
GATE_METRIC = "ndcg_at_10"  # held-out tasks of each user, higher is better
K = 10


# -- registry -----------------------------------------------------------------------------------------------------

def load_registered(settings, alias: str = "champion", name: str = MODEL_NAME) -> CFRecommender | None:
    """The registered recommender ``name`` at ``alias`` (None when nothing is registered under it)."""
    from sunday import tracking

    tracking.configure(settings)
    found = tracking.load_alias(name, CFRecommender.load, alias)
    return None if found is None else found[0]


def _predict(model: CFRecommender, model_input: Any, params: dict | None = None) -> Any:
    import pandas as pd

    if not isinstance(model_input, pd.DataFrame) or "user_id" not in model_input.columns:
        raise SundayError("input must be a DataFrame with a 'user_id' column")
    k = int((params or {}).get("k", K))
    rows = []
    for r in model_input.to_dict("records"):
        ws = r.get("workspace_id")
        recs = model.recommend(str(r["user_id"]), k=k, workspace_id=None if ws is None or pd.isna(ws) else str(ws))
        rows += [{"user_id": str(r["user_id"]), "rank": n + 1, "task_id": t, "score": s}
                 for n, (t, s) in enumerate(recs)]
    return pd.DataFrame(rows, columns=["user_id", "rank", "task_id", "score"])


def _pyfunc_class():
    from sunday import tracking

    return tracking.lazy_pyfunc(__name__, "CfPyfunc", CFRecommender.load, _predict, doc=(
        "``predict(DataFrame with 'user_id' [, 'workspace_id' for new users], params={'k': 10})`` -> one row per "
        "recommendation: ``user_id, rank, task_id, score`` (each user's top ``k`` tasks, best first)."))


def __getattr__(name: str) -> Any:  # ``CfPyfunc`` on demand (the same class: pickled by reference)
    if name == "CfPyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the training job ---------------------------------------------------------------------------------------------

@dataclass
class CfJobConfig:
    model: CFConfig = field(default_factory=CFConfig)
    sim: str = "demo"          # simulation name under the state folder
    use_ray: bool = True
    num_workers: int = 2
    use_gpu: bool = False
    holdout: float = 0.2       # each user's last share of tasks (by first touch) held out
    register: bool = True
    model_name: str = MODEL_NAME

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise SundayError(f"--holdout must be between 0 and 1, got {self.holdout}")
        if self.num_workers < 1:
            raise SundayError(f"--num-workers must be at least 1, got {self.num_workers}")


@dataclass
class CfJobResult:
    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model: CFRecommender
    model_dir: Path
    history: list[dict[str, float]]
    table: dict[str, dict[str, float]]
    counts: dict[str, int]
    seconds: dict[str, float]
    holdout: Any = None  # the per-user time split (evaluation.cf_sim.make_holdout): what the gate re-scores on


def _flat(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{ranker: {ndcg@10: x}}`` -> MLflow-safe ``{ranker_ndcg_at_10: x}`` (the model's own without prefix)."""
    out = {}
    for ranker, metrics in table.items():
        prefix = "" if ranker == "cf" else ranker.replace("-", "_") + "_"
        for key, v in metrics.items():
            if key != "users" and v is not None and math.isfinite(v):
                out[prefix + key.replace("@", "_at_")] = float(v)
    return out


def train_and_register(settings, job: CfJobConfig, log: Callable[..., Any] = print) -> CfJobResult:
    """Simulation ``job.sim`` -> per-user time split -> recommender (Ray Train or in process) -> holdout metrics ->
    MLflow run, ``personalization_cf`` version, ``challenger``, ``champion`` when its NDCG@10 beats the
    champion's on the same holdout."""
    from sunday import tracking
    from sunday.data.simulator.writer import read_simulation
    from sunday.evaluation.cf_sim import (
        evaluate_tasks, make_holdout, model_ranker, popularity_ranker, team_around_t_ranker, team_recent_ranker,
    )
    from sunday.features.platform import simulation_path

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tables = read_simulation(simulation_path(settings, job.sim))
    h = make_holdout(tables, job.holdout)
    seconds["data"] = time.perf_counter() - t0
    counts = {"events": tables["events"].num_rows, "tasks": len(h.items), "users": int(h.users["user_id"].nunique()),
              "train_interactions": len(h.train), "holdout_interactions": len(h.test),
              "holdout_users": int(h.test["user_id"].nunique())}
    log(f"simulation '{job.sim}': {counts['events']:,} events -> {len(h.train) + len(h.test):,} user-task "
        f"interactions ({len(h.train):,} train, {len(h.test):,} held out over {counts['holdout_users']} users)")
    if job.use_ray:
        from sunday.runtime import ensure_ray

        ensure_ray(settings)
    t0 = time.perf_counter()
    model = CFRecommender(job.model, trainer="ray" if job.use_ray else "local", num_workers=job.num_workers,
                          use_gpu=job.use_gpu).fit(h.train, items=h.items, users=h.users)
    seconds["fit"] = time.perf_counter() - t0
    for row in model.history_:
        log(f"  epoch {int(row['epoch']) + 1}/{job.model.epochs}: loss {row['loss']:.4f} ({row['seconds']:.2f} s)")
    t0 = time.perf_counter()
    table = evaluate_tasks(h, {"cf": model_ranker(model, h), "popularity": popularity_ranker(h),
                               "team-recent": team_recent_ranker(h), "team-around-t": team_around_t_ranker(h)}, K)
    seconds["eval"] = time.perf_counter() - t0
    metrics = _flat(table)
    metrics["final_train_loss"] = float(model.history_[-1]["loss"]) if model.history_ else float("nan")
    model_dir = model.save(Path(tempfile.mkdtemp(prefix="personalization-cf-")) / "model")

    run_id = version = promotion = None
    if job.register:
        import mlflow
        import pandas as pd

        with tracking.run(settings, EXPERIMENT, run_name=f"cf-{job.sim}",
                          tags={"trainer": "ray" if job.use_ray else "local", "sim": job.sim}) as run:
            run_id = run.info.run_id
            mlflow.log_params(tracking.flat_params(job.model, "model."))
            mlflow.log_params({"sim": job.sim, "use_ray": job.use_ray, "num_workers": job.num_workers,
                               "use_gpu": job.use_gpu, "holdout": job.holdout, **counts})
            for row in model.history_:
                mlflow.log_metric("train_loss", float(row["loss"]), step=int(row["epoch"]))
            mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            # workspace_id optional (only new users need it): the example leaves it out for the known users;
            # k is a parameter (params={"k": 5}), default 10
            known = [str(u) for u in h.test["user_id"].unique()[:2]]
            example = pd.DataFrame({"user_id": [*known, "new-user"],
                                    "workspace_id": [None] * len(known) + [str(h.items["workspace_id"].iloc[0])]})
            _info, version, promotion = tracking.register_and_promote(
                model_dir, _pyfunc_class()(), job.model_name, GATE_METRIC, metrics[GATE_METRIC], CFRecommender.load,
                lambda champ: evaluate_tasks(h, {"cf": model_ranker(champ, h)}, K)["cf"][f"ndcg@{K}"],
                higher_is_better=True, input_example=(example, {"k": K}))
    return CfJobResult(metrics, run_id, version, promotion, model, model_dir, list(model.history_), table, counts,
                       seconds, holdout=h)
