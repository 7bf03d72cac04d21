"""Linear Thompson sampling (Agrawal & Goyal 2013) over a context vector, one ridge posterior per arm.

For arm ``a`` with the contexts ``x`` it was played on and their rewards ``r`` (in [0, 1])::

    A_a = lambda I + sum x x^T        b_a = sum r x        theta_a ~ N(A_a^-1 b_a, v^2 A_a^-1)

and :meth:`LinearThompsonSampling.select` plays the arm with the largest sampled ``x . theta_a``. Only that score
matters, and for a Gaussian ``theta_a`` it is itself Gaussian, ``N(x . mu_a, v^2 x^T A_a^-1 x)``, so the bandit
draws one standard normal per arm instead of a ``d``-dimensional ``theta_a`` (the same distribution of choices, no
per-step Cholesky). ``A_a`` and ``b_a`` are the sufficient statistics (exact sums, what the store persists);
``A_a^-1`` is kept by Sherman-Morrison rank-one updates and recomputed exactly by Cholesky every
``refresh_every`` updates of an arm (and after :meth:`fit` / :meth:`from_state`) so rounding cannot drift.
:meth:`posterior` always answers from the Cholesky factor of ``A_a``.

:meth:`propensities` estimates the probability that :meth:`select` plays each arm (Monte-Carlo over the same
posterior, a generator of its own so it never moves the selection stream): what off-policy evaluation and the
propensity column of a log need. Bad input raises :class:`BanditInputError` (a
:class:`~sunday.errors.ValidationError`, so the CLI prints it and the HTTP layer answers 422) naming the field:
``arm``, ``reward``, ``context`` or a config field.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from sunday.errors import ValidationError


class BanditInputError(ValidationError, ValueError):
    """Bad input to a bandit (unknown arm, reward outside [0, 1], wrong-size context, bad config); names the field."""

    status_code = 422

    def __init__(self, field: str, message: str, table: str = "bandit"):
        ValidationError.__init__(self, table=table, field=field, message=message)


@dataclass(frozen=True)
class BanditConfig:
    """``arms``: the arm names; ``context_dim``: the length of every context; ``prior_lambda``: the ridge prior
    (``A = lambda I`` before any update); ``exploration``: ``v``, the posterior scale of the sampled scores (0 =
    greedy); ``seed``: the selection generator's seed; ``refresh_every``: rank-one updates of an arm between exact
    recomputations of its inverse."""

    arms: tuple[str, ...]
    context_dim: int
    prior_lambda: float = 1.0
    exploration: float = 0.5
    seed: int = 0
    refresh_every: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.arms, str) or not isinstance(self.arms, Iterable):
            raise BanditInputError("arms", f"must be a sequence of arm names, got {self.arms!r}")
        arms = tuple(self.arms)
        if not arms or not all(isinstance(a, str) and a for a in arms):
            raise BanditInputError("arms", f"must be one or more non-empty strings, got {list(arms)!r}")
        if len(set(arms)) != len(arms):
            raise BanditInputError("arms", f"names must be unique, got {list(arms)!r}")
        object.__setattr__(self, "arms", arms)
        if isinstance(self.context_dim, bool) or not isinstance(self.context_dim, (int, np.integer)) \
                or self.context_dim < 1:
            raise BanditInputError("context_dim", f"must be a positive integer, got {self.context_dim!r}")
        object.__setattr__(self, "context_dim", int(self.context_dim))
        for name, low in (("prior_lambda", 0.0), ("exploration", None)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(v) or (v <= low if low is not None else v < 0):
                need = "a finite number > 0" if low is not None else "a finite number >= 0"
                raise BanditInputError(name, f"must be {need}, got {v!r}")
            object.__setattr__(self, name, float(v))
        for name in ("seed", "refresh_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "seed" else 1):
                raise BanditInputError(name, f"must be an integer >= {0 if name == 'seed' else 1}, got {v!r}")
            object.__setattr__(self, name, int(v))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["arms"] = list(self.arms)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BanditConfig":
        known = {k: d[k] for k in ("arms", "context_dim", "prior_lambda", "exploration", "seed", "refresh_every")
                 if k in d}
        return cls(**{**known, "arms": tuple(known.get("arms", ()))})


def accumulate(A: np.ndarray, b: np.ndarray, x: np.ndarray, reward: float) -> None:
    """Add one observation to an arm's sufficient statistics, in place. The bandit and the store both call this,
    so a replay performs the same floating-point operations in the same order (bit-identical statistics)."""
    A += np.outer(x, x)
    b += reward * x


def cholesky_inverse(A: np.ndarray) -> np.ndarray:
    """``A^-1`` of a symmetric positive-definite ``A`` through its Cholesky factor ``L``: ``L^-T L^-1`` (symmetric by
    construction). NumPy only: SciPy's multi-right-hand-side ``cho_solve`` is 100x slower on a busy machine."""
    L_inv = np.linalg.inv(np.linalg.cholesky(A))
    return L_inv.T @ L_inv


