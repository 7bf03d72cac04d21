"""Sprint delivery capability: predict ``vel_diff`` (delivered minus committed story points) at T % of a sprint.

Data are the tables of the sprint_delivery importer (``sprint_snapshots`` and ``sprint_issues`` of one tracker, one
prediction time T). :func:`sprint_features` turns them into one row per sprint (a sprint shown on several boards is
one row per board, as in the source), in time order, with:

* iteration features at T (the source's counts and velocities) plus derived ones: committed velocity
  ``vel_starttime + vel_added - vel_removed``, remaining (to do + in progress), done fraction, done minus committed;
* board history: the delivered velocity (``vel_diff + committed``, the same at every T in the source) and
  ``vel_diff`` of the board's earlier sprints (last one, mean of the last 3, median of all) and the project's
  recent sprints (median over the previous 10 sprint ids, copies of the same sprint on other boards excluded);
* issue aggregates at T (the ``sprint_issues`` rows of the sprint at the same T): issue count; sums and means of the
  comment/version/link/blocking/change counts; maxima of comments and links; issues with a blocker; counts per
  canonical type (bug, feature, task, sub-task, epic, other), per canonical priority (blocker .. trivial) and per
  readability class. Types and priorities are mapped by name (``Feature Request``, ``Story``, ``Improvement`` ->
  feature; ``Major - P3`` -> major), so every tracker gets the same columns.

Time order is the sprint id (ascending; board id breaks ties): the files carry no sprint dates, and JIRA assigns
sprint ids in creation order within one JIRA instance (= one tracker folder). Rows that share a sprint id are
copies of one sprint shown on several boards (their figures often, not always, agree), so splits never separate
them (:func:`time_split`).

:class:`SprintDeliveryRegressor` is scikit-learn-like (``fit(X, y)`` returns self, ``predict(X)``; ``y`` is
``vel_diff``; :class:`SprintModelConfig` holds its settings). Its building blocks (members) are:

* ``lgbm-delivered``: LightGBM (L1 or huber objective) on the delivered velocity, prediction minus committed;
* ``lgbm-diff``: LightGBM on ``vel_diff`` itself;
* ``linear``: median regression (L1 loss, L1 penalty) on sign-log, standardised, clipped features.

A candidate is one member or a mean of members: ``blend-lgbm`` (both LightGBM models) and ``blend-all`` (all
three). With ``select="validation"`` the candidate with the lowest MAE over ``val_folds`` rolling-origin folds in
the last ``val_fraction`` of the training rows (each fold predicted by members fitted on the rows before it) is
kept and refitted on all training rows; ``validation_scores_`` also holds the score of every other candidate whose
members were fitted anyway. The default candidates are the two blends: the two targets make the trees err
differently (the delivered model carries the ``- committed`` term exactly, trees on ``vel_diff`` must learn it),
and their mean was clearly better than either single model on these data, while single models won the inner
validation folds more often than they then won on later sprints.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sunday.schema.planning_tables import ISSUE_COUNTS, ITERATION_COUNTS, ITERATION_VELOCITIES, READABILITY

TARGET = "vel_diff"
KEYS = ("sprint_id", "project_id", "boardid", "sprintid")
ITERATION_FEATURES = tuple(c for c in (*ITERATION_COUNTS, *ITERATION_VELOCITIES) if c != TARGET)
DERIVED_FEATURES = ("committed", "remaining", "n_current", "done_frac", "net_added", "done_minus_committed")
HISTORY_FEATURES = (
    "h_delivered_1", "h_delivered_3", "h_delivered_med", "h_diff_1", "h_diff_3", "h_committed_3", "h_ratio_3",
    "h_n", "h_ratio_pred", "h_delivered_pred", "p_diff_med10", "p_ratio_med10",
)
TYPE_CLASSES = ("bug", "feature", "task", "subtask", "epic", "other")
PRIORITY_CLASSES = ("blocker", "critical", "major", "minor", "trivial", "other")
ISSUE_FEATURES = (
    "i_n", "i_with_blocker", "i_max_no_comment", "i_max_no_issuelink",
    *[f"i_sum_{c}" for c in ISSUE_COUNTS], *[f"i_mean_{c}" for c in ISSUE_COUNTS],
    *[f"i_type_{c}" for c in TYPE_CLASSES], *[f"i_priority_{c}" for c in PRIORITY_CLASSES],
    *[f"i_fog_{c}" for c in READABILITY],
)
CANDIDATES = ("lgbm-delivered", "lgbm-diff", "linear", "blend-lgbm", "blend-all")
DEFAULT_CANDIDATES = ("blend-lgbm", "blend-all")
MEMBERS = {"lgbm-delivered": ("lgbm-delivered",), "lgbm-diff": ("lgbm-diff",), "linear": ("linear",),
           "blend-lgbm": ("lgbm-delivered", "lgbm-diff"), "blend-all": ("lgbm-delivered", "lgbm-diff", "linear")}


# --- features ------------------------------------------------------------------------------------------------------

def canonical_type(name: object) -> str:
    """Issue type -> bug / feature / task / subtask / epic / other (by name, so every tracker maps alike)."""
    if not isinstance(name, str):
        return "other"
    n = name.lower().replace("-", "").replace(" ", "")
    if "sub" in n and "task" in n:
        return "subtask"
    if "bug" in n:
        return "bug"
    if "epic" in n:
        return "epic"
    if any(k in n for k in ("feature", "story", "improvement", "enhancement", "suggestion", "request")):
        return "feature"
    if "task" in n:
        return "task"
    return "other"


def canonical_priority(name: object) -> str:
    """Priority -> blocker / critical / major / minor / trivial / other (``Major - P3`` -> major)."""
    if not isinstance(name, str):
        return "other"
    n = name.lower()
    for p in PRIORITY_CLASSES[:-1]:
        if p in n:
            return p
    return "other"


def time_order(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Rows in time order: sprint id ascending (JIRA's creation order), board id for copies of one sprint."""
    return snapshots.sort_values(["sprintid", "boardid"], kind="stable").reset_index(drop=True)


