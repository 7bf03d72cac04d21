"""Delay risk of issues with due dates: non-delay / minor / medium / major delay at a prediction time.

Classes follow Choetkiertikul et al. (EMSE 2017): 0 = non-delay (``delaydays == 0``); the delayed issues of a
project are cut at the 33rd and 66th percentiles of their delay days into 1 = minor (``<= q33``), 2 = medium
(``<= q66``) and 3 = major (``> q66``) -- :func:`class_thresholds`, :func:`risk_classes`.

Features (:func:`build_features`) come from the ``delay_snapshots`` rows of one project (one frame per prediction
time, as :func:`sunday.data.importers.delayed_issues.read_snapshots` gives them). Two sets:

``strict`` (default): only what is known at the prediction time ``T = openeddate + ProgressTime``.

* Left out as measured after the prediction time: ``repetition`` (reopen count: the same in the ``due`` and
  ``discussion`` files, so one late count; a reopen follows a resolution), and ``no_fixversion``, ``no_issuelink``,
  ``no_blocking``, ``no_blockedby``, ``no_affectversion`` (the same in all three files although fix versions and links
  change during an issue's life: a single snapshot taken after the fact).
* The due date is known only once it was set (``ProgressTime`` of the ``due`` file, days after creation). Before
  that, ``RemainingDay`` (computed in the files from the final due date at every time) is hidden: at creation it is
  known for only 43-71% of the issues of a project. ``due_known`` says which.
* Kept: ``type``, ``priority``, the LDA topic ids at 10 and 100 topics (as numbers: the finer ones and
  categorical coding did worse in inner CV), ``reporterrep`` (one value in all files, as the paper has it), the counts
  measured at the time (discussion, perofdelay, workload, comments, priority/fix-version/description changes),
  ``ProgressTime``, and the sub-project (the issue-key prefix, e.g. ``MDL`` of ``MDL-123``, known at creation).
* History, legitimate at ``T`` because it only uses other issues' outcomes already visible then: among the
  project's issues whose due date had passed (and been set) before ``T`` -- on time or late is known from that day --
  the share that was late (last 30 of the sub-project, last 100 of the project); the mean log delay of the last 30
  late issues of the sub-project resolved before ``T``; how many late issues are open and overdue at ``T`` (project,
  sub-project) and for how long; the size of the issue's release cohort (same sub-project and due date, created and
  due-dated by ``T``).
* No absolute time (year, issue number): ``openeddate`` only orders the time split and places ``T``.
* Residual, not fixable from the files: ``RemainingDay`` uses the final due date (a postponed due date is not
  visible), and ``priority``/topics/``reporterrep`` are one value per issue for all three times.

``paper``: the file's risk factors as given (incl. the columns above) plus type, priority and all topic ids: the
paper's setting, for comparison only.

:class:`DelayRiskClassifier` blends LightGBM multiclass and a Random Forest (the paper's learner), both with balanced
class weights, half and half (inner CV favoured the blend over either alone on apache/javanet/jboss/jira). The
decision rule -- delayed when P(delayed) >= threshold, then the most likely delayed class -- has its threshold tuned
for the delayed-class F-measure on out-of-fold predictions of the training data (inner stratified CV), never on test
data. :meth:`DelayRiskClassifier.p_delayed` (or :func:`p_delayed`) is what the timeline service uses to flag at-risk
tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd

CLASS_NAMES = ("non-delay", "minor", "medium", "major")
N_CLASSES = len(CLASS_NAMES)
DELAYED = (1, 2, 3)
PERCENTILES = (33.0, 66.0)
TIMES = ("creation", "due", "discussion")

# columns of the files that are not measured at the prediction time (see the module docstring)
LEAKY_COLUMNS = ("repetition", "no_fixversion", "no_issuelink", "no_blocking", "no_blockedby", "no_affectversion")
AT_TIME_COUNTS = ("discussion", "perofdelay", "workload", "no_comment", "no_priority_change", "no_fixversion_change",
                  "no_des_change")
TOPIC_COLUMNS = ("topic_10", "topic_100", "topic_200", "topic_300", "topic_400")
STRICT_TOPICS = ("topic_10", "topic_100")  # the finer topic ids only added noise in inner CV
PAPER_COUNTS = ("discussion", "repetition", "perofdelay", "workload", "no_comment", "no_priority_change",
                "no_fixversion", "no_fixversion_change", "no_issuelink", "no_blocking", "no_blockedby",
                "no_affectversion", "reporterrep", "no_des_change", "ProgressTime", "RemainingDay")
HIST_SUB_K = 30
HIST_PROJECT_K = 100
FeatureSet = Literal["strict", "paper"]


# ----------------------------------------------------------------------------------------------------- classes


def class_thresholds(delaydays: Iterable[float]) -> tuple[float, float]:
    """(q33, q66): the 33rd/66th percentiles of the delay days of the delayed issues (``delaydays > 0``)."""
    d = np.asarray(list(delaydays) if not isinstance(delaydays, (np.ndarray, pd.Series)) else delaydays, dtype=float)
    d = d[d > 0]
    if len(d) == 0:
        raise ValueError("no delayed issue (delaydays > 0): the minor/medium/major cut points are undefined")
    q33, q66 = np.percentile(d, PERCENTILES)
    return float(q33), float(q66)


def risk_classes(delaydays: Iterable[float], thresholds: tuple[float, float]) -> np.ndarray:
    """0 non-delay (0 days), 1 minor (<= q33), 2 medium (<= q66), 3 major (> q66)."""
    d = np.asarray(delaydays, dtype=float)
    if np.isnan(d).any() or (d < 0).any():
        raise ValueError("delaydays must be known and >= 0")
    q33, q66 = thresholds
    out = np.where(d <= 0, 0, np.where(d <= q33, 1, np.where(d <= q66, 2, 3)))
    return out.astype("int64")


# ----------------------------------------------------------------------------------------------------- metrics


def delayed_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F-measure on the delayed classes, micro-averaged over minor/medium/major.

    TP = delayed issues given their exact delayed class; precision = TP / issues predicted delayed (any delayed
    class); recall = TP / issues truly delayed. Non-delay is the negative class and scores nothing by itself.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp = float(np.sum((y_true == y_pred) & (y_true > 0)))
    npred, ntrue = float(np.sum(y_pred > 0)), float(np.sum(y_true > 0))
    p = tp / npred if npred else 0.0
    r = tp / ntrue if ntrue else float("nan")
    f = 2 * p * r / (p + r) if (p + r) > 0 else 0.0
    return p, r, f


def delayed_auc(y_true: np.ndarray, p_delayed: np.ndarray) -> float:
    """ROC AUC of P(delayed) for delayed (any class) vs non-delayed."""
    from sklearn.metrics import roc_auc_score

    t = (np.asarray(y_true) > 0).astype(int)
    if t.min() == t.max():
        return float("nan")
    return float(roc_auc_score(t, p_delayed))


def macro_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean over the four classes of the one-vs-rest ROC AUC (classes absent from ``y_true`` skipped)."""
    from sklearn.metrics import roc_auc_score

    y_true = np.asarray(y_true)
    aucs = [roc_auc_score((y_true == k).astype(int), proba[:, k]) for k in range(N_CLASSES)
            if 0 < np.sum(y_true == k) < len(y_true)]
    return float(np.mean(aucs)) if aucs else float("nan")