def check_context(context: Any, dim: int, table: str = "bandit") -> np.ndarray:
    """``context`` as a float64 vector of length ``dim``; :class:`BanditInputError` naming ``context`` if not."""
    try:
        x = np.asarray(context, dtype=np.float64)
    except (TypeError, ValueError):
        raise BanditInputError("context", f"must be {dim} numbers, got {context!r:.80}", table) from None
    if x.ndim != 1 or x.shape[0] != dim:
        raise BanditInputError("context", f"must be a vector of length {dim}, got shape {x.shape}", table)
    if not np.isfinite(x).all():
        raise BanditInputError("context", f"must be finite; element {int(np.argmin(np.isfinite(x)))} is "
                                          f"{x[np.argmin(np.isfinite(x))]}", table)
    return x


def check_reward(reward: Any, table: str = "bandit") -> float:
    """``reward`` as a float in [0, 1]; :class:`BanditInputError` naming ``reward`` if not."""
    if isinstance(reward, bool):
        return float(reward)
    try:
        r = float(reward)
    except (TypeError, ValueError):
        raise BanditInputError("reward", f"must be a number in [0, 1], got {reward!r}", table) from None
    if not math.isfinite(r) or r < 0.0 or r > 1.0:
        raise BanditInputError("reward", f"must be a finite number in [0, 1], got {reward!r}", table)
    return r


