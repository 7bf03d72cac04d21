"""The QMSum reranker job (the logic behind ``train_jobs/reranker.py``) and the reranker as an MLflow pyfunc.

1. QMSum *train* meetings (``<data_dir>/qmsum``), a ``holdout`` share of them held out (never val);
2. :func:`~sunday.nlp.reranker.train_reranker` on the rest (pairs with hard negatives, a plain torch loop); the
   held-out score of each epoch picks the checkpoint;
3. held-out R@5 / R@10 / MRR of the dense first stage, of the untrained start (MiniLM + new head) and of the
   trained reranker (dense top ``depth`` reranked); logged with the params and the loss per step to MLflow, the
   model folder logged as a pyfunc (:class:`RerankerPyfunc`), registered as ``qmsum_reranker``, aliased
   ``challenger`` and moved to ``champion`` only when its held-out MRR beats both the dense order alone (what the
   search serves without a reranker) and the current champion re-scored on the same held-out queries
   (:func:`sunday.tracking.promote`).

Pyfunc input: a DataFrame with ``query`` and ``text`` columns (one pair a row); output: a ``score`` column.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import mlflow.pyfunc
import pandas as pd

from sunday.errors import SundayError
from sunday.nlp.reranker import (
    EXPERIMENT, MODEL_NAME, CrossEncoderReranker, HoldoutConfig, RerankerConfig, holdout_cases, holdout_metrics,
    holdout_split, train_reranker,
)

GATE_METRIC = "rerank_MRR"  # higher is better
FLOOR_METRIC = "dense_MRR"  # the same held-out queries in dense order (no reranker): the gate's floor


def metric_name(key: str) -> str:
    """An MLflow-safe metric name (MLflow refuses '@': ``R@10`` -> ``R_at_10``)."""
    return key.replace("@", "_at_")


class RerankerPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(DataFrame[query, text]) -> DataFrame[score]`` with the saved CrossEncoderReranker."""

    def load_context(self, context: Any) -> None:
        self.reranker = CrossEncoderReranker.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        if not isinstance(model_input, pd.DataFrame) or not {"query", "text"} <= set(model_input.columns):
            raise SundayError("input must be a DataFrame with 'query' and 'text' columns (one pair a row)")
        pairs = list(zip(model_input["query"].astype(str), model_input["text"].astype(str)))
        return pd.DataFrame({"score": self.reranker.score_pairs(pairs)})


@dataclass
class RerankerJobConfig:
    """The job's settings: data, held-out share and scoring, MLflow, and the model's :class:`RerankerConfig`."""

    split: str = "train"
    holdout: float = 0.1  # share of the train meetings held out (checkpoint choice, champion gate)
    holdout_depth: int = 20  # held-out scoring reranks the dense top ``holdout_depth``
    holdout_queries: int = 30  # held-out queries scored at most (a seeded sample)
    score_before: bool = True  # also score the untrained start on the held-out queries
    register: bool = True
    model_name: str = MODEL_NAME
    model: RerankerConfig = field(default_factory=RerankerConfig)

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise SundayError(f"--holdout must be between 0 and 1, got {self.holdout}")
        if self.holdout_depth < 1 or self.holdout_queries < 1:
            raise SundayError("holdout_depth and holdout_queries must be at least 1")
        if self.split == "val":
            raise SundayError("the reranker trains on QMSum train only (split 'val' is the evaluation's)")

    @property
    def holdout_config(self) -> HoldoutConfig:
        return HoldoutConfig(depth=self.holdout_depth, max_queries=self.holdout_queries, seed=self.model.seed)


@dataclass
class RerankerJobResult:
    metrics: dict[str, float]  # heldout: dense_*, before_*, rerank_* (R@5, R@10, MRR)
    run_id: str | None
    version: str | None
    promotion: Any
    model_dir: Path
    reranker: CrossEncoderReranker
    n_train_meetings: int
    n_holdout_meetings: int
    n_pairs: int
    seconds: dict[str, float]
    epochs: list[dict[str, Any]] = field(default_factory=list)