def macro_mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-averaged MAE (Baccianella et al. 2009): per true class, the mean ordinal distance |pred - true|,
    averaged over the classes present."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per = [np.mean(np.abs(y_pred[y_true == k] - k)) for k in range(N_CLASSES) if np.any(y_true == k)]
    return float(np.mean(per)) if per else float("nan")


# ---------------------------------------------------------------------------------------------------- features


def subproject(keys: pd.Series) -> pd.Series:
    """The issue-key prefix: ``MDL`` of ``MDL-123`` (the tracker project inside the data set's project)."""
    return keys.astype(str).str.rsplit("-", n=1).str[0]


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    if frame["issuekey"].duplicated().any():
        raise ValueError("issue keys repeat within one prediction-time frame")
    return frame.set_index("issuekey", drop=False)


def _last_k_rate(known_at: np.ndarray, values: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """For each query time q: (n events with known_at < q, mean of ``values`` over the last ``k`` of them)."""
    order = np.argsort(known_at, kind="stable")
    ka, v = known_at[order], values[order].astype(float)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    n = np.searchsorted(ka, query, side="left")
    lo = np.maximum(n - k, 0)
    cnt = n - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(cnt > 0, (csum[n] - csum[lo]) / np.maximum(cnt, 1), np.nan)
    return n.astype(float), rate


def _open_overdue(due_at: np.ndarray, resolved_at: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query time q: (late issues overdue and still open at q, their mean days overdue at q)."""
    start = due_at + 1.0
    so, eo = np.argsort(start, kind="stable"), np.argsort(resolved_at, kind="stable")
    s_sorted, e_sorted = start[so], resolved_at[eo]
    s_cum = np.concatenate([[0.0], np.cumsum(due_at[so])])
    e_cum = np.concatenate([[0.0], np.cumsum(due_at[eo])])
    ns = np.searchsorted(s_sorted, query, side="left")
    ne = np.searchsorted(e_sorted, query, side="left")
    n_open = (ns - ne).astype(float)
    due_sum = s_cum[ns] - e_cum[ne]
    with np.errstate(invalid="ignore", divide="ignore"):
        days = np.where(n_open > 0, query - due_sum / np.maximum(n_open, 1), np.nan)
    return n_open, days


def _history(base: pd.DataFrame, T: np.ndarray) -> pd.DataFrame:
    """History and cohort features at prediction times ``T`` (days since epoch, float) for the rows of ``base``.

    ``base`` has per issue: ``sub``, ``created`` (days), ``due_set`` (days after creation the due date was set),
    ``plan`` (due date - creation, days) and ``delaydays``.
    """
    created = base["created"].to_numpy(float)
    due_at = created + base["plan"].to_numpy(float)
    due_set_at = created + base["due_set"].to_numpy(float)
    outcome_at = np.maximum(due_at, due_set_at) + 1.0  # a day after the due date passed, late or not is known
    late = (base["delaydays"].to_numpy(float) > 0).astype(float)
    resolved_late_at = np.where(late > 0, due_at + base["delaydays"].to_numpy(float), np.inf)
    logdelay = np.log1p(base["delaydays"].to_numpy(float))
    out = pd.DataFrame(index=base.index)
    n_proj, rate_proj = _last_k_rate(outcome_at, late, T, HIST_PROJECT_K)
    out["hist_project_rate"] = rate_proj
    lp = late > 0
    out["overdue_project_n"], _ = _open_overdue(due_at[lp], resolved_late_at[lp], T)
    sub = base["sub"].to_numpy()
    n_sub = np.zeros(len(base))
    rate_sub = np.full(len(base), np.nan)
    logd_sub = np.full(len(base), np.nan)
    cohort = np.full(len(base), np.nan)
    od_n = np.zeros(len(base))
    od_days = np.full(len(base), np.nan)
    known_due = due_set_at <= T
    for s in np.unique(sub):
        m = sub == s
        idx = np.flatnonzero(m)
        n, r = _last_k_rate(outcome_at[m], late[m], T[m], HIST_SUB_K)
        n_sub[idx], rate_sub[idx] = n, r
        lm = m & (late > 0)
        if lm.any():
            _, ld = _last_k_rate(resolved_late_at[lm], logdelay[lm], T[m], HIST_SUB_K)
            logd_sub[idx] = ld
            od_n[idx], od_days[idx] = _open_overdue(due_at[lm], resolved_late_at[lm], T[m])
    # release cohort: same sub-project and due date, created and due-dated on an earlier day than T (dates are whole
    # days, so the same day could be later), plus the issue itself; only where the issue's own due date is known
    groups = pd.DataFrame({"sub": sub, "due": due_at}).groupby(["sub", "due"], sort=False).indices
    for idx in groups.values():
        idx = np.asarray(idx)
        seen = (due_set_at[idx][None, :] < T[idx][:, None]) & (created[idx][None, :] < T[idx][:, None])
        np.fill_diagonal(seen, True)
        cohort[idx] = np.where(known_due[idx], seen.sum(axis=1), np.nan)
    out["hist_sub_n"] = n_sub
    out["hist_sub_rate"] = rate_sub
    out["hist_sub_logdelay"] = logd_sub
    out["cohort_size"] = cohort
    out["overdue_sub_n"] = od_n
    out["overdue_sub_days"] = od_days
    return out


def build_features(frames: dict[str, pd.DataFrame], time: str, feature_set: FeatureSet = "strict") -> pd.DataFrame:
    """Feature rows of one project at ``time``, in the row order of ``frames[time]`` (index: issue key).

    ``frames`` maps each prediction time to that time's ``delay_snapshots`` rows of the project; ``strict`` needs
    the ``due`` frame as well (when the due date was set). ``delaydays`` feeds only the history of *other* issues
    whose outcome was known before the prediction time.
    """
    if time not in frames:
        raise ValueError(f"no '{time}' frame; have {sorted(frames)}")
    cur = _by_key(frames[time])
    feats = pd.DataFrame(index=cur.index)
    for c in ("type", "priority"):
        feats[c] = cur[c].astype(object)
    for c in (TOPIC_COLUMNS if feature_set == "paper" else STRICT_TOPICS):
        feats[c] = cur[c].astype("float")
    if feature_set == "paper":
        for c in PAPER_COUNTS:
            feats[c] = cur[c].astype(float)
        return feats
    if feature_set != "strict":
        raise ValueError(f"feature_set must be 'strict' or 'paper', got {feature_set!r}")
    if "due" not in frames:
        raise ValueError("the strict feature set needs the 'due' frame (when the due date was set)")
    due = _by_key(frames["due"]).reindex(cur.index)
    if due["ProgressTime"].isna().any():
        raise ValueError(f"issues of the '{time}' frame are missing from the 'due' frame")
    progress = cur["ProgressTime"].astype(float).clip(lower=0)
    due_set = due["ProgressTime"].astype(float).clip(lower=0)
    plan = (cur["ProgressTime"] + cur["RemainingDay"]).astype(float)
    due_known = due_set <= progress
    feats["subproject"] = subproject(cur["issuekey"])
    for c in AT_TIME_COUNTS:
        feats[c] = cur[c].astype(float)
    feats["reporterrep"] = cur["reporterrep"].astype(float)
    feats["ProgressTime"] = progress
    feats["due_known"] = due_known.astype(float)
    feats["RemainingDay"] = cur["RemainingDay"].astype(float).where(due_known)
    feats["plan_days"] = plan.where(due_known)
    feats["days_since_due_set"] = (progress - due_set).where(due_known)
    created = (cur["openeddate"] - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(float) / 86400.0
    base = pd.DataFrame({"sub": feats["subproject"].to_numpy(), "created": created, "due_set": due_set.to_numpy(),
                         "plan": plan.to_numpy(), "delaydays": cur["delaydays"].astype(float).to_numpy()},
                        index=cur.index)
    T = created + progress.to_numpy(float)
    hist = _history(base, T)
    for c in hist.columns:
        feats[c] = hist[c].to_numpy()
    return feats


# ------------------------------------------------------------------------------------------------------- model


@dataclass
class DelayRiskConfig:
    n_estimators: int = 150
    learning_rate: float = 0.06
    num_leaves: int = 15
    max_bin: int = 63
    min_child_samples: int = 20
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.7
    reg_lambda: float = 1.0
    cat_smooth: float = 10.0
    min_data_per_group: int = 20
    class_weight: str | None = "balanced"
    tune_threshold: bool = True  # pick the P(delayed) threshold on out-of-fold training predictions
    inner_folds: int = 3
    threshold_grid: tuple[float, ...] = tuple(round(0.05 + 0.01 * i, 2) for i in range(91))  # 0.05 .. 0.95
    # medium/major weights tried against minor when picking the delayed class (empty: plain argmax)
    weight_grid: tuple[float, ...] = ()
    rf_weight: float = 0.5  # share of a Random Forest (the paper's learner) in the blended probabilities
    rf_trees: int = 150
    rf_min_samples_leaf: int = 3
    seed: int = 0
    n_jobs: int = 1  # OpenMP threads: >1 spins badly when the 2 cores are shared
    extra: dict[str, Any] = field(default_factory=dict)

    def lgbm_params(self) -> dict[str, Any]:
        p = asdict(self)
        for k in ("tune_threshold", "inner_folds", "threshold_grid", "weight_grid", "rf_weight", "rf_trees",
                  "rf_min_samples_leaf", "extra"):
            p.pop(k)
        p["random_state"] = p.pop("seed")
        return {**p, **self.extra}


def decide(proba: np.ndarray, threshold: float | None, weights: Iterable[float] | None = None) -> np.ndarray:
    """Class per row. With ``threshold`` None: the most likely class. Else non-delay unless P(delayed) >= threshold,
    in which case the delayed class with the largest ``weights[k] * P(k)`` (minor, medium, major; default 1, 1, 1)."""
    proba = np.asarray(proba)
    if threshold is None:
        return proba.argmax(axis=1)
    w = np.ones(len(DELAYED)) if weights is None else np.asarray(list(weights), dtype=float)
    delayed = 1.0 - proba[:, 0] >= threshold
    return np.where(delayed, 1 + (proba[:, 1:] * w).argmax(axis=1), 0)


def best_threshold(y: np.ndarray, proba: np.ndarray, grid: Iterable[float]) -> tuple[float, float]:
    """(threshold, F) maximising the delayed-class F-measure; ties go to the threshold nearest 0.5."""
    best = (0.5, -1.0)
    for t in grid:
        f = delayed_prf(y, decide(proba, float(t)))[2]
        if f > best[1] + 1e-12 or (abs(f - best[1]) <= 1e-12 and abs(t - 0.5) < abs(best[0] - 0.5)):
            best = (float(t), f)
    return best


def best_rule(y: np.ndarray, proba: np.ndarray, grid: Iterable[float],
              weight_grid: Iterable[float] = ()) -> tuple[float, tuple[float, float, float], float]:
    """(threshold, delayed-class weights, F) maximising the delayed-class F-measure on ``proba``: the threshold
    first (weights 1), then the medium and major weights (relative to minor) over ``weight_grid``, then the
    threshold again. Ties keep the earlier (simpler) choice."""
    grid = list(grid)
    t, f = best_threshold(y, proba, grid)
    w = (1.0, 1.0, 1.0)
    wg = list(weight_grid)
    if not wg:
        return t, w, f
    for w2 in wg:
        for w3 in wg:
            cand = (1.0, float(w2), float(w3))
            fc = delayed_prf(y, decide(proba, t, cand))[2]
            if fc > f + 1e-12:
                w, f = cand, fc
    for tc in grid:
        fc = delayed_prf(y, decide(proba, float(tc), w))[2]
        if fc > f + 1e-12:
            t, f = float(tc), fc
    return t, w, f


class DelayRiskClassifier:
    """scikit-learn-like: ``fit(X, y)`` with ``y`` in 0..3, ``predict_proba`` (n, 4), ``predict``, ``p_delayed``.

    Object/category columns of ``X`` are categorical features (their categories are fixed at fit; unseen values
    become missing); the rest must be numeric (NaN = missing).
    """

    classes_ = np.arange(N_CLASSES)

    def __init__(self, config: DelayRiskConfig | None = None):
        self.config = config or DelayRiskConfig()

    # -- encoding
    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature frame lacks column(s) {missing}")
        out = pd.DataFrame(index=X.index)
        for c in self.feature_names_:
            if c in self.categories_:
                v = X[c].astype(object).where(X[c].notna(), None).map(lambda x: None if x is None else str(x))
                out[c] = pd.Categorical(v, categories=self.categories_[c])
            else:
                out[c] = pd.to_numeric(X[c], errors="raise").astype(float)
        return out

    def _fit_members(self, Xe: pd.DataFrame, y: np.ndarray) -> list[tuple[str, Any]]:
        """The fitted members: LightGBM, plus a Random Forest when ``rf_weight > 0``."""
        import lightgbm as lgb

        cfg = self.config
        members: list[tuple[str, Any]] = []
        if cfg.rf_weight < 1.0:
            model = lgb.LGBMClassifier(objective="multiclass", num_class=N_CLASSES, verbose=-1, **cfg.lgbm_params())
            cats = [c for c in Xe.columns if c in self.categories_]
            model.fit(Xe, y, categorical_feature=cats or "auto")
            members.append(("lgbm", model))
        if cfg.rf_weight > 0.0:
            from sklearn.ensemble import RandomForestClassifier

            rf = RandomForestClassifier(n_estimators=cfg.rf_trees, min_samples_leaf=cfg.rf_min_samples_leaf,
                                        max_features="sqrt", class_weight=cfg.class_weight, n_jobs=cfg.n_jobs,
                                        random_state=cfg.seed)
            rf.fit(self._numeric(Xe), y)
            members.append(("rf", rf))
        return members

    @staticmethod
    def _numeric(Xe: pd.DataFrame) -> np.ndarray:
        """Categorical columns as their codes (missing = NaN) for the forest, which splits NaN natively."""
        cols = []
        for c in Xe.columns:
            v = Xe[c]
            if isinstance(v.dtype, pd.CategoricalDtype):
                codes = v.cat.codes.to_numpy().astype(float)
                cols.append(np.where(codes < 0, np.nan, codes))
            else:
                cols.append(v.to_numpy(dtype=float))
        return np.column_stack(cols) if cols else np.zeros((len(Xe), 0))

    def _proba(self, members: list[tuple[str, Any]], Xe: pd.DataFrame) -> np.ndarray:
        total = np.zeros((len(Xe), N_CLASSES))
        for kind, model in members:
            if kind == "lgbm":
                p = np.asarray(model.predict_proba(Xe, num_threads=1), dtype=float)
                w = 1.0 - self.config.rf_weight
            else:
                p = np.asarray(model.predict_proba(self._numeric(Xe)), dtype=float)
                w = self.config.rf_weight
            full = np.zeros((len(Xe), N_CLASSES))
            full[:, np.asarray(model.classes_).astype(int)] = p
            total += w * full
        return total

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> "DelayRiskClassifier":
        y = np.asarray(y).astype(int)
        if len(y) != len(X):
            raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
        if len(y) == 0:
            raise ValueError("cannot fit on no issues")
        if y.min() < 0 or y.max() >= N_CLASSES:
            raise ValueError(f"labels must be in 0..{N_CLASSES - 1}")
        self.feature_names_ = list(X.columns)
        self.categories_: dict[str, list[str]] = {}
        for c in X.columns:
            col = X[c]
            if col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col):
                vals = X[c].dropna().astype(str)
                self.categories_[c] = sorted(vals.unique().tolist())
        Xe = self._encode(X)
        self.threshold_: float | None = None
        self.weights_ = (1.0, 1.0, 1.0)
        self.inner_f_ = float("nan")
        if self.config.tune_threshold:
            self.threshold_, self.weights_, self.inner_f_ = self._tune(Xe, y)
        self.members_ = self._fit_members(Xe, y)
        return self

    def _tune(self, Xe: pd.DataFrame, y: np.ndarray) -> tuple[float | None, tuple[float, float, float], float]:
        from sklearn.model_selection import StratifiedKFold

        counts = np.bincount(y, minlength=N_CLASSES)
        k = min(self.config.inner_folds, int(counts[counts > 0].min()))
        if k < 2 or (counts > 0).sum() < 2:
            return None, (1.0, 1.0, 1.0), float("nan")
        oof = np.zeros((len(y), N_CLASSES))
        skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=self.config.seed)
        for tr, va in skf.split(np.zeros(len(y)), y):
            oof[va] = self._proba(self._fit_members(Xe.iloc[tr], y[tr]), Xe.iloc[va])
        self.oof_proba_ = oof
        return best_rule(y, oof, self.config.threshold_grid, self.config.weight_grid)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self._proba(self.members_, self._encode(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return decide(self.predict_proba(X), self.threshold_, self.weights_)

    def p_delayed(self, X: pd.DataFrame) -> np.ndarray:
        """P(any delay) per issue: 1 - P(non-delay). The timeline service flags tasks where this is high."""
        return 1.0 - self.predict_proba(X)[:, 0]

    def at_risk(self, X: pd.DataFrame) -> np.ndarray:
        """True where the tuned decision rule predicts a delayed class (P(delayed) >= the tuned threshold)."""
        return self.predict(X) > 0

    def feature_importance(self) -> dict[str, float]:
        lgbm = [m for kind, m in self.members_ if kind == "lgbm"]
        if not lgbm:
            rf = self.members_[0][1]
            return dict(sorted(zip(self.feature_names_, map(float, rf.feature_importances_)), key=lambda kv: -kv[1]))
        gain = lgbm[0].booster_.feature_importance(importance_type="gain")
        return dict(sorted(zip(self.feature_names_, map(float, gain)), key=lambda kv: -kv[1]))


def p_delayed(model: DelayRiskClassifier, X: pd.DataFrame) -> np.ndarray:
    """P(delayed) for the timeline service: one number per task, 1 - P(non-delay)."""
    return model.p_delayed(X)