class LinearThompsonSampling:
    """Disjoint linear-Gaussian Thompson sampling: ``select`` / ``update`` online, ``fit`` for a batch,
    ``predict`` / ``expected_rewards`` greedy, ``propensities`` for logging and off-policy evaluation."""

    def __init__(self, config: BanditConfig):
        if not isinstance(config, BanditConfig):
            raise BanditInputError("config", f"must be a BanditConfig, got {type(config).__name__}")
        self.config = config
        k, d = len(config.arms), config.context_dim
        self._index = {a: i for i, a in enumerate(config.arms)}
        self._A = np.repeat(np.eye(d)[None] * config.prior_lambda, k, axis=0)
        self._b = np.zeros((k, d))
        self._n = np.zeros(k, dtype=np.int64)
        self._A_inv = np.repeat(np.eye(d)[None] / config.prior_lambda, k, axis=0)
        self._mu = np.zeros((k, d))
        self._pending = np.zeros(k, dtype=np.int64)  # rank-one updates since the last exact inverse
        self._rng = np.random.default_rng(config.seed)
        self._lock = threading.RLock()

    # -- input checks -----------------------------------------------------------------------------------------------
    @property
    def arms(self) -> tuple[str, ...]:
        return self.config.arms

    def arm_index(self, arm: Any) -> int:
        """The position of ``arm`` in ``config.arms``; :class:`BanditInputError` naming ``arm`` if unknown."""
        k = self._index.get(arm) if isinstance(arm, str) else None
        if k is None:
            raise BanditInputError("arm", f"is {arm!r}, not one of the arms {list(self.config.arms)}")
        return k

    def _contexts(self, contexts: Any) -> np.ndarray:
        try:
            X = np.asarray(contexts, dtype=np.float64)
        except (TypeError, ValueError):
            raise BanditInputError("context", "must be numbers (one row of "
                                              f"{self.config.context_dim} per round)") from None
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.config.context_dim:
            raise BanditInputError("context", f"must have {self.config.context_dim} columns, got shape {X.shape}")
        bad = ~np.isfinite(X).all(axis=1)
        if bad.any():
            raise BanditInputError("context", f"row {int(np.argmax(bad))} is not finite")
        return X

    # -- online -----------------------------------------------------------------------------------------------------
    def select(self, context: Any) -> str:
        """Sample a score per arm from its posterior and return the name of the best one."""
        x = check_context(context, self.config.context_dim)
        with self._lock:
            z = self._rng.standard_normal(len(self.config.arms))
            Ax = self._A_inv @ x
            var = np.maximum(Ax @ x, 0.0)
            scores = self._mu @ x + self.config.exploration * np.sqrt(var) * z
        return self.config.arms[int(np.argmax(scores))]

    def update(self, context: Any, arm: str, reward: float) -> None:
        """Add one observed reward (in [0, 1]) of ``arm`` played on ``context``."""
        x = check_context(context, self.config.context_dim)
        k = self.arm_index(arm)
        r = check_reward(reward)
        with self._lock:
            accumulate(self._A[k], self._b[k], x, r)
            self._n[k] += 1
            self._pending[k] += 1
            if self._pending[k] >= self.config.refresh_every:
                self._refresh(k)
            else:  # Sherman-Morrison: (A + x x^T)^-1 = A^-1 - A^-1 x x^T A^-1 / (1 + x^T A^-1 x)
                inv = self._A_inv[k]
                u = inv @ x
                inv -= np.outer(u, u) / (1.0 + x @ u)
                self._mu[k] = inv @ self._b[k]

    def _refresh(self, k: int) -> None:
        self._A_inv[k] = cholesky_inverse(self._A[k])
        self._mu[k] = self._A_inv[k] @ self._b[k]
        self._pending[k] = 0

    # -- batch ------------------------------------------------------------------------------------------------------
    def fit(self, contexts: Any, arms: Sequence[str], rewards: Any) -> "LinearThompsonSampling":
        """Add a batch of observations (each row: context, arm played, reward) to the current posterior; returns
        self. Every row is checked before any is applied. Start from a fresh bandit for a from-scratch fit."""
        X = self._contexts(contexts)
        arms = list(arms)
        r = np.asarray(rewards, dtype=np.float64) if not isinstance(rewards, np.ndarray) else rewards.astype(float)
        if len(arms) != len(X) or r.shape != (len(X),):
            raise BanditInputError("arm", f"contexts ({len(X)}), arms ({len(arms)}) and rewards ({r.shape}) must "
                                          "have one entry per round")
        idx = np.fromiter((self.arm_index(a) for a in arms), dtype=np.int64, count=len(arms))
        bad = ~np.isfinite(r) | (r < 0) | (r > 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise BanditInputError("reward", f"must be a finite number in [0, 1]; round {i} has {r[i]!r}")
        with self._lock:
            for k in np.unique(idx):
                rows = idx == k
                Xk = X[rows]
                self._A[k] += Xk.T @ Xk
                self._b[k] += Xk.T @ r[rows]
                self._n[k] += int(rows.sum())
                self._refresh(int(k))
        return self

    def expected_rewards(self, contexts: Any) -> np.ndarray:
        """Posterior-mean reward of every arm, ``[n_rounds, n_arms]`` (one row for a single context)."""
        X = self._contexts(contexts)
        with self._lock:
            return X @ self._mu.T

    def predict(self, contexts: Any) -> np.ndarray:
        """The greedy arm (largest posterior-mean reward) for each context, as an array of names."""
        best = np.argmax(self.expected_rewards(contexts), axis=1)
        return np.asarray(self.config.arms, dtype=object)[best]

    def propensities(self, contexts: Any, n_samples: int = 1000, seed: int | None = None,
                     chunk: int = 64) -> np.ndarray:
        """Monte-Carlo probability that :meth:`select` plays each arm: ``[n_arms]`` for one context, ``[n_rounds,
        n_arms]`` for a batch (identical contexts share one estimate). Draws come from a generator seeded with
        ``seed`` (default ``config.seed``), not the selection generator."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise BanditInputError("n_samples", f"must be a positive integer, got {n_samples!r}")
        single = np.ndim(contexts) == 1
        X = self._contexts(contexts)
        uniq, inverse = np.unique(X, axis=0, return_inverse=True)
        rng = np.random.default_rng(self.config.seed if seed is None else seed)
        k = len(self.config.arms)
        with self._lock:
            mu, inv = self._mu.copy(), self._A_inv.copy()
        out = np.empty((len(uniq), k))
        for s in range(0, len(uniq), chunk):
            U = uniq[s:s + chunk]
            mean = U @ mu.T
            sd = self.config.exploration * np.sqrt(np.maximum(np.einsum("md,kde,me->mk", U, inv, U), 0.0))
            z = rng.standard_normal((len(U), int(n_samples), k))
            best = np.argmax(mean[:, None, :] + sd[:, None, :] * z, axis=2)
            for j in range(len(U)):
                out[s + j] = np.bincount(best[j], minlength=k) / n_samples
        probs = out[inverse.reshape(-1)]
        return probs[0] if single else probs

    # -- state ------------------------------------------------------------------------------------------------------
    def posterior(self, arm: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, covariance)`` of ``theta_arm``: ``A^-1 b`` and ``v^2 A^-1``, from the Cholesky factor of A."""
        k = self.arm_index(arm)
        with self._lock:
            inv = cholesky_inverse(self._A[k])
            mean = inv @ self._b[k]
        return mean, self.config.exploration ** 2 * inv

    @property
    def counts(self) -> dict[str, int]:
        """Updates seen per arm."""
        return {a: int(n) for a, n in zip(self.config.arms, self._n)}

    def state(self) -> dict[str, np.ndarray]:
        """The sufficient statistics (copies): ``A`` [arms, d, d], ``b`` [arms, d], ``n`` [arms]."""
        with self._lock:
            return {"A": self._A.copy(), "b": self._b.copy(), "n": self._n.copy()}

    @classmethod
    def from_state(cls, config: BanditConfig, A: np.ndarray, b: np.ndarray, n: np.ndarray) -> "LinearThompsonSampling":
        """A bandit with the given sufficient statistics (inverses recomputed exactly)."""
        bandit = cls(config)
        k, d = len(config.arms), config.context_dim
        A, b, n = np.asarray(A, dtype=np.float64), np.asarray(b, dtype=np.float64), np.asarray(n)
        if A.shape != (k, d, d) or b.shape != (k, d) or n.shape != (k,):
            raise BanditInputError("state", f"shapes A {A.shape}, b {b.shape}, n {n.shape} do not fit {k} arms x "
                                            f"{d} dims")
        bandit._A[:], bandit._b[:], bandit._n[:] = A, b, n
        for i in range(k):
            bandit._refresh(i)
        return bandit

    def __repr__(self) -> str:
        return (f"LinearThompsonSampling(arms={len(self.config.arms)}, context_dim={self.config.context_dim}, "
                f"updates={int(self._n.sum())})")
