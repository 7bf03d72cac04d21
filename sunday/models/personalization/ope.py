"""Off-policy evaluation of logged bandit feedback with position-wise action distributions, following the Open
Bandit Pipeline's definitions (Saito et al. 2021, "Open Bandit Dataset and Pipeline", NeurIPS D&B).

Logged data (:class:`LoggedFeedback`): per round ``i`` the observed ``reward`` r_i, the logged ``action`` a_i, its
``position`` k_i (0-based) and ``pscore`` p_i = pi_b(a_i | x_i, k_i), the behaviour policy's probability of the
logged action. An evaluation policy is its ``action_dist`` pi_e(a | x_i, k), an ``[n_rounds, n_actions,
n_positions]`` array exactly as in OBP; the first axis may have length 1 (a context-free policy) and the last
length 1 (a policy that ignores the position), or it may be given as ``(table, index)``: round ``i`` uses
``table[index[i]]`` (identical contexts sharing one row). With w_i = pi_e(a_i | x_i, k_i) / p_i:

* IPW: ``V = mean(w_i r_i)``;
* SNIPW (self-normalised): ``V = sum(w_i r_i) / sum(w_i)``;
* DR: ``V = mean(sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i) + w_i (r_i - q(x_i, a_i, k_i)))`` with a reward model
  ``q`` (``estimated_rewards``, the same array conventions as ``action_dist``);
* DM: ``V = mean(sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i))`` (the reward model alone; DR's baseline).

Each :class:`OpeEstimate` carries a percentile bootstrap confidence interval (rounds resampled with replacement,
the ratio recomputed for SNIPW, the reward model held fixed as in OBP), the bootstrap standard error, Kish's
effective sample size of the weights ``(sum w)^2 / sum w^2`` and the variance-equivalent sample size
``p (1 - p) / se^2`` with p the log's mean reward: how many on-policy rounds of a 0/1 reward at the log's rate would
give the same standard error (p, not the estimate, so that an estimate near 0 does not look precise).

The reward model used by ``sunday eval obd`` is :class:`ItemPositionCtr`: q(a, k) = CTR(k) x m_a, the position's
click rate times an item multiplier shrunk to 1 by Poisson-Gamma empirical Bayes (context-free: with tens of clicks
a contextual model has nothing to learn from), fitted by cross-fitting (:func:`cross_fit_rewards`: fold ``f``'s
rounds get the model fitted on the other folds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from sunday.errors import ValidationError

ESTIMATORS = ("ipw", "snipw", "dr", "dm")
_CHUNK_ELEMENTS = 4_000_000  # rows x actions per gathered block, and rounds x resamples per bootstrap block


class OpeInputError(ValidationError, ValueError):
    """Bad input to an off-policy estimator; names the field (``reward``, ``pscore``, ``action_dist``, ...)."""

    status_code = 422

    def __init__(self, field: str, message: str):
        ValidationError.__init__(self, table="logged bandit feedback", field=field, message=message)


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged bandit feedback: ``reward``, ``action`` (0..n_actions-1), ``position`` (0..n_positions-1) and
    ``pscore`` per round. Build it with :meth:`make` (checks every field)."""

    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    n_actions: int
    n_positions: int

    @classmethod
    def make(cls, reward: Any, action: Any, pscore: Any, position: Any = None, n_actions: int | None = None,
             n_positions: int | None = None) -> "LoggedFeedback":
        r = _vector(reward, "reward", float)
        n = len(r)
        a = _vector(action, "action", int, n)
        p = _vector(pscore, "pscore", float, n)
        k = np.zeros(n, dtype=np.int64) if position is None else _vector(position, "position", int, n)
        if n == 0:
            raise OpeInputError("reward", "is empty: no logged rounds")
        if not np.isfinite(r).all():
            raise OpeInputError("reward", f"round {int(np.argmin(np.isfinite(r)))} is not finite")
        if not (np.isfinite(p).all() and (p > 0).all() and (p <= 1).all()):
            i = int(np.argmax(~(np.isfinite(p) & (p > 0) & (p <= 1))))
            raise OpeInputError("pscore", f"must be in (0, 1]; round {i} has {p[i]!r}")
        n_actions = int(a.max()) + 1 if n_actions is None else int(n_actions)
        n_positions = int(k.max()) + 1 if n_positions is None else int(n_positions)
        if a.min() < 0 or a.max() >= n_actions:
            raise OpeInputError("action", f"must be in 0..{n_actions - 1}, got {int(a.min())}..{int(a.max())}")
        if k.min() < 0 or k.max() >= n_positions:
            raise OpeInputError("position", f"must be in 0..{n_positions - 1} (0-based), got "
                                            f"{int(k.min())}..{int(k.max())}")
        return cls(r, a, k, p, n_actions, n_positions)

    @property
    def n_rounds(self) -> int:
        return len(self.reward)

    def subset(self, rows: np.ndarray) -> "LoggedFeedback":
        return LoggedFeedback(self.reward[rows], self.action[rows], self.position[rows], self.pscore[rows],
                              self.n_actions, self.n_positions)


