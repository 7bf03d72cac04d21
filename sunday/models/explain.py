"""Per-prediction explanations from tree SHAP contributions (XGBoost ``pred_contribs``, LightGBM ``pred_contrib``).

A contribution matrix has one row per prediction and one column per feature plus a last *bias* column (the expected
raw score); a row sums to the model's raw prediction (the margin: log-odds / class logit / regression output).
:func:`top_contributions` turns rows into the ``top_k`` features with the largest absolute contribution, signed
(positive pushes the raw score up), under readable names, with the feature's value for that prediction.
:func:`xgb_contribs` / :func:`xgb_margin` get the matrix and the raw score from an XGBoost booster (multiclass:
``(n, K, F + 1)`` and ``(n, K)``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd


def xgb_contribs(booster: Any, X: pd.DataFrame) -> np.ndarray:
    """XGBoost ``pred_contribs=True`` of ``X``: ``(n, F + 1)``, or ``(n, K, F + 1)`` for K classes."""
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(X, missing=np.nan), pred_contribs=True), dtype=np.float64)


def xgb_margin(booster: Any, X: pd.DataFrame) -> np.ndarray:
    """The raw score (``output_margin=True``) the contributions sum to: ``(n,)`` or ``(n, K)``."""
    import xgboost as xgb

    return np.asarray(booster.predict(xgb.DMatrix(X, missing=np.nan), output_margin=True), dtype=np.float64)


def _value(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (np.floating, float)):
        return round(float(v), 4)
    if isinstance(v, (np.integer, int, np.bool_, bool)):
        return int(v)
    return str(v)


def top_contributions(contribs: np.ndarray, feature_names: Sequence[str], X: pd.DataFrame | None = None,
                      top_k: int = 5, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per row of an ``(n, F + 1)`` contribution matrix: ``{"bias", "margin", "contributions": [...]}`` with the
    ``top_k`` features by absolute contribution (ties: feature order), each ``{"feature", "name" (readable),
    "value", "contribution"}``. ``margin`` = bias + all contributions (the raw prediction)."""
    contribs = np.asarray(contribs, dtype=np.float64)
    names = list(feature_names)
    if contribs.ndim != 2 or contribs.shape[1] != len(names) + 1:
        raise ValueError(f"contributions must be (n, {len(names) + 1}), got {contribs.shape}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    labels = labels or {}
    values = X[names].to_numpy(dtype=object) if X is not None else None
    out = []
    for i, row in enumerate(contribs):
        feats = row[:-1]
        order = np.lexsort((np.arange(len(feats)), -np.abs(feats)))[:top_k]
        items = [{"feature": names[j], "name": labels.get(names[j], names[j]),
                  "value": None if values is None else _value(values[i, j]),
                  "contribution": round(float(feats[j]), 5)} for j in order]
        out.append({"bias": round(float(row[-1]), 5), "margin": round(float(row.sum()), 5), "contributions": items})
    return out


def format_explanation(expl: Mapping[str, Any], unit: str = "") -> str:
    """One line: ``name=value (+0.12), ...`` of an item of :func:`top_contributions`."""
    parts = []
    for c in expl["contributions"]:
        v = c["value"]
        parts.append(f"{c['name']}={'n/a' if v is None else v} ({c['contribution']:+.3f}{unit})")
    return ", ".join(parts)
