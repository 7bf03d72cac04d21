"""Holdout metrics of an assignment ranker on labelled decisions (a pair frame with its labels)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def ranking_metrics(task_ids: np.ndarray, scores: np.ndarray, assigned: np.ndarray) -> dict[str, float]:
    """top-1 / top-3 accuracy and mean reciprocal rank of the assigned candidate, over tasks that have one."""
    f = pd.DataFrame({"task": task_ids, "s": scores, "y": assigned})
    f = f[f.groupby("task")["y"].transform("sum") > 0]
    if f.empty:
        return {"top1": float("nan"), "top3": float("nan"), "mrr": float("nan"), "n_tasks": 0}
    f["rank"] = f.groupby("task")["s"].rank(ascending=False, method="first")
    r = f.loc[f["y"] > 0].groupby("task")["rank"].min()
    return {"top1": float((r <= 1).mean()), "top3": float((r <= 3).mean()), "mrr": float((1.0 / r).mean()),
            "n_tasks": int(len(r))}


def outcome_metrics(pred: pd.DataFrame, completed: np.ndarray, quality: np.ndarray) -> dict[str, float]:
    """Completion AUC / Brier and quality MAE on the rows whose outcome is known."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, float] = {}
    c = np.isfinite(completed)
    if c.sum() and len(np.unique(completed[c])) == 2:
        p = pred["completion"].to_numpy()[c]
        out["completion_auc"] = float(roc_auc_score(completed[c], p))
        out["completion_brier"] = float(np.mean((p - completed[c]) ** 2))
    q = np.isfinite(quality)
    if q.sum():
        out["quality_mae"] = float(np.mean(np.abs(pred["quality"].to_numpy()[q] - quality[q])))
        out["quality_mae_mean_baseline"] = float(np.mean(np.abs(np.mean(quality[q]) - quality[q])))
    return out


def evaluate(ranker: Any, data: Any) -> dict[str, float]:
    """All holdout metrics of ``ranker`` (an AssignmentRanker) on ``data`` (an AssignmentData)."""
    pred = ranker.predict_frame(data.pairs)
    out = ranking_metrics(data.pairs["task_id"].to_numpy(), pred["score_logit"].to_numpy(), data.assigned)
    out.update(outcome_metrics(pred, data.completed, data.quality))
    return out
