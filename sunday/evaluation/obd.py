"""``sunday eval obd``: off-policy evaluation on the Open Bandit Dataset (any OBD-format folder, sample or full).

Reads ``<data_dir>/open_bandit_sample/obd/{random,bts}/<campaign>/<campaign>.csv`` with the ``open_bandit``
importer's parser (positions 1..L become 0..L-1; rounds sorted by time). Per campaign present under both policies:

1. **On-policy CTRs** of the two logged policies (mean click of each log, bootstrap CI).
2. **Standard check** (OBP's): the value of the Bernoulli-TS behaviour policy estimated from the *random* log by
   IPW, SNIPW and DR, against BTS's own on-policy CTR (relative error). BTS is context-free but its propensities
   change every few minutes (for one (item, position) they range over two orders of magnitude), so the evaluation
   policy is BTS's time-averaged action distribution pi_bts(a, k) = mean_t pi_t(a, k), estimated from the bts log
   (option ``bts_dist``): ``harmonic`` (default) = n_ak / sum 1/p_i over the bts rows logged at (a, k) -- rounds
   where a is shown are drawn with probability pi_t(a, k), so E[1/p | (a, k) logged] = 1 / mean_t pi_t(a, k);
   ``frequency`` = n_ak / n_k; ``mean`` = the mean logged propensity (biased up: a high-propensity period is
   logged more often). Each position's column is renormalised over items; when the logged items' estimates sum to
   less than 1, the leftover goes evenly to the items BTS never showed at that position (reported in the notes,
   with how far from constant the propensities of one (item, position) are).
3. **Learned policies**, cross-fitted on the random log (``folds`` blocks by time, or random: train on the other
   folds, evaluate the policy's action distribution on the held-out fold, pool; the reward model of DR is
   cross-fitted on the same folds), each estimated by IPW, SNIPW and DR:
   ``linear TS (contextual)``: :class:`~sunday.models.personalization.bandit.LinearThompsonSampling` with one arm
   per item over the user features (``features``: ``user`` = a bias and the one-hot user_feature_0..3, or
   ``user+affinity`` adding log1p of the user-item affinity columns), exploration ``v = sqrt(p (1 - p))`` of the
   training CTR p (the Bayesian linear model's noise scale) and ridge prior ``lambda = (1 - p) / p`` (prior standard
   deviation ``v / sqrt(lambda) = p`` per coefficient: effects the size of the base rate) unless set (both fixed
   before looking at any estimate, not tuned on them), its action distribution the Thompson
   sampling propensities (Monte-Carlo, ``n_samples``), the same at every position;
   ``linear TS (no context)``: the same with the bias only (the contextual policy's non-contextual twin);
   ``greedy item CTR``: always the item with the best empirical-Bayes-smoothed CTR of the training folds.

The reward model is :class:`~sunday.models.personalization.ope.ItemPositionCtr` (per-position CTR x a shrunk item
multiplier). Columns are in percent (``value_pct`` and its CI); ``rel_err`` = |estimate - BTS on-policy| / BTS
on-policy; ``ess_w`` = Kish's effective sample size of the importance weights, ``ess`` = the on-policy rounds
that would give the same standard error; ``beats_random`` = the CI's lower bound above the random log's CTR.

Options: ``campaigns`` (comma list; default all found), ``bootstrap`` (1000 resamples), ``alpha`` (0.05),
``folds`` (5), ``fold_by`` (``time``), ``seed`` (0), ``bts_dist`` (``harmonic``), ``features`` (``user``),
``exploration`` and ``prior_lambda`` (None: from the training CTR), ``n_samples`` (1000).
Anchors: the sample's on-policy CTRs (SOURCE.md / obp 0.4.1), printed only for 10,000-round logs (the sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register, resolve_options

DEFAULTS: dict[str, Any] = {"campaigns": None, "bootstrap": 1000, "alpha": 0.05, "folds": 5, "fold_by": "time",
                            "seed": 0, "bts_dist": "harmonic", "features": "user", "exploration": None,
                            "prior_lambda": None, "n_samples": 1000}
SAMPLE_CTR = {("random", "all"): 0.0038, ("random", "men"): 0.0046, ("random", "women"): 0.0046,
              ("bts", "all"): 0.0042, ("bts", "men"): 0.0069, ("bts", "women"): 0.0046}
SAMPLE_ROUNDS = 10_000
SOURCE = "OBD sample (obp 0.4.1)"
OPE = ("ipw", "snipw", "dr")
BTS_DIST = ("harmonic", "frequency", "mean")
LABELS = {"ipw": "IPW", "snipw": "SNIPW", "dr": "DR", "dm": "DM", "on-policy": "on-policy"}


@dataclass
class ObdLog:
    """One policy's log of one campaign, rounds sorted by time: 0-based position, user features, affinities."""

    item: np.ndarray
    position: np.ndarray
    click: np.ndarray
    pscore: np.ndarray
    user: np.ndarray  # [n, 4] strings
    affinity: np.ndarray  # [n, n_affinity]

    @property
    def n(self) -> int:
        return len(self.item)


