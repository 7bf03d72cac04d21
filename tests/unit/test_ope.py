"""Off-policy estimators (IPW, SNIPW, DR, DM) on synthetic logs whose true policy value is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from sunday.models.personalization.ope import (
    ItemPositionCtr, LoggedFeedback, OpeInputError, cross_fit_rewards, estimate_policy_value, fold_ids,
    on_policy_value,
)

K, L = 5, 3


def synthetic_log(n: int, seed: int):
    """Contexts x in {0, 1, 2}; click probability theta[x, a, k]; a context-dependent logging policy and a different
    evaluation policy. Returns the feedback, the evaluation policy's action_dist, the true q, the exact value, the
    logging policy's action_dist and the contexts."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0.02, 0.3, size=(3, K, L))
    x = rng.integers(0, 3, size=n)
    k = rng.integers(0, L, size=n)
    logit_b = rng.normal(size=(3, K, L))
    pi_b = np.exp(logit_b) / np.exp(logit_b).sum(axis=1, keepdims=True)
    logit_e = 1.5 * theta / theta.std() + rng.normal(size=(3, K, L))  # leans towards the better actions
    pi_e = np.exp(logit_e) / np.exp(logit_e).sum(axis=1, keepdims=True)
    u = rng.random(n)
    cdf = np.cumsum(pi_b[x, :, k], axis=1)
    a = np.minimum((u[:, None] > cdf).sum(axis=1), K - 1)
    r = (rng.random(n) < theta[x, a, k]).astype(float)
    fb = LoggedFeedback.make(r, a, pi_b[x, a, k], k, K, L)
    action_dist = pi_e[x]  # [n, K, L]
    q = theta[x]
    true_value = float((pi_e[x, :, k] * theta[x, :, k]).sum(axis=1).mean())
    return fb, action_dist, q, true_value, pi_b[x], x


@pytest.mark.parametrize("seed", [0, 1])
def test_estimators_recover_the_true_value(seed):
    fb, dist, q, truth, _, _ = synthetic_log(40_000, seed)
    wrong_q = np.full((1, K, L), 0.1)  # a poor reward model: DR must still be unbiased
    est = estimate_policy_value(fb, dist, ("ipw", "snipw", "dr", "dm"), wrong_q, n_bootstrap=200, seed=seed)
    for name in ("ipw", "snipw", "dr"):
        e = est[name]
        assert abs(e.value - truth) < 4 * e.se, (name, e.value, truth, e.se)
        assert e.ci_low <= e.value <= e.ci_high
        assert abs(e.value - truth) / truth < 0.08
    assert abs(est["dm"].value - truth) > 0.01  # the bad model alone is biased
    exact = estimate_policy_value(fb, dist, ("dr", "ipw"), q, n_bootstrap=200, seed=seed)
    assert exact["dr"].se < exact["ipw"].se  # a good model cuts the variance
    assert exact["dr"].ess > exact["ipw"].ess


def test_ci_covers_the_truth_in_most_replications():
    covered = 0
    for seed in range(20):
        fb, dist, _, truth, _, _ = synthetic_log(3000, 100 + seed)
        e = estimate_policy_value(fb, dist, ("ipw",), n_bootstrap=300, seed=seed)["ipw"]
        covered += e.ci_low <= truth <= e.ci_high
    assert covered >= 16  # nominal 95%: 19 of 20 expected


def test_snipw_equals_ipw_when_weights_average_one():
    fb, _, _, _, pi_b, _ = synthetic_log(5000, 2)
    est = estimate_policy_value(fb, pi_b, ("ipw", "snipw"), n_bootstrap=50)  # evaluate the logging policy itself
    assert est["ipw"].value == pytest.approx(fb.reward.mean(), abs=1e-12)
    assert est["snipw"].value == pytest.approx(est["ipw"].value, abs=1e-12)
    assert est["ipw"].ess_weights == pytest.approx(5000)


def test_dr_equals_the_model_when_the_model_is_exact():
    fb, dist, q, _, _, _ = synthetic_log(3000, 3)
    # rewards that are exactly the model's prediction: every correction term is 0
    exact = LoggedFeedback.make(q[np.arange(fb.n_rounds), fb.action, fb.position], fb.action, fb.pscore,
                                fb.position, K, L)
    est = estimate_policy_value(exact, dist, ("dr", "dm"), q, n_bootstrap=50)
    assert est["dr"].value == pytest.approx(est["dm"].value, abs=1e-12)


