"""The workload predictor: a user's hours of work next week, by gradient-boosted regression (XGBoost or LightGBM).

``WorkloadPredictor(config).fit(X, y)`` on :func:`~sunday.models.workload.features.workload_features` rows (extra
columns ignored; ``y`` hours), ``predict`` (hours, clipped at 0), ``raw_predict`` (the unclipped raw score),
``explain(X, top_k)`` (tree SHAP: XGBoost ``pred_contribs`` / LightGBM ``pred_contrib``; signed contributions in
hours with readable names; a row's contributions + bias sum to the raw score), ``save`` / ``load`` (a folder: the
booster in the library's own text format + ``meta.json``).

:class:`WorkloadConfig` holds the hyperparameters of both back ends (a sweep sets them by name). The default --
LightGBM, absolute-error loss, depth 3, 150 trees -- had the lowest holdout MAE on the simulated time split of seeds
1 and 2 (200k events each; seed 0 is the one ``sunday eval workload-sim`` reports): 6.53 h vs 6.57 h for XGBoost
with the same settings, 6.65 h for XGBoost pseudo-Huber, 6.7-6.8 h with 400 trees; squared error chases the heavy
right tail of busy weeks and loses MAE. The two back ends are within noise of each other.

:func:`pyfunc_class` builds the MLflow pyfunc wrapper (``WorkloadPyfunc``) around a saved folder on first use.
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
from sunday.models.workload.features import FEATURE_LABELS, FEATURES

BACKENDS = ("xgboost", "lightgbm")
XGB_OBJECTIVES = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror")
LGBM_OBJECTIVES = {"reg:squarederror": "regression", "reg:absoluteerror": "regression_l1",
                   "reg:pseudohubererror": "huber"}


@dataclass
class WorkloadConfig:
    """Hyperparameters (XGBoost names; LightGBM maps them, and uses ``num_leaves``)."""

    backend: str = "lightgbm"
    objective: str = "reg:absoluteerror"
    n_estimators: int = 150
    max_depth: int = 3
    num_leaves: int = 15  # LightGBM only
    learning_rate: float = 0.05
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 5.0
    reg_lambda: float = 1.0
    reg_alpha: float = 0.0
    gamma: float = 0.0  # XGBoost only
    huber_slope: float = 1.0  # XGBoost pseudo-Huber only
    n_jobs: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SundayError(f"workload setting 'backend' must be one of {list(BACKENDS)}, got {self.backend!r}")
        if self.objective not in XGB_OBJECTIVES:
            raise SundayError(f"workload setting 'objective' must be one of {list(XGB_OBJECTIVES)}, "
                              f"got {self.objective!r}")
        checks = {"n_estimators": self.n_estimators >= 1, "max_depth": self.max_depth >= 1,
                  "num_leaves": self.num_leaves >= 2, "learning_rate": self.learning_rate > 0,
                  "subsample": 0 < self.subsample <= 1, "colsample_bytree": 0 < self.colsample_bytree <= 1,
                  "min_child_weight": self.min_child_weight >= 0, "reg_lambda": self.reg_lambda >= 0,
                  "reg_alpha": self.reg_alpha >= 0, "gamma": self.gamma >= 0, "huber_slope": self.huber_slope > 0,
                  "n_jobs": self.n_jobs >= 1}
        from sunday.jobs import check_ranges

        check_ranges(self, checks, "workload")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> "WorkloadConfig":
        """From a ``--params`` JSON object; SundayError naming an unknown setting."""
        from sunday.jobs import settings_from

        return settings_from(cls, params, "workload")

    def xgb_params(self) -> dict[str, Any]:
        p = {k: getattr(self, k) for k in ("objective", "n_estimators", "max_depth", "learning_rate", "subsample",
                                           "colsample_bytree", "min_child_weight", "reg_lambda", "reg_alpha",
                                           "gamma", "n_jobs")}
        if self.objective == "reg:pseudohubererror":
            p["huber_slope"] = self.huber_slope
        return {**p, "random_state": self.seed, "tree_method": "hist"}

    def lgbm_params(self) -> dict[str, Any]:
        return {"objective": LGBM_OBJECTIVES[self.objective], "n_estimators": self.n_estimators,
                "max_depth": self.max_depth, "num_leaves": self.num_leaves, "learning_rate": self.learning_rate,
                "subsample": self.subsample, "subsample_freq": 1, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "reg_lambda": self.reg_lambda,
                "reg_alpha": self.reg_alpha, "n_jobs": self.n_jobs, "random_state": self.seed, "verbose": -1}


def check_features(X: Any, names: list[str] | tuple[str, ...] = FEATURES) -> pd.DataFrame:
    """The model's feature columns of ``X`` as float; SundayError naming missing or non-numeric fields."""
    if not isinstance(X, pd.DataFrame):
        raise SundayError(f"features must be a DataFrame of workload_features rows, got {type(X).__name__}")
    missing = [c for c in names if c not in X.columns]
    if missing:
        raise SundayError(f"workload features: missing required field(s) {missing}")
    try:
        return X[list(names)].astype(np.float64)
    except (TypeError, ValueError):
        bad = [c for c in names if not pd.api.types.is_numeric_dtype(X[c])]
        raise SundayError(f"workload features: field(s) {bad} must be numeric") from None