def read_obd_log(path: Path, policy: str, campaign: str) -> ObdLog:
    """One ``<campaign>.csv`` through the open_bandit importer's parser."""
    from sunday.data.importers.open_bandit import read_log

    t = read_log(path, policy, campaign)
    stamps = t.column("timestamp").to_numpy(zero_copy_only=False)
    order = np.argsort(stamps, kind="stable")
    col = lambda name: t.column(name).to_numpy(zero_copy_only=False)[order]  # noqa: E731
    n = t.num_rows

    def block(name: str) -> np.ndarray:  # a list column of equal-length lists as [n, width], without Python lists
        flat = t.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(n, -1)[order] if n else flat.reshape(0, 0)

    user, affinity = block("context"), block("affinity").astype(np.float64)
    position = col("position").astype(np.int64)
    return ObdLog(col("item_id").astype(np.int64), position - 1, col("clicked").astype(np.float64),
                  col("propensity").astype(np.float64), user, affinity)


def n_items(folder: Path, *logs: ObdLog) -> int:
    """Items of a campaign: item_context.csv's ids and every logged id."""
    top = max(int(log.item.max()) for log in logs)
    context = folder / "item_context.csv"
    if context.exists():
        from sunday.data.csvio import read_csv, to_number

        ids = to_number(read_csv(context), "item_id", str(context), "int")
        top = max(top, int(ids.max()))
    return top + 1


def bts_action_dist(log: ObdLog, n_actions: int, n_positions: int, method: str = "harmonic"
                    ) -> tuple[np.ndarray, dict[str, Any]]:
    """BTS's time-averaged position-wise action distribution ``[n_actions, n_positions]`` from its own log (see the
    module notes), and diagnostics: per position the raw sum of the estimates, the leftover mass given to unlogged
    items and their count; the median coefficient of variation of the propensities of one (item, position)."""
    if method not in BTS_DIST:
        raise ValueError(f"bts_dist must be one of {list(BTS_DIST)}, got {method!r}")
    cell = log.position * n_actions + log.item
    size = n_actions * n_positions
    count = np.bincount(cell, minlength=size).reshape(n_positions, n_actions).astype(float)
    inv = np.bincount(cell, weights=1.0 / log.pscore, minlength=size).reshape(n_positions, n_actions)
    total = np.bincount(cell, weights=log.pscore, minlength=size).reshape(n_positions, n_actions)
    square = np.bincount(cell, weights=log.pscore ** 2, minlength=size).reshape(n_positions, n_actions)
    logged = count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "harmonic":
            est = np.where(logged, count / inv, 0.0)
        elif method == "frequency":
            est = count / np.maximum(count.sum(axis=1, keepdims=True), 1)
        else:
            est = np.where(logged, total / np.maximum(count, 1), 0.0)
        mean = total / count
        cv = np.sqrt(np.maximum(square / count - mean ** 2, 0.0)) / mean
    dist = np.zeros_like(est)
    raw, leftover, unlogged = [], [], []
    for k in range(n_positions):
        s = float(est[k].sum())
        missing = ~logged[k]
        raw.append(round(s, 4))
        unlogged.append(int(missing.sum()))
        if s < 1.0 and missing.any():
            dist[k] = est[k]
            dist[k, missing] = (1.0 - s) / missing.sum()
            leftover.append(round(1.0 - s, 4))
        elif s > 0:
            dist[k] = est[k] / s
            leftover.append(0.0)
        else:  # nothing logged at this position: uniform
            dist[k] = 1.0 / n_actions
            leftover.append(1.0)
    several = count >= 2
    info = {"raw_sum": raw, "leftover": leftover, "unlogged_items": unlogged,
            "median_cv": float(np.nanmedian(cv[several])) if several.any() else float("nan")}
    return dist.T.copy(), info


