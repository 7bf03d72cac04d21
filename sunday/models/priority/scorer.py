"""The priority scorer: an XGBoost classifier suggesting low / medium / high / critical for untriaged tasks.

``PriorityScorer(config).fit(X, y)`` on :func:`~sunday.models.priority.features.priority_features` rows (extra
columns ignored; labels as names or 0..3), ``predict`` (class names), ``predict_proba`` (n, 4), ``score(X)`` (a
frame with the class, the per-class probabilities and ``priority_score`` = expected class / 3 in [0, 1], the
urgency to sort a backlog by), ``explain(X, top_k)`` (XGBoost ``pred_contribs`` of the *predicted* class: the
features that raised or lowered that class's logit, signed, readable names; each row's contributions + bias sum to
that logit), ``save`` / ``load`` (a folder: the booster as JSON + ``meta.json``).

Class imbalance (critical is ~9 % of the simulated tasks): ``class_weight_power`` p weighs each training row by
(n / (K n_class)) ** p -- 0 plain, 1 fully balanced. Default 0: on the simulated time split (200k events) p = 0.5
changed macro-F1 by -0.008 (seed 0) / +0.005 (seeds 1-2) and cost 0.01-0.02 accuracy; p = 1 lost more.
:class:`PriorityConfig` holds every XGBoost hyperparameter (a sweep sets them by name).

:func:`pyfunc_class` builds the MLflow pyfunc wrapper (``PriorityPyfunc``) around a saved folder on first use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.models.explain import top_contributions, xgb_contribs, xgb_margin
from sunday.models.priority.features import FEATURE_LABELS, FEATURES, PRIORITIES

N_CLASSES = len(PRIORITIES)
CLASS_VALUES = np.arange(N_CLASSES, dtype=np.float64)


@dataclass
class PriorityConfig:
    """XGBoost hyperparameters and the cut horizon of the features."""

    n_estimators: int = 200
    max_depth: int = 4
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    gamma: float = 0.0
    max_bin: int = 256
    class_weight_power: float = 0.0  # 0: plain; 1: balanced classes
    horizon_hours: float = 24.0  # features at created_at + horizon_hours
    n_jobs: int = 1  # OpenMP threads (the 2 shared cores: more spins)
    seed: int = 0

    def __post_init__(self) -> None:
        checks = {"n_estimators": self.n_estimators >= 1, "max_depth": self.max_depth >= 1,
                  "learning_rate": self.learning_rate > 0, "subsample": 0 < self.subsample <= 1,
                  "colsample_bytree": 0 < self.colsample_bytree <= 1, "min_child_weight": self.min_child_weight >= 0,
                  "reg_lambda": self.reg_lambda >= 0, "reg_alpha": self.reg_alpha >= 0, "gamma": self.gamma >= 0,
                  "max_bin": self.max_bin >= 2, "class_weight_power": 0 <= self.class_weight_power <= 1,
                  "horizon_hours": self.horizon_hours >= 0, "n_jobs": self.n_jobs >= 1}
        from sunday.jobs import check_ranges

        check_ranges(self, checks, "priority")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "PriorityConfig":
        """From a ``--params`` JSON object; SundayError naming an unknown setting."""
        from sunday.jobs import settings_from

        return settings_from(cls, params, "priority")

    def xgb_params(self) -> dict[str, Any]:
        p = asdict(self)
        for k in ("class_weight_power", "horizon_hours", "seed"):
            p.pop(k)
        return {**p, "random_state": self.seed, "objective": "multi:softprob", "num_class": N_CLASSES,
                "tree_method": "hist", "eval_metric": "mlogloss"}


def encode_labels(y: Any) -> np.ndarray:
    """Class names or 0..3 -> int codes; SundayError naming a bad value."""
    arr = np.asarray(pd.Series(y).to_numpy(dtype=object))
    out = np.empty(len(arr), dtype=np.int64)
    for i, v in enumerate(arr):
        if isinstance(v, str) and v in PRIORITIES:
            out[i] = PRIORITIES.index(v)
        elif v is not None and not isinstance(v, str) and not pd.isna(v) and float(v) in CLASS_VALUES:
            out[i] = int(v)
        else:
            raise SundayError(f"priority label {v!r} is not one of {list(PRIORITIES)} (or 0..3)")
    return out


def check_features(X: Any, names: tuple[str, ...] | list[str] = FEATURES) -> pd.DataFrame:
    """The model's feature columns of ``X`` as float; SundayError naming missing or non-numeric fields."""
    if not isinstance(X, pd.DataFrame):
        raise SundayError(f"features must be a DataFrame of priority_features rows, got {type(X).__name__}")
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise SundayError(f"priority features: missing required field(s) {missing}")
    out = X[list(names)]
    try:
        return out.astype(np.float64)
    except (TypeError, ValueError):
        bad = [c for c in names if not pd.api.types.is_numeric_dtype(X[c])]
        raise SundayError(f"priority features: field(s) {bad} must be numeric") from None