def _vector(values: Any, field: str, kind: type, n: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise OpeInputError(field, "must be numbers") from None
    if v.ndim != 1:
        raise OpeInputError(field, f"must be a vector, got shape {v.shape}")
    if n is not None and len(v) != n:
        raise OpeInputError(field, f"has {len(v)} rounds, reward has {n}")
    if kind is int:
        if not np.isfinite(v).all() or (v != np.round(v)).any():
            raise OpeInputError(field, "must be integers")
        return v.astype(np.int64)
    return v


# -- policies as arrays -------------------------------------------------------------------------------------------
class _Rows:
    """An ``[rows, n_actions, positions]`` array and the row of each round (see the module notes)."""

    def __init__(self, value: Any, fb: LoggedFeedback, field: str, distribution: bool):
        if isinstance(value, tuple):
            if len(value) != 2:
                raise OpeInputError(field, "a tuple must be (table, index)")
            table, index = np.asarray(value[0], dtype=np.float64), _vector(value[1], f"{field} index", int,
                                                                           fb.n_rounds)
            if index.min() < 0 or index.max() >= table.shape[0]:
                raise OpeInputError(field, f"index must point at rows 0..{table.shape[0] - 1} of the table")
        else:
            table, index = np.asarray(value, dtype=np.float64), None
        if table.ndim != 3 or table.shape[1] != fb.n_actions or table.shape[2] not in (1, fb.n_positions):
            raise OpeInputError(field, f"must be [n_rounds, {fb.n_actions} actions, {fb.n_positions} positions (or "
                                       f"1)], got shape {table.shape}")
        if index is None and table.shape[0] not in (1, fb.n_rounds):
            raise OpeInputError(field, f"has {table.shape[0]} rows; expected {fb.n_rounds} rounds or 1")
        if not np.isfinite(table).all():
            raise OpeInputError(field, "must be finite")
        if distribution:
            if (table < -1e-12).any():
                raise OpeInputError(field, "probabilities must be >= 0")
            sums = table.sum(axis=1)
            if not np.allclose(sums, 1.0, atol=1e-6):
                raise OpeInputError(field, f"must sum to 1 over actions; a row sums to "
                                           f"{float(sums.flat[np.argmax(np.abs(sums - 1))]):.6g}")
        self.table, self.index, self.fb = table, index, fb

    def rows(self, sl: slice) -> np.ndarray:
        i = np.arange(sl.start, sl.stop)
        if self.index is not None:
            i = self.index[sl]
        elif self.table.shape[0] == 1:
            i = np.zeros(len(i), dtype=np.int64)
        return i

    def at_logged_action(self) -> np.ndarray:
        """value[i, a_i, k_i] per round."""
        fb = self.fb
        k = fb.position if self.table.shape[2] > 1 else np.zeros(fb.n_rounds, dtype=np.int64)
        return self.table[self.rows(slice(0, fb.n_rounds)), fb.action, k]

    def block(self, sl: slice) -> np.ndarray:
        """value[i, :, k_i] for the rounds in ``sl``: ``[rounds, n_actions]``."""
        k = self.fb.position[sl] if self.table.shape[2] > 1 else np.zeros(sl.stop - sl.start, dtype=np.int64)
        return self.table[self.rows(sl), :, k]


def _expected(pi: _Rows, q: _Rows) -> np.ndarray:
    """sum_a pi(a | x_i, k_i) q(x_i, a, k_i) per round, in blocks."""
    n = pi.fb.n_rounds
    out = np.empty(n)
    step = max(1, _CHUNK_ELEMENTS // max(1, pi.fb.n_actions))
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        out[sl] = np.einsum("ia,ia->i", pi.block(sl), q.block(sl))
    return out


# -- estimates ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpeEstimate:
    """One estimator's policy value with its bootstrap interval and effective sample sizes."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    se: float
    n_rounds: int
    ess_weights: float  # Kish: (sum w)^2 / sum w^2 (n for an on-policy estimate)
    ess: float  # variance-equivalent on-policy rounds: p (1 - p) / se^2, p = the log's mean reward

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_ratio(num: np.ndarray, den: np.ndarray | None, n_bootstrap: int = 1000, alpha: float = 0.05,
                    seed: int = 0) -> tuple[float, float, float]:
    """Percentile bootstrap of ``sum(num) / sum(den)`` (``den`` None: the mean of ``num``), rounds resampled with
    replacement: ``(low, high, standard error)``."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 2:
        raise OpeInputError("n_bootstrap", f"must be an integer >= 2, got {n_bootstrap!r}")
    if not 0 < alpha < 1:
        raise OpeInputError("alpha", f"must be in (0, 1), got {alpha!r}")
    rng = np.random.default_rng(seed)
    n = len(num)
    stats = np.empty(int(n_bootstrap))
    step = max(1, _CHUNK_ELEMENTS // n)
    for s in range(0, int(n_bootstrap), step):
        m = min(step, int(n_bootstrap) - s)
        idx = rng.integers(0, n, size=(m, n))
        top = num[idx].sum(axis=1)
        bottom = den[idx].sum(axis=1) if den is not None else np.full(m, float(n))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[s:s + m] = np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1.0), 0.0)
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high), float(stats.std(ddof=1))


