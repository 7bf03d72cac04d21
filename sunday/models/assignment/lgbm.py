"""LambdaMART over (task, candidate) pairs: LightGBM ``LGBMRanker(objective="lambdarank")``.

Rows of one task are one query group (contiguous, see :func:`sunday.models.assignment.pairs.group_sizes`); the label
is the relevance of the candidate for the task (1 for the assignee, 0 otherwise; graded labels work too).
``contributions`` returns LightGBM's ``pred_contrib`` (per-feature SHAP values plus the bias column), which the
ranker turns into the reasons shown with a recommendation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sunday.models.assignment.pairs import FEATURES, group_sizes


@dataclass
class LambdaMARTConfig:
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 20
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    lambdarank_truncation_level: int = 20
    label_gain_max: int = 3
    seed: int = 0
    n_jobs: int = 1  # OpenMP threads: >1 spins badly when the 2 cores are shared (measured 7x slower)
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, Any]:
        p = asdict(self)
        extra = p.pop("extra")
        gain_max = p.pop("label_gain_max")
        p["random_state"] = p.pop("seed")
        p["label_gain"] = [float(2 ** i - 1) for i in range(gain_max + 1)]
        return {**p, **extra}


def check_features(X: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in FEATURES if c not in X.columns]
    if missing:
        raise ValueError(f"feature matrix lacks column(s) {missing}; build it with pair_features()")
    return X[FEATURES]


def predict_booster(booster, X: pd.DataFrame | np.ndarray, **kw) -> np.ndarray:
    """Booster prediction on one thread: serving ranks a few dozen rows, where OpenMP start-up and spinning cost
    more than the trees (measured: 36 ms vs under 1 ms per call on a loaded 2-core machine)."""
    values = X.to_numpy(dtype="float64") if isinstance(X, pd.DataFrame) else np.asarray(X, dtype="float64")
    return np.asarray(booster.predict(values, num_threads=1, **kw), dtype="float64")


class LambdaMARTRanker:
    """scikit-learn-like wrapper: ``fit(X, task_ids, y)`` returns self, ``predict(X)`` gives ranking scores."""

    def __init__(self, config: LambdaMARTConfig | None = None):
        self.config = config or LambdaMARTConfig()

    def fit(self, X: pd.DataFrame, task_ids: pd.Series, y: np.ndarray, eval_set: tuple | None = None,
            callbacks: list | None = None) -> "LambdaMARTRanker":
        import lightgbm as lgb

        X = check_features(X)
        y = np.asarray(y)
        if len(y) != len(X) or len(task_ids) != len(X):
            raise ValueError(f"X, task_ids and y differ in length: {len(X)}, {len(task_ids)}, {len(y)}")
        if len(X) == 0:
            raise ValueError("cannot fit the ranker on no pairs")
        groups = group_sizes(pd.Series(np.asarray(task_ids)))
        kw: dict[str, Any] = {}
        if eval_set is not None:
            Xe, te, ye = eval_set
            kw = {"eval_set": [(check_features(Xe), np.asarray(ye))],
                  "eval_group": [group_sizes(pd.Series(np.asarray(te)))], "eval_at": [1, 5]}
        self.model_ = lgb.LGBMRanker(objective="lambdarank", verbose=-1, **self.config.params())
        self.model_.fit(X, y, group=groups, callbacks=callbacks, **kw)
        self.feature_names_ = list(FEATURES)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return predict_booster(self.model_.booster_, check_features(X))

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(n, len(FEATURES) + 1) SHAP contributions; the last column is the bias."""
        return predict_booster(self.model_.booster_, check_features(X), pred_contrib=True)

    def feature_importance(self) -> dict[str, float]:
        gain = self.model_.booster_.feature_importance(importance_type="gain")
        return dict(sorted(zip(self.feature_names_, map(float, gain)), key=lambda kv: -kv[1]))