def user_features(train: np.ndarray, rows: np.ndarray, affinity: np.ndarray | None) -> np.ndarray:
    """A bias and the one-hot user features (vocabulary of ``train``; unseen values are all-zero), optionally
    followed by log1p of the affinity columns."""
    blocks = [np.ones((len(rows), 1))]
    for j in range(train.shape[1]):
        vocab = {v: i for i, v in enumerate(sorted(set(train[:, j])))}
        hot = np.zeros((len(rows), len(vocab)))
        idx = np.array([vocab.get(v, -1) for v in rows[:, j]])
        ok = idx >= 0
        hot[np.flatnonzero(ok), idx[ok]] = 1.0
        blocks.append(hot)
    if affinity is not None:
        blocks.append(np.log1p(np.maximum(affinity, 0.0)))
    return np.hstack(blocks)


def cross_fit_policies(log: ObdLog, n_actions: int, folds: np.ndarray, opts: dict[str, Any]
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each learned policy's action distribution on every held-out fold, as ``(table [rows, n_actions, 1], index)``
    (rounds with identical contexts share a row)."""
    from sunday.models.personalization.bandit import BanditConfig, LinearThompsonSampling
    from sunday.models.personalization.ope import ItemPositionCtr, LoggedFeedback

    arms = tuple(str(i) for i in range(n_actions))
    use_aff = opts["features"] == "user+affinity"
    if opts["features"] not in ("user", "user+affinity"):
        raise ValueError(f"features must be 'user' or 'user+affinity', got {opts['features']!r}")
    tables: dict[str, list[np.ndarray]] = {"linear TS (contextual)": [], "linear TS (no context)": [],
                                           "greedy item CTR": []}
    index = {name: np.empty(log.n, dtype=np.int64) for name in tables}
    offset = {name: 0 for name in tables}
    for f in range(int(folds.max()) + 1):
        train, test = folds != f, folds == f
        p = min(max(float(log.click[train].mean()), 1e-4), 0.5)
        v = float(opts["exploration"]) if opts["exploration"] is not None else float(np.sqrt(p * (1 - p)))
        lam = float(opts["prior_lambda"]) if opts["prior_lambda"] is not None else (1 - p) / p
        for name, contextual in (("linear TS (contextual)", True), ("linear TS (no context)", False)):
            if contextual:
                X_train = user_features(log.user[train], log.user[train], log.affinity[train] if use_aff else None)
                X_test = user_features(log.user[train], log.user[test], log.affinity[test] if use_aff else None)
            else:
                X_train, X_test = np.ones((int(train.sum()), 1)), np.ones((int(test.sum()), 1))
            config = BanditConfig(arms=arms, context_dim=X_train.shape[1], prior_lambda=lam,
                                  exploration=v, seed=int(opts["seed"]) + f)
            bandit = LinearThompsonSampling(config).fit(X_train, [arms[a] for a in log.item[train]],
                                                        log.click[train])
            uniq, inverse = np.unique(X_test, axis=0, return_inverse=True)
            probs = bandit.propensities(uniq, n_samples=int(opts["n_samples"]), seed=int(opts["seed"]) + 1000 + f)
            tables[name].append(probs[:, :, None])
            index[name][test] = offset[name] + inverse.reshape(-1)
            offset[name] += len(uniq)
        fb = LoggedFeedback.make(log.click[train], log.item[train], log.pscore[train], log.position[train],
                                 n_actions, int(log.position.max()) + 1)
        best = int(np.argmax(ItemPositionCtr().fit(fb).item_multiplier_))
        greedy = np.zeros((1, n_actions, 1))
        greedy[0, best, 0] = 1.0
        tables["greedy item CTR"].append(greedy)
        index["greedy item CTR"][test] = offset["greedy item CTR"]
        offset["greedy item CTR"] += 1
    return {name: (np.concatenate(tables[name]), index[name]) for name in tables}


def _row(campaign: str, policy: str, est, bts_ctr: float | None = None, random_ctr: float | None = None
         ) -> dict[str, Any]:
    label = LABELS.get(est.estimator, est.estimator)
    row: dict[str, Any] = {"row": f"{campaign}: {policy}, {label}", "value_pct": round(100 * est.value, 4),
                           "ci_low_pct": round(100 * est.ci_low, 4), "ci_high_pct": round(100 * est.ci_high, 4)}
    row["rel_err"] = round(abs(est.value - bts_ctr) / bts_ctr, 4) if bts_ctr else None
    row["ess_w"] = round(est.ess_weights, 1)
    row["ess"] = round(est.ess, 1) if np.isfinite(est.ess) else None
    row["beats_random"] = bool(est.ci_low > random_ctr) if random_ctr is not None else None
    return row


@register
class ObdEvaluation(Evaluation):
    name = "obd"
    folder = "open_bandit_sample"
    description = ("Open Bandit Dataset: off-policy estimates (IPW, SNIPW, DR) of Bernoulli TS from the random "
                   "log vs its on-policy CTR, and of a cross-fitted contextual Thompson-sampling policy")

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from tqdm.auto import tqdm

        from sunday.data.importers.open_bandit import log_files
        from sunday.models.personalization.ope import (
            LoggedFeedback, cross_fit_rewards, estimate_policy_value, fold_ids, on_policy_value,
        )

        opts = resolve_options(DEFAULTS, options)
        if opts["bts_dist"] not in BTS_DIST:
            raise ValueError(f"bts_dist must be one of {list(BTS_DIST)}, got {opts['bts_dist']!r}")
        files = log_files(Path(data_dir) / self.folder)
        found = sorted({c for (p, c) in files if ("random", c) in files and ("bts", c) in files})
        if opts["campaigns"]:
            wanted = opts["campaigns"]
            wanted = [s.strip() for s in wanted.split(",")] if isinstance(wanted, str) else list(wanted)
            missing = [c for c in wanted if c not in found]
            if missing:
                raise ValueError(f"campaign(s) {missing} not found with both a random and a bts log; found {found}")
            found = wanted
        if not found:
            raise ValueError(f"no campaign has both obd/random/<c>/<c>.csv and obd/bts/<c>/<c>.csv; logs: "
                             f"{sorted(files)}")
        boot: dict[str, Any] = dict(n_bootstrap=int(opts["bootstrap"]), alpha=float(opts["alpha"]),
                                    seed=int(opts["seed"]))
        rows: list[dict[str, Any]] = []
        anchors: list[Anchor] = []
        notes: list[str] = []
        meta: dict[str, Any] = {"options": opts, "bts_dist": {}}
        for campaign in tqdm(found, desc="obd", disable=not options.get("progress", True)):
            rnd = read_obd_log(files[("random", campaign)], "random", campaign)
            bts = read_obd_log(files[("bts", campaign)], "bts", campaign)
            K = n_items(files[("random", campaign)].parent, rnd, bts)
            L = int(max(rnd.position.max(), bts.position.max())) + 1
            fb = LoggedFeedback.make(rnd.click, rnd.item, rnd.pscore, rnd.position, K, L)

            on_rnd, on_bts = on_policy_value(rnd.click, **boot), on_policy_value(bts.click, **boot)
            random_ctr, bts_ctr = on_rnd.value, on_bts.value
            rows.append(_row(campaign, "random", on_rnd))
            rows.append(_row(campaign, "bts", on_bts))

            folds = fold_ids(rnd.n, int(opts["folds"]), str(opts["fold_by"]), int(opts["seed"]))
            q = cross_fit_rewards(fb, folds)
            dist, info = bts_action_dist(bts, K, L, str(opts["bts_dist"]))
            meta["bts_dist"][campaign] = info
            for est in estimate_policy_value(fb, dist[None], OPE, q, **boot).values():
                rows.append(_row(campaign, "bts via random log", est, bts_ctr=bts_ctr))
            alt = []
            for method in BTS_DIST:
                if method != opts["bts_dist"]:
                    d_alt, _ = bts_action_dist(bts, K, L, method)
                    e = estimate_policy_value(fb, d_alt[None], ("ipw", "dr"), q, **boot)
                    alt.append(f"{method}: IPW {100 * e['ipw'].value:.3f}% (rel err "
                               f"{abs(e['ipw'].value - bts_ctr) / bts_ctr:.2f}), DR {100 * e['dr'].value:.3f}% "
                               f"(rel err {abs(e['dr'].value - bts_ctr) / bts_ctr:.2f})")
            notes.append(f"{campaign}: {K} items x {L} positions; {rnd.n} random / {bts.n} bts rounds, "
                         f"{int(rnd.click.sum())} / {int(bts.click.sum())} clicks. BTS propensities of one (item, "
                         f"position) are far from constant (median coefficient of variation "
                         f"{info['median_cv']:.2f}); pi_bts by '{opts['bts_dist']}': raw sums per position "
                         f"{info['raw_sum']}, leftover mass {info['leftover']} over {info['unlogged_items']} unlogged "
                         f"items. Other pi_bts estimates: " + "; ".join(alt))
            notes.append(f"{campaign}: the standard check's CIs resample the random log only; pi_bts, estimated "
                         "from the bts log, is held fixed (its own noise is not in them)")
            se_rel = float(np.sqrt(bts_ctr * (1 - bts_ctr) / bts.n) / bts_ctr) if bts_ctr > 0 else float("nan")
            notes.append(f"{campaign}: the BTS on-policy CTR itself has a relative standard error of {se_rel:.2f} "
                         f"(binomial, {bts.n} rounds): the floor under any relative error measured against it")

            for policy, dist_p in cross_fit_policies(rnd, K, folds, opts).items():
                for est in estimate_policy_value(fb, dist_p, OPE, q, **boot).values():
                    rows.append(_row(campaign, policy, est, random_ctr=random_ctr))

            if rnd.n == SAMPLE_ROUNDS and bts.n == SAMPLE_ROUNDS and ("random", campaign) in SAMPLE_CTR:
                anchors.append(Anchor(f"{campaign}: random, on-policy", "value_pct",
                                      100 * SAMPLE_CTR[("random", campaign)], SOURCE))
                for label in ("bts, on-policy", *(f"bts via random log, {LABELS[e]}" for e in OPE)):
                    anchors.append(Anchor(f"{campaign}: {label}", "value_pct", 100 * SAMPLE_CTR[("bts", campaign)],
                                          SOURCE))
        notes.append(f"learned policies: {int(opts['folds'])} folds by {opts['fold_by']}, trained on the random log "
                     f"only, evaluated on held-out folds; features '{opts['features']}'; reward model of DR: "
                     "ItemPositionCtr (per-position CTR x EB-shrunk item multiplier), cross-fitted on the same folds")
        notes.append("targets (issue 9): relative error < 0.15 on the standard check; a learned policy whose CI lower "
                     "bound is above the random policy's CTR (beats_random)")
        return EvalResult(self.name, "row", rows, anchors, notes, meta=meta)
