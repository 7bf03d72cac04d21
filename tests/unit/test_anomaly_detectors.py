"""Streaming detectors and the ensemble: calibration, no look-ahead, block path == point path, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sunday.errors import UnknownNameError
from sunday.models.anomaly.base import SeriesInputError, TailCalibration, TailCalibrator, check_series
from sunday.models.anomaly.ensemble import Ensemble, EnsembleConfig, make_detector
from sunday.models.anomaly.stats import infer_period

NAMES = ("robust_z", "ewma", "seasonal", "iforest")
FIVE_MIN = np.timedelta64(300, "s")


def series(n=1500, spike_at=None, seed=0):
    rng = np.random.default_rng(seed)
    v = 10 + np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.1, n)
    if spike_at is not None:
        v[spike_at] += 4
    t = np.datetime64("2024-01-01T00:00") + np.arange(n) * FIVE_MIN
    return v, t


def small(name):
    if name == "iforest":
        from sunday.models.anomaly.iforest import IForestConfig, WindowIsolationForest

        return WindowIsolationForest(IForestConfig(warmup=200, refit=300, buffer=400, n_estimators=16))
    return make_detector(name)


@pytest.mark.parametrize("name", NAMES)
def test_block_path_equals_point_by_point_and_hands_over_state(name):
    v, t = series(900, spike_at=700)
    a, b = small(name), small(name)
    block = a.score(v[:600], t[:600])
    points = np.array([b.update(x, ts) for x, ts in zip(v[:600], t[:600])])
    np.testing.assert_allclose(block, points, atol=1e-12)
    # both continue identically afterwards
    rest_a = np.array([a.update(x, ts) for x, ts in zip(v[600:], t[600:])])
    rest_b = b.score(v[600:], t[600:])
    np.testing.assert_allclose(rest_a, rest_b, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_bounded_and_spike_stands_out(name):
    v, t = series(1500, spike_at=1300)
    s = small(name).score(v, t)
    assert ((s >= 0) & (s <= 1)).all()
    assert s[1300] >= 0.7, name
    assert s[1300] > np.quantile(s[400:1290], 0.99)


@pytest.mark.parametrize("name", NAMES)
def test_no_look_ahead(name):
    v, t = series(800)
    w = v.copy()
    w[600:] += 50  # change the future only
    np.testing.assert_array_equal(small(name).score(v, t)[:600], small(name).score(w, t)[:600])


@pytest.mark.parametrize("name", NAMES)
def test_memory_is_bounded(name):
    v, t = series(6000)
    d = small(name)
    d.score(v[:3000], t[:3000])
    first = d.state_size()
    d.score(v[3000:], t[3000:])
    assert d.state_size() <= first * 1.05 + 50


def test_nan_points_are_skipped_without_touching_state():
    v, t = series(600)
    with_nan = v.copy()
    with_nan[300] = np.nan
    a, b = make_detector("robust_z"), make_detector("robust_z")
    sa = a.score(with_nan, t)
    assert sa[300] == 0.0 and a.n_skipped == 1
    sb = b.score(np.delete(v, 300), np.delete(t, 300))
    np.testing.assert_allclose(np.delete(sa, 300), sb)


def test_bad_input_names_the_field():
    v, t = series(50)
    with pytest.raises(SeriesInputError, match="empty"):
        check_series([])
    back = t.copy()
    back[10] = back[3]
    with pytest.raises(SeriesInputError, match=r"point 10: field 'timestamp' goes backwards"):
        make_detector("ewma").score(v, back)
    with pytest.raises(SeriesInputError, match="'value' must be numbers"):
        check_series(["a", "b"])
    with pytest.raises(SeriesInputError, match="has 3 entries for 50 values"):
        check_series(v, t[:3])
    d = make_detector("ewma")
    d.update(1.0, t[5])
    with pytest.raises(SeriesInputError, match="goes backwards"):
        d.update(1.0, t[4])
    with pytest.raises(SeriesInputError, match="must be a number"):
        d.update("7", t[6])
    with pytest.raises(UnknownNameError):
        make_detector("prophet")
    with pytest.raises(ValueError, match="top_k"):
        EnsembleConfig(detectors=("ewma",), top_k=2)


def test_equal_timestamps_are_allowed():
    v, t = series(100)
    t[50] = t[49]
    assert len(make_detector("seasonal").score(v, t)) == 100


def test_calibrator_maps_tail_probability_to_score():
    rng = np.random.default_rng(1)
    cal = TailCalibrator(TailCalibration(history=2000, decades=5.0))
    for x in rng.exponential(1.0, 2000):
        cal.add(x)
    cal._refresh()
    # exponential statistics: P(X > s) = exp(-s); score = -log10(p) / 5
    for s in (5.0, 8.0, 11.0):
        assert cal.score_of(s) == pytest.approx(s / math.log(10) / 5, abs=0.08)
    assert cal.score_of(0.0) == 0.0
    assert cal.score_of(1e9) == 1.0


def test_calibrated_false_alarm_rate_on_noise():
    """On pure noise the share of points scoring >= 0.7 is about the tail probability it stands for."""
    rng = np.random.default_rng(2)
    v = rng.normal(0, 1, 20000)
    s = make_detector("ewma", TailCalibration(timescales=(1,))).score(v)
    rate = float((s[500:] >= 0.7).mean())
    assert rate < 10 ** -3.5 * 10  # within 10x of 10**-3.5


def test_infer_period():
    assert infer_period(300 * 10**9) == 288
    assert infer_period(86_400 * 10**9) == 7
    assert infer_period(7 * 3600 * 10**9) is None


def test_ensemble_alert_names_span_and_detectors():
    v, t = series(1500, spike_at=1300)
    v[1301] += 4
    ens = Ensemble(EnsembleConfig(), signal="cpu")
    run = ens.run(v, t)
    hits = [a for a in run.alerts if a.start_index <= 1301 and a.end_index >= 1300]
    assert hits, [a.to_dict() for a in run.alerts]
    a = hits[0]
    assert a.signal == "cpu" and a.start == t[1300] and len(a.detectors) >= 2
    assert set(a.detectors) <= set(NAMES)
    # one detection per alert: the extending point scores 0 in alert_scores
    assert run.alert_scores[1300] >= 0.7 and run.alert_scores[1301] == 0.0
    assert run.scores[1301] >= 0.7


def test_ensemble_update_equals_run():
    v, t = series(700, spike_at=650)
    cfg = EnsembleConfig(detectors=("robust_z", "ewma", "seasonal"))
    run = Ensemble(cfg, signal="x").run(v, t)
    ens = Ensemble(cfg, signal="x")
    pts = [ens.update(x, ts) for x, ts in zip(v, t)]
    np.testing.assert_allclose([p.score for p in pts], run.scores)
    np.testing.assert_allclose([p.alert_score for p in pts], run.alert_scores)
    assert [a.start_index for a in ens.alerts] == [a.start_index for a in run.alerts]
    again = Ensemble(cfg, signal="x").run_scores(run.detector_scores, t)
    np.testing.assert_allclose(again.alert_scores, run.alert_scores)
    with pytest.raises(ValueError, match="detector scores"):
        Ensemble(cfg).run_scores(run.detector_scores[:, :2], t)


def test_a_daily_recurring_spike_stops_alerting():
    """The same spike at the same time every day alerts the first days, then is discounted as the series' normal."""
    v, t = series(288 * 10)
    days = range(4, 10)
    for d in days:
        v[288 * d + 100] += 4
    run = Ensemble(EnsembleConfig(), signal="backup").run(v, t)
    alerted = {a.start_index // 288 for a in run.alerts if a.start_index % 288 == 100}
    assert 4 in alerted
    assert not alerted & {7, 8, 9}, alerted
    plain = Ensemble(EnsembleConfig(recurrence_cycles=0), signal="backup").run(v, t)
    assert {a.start_index // 288 for a in plain.alerts if a.start_index % 288 == 100} >= {7, 8, 9}


def test_combine_needs_two_detectors_unless_one_is_all_but_certain():
    ens = Ensemble(EnsembleConfig(detectors=("robust_z", "ewma", "seasonal")))
    rows = np.array([[0.9, 0.8, 0.0], [1.0, 0.1, 0.0], [0.8, 0.1, 0.0]])
    np.testing.assert_allclose(ens.combine(rows), [0.85, 0.8, 0.64])
    alone = Ensemble(EnsembleConfig(detectors=("robust_z", "ewma", "seasonal"), solo=0.0))
    np.testing.assert_allclose(alone.combine(rows), [0.85, 0.55, 0.45])