def _estimate(name: str, num: np.ndarray, den: np.ndarray | None, weights: np.ndarray | None, reference: float,
              n_bootstrap: int, alpha: float, seed: int) -> OpeEstimate:
    n = len(num)
    total = float(den.sum()) if den is not None else float(n)
    value = float(num.sum() / total) if total > 0 else 0.0
    low, high, se = bootstrap_ratio(num, den, n_bootstrap, alpha, seed)
    kish = float(weights.sum() ** 2 / (weights ** 2).sum()) if weights is not None and (weights > 0).any() \
        else (float(n) if weights is None else 0.0)
    p = min(max(reference, 0.0), 1.0)
    ess = float(p * (1 - p) / se ** 2) if se > 0 else math.nan
    return OpeEstimate(name, value, low, high, se, n, kish, ess)


def estimate_policy_value(feedback: LoggedFeedback, action_dist: Any, estimators: Sequence[str] = ("ipw", "snipw",
                          "dr"), estimated_rewards: Any = None, n_bootstrap: int = 1000, alpha: float = 0.05,
                          seed: int = 0) -> dict[str, OpeEstimate]:
    """The evaluation policy's value by each of ``estimators`` (``ipw``, ``snipw``, ``dr``, ``dm``) with a
    ``1 - alpha`` bootstrap interval. ``dr`` and ``dm`` need ``estimated_rewards`` (q, same conventions as
    ``action_dist``). Every estimator resamples the same rounds (one ``seed``)."""
    if not isinstance(feedback, LoggedFeedback):
        raise OpeInputError("feedback", f"must be a LoggedFeedback, got {type(feedback).__name__}")
    unknown = [e for e in estimators if e not in ESTIMATORS]
    if unknown or not estimators:
        raise OpeInputError("estimators", f"{unknown or 'none given'}; known: {list(ESTIMATORS)}")
    pi = _Rows(action_dist, feedback, "action_dist", distribution=True)
    w = pi.at_logged_action() / feedback.pscore
    r = feedback.reward
    ref = float(r.mean())
    terms: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {
        "ipw": (w * r, None, w), "snipw": (w * r, w, w)}  # (numerator, denominator, weights) per round
    if {"dr", "dm"} & set(estimators):
        if estimated_rewards is None:
            raise OpeInputError("estimated_rewards", "is required for the dr and dm estimators")
        q = _Rows(estimated_rewards, feedback, "estimated_rewards", distribution=False)
        dm = _expected(pi, q)
        terms["dr"] = (dm + w * (r - q.at_logged_action()), None, w)
        terms["dm"] = (dm, None, None)
    out: dict[str, OpeEstimate] = {}
    for e in estimators:
        num, den, weights = terms[e]
        out[e] = _estimate(e, num, den, weights, ref, n_bootstrap, alpha, seed)
    return out