def train_and_register(settings, job: RerankerJobConfig | None = None, log: Callable[[str], None] = print,
                       progress: bool = True) -> RerankerJobResult:
    """Train, score on the held-out train meetings, log to MLflow, register and gate (see the module docstring)."""
    from sunday import tracking
    from sunday.features.embeddings import TextEmbedder
    from sunday.nlp.passages import load_qmsum

    job = job or RerankerJobConfig()
    cfg = job.model
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    meetings = load_qmsum(Path(settings.data_dir) / "qmsum", job.split)
    train, hold = holdout_split(meetings, job.holdout, seed=cfg.seed)
    embedder = TextEmbedder.for_settings(settings, progress=progress)
    cases = holdout_cases(hold, cfg, job.holdout_config)
    if not cases:
        raise SundayError(f"the {len(hold)} held-out meetings have no specific query with relevant spans")
    seconds["data"] = time.perf_counter() - t0
    log(f"QMSum {job.split}: {len(train)} training meetings, {len(hold)} held out ({len(cases)} held-out queries, "
        f"dense top {job.holdout_depth} reranked)")
    metrics: dict[str, float] = {}
    if job.score_before:
        t0 = time.perf_counter()
        before = holdout_metrics(CrossEncoderReranker.new(cfg), cases, embedder, job.holdout_config)
        seconds["score_before"] = time.perf_counter() - t0
        metrics.update({k: v for k, v in before.items() if k.startswith("dense_")})
        metrics.update({f"before_{k[len('rerank_'):]}": v for k, v in before.items() if k.startswith("rerank_")})
    epochs: list[dict[str, Any]] = []

    def scored(model: CrossEncoderReranker) -> dict[str, float]:
        m = holdout_metrics(model, cases, embedder, job.holdout_config)
        epochs.append(m)
        return m

    outcome = train_reranker(train, cfg, embedder=embedder, holdout=None, progress=progress, log=log,
                             evaluate=lambda model: scored(model)[GATE_METRIC])
    seconds.update(outcome.seconds)
    reranker = outcome.reranker
    best = epochs[int(reranker.info.get("best_epoch", len(epochs))) - 1]
    metrics.update({k: v for k, v in best.items() if k != "n_queries"})
    metrics["n_holdout_queries"] = float(len(cases))
    model_dir = Path(tempfile.mkdtemp(prefix="reranker-")) / "model"
    reranker.info.update({"holdout_meetings": sorted(m.meeting_id for m in hold), "heldout": metrics})
    reranker.save(model_dir)
    run_id = version = promotion = None
    if job.register:
        import mlflow
        from mlflow.entities import Metric

        with tracking.run(settings, EXPERIMENT, run_name=f"reranker-{cfg.loss}-{cfg.epochs}ep",
                          tags={"split": job.split, "base": "all-MiniLM-L6-v2"}) as active:
            run_id = active.info.run_id
            mlflow.log_params(tracking.flat_params(cfg, "model."))
            mlflow.log_params({k: v for k, v in tracking.flat_params(job).items() if not k.startswith("model")})
            mlflow.log_params({"n_train_meetings": len(train), "n_holdout_meetings": len(hold),
                               "n_pairs": outcome.n_pairs, "n_groups": outcome.n_groups})
            mlflow.log_metrics({metric_name(f"heldout_{k}"): float(v) for k, v in metrics.items() if v == v})
            mlflow.log_metrics({f"seconds_{k}": float(v) for k, v in seconds.items()})
            now = int(time.time() * 1000)
            steps = [Metric("train_loss", float(r["loss"]), now, int(r["step"]))
                     for r in reranker.history if "step" in r]
            steps += [Metric("epoch_loss", float(r["epoch_loss"]), now, int(r["epoch"]))
                      for r in reranker.history if "epoch_loss" in r]
            steps += [Metric(metric_name(f"epoch_heldout_{k}"), float(v), now, i + 1) for i, m in enumerate(epochs)
                      for k, v in m.items() if k.startswith("rerank_")]
            client = mlflow.MlflowClient()
            for lo in range(0, len(steps), 900):
                client.log_batch(run_id, metrics=steps[lo:lo + 900])
            example = pd.DataFrame({"query": [cases[0].query], "text": [cases[0].passages[0].text]})
            info = tracking.log_model_folder(model_dir, RerankerPyfunc(), input_example=example)
            version = tracking.register(info.model_uri, job.model_name,
                                        tags={"gate_metric": GATE_METRIC, "higher_is_better": "true"})

            def score_version(v: str) -> float:
                with tempfile.TemporaryDirectory() as tmp:
                    champ = CrossEncoderReranker.load(tracking.download_version(job.model_name, v, Path(tmp)))
                    return holdout_metrics(champ, cases, embedder, job.holdout_config)[GATE_METRIC]

            # the search without a reranker serves the dense order: a reranker that does not beat it on the
            # held-out queries must not serve (it stays challenger)
            promotion = tracking.promote(job.model_name, version, metrics[GATE_METRIC], GATE_METRIC,
                                         score_version, higher_is_better=True, floor=metrics.get(FLOOR_METRIC),
                                         floor_name=f"the dense order alone ({FLOOR_METRIC})")
            tracking.log_promotion(promotion)
    return RerankerJobResult(metrics, run_id, version, promotion, model_dir, reranker, len(train), len(hold),
                             outcome.n_pairs, seconds, epochs)