def test_array_conventions_agree():
    fb, dist, q, _, _, x = synthetic_log(2000, 4)
    full = estimate_policy_value(fb, dist, ("ipw", "snipw", "dr"), q, n_bootstrap=100, seed=1)
    # the same policy as (table, index): three context rows
    table = np.stack([dist[np.flatnonzero(x == c)[0]] for c in range(3)])
    assert np.array_equal(table[x], dist)
    indexed = estimate_policy_value(fb, (table, x), ("ipw", "snipw", "dr"), (q[[np.flatnonzero(x == c)[0]
                                                                              for c in range(3)]], x),
                                    n_bootstrap=100, seed=1)
    for name in full:
        assert indexed[name].value == pytest.approx(full[name].value, abs=1e-12)
        assert indexed[name].ci_low == pytest.approx(full[name].ci_low, abs=1e-12)
    # a context-free policy as [1, K, L] and as [n, K, L]; a position-free one as [., K, 1]
    uniform = np.full((1, K, 1), 1 / K)
    a = estimate_policy_value(fb, uniform, ("ipw",), n_bootstrap=20)["ipw"].value
    b = estimate_policy_value(fb, np.full((2000, K, L), 1 / K), ("ipw",), n_bootstrap=20)["ipw"].value
    assert a == pytest.approx(b, abs=1e-12)


def test_bootstrap_is_seeded():
    fb, dist, _, _, _, _ = synthetic_log(2000, 5)
    e1 = estimate_policy_value(fb, dist, ("snipw",), n_bootstrap=100, seed=7)["snipw"]
    e2 = estimate_policy_value(fb, dist, ("snipw",), n_bootstrap=100, seed=7)["snipw"]
    e3 = estimate_policy_value(fb, dist, ("snipw",), n_bootstrap=100, seed=8)["snipw"]
    assert e1 == e2 and (e1.ci_low, e1.ci_high) != (e3.ci_low, e3.ci_high)
    narrow = estimate_policy_value(fb, dist, ("snipw",), n_bootstrap=100, seed=7, alpha=0.5)["snipw"]
    assert e1.ci_low < narrow.ci_low < narrow.ci_high < e1.ci_high
    on = on_policy_value(fb.reward, n_bootstrap=200)
    assert on.value == pytest.approx(fb.reward.mean()) and on.ci_low < on.value < on.ci_high


def test_item_position_ctr_and_cross_fitting():
    rng = np.random.default_rng(6)
    n = 60_000
    a, k = rng.integers(0, K, n), rng.integers(0, L, n)
    pos_ctr, item_mult = np.array([0.1, 0.06, 0.03]), np.array([0.5, 1.0, 1.0, 1.5, 2.0])
    r = (rng.random(n) < pos_ctr[k] * item_mult[a]).astype(float)
    fb = LoggedFeedback.make(r, a, np.full(n, 1 / K), k, K, L)
    model = ItemPositionCtr().fit(fb)
    assert np.allclose(model.predict()[0], np.outer(item_mult, pos_ctr), rtol=0.15)
    assert np.argsort(model.item_multiplier_).tolist()[0] == 0 and np.argmax(model.item_multiplier_) == 4
    # no item effect at all: every item is shrunk to its position's CTR
    flat = LoggedFeedback.make((rng.random(n) < pos_ctr[k]).astype(float), a, np.full(n, 1 / K), k, K, L)
    assert np.abs(ItemPositionCtr().fit(flat).item_multiplier_ - 1).max() < 0.03
    folds = fold_ids(n, 4, "time")
    assert np.array_equal(np.bincount(folds), [n // 4] * 4) and np.all(np.diff(folds) >= 0)
    table, index = cross_fit_rewards(fb, folds)
    changed = fb.reward.copy()
    changed[folds == 0] = 1.0  # fold 0's own rewards must not move fold 0's model
    table2, _ = cross_fit_rewards(LoggedFeedback.make(changed, a, fb.pscore, k, K, L), folds)
    assert np.array_equal(table[0], table2[0]) and not np.array_equal(table[1], table2[1])
    assert set(np.unique(fold_ids(100, 3, "random", seed=1))) == {0, 1, 2}


def test_bad_input_names_the_field():
    fb, dist, _, _, _, _ = synthetic_log(100, 7)
    with pytest.raises(OpeInputError, match="field 'pscore'"):
        LoggedFeedback.make(fb.reward, fb.action, np.zeros(100), fb.position)
    with pytest.raises(OpeInputError, match="field 'action'"):
        LoggedFeedback.make(fb.reward, fb.action + 10, fb.pscore, fb.position, K, L)
    with pytest.raises(OpeInputError, match="field 'position'"):
        LoggedFeedback.make(fb.reward, fb.action, fb.pscore, fb.position[:50])
    with pytest.raises(OpeInputError, match="field 'reward'"):
        LoggedFeedback.make([np.nan] * 100, fb.action, fb.pscore, fb.position)
    with pytest.raises(OpeInputError, match="field 'action_dist'.*sum to 1"):
        estimate_policy_value(fb, dist * 2, ("ipw",))
    with pytest.raises(OpeInputError, match="field 'action_dist'.*shape"):
        estimate_policy_value(fb, dist[:, :3], ("ipw",))
    with pytest.raises(OpeInputError, match="field 'estimated_rewards'"):
        estimate_policy_value(fb, dist, ("dr",))
    with pytest.raises(OpeInputError, match="field 'estimators'"):
        estimate_policy_value(fb, dist, ("magic",))
    with pytest.raises(OpeInputError, match="field 'n_bootstrap'"):
        estimate_policy_value(fb, dist, ("ipw",), n_bootstrap=1)