def on_policy_value(reward: Any, n_bootstrap: int = 1000, alpha: float = 0.05, seed: int = 0) -> OpeEstimate:
    """The mean reward of a policy's own log, with the same bootstrap interval."""
    r = _vector(reward, "reward", float)
    if len(r) == 0 or not np.isfinite(r).all():
        raise OpeInputError("reward", "must be one or more finite numbers")
    return _estimate("on-policy", r, None, None, float(r.mean()), n_bootstrap, alpha, seed)


# -- reward model and folds ---------------------------------------------------------------------------------------
class ItemPositionCtr:
    """q(a, k) = CTR(k) x m_a: the position's click rate times an item multiplier, shrunk to 1 by Poisson-Gamma
    empirical Bayes: m_a = (clicks_a + s) / (expected_a + s), ``expected_a = sum_k n_ak CTR(k)``; the prior
    strength ``s`` (in clicks) is the method-of-moments estimate ``1 / tau^2`` of the item multipliers' spread,
    ``tau^2 = sum((c - e)^2 - c) / sum(e^2)``, clamped to [``min_strength``, ``max_strength``] (no detectable
    spread: every item gets its position's CTR). Context-free: :meth:`predict` is ``[1, n_actions, n_positions]``."""

    def __init__(self, min_strength: float = 1.0, max_strength: float = 1e6, strength: float | None = None):
        self.min_strength, self.max_strength, self.strength = min_strength, max_strength, strength

    def fit(self, feedback: LoggedFeedback) -> "ItemPositionCtr":
        K, L = feedback.n_actions, feedback.n_positions
        r = feedback.reward
        shown = np.bincount(feedback.position * K + feedback.action, minlength=K * L).reshape(L, K)
        clicks = np.bincount(feedback.position * K + feedback.action, weights=r, minlength=K * L).reshape(L, K)
        n_k, c_k = shown.sum(axis=1), clicks.sum(axis=1)
        overall = c_k.sum() / max(1, n_k.sum())
        ctr_k = np.where(n_k > 0, c_k / np.maximum(n_k, 1), overall)
        expected = (shown * ctr_k[:, None]).sum(axis=0)  # [K]
        c = clicks.sum(axis=0)
        if self.strength is not None:
            s = float(self.strength)
        else:
            tau2 = float(((c - expected) ** 2 - c).sum() / max((expected ** 2).sum(), 1e-300))
            s = self.max_strength if tau2 <= 1.0 / self.max_strength else 1.0 / tau2
        s = float(np.clip(s, self.min_strength, self.max_strength))
        self.strength_ = s
        self.position_ctr_ = ctr_k
        self.item_multiplier_ = (c + s) / (expected + s)
        self.table_ = (ctr_k[None, :] * self.item_multiplier_[:, None])[None]  # [1, K, L]
        return self

    def predict(self) -> np.ndarray:
        return self.table_


def fold_ids(n: int, n_folds: int, by: str = "time", seed: int = 0) -> np.ndarray:
    """Fold of each round: ``time`` = ``n_folds`` contiguous blocks in log order (rounds sorted by time),
    ``random`` = a seeded random split of equal sizes."""
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n:
        raise OpeInputError("folds", f"must be an integer in 2..{n}, got {n_folds!r}")
    base = np.arange(n) * n_folds // n
    if by == "time":
        return base
    if by == "random":
        return np.random.default_rng(seed).permutation(base)
    raise OpeInputError("fold_by", f"must be 'time' or 'random', got {by!r}")


def cross_fit_rewards(feedback: LoggedFeedback, folds: np.ndarray,
                      make_model: Callable[[], Any] = ItemPositionCtr) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted context-free reward model: ``(table [n_folds, n_actions, n_positions], folds)`` -- round ``i``
    uses the model fitted on every fold but its own (pass the pair as ``estimated_rewards``)."""
    folds = np.asarray(folds)
    tables = []
    for f in range(int(folds.max()) + 1):
        model = make_model().fit(feedback.subset(folds != f))
        tables.append(model.predict()[0])
    return np.stack(tables), folds