class PriorityScorer:
    """XGBoost multiclass priority suggestion; see the module docstring."""

    def __init__(self, config: PriorityConfig | None = None):
        self.config = config or PriorityConfig()

    # -- training
    def fit(self, X: pd.DataFrame, y: Any, callbacks: list | None = None) -> "PriorityScorer":
        """Fit on feature rows ``X`` and labels ``y`` (class names or 0..3); ``callbacks``: XGBoost training
        callbacks (the sweep's per-round validation report)."""
        import xgboost as xgb

        Xf = check_features(X)
        codes = encode_labels(y)
        if len(codes) != len(Xf):
            raise SundayError(f"{len(Xf)} feature rows but {len(codes)} labels")
        counts = np.bincount(codes, minlength=N_CLASSES).astype(np.float64)
        present = counts > 0
        w_class = np.where(present, (len(codes) / (present.sum() * np.maximum(counts, 1.0))), 0.0)
        weight = w_class[codes] ** self.config.class_weight_power
        self.model_ = xgb.XGBClassifier(**self.config.xgb_params(), callbacks=callbacks)
        if present.all():
            self.model_.fit(Xf, codes, sample_weight=weight)
        else:  # XGBoost needs every class 0..K-1: add one zero-weight row per absent class
            miss = np.flatnonzero(~present)
            Xa = pd.concat([Xf, Xf.iloc[np.zeros(len(miss), dtype=np.int64)]], ignore_index=True)
            self.model_.fit(Xa, np.r_[codes, miss], sample_weight=np.r_[weight, np.zeros(len(miss))])
        self.feature_names_ = list(FEATURES)
        self.class_counts_ = counts.astype(int).tolist()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SundayError("the priority scorer is not fitted: call fit() or load() first")

    @property
    def booster_(self):
        self._check_fitted()
        return self.model_.get_booster()

    # -- prediction
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self._check_fitted()
        return np.asarray(self.model_.predict_proba(check_features(X, self.feature_names_)), dtype=np.float64)

    def predict_codes(self, X: pd.DataFrame) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class names (low / medium / high / critical)."""
        return np.array(PRIORITIES, dtype=object)[self.predict_codes(X)]

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row: ``task_id`` (when ``X`` has it), ``priority`` (class), ``priority_score`` (expected class / 3,
        in [0, 1]) and ``p_low`` .. ``p_critical``."""
        p = self.predict_proba(X)
        out = pd.DataFrame(index=range(len(p)))
        if "task_id" in X.columns:
            out["task_id"] = X["task_id"].astype(str).to_numpy()
        out["priority"] = np.array(PRIORITIES, dtype=object)[p.argmax(axis=1)]
        out["priority_score"] = p @ CLASS_VALUES / (N_CLASSES - 1)
        for k, name in enumerate(PRIORITIES):
            out[f"p_{name}"] = p[:, k]
        return out

    def raw_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Per-class logits (n, 4): what ``pred_contribs`` rows sum to."""
        return xgb_margin(self.booster_, check_features(X, self.feature_names_))

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """XGBoost ``pred_contribs``: (n, 4, F + 1), the last column the bias."""
        return xgb_contribs(self.booster_, check_features(X, self.feature_names_))

    def explain(self, X: pd.DataFrame, top_k: int = 5) -> list[dict[str, Any]]:
        """Per row: the predicted ``priority``, its probability, and the ``top_k`` features by |contribution| to
        the predicted class's logit (:func:`~sunday.models.explain.top_contributions`)."""
        Xf = check_features(X, self.feature_names_)
        c = self.contributions(X)
        p = self.predict_proba(X)
        k = p.argmax(axis=1)
        rows = c[np.arange(len(c)), k, :]
        out = top_contributions(rows, self.feature_names_, Xf, top_k=top_k, labels=FEATURE_LABELS)
        for i, e in enumerate(out):
            e["priority"] = PRIORITIES[int(k[i])]
            e["probability"] = round(float(p[i, k[i]]), 4)
            if "task_id" in X.columns:
                e["task_id"] = str(X["task_id"].iloc[i])
        return out

    # -- persistence
    def save(self, path: str | Path) -> Path:
        """A folder: ``booster.json`` (XGBoost's own format) and ``meta.json`` (config, features, classes)."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model_.save_model(str(path / "booster.json"))
        meta = {"kind": "priority_scorer", "config": asdict(self.config), "features": self.feature_names_,
                "classes": list(PRIORITIES), "class_counts": self.class_counts_}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PriorityScorer":
        import xgboost as xgb

        path = Path(path)
        if not (path / "meta.json").exists() or not (path / "booster.json").exists():
            raise SundayError(f"{path}: not a saved priority scorer (needs booster.json and meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("features") != list(FEATURES):
            raise SundayError(f"{path}: model was trained on other features than this code computes; retrain it")
        self = cls(PriorityConfig(**meta["config"]))
        self.model_ = xgb.XGBClassifier(**self.config.xgb_params())
        self.model_.load_model(str(path / "booster.json"))
        self.feature_names_ = list(meta["features"])
        self.class_counts_ = meta.get("class_counts")
        return self


# ------------------------------------------------------------------------------------------------ MLflow pyfunc


def pyfunc_class():
    """The MLflow pyfunc wrapper (:func:`sunday.tracking.lazy_pyfunc`): ``predict(DataFrame of priority_features
    rows)`` -> the :meth:`PriorityScorer.score` frame."""
    from sunday import tracking

    return tracking.lazy_pyfunc(__name__, "PriorityPyfunc", PriorityScorer.load,
                                lambda model, X, params=None: model.score(X), doc=pyfunc_class.__doc__ or "")


def __getattr__(name: str) -> Any:  # ``PriorityPyfunc`` on demand (the same class: pickled by reference)
    if name == "PriorityPyfunc":
        return pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