def _issue_aggregates(issues: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """ISSUE_FEATURES per (boardid, sprintid) of ``keys``, in its row order; sprints without issue rows get zeros."""
    k = ["boardid", "sprintid"]
    out = pd.DataFrame(0.0, index=pd.RangeIndex(len(keys)), columns=list(ISSUE_FEATURES))
    if issues is None or not len(issues):
        return out
    iss = issues[k].astype("int64").copy()
    for c in ISSUE_COUNTS:
        iss[c] = pd.to_numeric(issues[c], errors="coerce").astype("float64").fillna(0.0).to_numpy()
    iss["blocked"] = (iss["no_blockedby"] > 0).astype("float64")
    iss["type"] = issues["type"].map(canonical_type).to_numpy()
    iss["priority"] = issues["priority"].map(canonical_priority).to_numpy()
    iss["fog"] = issues["gunning_fog"].where(issues["gunning_fog"].isin(READABILITY), None).to_numpy()
    g = iss.groupby(k)
    agg = pd.DataFrame({"i_n": g.size().astype("float64"), "i_with_blocker": g["blocked"].sum(),
                        "i_max_no_comment": g["no_comment"].max(), "i_max_no_issuelink": g["no_issuelink"].max()})
    sums, means = g[list(ISSUE_COUNTS)].sum(), g[list(ISSUE_COUNTS)].mean()
    for c in ISSUE_COUNTS:
        agg[f"i_sum_{c}"] = sums[c]
        agg[f"i_mean_{c}"] = means[c]
    for col, classes, prefix in (("type", TYPE_CLASSES, "i_type_"), ("priority", PRIORITY_CLASSES, "i_priority_"),
                                 ("fog", READABILITY, "i_fog_")):
        counts = pd.crosstab([iss["boardid"], iss["sprintid"]], iss[col]).reindex(columns=list(classes), fill_value=0)
        for c in classes:
            agg[prefix + c] = counts[c].astype("float64")
    idx = pd.MultiIndex.from_frame(keys[k].astype("int64"))
    joined = agg.reindex(idx)[list(ISSUE_FEATURES)].fillna(0.0)
    return pd.DataFrame(joined.to_numpy(dtype="float64"), columns=list(ISSUE_FEATURES))


def _history(frame: pd.DataFrame) -> pd.DataFrame:
    """HISTORY_FEATURES from earlier rows only (``frame`` in time order, with delivered/committed/vel_diff)."""
    h = pd.DataFrame(index=frame.index)
    board = frame["boardid"]
    for col, name in (("delivered", "h_delivered"), (TARGET, "h_diff"), ("committed", "h_committed")):
        prev = frame.groupby(board, sort=False)[col].shift(1)
        roll3 = prev.groupby(board, sort=False).transform(lambda v: v.rolling(3, min_periods=1).mean())
        if name != "h_committed":
            h[name + "_1"] = prev
        h[name + "_3"] = roll3
        if name == "h_delivered":
            h[name + "_med"] = prev.groupby(board, sort=False).transform(lambda v: v.expanding().median())
    h["h_ratio_3"] = h["h_delivered_3"] / h["h_committed_3"].where(h["h_committed_3"] > 0)
    h["h_n"] = frame.groupby(board, sort=False).cumcount().astype("float64")
    committed = frame["committed"]
    h["h_ratio_pred"] = committed * h["h_ratio_3"].fillna(1.0) - committed
    h["h_delivered_pred"] = h["h_delivered_3"] - committed
    # project level: per sprint id (copies on several boards count once), the previous 10 sprint ids
    per_sprint = frame.groupby("sprintid", sort=True).agg(d=(TARGET, "median"), dl=("delivered", "sum"),
                                                          c=("committed", "sum"))
    ratio = per_sprint["dl"] / per_sprint["c"].where(per_sprint["c"] > 0)
    med_diff = per_sprint["d"].shift(1).rolling(10, min_periods=1).median()
    med_ratio = ratio.shift(1).rolling(10, min_periods=1).median()
    h["p_diff_med10"] = frame["sprintid"].map(med_diff).to_numpy()
    h["p_ratio_med10"] = frame["sprintid"].map(med_ratio).to_numpy()
    return h[list(HISTORY_FEATURES)].astype("float64")


def sprint_features(snapshots: pd.DataFrame, issues: pd.DataFrame | None = None, history: bool = True,
                    issue_features: bool = True) -> pd.DataFrame:
    """One row per sprint snapshot of ONE project at ONE prediction time, in time order (:func:`time_order`).

    ``snapshots`` are ``sprint_snapshots`` rows (one ``pct_elapsed``), ``issues`` the ``sprint_issues`` rows of the
    same time (rows of other times raise: features never mix times). Returns the keys, ``pct_elapsed``, the target
    ``vel_diff``, ``delivered`` (``vel_diff + committed``) and the feature columns (:func:`feature_columns`).
    History features read the target of earlier rows only; the issue features are the same-T issue file's rows.
    """
    if not len(snapshots):
        raise ValueError("sprint_features needs at least one sprint snapshot")
    times = snapshots["pct_elapsed"].unique()
    if len(times) != 1:
        raise ValueError(f"sprint_features needs the snapshots of one prediction time, got {sorted(times)}")
    t = int(times[0])
    if issues is not None and len(issues) and set(issues["pct_elapsed"].unique()) != {t}:
        raise ValueError(f"issue rows must be of the snapshots' time {t}, got {sorted(issues['pct_elapsed'].unique())}")
    snaps = time_order(snapshots)
    out = pd.DataFrame({k: snaps[k] for k in KEYS if k in snaps})
    out["boardid"] = snaps["boardid"].astype("int64")
    out["sprintid"] = snaps["sprintid"].astype("int64")
    out["pct_elapsed"] = t
    for c in ITERATION_FEATURES:
        out[c] = pd.to_numeric(snaps[c], errors="coerce").astype("float64")
    out[TARGET] = pd.to_numeric(snaps[TARGET], errors="coerce").astype("float64")
    committed = (out["vel_starttime"] + out["vel_added"] - out["vel_removed"])
    out["committed"] = committed
    out["remaining"] = out["vel_todo"] + out["vel_inprogress"]
    out["n_current"] = out["no_issuetodo"] + out["no_issueinprogress"] + out["no_issuedone"]
    out["done_frac"] = out["vel_done"] / committed.where(committed > 0)
    out["net_added"] = out["vel_added"] - out["vel_removed"]
    out["done_minus_committed"] = out["vel_done"] - committed
    out["delivered"] = out[TARGET] + committed
    if history:
        out = pd.concat([out, _history(out)], axis=1)
    if issue_features:
        out = pd.concat([out, _issue_aggregates(issues, out)], axis=1)
    return out


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """The model inputs present in ``frame`` (iteration, derived, history, issue features), in a fixed order."""
    names = (*ITERATION_FEATURES, *DERIVED_FEATURES, *HISTORY_FEATURES, *ISSUE_FEATURES)
    return [c for c in names if c in frame.columns]


def time_split(frame: pd.DataFrame, fraction: float = 0.8) -> int:
    """Rows ``[:cut]`` train, ``[cut:]`` test, for ``frame`` in time order: the first ``fraction`` of rows, the
    cut moved forward past rows sharing the last training row's sprint id (one sprint never on both sides)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    sid = frame["sprintid"].to_numpy()
    n = len(sid)
    cut = int(n * fraction)
    while 0 < cut < n and sid[cut] == sid[cut - 1]:
        cut += 1
    return cut


def normalised_mae(y_true: Sequence[float], y_pred: Sequence[float], scale: Sequence[float] | None = None) -> float:
    """MAE divided by the interquartile range of ``scale`` (default ``y_true``: the test target's IQR);
    NaN when that IQR is 0."""
    y_true, y_pred = np.asarray(y_true, dtype="float64"), np.asarray(y_pred, dtype="float64")
    ref = y_true if scale is None else np.asarray(scale, dtype="float64")
    if not len(y_true):
        return float("nan")
    q75, q25 = np.percentile(ref, [75, 25])
    iqr = float(q75 - q25)
    return float(np.abs(y_true - y_pred).mean() / iqr) if iqr > 0 else float("nan")


# --- estimator -----------------------------------------------------------------------------------------------------

@dataclass
class SprintModelConfig:
    """Settings of :class:`SprintDeliveryRegressor`. ``select`` is ``"validation"`` (keep the candidate of
    ``candidates`` with the lowest MAE over ``val_folds`` rolling-origin folds in the last ``val_fraction`` of the
    training rows) or one candidate name (no validation). The LightGBM and linear settings apply to every fit."""

    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    select: str = "validation"
    val_fraction: float = 0.3
    val_folds: int = 3
    objective: str = "l1"  # LightGBM objective: "l1" or "huber"
    huber_delta: float = 5.0  # story points, with objective="huber"
    n_estimators: int = 300
    learning_rate: float = 0.03
    num_leaves: int = 15
    min_child_samples: int = 10
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    linear_alpha: float = 0.01  # L1 penalty of the median regression
    seed: int = 0
    n_jobs: int = 1  # OpenMP threads; >1 spins on a shared 2-core machine
    extra: dict[str, Any] = field(default_factory=dict)  # more LightGBM parameters

    def __post_init__(self) -> None:
        bad = [c for c in self.candidates if c not in MEMBERS]
        if bad or not self.candidates:
            raise ValueError(f"unknown candidate(s) {bad}; choose from {list(CANDIDATES)}")
        if self.select != "validation" and self.select not in MEMBERS:
            raise ValueError(f"select must be 'validation' or one of {list(CANDIDATES)}, got {self.select!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.val_folds < 1:
            raise ValueError(f"val_folds must be at least 1, got {self.val_folds}")
        if self.objective not in ("l1", "huber"):
            raise ValueError(f"objective must be 'l1' or 'huber', got {self.objective!r}")

    def lgbm_params(self) -> dict[str, Any]:
        p = {k: v for k, v in asdict(self).items() if k in (
            "objective", "n_estimators", "learning_rate", "num_leaves", "min_child_samples", "subsample",
            "colsample_bytree", "reg_lambda", "n_jobs")}
        if self.objective == "huber":
            p["alpha"] = self.huber_delta
        return {**p, "subsample_freq": 1, "random_state": self.seed, "verbose": -1, **self.extra}


class _Linear:
    """Median regression (L1 loss, L1 penalty) on sign-log(1+|x|) features, standardised and clipped to +-5."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def _transform(self, X: pd.DataFrame) -> np.ndarray:
        x = X.to_numpy(dtype="float64")
        x = np.where(np.isnan(x), self.fill_, x)
        x = np.sign(x) * np.log1p(np.abs(x))
        return np.clip((x - self.mu_) / self.sd_, -5, 5)

    def fit(self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None) -> "_Linear":
        from sklearn.linear_model import QuantileRegressor

        x = X.to_numpy(dtype="float64")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN columns: median NaN, filled with 0 below
            self.fill_ = np.nan_to_num(np.nanmedian(x, axis=0))
        x = np.where(np.isnan(x), self.fill_, x)
        x = np.sign(x) * np.log1p(np.abs(x))
        self.mu_ = x.mean(axis=0)
        sd = x.std(axis=0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_ = QuantileRegressor(quantile=0.5, alpha=self.alpha, solver="highs").fit(
                self._transform(X), y, sample_weight=sample_weight)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.model_.predict(self._transform(X))


class SprintDeliveryRegressor:
    """Predicts ``vel_diff`` from the :func:`sprint_features` columns; picks its model on an inner time-ordered
    validation slice. ``X`` must hold the ``committed`` column and be in time order (rows of :func:`sprint_features`
    are); ``groups`` (sprint ids) keeps copies of one sprint on one side of the inner cut."""

    def __init__(self, config: SprintModelConfig | None = None, features: Sequence[str] | None = None):
        self.config = config or SprintModelConfig()
        self.features = list(features) if features is not None else None

    # members -----------------------------------------------------------------------------------------------------
    def _fit_member(self, name: str, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None):
        if name == "linear":
            return _Linear(self.config.linear_alpha).fit(X, y, w)
        import lightgbm as lgb

        target = y + X["committed"].to_numpy(dtype="float64") if name == "lgbm-delivered" else y
        return lgb.LGBMRegressor(**self.config.lgbm_params()).fit(X, target, sample_weight=w)

    @staticmethod
    def _predict_member(name: str, model, X: pd.DataFrame) -> np.ndarray:
        p = np.asarray(model.predict(X), dtype="float64")
        return p - X["committed"].to_numpy(dtype="float64") if name == "lgbm-delivered" else p

    def _needed(self, candidates: Sequence[str]) -> list[str]:
        return [m for m in ("lgbm-delivered", "lgbm-diff", "linear") if any(m in MEMBERS[c] for c in candidates)]

    def _columns(self, X: pd.DataFrame) -> pd.DataFrame:
        if "committed" not in X.columns:
            raise ValueError("X lacks the 'committed' column; build it with sprint_features()")
        cols = self.features if self.features is not None else feature_columns(X)
        missing = [c for c in cols if c not in X.columns]
        if missing:
            raise ValueError(f"X lacks feature column(s) {missing}")
        return X[cols].astype("float64")

    def _validate(self, Xf: pd.DataFrame, y: np.ndarray, groups, w) -> dict[str, float]:
        """Weighted MAE of every candidate over ``val_folds`` rolling-origin folds inside the training rows: the
        last ``val_fraction`` cut in ``val_folds`` time slices, each predicted by members fitted on all rows before
        it."""
        cfg = self.config
        frame = pd.DataFrame({"sprintid": np.asarray(groups) if groups is not None else np.arange(len(y))})
        n = len(y)
        cuts = [time_split(frame, 1 - cfg.val_fraction * (cfg.val_folds - j) / cfg.val_folds)
                for j in range(cfg.val_folds)] + [n]
        if cuts[0] < 5 or cuts[0] >= n:
            raise ValueError(f"too few training sprints ({n}) for an inner validation slice")
        members = self._needed(cfg.candidates)
        scored = [c for c in CANDIDATES if set(MEMBERS[c]) <= set(members)]  # free: their members are fitted
        errors: dict[str, list[np.ndarray]] = {c: [] for c in scored}
        weights: list[np.ndarray] = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b <= a:
                continue
            wtr = None if w is None else w[:a]
            preds = {m: self._predict_member(m, self._fit_member(m, Xf.iloc[:a], y[:a], wtr), Xf.iloc[a:b])
                     for m in members}
            for c in scored:
                errors[c].append(np.abs(np.mean([preds[m] for m in MEMBERS[c]], axis=0) - y[a:b]))
            weights.append(np.ones(b - a) if w is None else w[a:b])
        wv = np.concatenate(weights)
        return {c: float(np.average(np.concatenate(e), weights=wv)) for c, e in errors.items()}

    # API ---------------------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Sequence[float], groups: Sequence | None = None,
            sample_weight: Sequence[float] | None = None) -> "SprintDeliveryRegressor":
        Xf = self._columns(X)
        if self.features is None:
            self.features = list(Xf.columns)
        y = np.asarray(y, dtype="float64")
        if len(y) != len(Xf):
            raise ValueError(f"X and y differ in length: {len(Xf)} vs {len(y)}")
        if len(y) < 10 or np.isnan(y).any():
            raise ValueError("need at least 10 training sprints with a known vel_diff")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype="float64")
        cfg = self.config
        self.validation_scores_: dict[str, float] = {}
        if cfg.select == "validation" and len(cfg.candidates) > 1:
            self.validation_scores_ = self._validate(Xf, y, groups, w)
            self.chosen_ = min(cfg.candidates, key=lambda c: (self.validation_scores_[c], cfg.candidates.index(c)))
        else:
            self.chosen_ = cfg.select if cfg.select != "validation" else cfg.candidates[0]
        self.members_ = {m: self._fit_member(m, Xf, y, w) for m in MEMBERS[self.chosen_]}
        return self

    def predict_members(self, X: pd.DataFrame) -> dict[str, np.ndarray]:
        """``vel_diff`` predicted by each fitted member of the chosen candidate (``predict`` is their mean)."""
        if not hasattr(self, "members_"):
            raise RuntimeError("SprintDeliveryRegressor is not fitted; call fit() first")
        Xf = self._columns(X)
        return {m: self._predict_member(m, model, Xf) for m, model in self.members_.items()}

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.mean(list(self.predict_members(X).values()), axis=0)


class ConstantBaseline:
    """Predicts the training mean or median of ``vel_diff`` for every sprint (the paper's Mean/Median baselines)."""

    def __init__(self, statistic: str = "median"):
        if statistic not in ("mean", "median"):
            raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
        self.statistic = statistic

    def fit(self, X: pd.DataFrame | None, y: Sequence[float], **_: Any) -> "ConstantBaseline":
        y = np.asarray(y, dtype="float64")
        if not len(y):
            raise ValueError("cannot fit a baseline on no sprints")
        self.value_ = float(np.mean(y) if self.statistic == "mean" else np.median(y))
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self.value_, dtype="float64")