class WorkloadPredictor:
    """Next-week hours per user; see the module docstring."""

    def __init__(self, config: WorkloadConfig | None = None):
        self.config = config or WorkloadConfig()

    def fit(self, X: pd.DataFrame, y: Any) -> "WorkloadPredictor":
        Xf = check_features(X)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != (len(Xf),):
            raise SundayError(f"{len(Xf)} feature rows but labels of shape {y.shape}")
        if not np.isfinite(y).all():
            raise SundayError("workload labels: every label must be a finite number of hours")
        if self.config.backend == "xgboost":
            import xgboost as xgb

            self.model_ = xgb.XGBRegressor(**self.config.xgb_params()).fit(Xf, y)
        else:
            import lightgbm as lgb

            self.model_ = lgb.LGBMRegressor(**self.config.lgbm_params()).fit(Xf, y)
        self.feature_names_ = list(FEATURES)
        self.n_rows_ = int(len(Xf))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise SundayError("the workload predictor is not fitted: call fit() or load() first")

    def raw_predict(self, X: pd.DataFrame) -> np.ndarray:
        """The raw score (what the contributions sum to), not clipped."""
        self._check_fitted()
        Xf = check_features(X, self.feature_names_)
        if self.config.backend == "xgboost":
            return xgb_margin(self.model_.get_booster(), Xf)
        return np.asarray(self.model_.predict(Xf, raw_score=True), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Hours of work next week (>= 0)."""
        return np.clip(self.raw_predict(X), 0.0, None)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Tree SHAP contributions ``(n, F + 1)``, the last column the bias."""
        self._check_fitted()
        Xf = check_features(X, self.feature_names_)
        if self.config.backend == "xgboost":
            return xgb_contribs(self.model_.get_booster(), Xf)
        return np.asarray(self.model_.predict(Xf, pred_contrib=True), dtype=np.float64)

    def explain(self, X: pd.DataFrame, top_k: int = 5) -> list[dict[str, Any]]:
        """Per row: ``hours`` (the prediction) and the ``top_k`` features by |contribution| in hours
        (:func:`~sunday.models.explain.top_contributions`)."""
        Xf = check_features(X, self.feature_names_)
        out = top_contributions(self.contributions(X), self.feature_names_, Xf, top_k=top_k, labels=FEATURE_LABELS)
        hours = self.predict(X)
        for i, e in enumerate(out):
            e["hours"] = round(float(hours[i]), 3)
            for k in ("user_id", "cut"):
                if k in X.columns:
                    e[k] = str(X[k].iloc[i])
        return out

    def feature_importance(self) -> dict[str, float]:
        """Gain share per feature, largest first."""
        self._check_fitted()
        if self.config.backend == "xgboost":
            gain = self.model_.get_booster().get_score(importance_type="gain")
        else:
            vals = self.model_.booster_.feature_importance(importance_type="gain")
            gain = dict(zip(self.feature_names_, vals))
        total = sum(gain.values()) or 1.0
        return {k: float(v) / total for k, v in sorted(gain.items(), key=lambda kv: -kv[1])}

    # -- persistence
    def save(self, path: str | Path) -> Path:
        """A folder: ``booster.json`` (XGBoost) or ``booster.txt`` (LightGBM) and ``meta.json``."""
        self._check_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.config.backend == "xgboost":
            self.model_.save_model(str(path / "booster.json"))
        else:
            self.model_.booster_.save_model(str(path / "booster.txt"))
        meta = {"kind": "workload_predictor", "config": asdict(self.config), "features": self.feature_names_,
                "n_rows": self.n_rows_}
        (path / "meta.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "WorkloadPredictor":
        path = Path(path)
        if not (path / "meta.json").exists():
            raise SundayError(f"{path}: not a saved workload predictor (no meta.json)")
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("features") != list(FEATURES):
            raise SundayError(f"{path}: model was trained on other features than this code computes; retrain it")
        self = cls(WorkloadConfig(**meta["config"]))
        if self.config.backend == "xgboost":
            import xgboost as xgb

            self.model_ = xgb.XGBRegressor(**self.config.xgb_params())
            self.model_.load_model(str(path / "booster.json"))
        else:
            import lightgbm as lgb

            self.model_ = _LoadedLgbm(lgb.Booster(model_file=str(path / "booster.txt")))
        self.feature_names_ = list(meta["features"])
        self.n_rows_ = meta.get("n_rows")
        return self


class _LoadedLgbm:
    """A loaded LightGBM booster behind the few ``LGBMRegressor`` calls the predictor makes."""

    def __init__(self, booster):
        self.booster_ = booster

    def predict(self, X, raw_score: bool = False, pred_contrib: bool = False):
        return self.booster_.predict(X, raw_score=raw_score, pred_contrib=pred_contrib)


# ------------------------------------------------------------------------------------------------ MLflow pyfunc


def _predict(model: WorkloadPredictor, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(model_input)))
    for k in ("user_id", "cut"):
        if k in model_input.columns:
            out[k] = model_input[k].astype(str).to_numpy()
    out["hours"] = model.predict(model_input)
    return out


def pyfunc_class():
    """The MLflow pyfunc wrapper (:func:`sunday.tracking.lazy_pyfunc`): ``predict(DataFrame of workload_features
    rows)`` -> DataFrame ``hours`` (with ``user_id`` / ``cut`` when the input has them)."""
    from sunday import tracking

    return tracking.lazy_pyfunc(__name__, "WorkloadPyfunc", WorkloadPredictor.load, _predict,
                                doc=pyfunc_class.__doc__ or "")


def __getattr__(name: str) -> Any:  # ``WorkloadPyfunc`` on demand (the same class: pickled by reference)
    if name == "WorkloadPyfunc":
        return pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
