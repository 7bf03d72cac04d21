"""The LSTM autoencoder detector without Ray: shapes, no look-ahead, block path == point-by-point (state included),
NaN points, persistence, and a trained model (in process, a few seconds) scoring planted anomalies above normal."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from sunday.errors import SundayError
from sunday.evaluation.nab_scoring import probationary_length
from sunday.models.anomaly.base import SeriesInputError, TailCalibration
from sunday.models.anomaly.lstm_ae import (
    AeTrainConfig,
    LstmAeConfig,
    LstmAeDetector,
    LstmAutoencoder,
    RunningScale,
    new_scale,
    normalise_windows,
    series_windows,
    training_windows,
)
from sunday.models.anomaly.lstm_ae_train import train_autoencoder

SMALL = AeTrainConfig(window=16, hidden=8, latent=4, halflife=100, min_points=16)
FAST_CAL = TailCalibration(min_history=16, refresh=8, history=200)


def sine(n: int, seed: int, scale: float = 1.0, offset: float = 0.0, period: float = 40.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return offset + scale * (np.sin(2 * np.pi * t / period + rng.uniform(0, 6)) + 0.05 * rng.standard_normal(n))


def untrained(config: AeTrainConfig = SMALL) -> LstmAutoencoder:
    torch.manual_seed(0)
    return LstmAutoencoder(config).eval()


@pytest.fixture(scope="module")
def trained() -> LstmAutoencoder:
    """Trained in process on normal sines of four scales (1 to 1000, offsets 3x): ~2-5 s."""
    series = [sine(600, s, scale=10.0 ** s, offset=3 * 10.0 ** s) for s in range(4)]
    cfg = AeTrainConfig(window=32, epochs=20, batch_size=32, lr=5e-3, max_windows=3000, halflife=200, seed=0)
    return train_autoencoder(series, cfg, use_ray=False)


def test_shapes_and_windows():
    m = untrained()
    x = torch.randn(5, SMALL.window)
    assert m(x).shape == (5, SMALL.window)
    w = series_windows(sine(200, 0), SMALL)
    # windows ending at points window-1 .. n-1 whose state (before their first point) saw min_points points
    assert w.shape == (200 - SMALL.window + 1 - SMALL.min_points, SMALL.window)
    assert np.abs(w).max() <= SMALL.clip
    cfg = AeTrainConfig(**{**SMALL.to_dict(), "max_windows": 50})
    t = training_windows([sine(200, 0), sine(300, 1)], cfg)
    assert t.shape == (50, SMALL.window) and t.dtype == np.float32
    with pytest.raises(SundayError, match="no training windows"):
        training_windows([np.arange(10.0)], SMALL)
    # the training job's normal history: NAB's probationary rows (int(...) of the float NAB length)
    assert int(probationary_length(4032)) == 604 and int(probationary_length(22695)) == 750


def test_normalisation_has_no_look_ahead():
    x = sine(400, 3, scale=50, offset=1000)
    y = x.copy()
    y[250:] = y[250:] * 40 - 7000  # a different future
    sx, sy = new_scale(SMALL).scan(x.tolist()), new_scale(SMALL).scan(y.tolist())
    assert np.array_equal(sx[:251], sy[:251])  # states before points 0..250 only saw points < 250
    zx, vx = normalise_windows(x, sx, SMALL)
    zy, vy = normalise_windows(y, sy, SMALL)
    last = 250 - SMALL.window + 1  # windows ending before point 250
    assert np.array_equal(zx[:last], zy[:last]) and np.array_equal(vx[:last], vy[:last])
    # the window ending at t uses the state before its *first* point: its own values do not move it
    assert np.allclose(zx[100], np.clip((x[100:116] - sx[100, 0]) / sx[100, 1], -SMALL.clip, SMALL.clip))

    m = untrained()
    a = LstmAeDetector(m, calibration=FAST_CAL)
    b = LstmAeDetector(m, calibration=FAST_CAL)
    sa = np.array([a.update(v) for v in x])
    sb = np.array([b.update(v) for v in y])
    assert np.array_equal(sa[:250], sb[:250]) and not np.array_equal(sa[250:], sb[250:])
    assert (sa[:SMALL.window + SMALL.min_points - 1] == 0).all()  # warming up


def test_scale_free_and_robust_running_scale():
    x = sine(600, 4)
    z1 = series_windows(x, SMALL)
    z2 = series_windows(x * 1e6 + 5e7, SMALL)
    assert np.allclose(z1, z2, atol=1e-6)  # one parameter set for any scale
    rs = RunningScale(halflife=100, limit=32, warm=16)
    for v in sine(300, 5).tolist():
        rs.update(v)
    before = rs.scale()
    rs.update(1e9)  # a huge spike moves the scale by at most limit * alpha
    assert rs.scale() <= before * (1 + 32 * rs.alpha) + 1e-12
    flat = RunningScale(halflife=100, limit=32, warm=16)
    for _ in range(50):
        flat.update(7.0)
    assert flat.scale() > 0  # floored


def _state(d: LstmAeDetector):
    return (d.n_seen, d.n_skipped, d._last_ns, list(d._raw), list(d._states), d._norm.state(),
            d.calibrator.state_size())


def test_block_path_equals_point_by_point_and_hands_over_state():
    m = untrained()
    x = sine(900, 6, scale=20, offset=-3)
    x[500] += 200
    ts = np.datetime64("2024-01-01") + np.arange(900) * np.timedelta64(5, "m")
    block = LstmAeDetector(m, calibration=FAST_CAL)
    points = LstmAeDetector(m, calibration=FAST_CAL)
    s_block = block.score(x[:600], ts[:600])
    s_points = np.array([points.update(v, t) for v, t in zip(x[:600], ts[:600])])
    assert np.allclose(s_block, s_points, rtol=1e-9, atol=1e-12) and (s_block > 0).sum() > 400
    sb, sp = _state(block), _state(points)
    assert sb == sp  # counts, last timestamp, raw window, normaliser states: the same numbers exactly
    # carrying on: a second block, then single points, still as one detector fed everything point by point
    s2 = block.score(x[600:800], ts[600:800])
    s3 = np.array([block.update(v, t) for v, t in zip(x[800:], ts[800:])])
    rest = np.array([points.update(v, t) for v, t in zip(x[600:], ts[600:])])
    assert np.allclose(np.r_[s2, s3], rest, rtol=1e-9, atol=1e-12)
    with pytest.raises(SeriesInputError, match="backwards"):
        block.score(x[:5], ts[:5])


def test_nan_points_are_skipped_in_both_paths():
    m = untrained()
    x = sine(400, 7, scale=3)
    x[[50, 51, 200, 399]] = np.nan
    x[120] = np.inf
    block = LstmAeDetector(m, calibration=FAST_CAL)
    points = LstmAeDetector(m, calibration=FAST_CAL)
    s_block = block.score(x)
    s_points = np.array([points.update(float(v)) for v in x])
    bad = ~np.isfinite(x)
    assert np.allclose(s_block, s_points, rtol=1e-9, atol=1e-12)
    assert (s_block[bad] == 0).all() and block.n_skipped == points.n_skipped == 5 and block.n_seen == 395
    clean = LstmAeDetector(m, calibration=FAST_CAL).score(x[~bad])  # skipping = never having seen them
    assert np.allclose(s_block[~bad], clean, rtol=1e-9, atol=1e-12)
    assert np.allclose(list(block._raw), list(points._raw))


def test_state_size_is_bounded():
    m = untrained()
    d = LstmAeDetector(m, calibration=FAST_CAL)
    d.score(sine(400, 8))
    size = d.state_size()
    d.score(sine(1500, 9))
    assert d.state_size() == size and isinstance(d._raw, deque) and len(d._raw) == SMALL.window


def test_save_load_and_make_detector(tmp_path):
    from sunday.models.anomaly.ensemble import make_detector

    m = untrained()
    m.history_ = [{"epoch": 0, "loss": 1.0, "seconds": 0.1}]
    path = m.save(tmp_path / "ae")
    back = LstmAutoencoder.load(path)
    assert back.config == m.config and back.history_ == m.history_
    x = torch.randn(3, SMALL.window)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))
    series = sine(300, 10)
    a = make_detector("lstm_ae", FAST_CAL, model=m)
    b = LstmAeDetector(model_path=path, calibration=FAST_CAL, config=LstmAeConfig(batch=7))
    assert a.name == "lstm_ae" and np.allclose(a.score(series), b.score(series), rtol=1e-9, atol=1e-12)
    with pytest.raises(SundayError, match="needs a trained model"):
        LstmAeDetector()
    with pytest.raises(SundayError, match="not an LSTM autoencoder folder"):
        LstmAutoencoder.load(tmp_path)
    with pytest.raises(SundayError, match="'window'"):
        AeTrainConfig(window=1)
    with pytest.raises(SundayError, match="tail_weight"):
        LstmAeConfig(tail_weight=2)


def test_trained_model_scores_planted_anomalies_above_normal(trained):
    assert trained.history_[-1]["loss"] < 0.5 * trained.history_[0]["loss"]
    x = sine(3000, 11, scale=5, offset=100)
    x[2000] += 4            # a spike (0.8 amplitudes: not beyond the normal range)
    x[2500:2540] = x[2500]  # the sine stops (a flat stretch)
    scores = LstmAeDetector(trained).score(x)
    normal = scores[400:1990].max()  # past the calibration warm-up, before the anomalies
    assert scores[2000:2004].max() > max(normal, 0.6)
    assert scores[2505:2545].max() > max(normal, 0.6)


def test_the_batch_is_global_over_ray_train_workers():
    """Ray Train's workers split the configured batch, so a 2-worker fit makes as many optimizer steps per epoch
    as one in process (with the full batch per worker it made half as many, and trained worse)."""
    from sunday.models.raytrain import per_worker_batch

    assert [per_worker_batch(128, w) for w in (1, 2, 3, 4)] == [128, 64, 43, 32]
    assert per_worker_batch(1, 4) == 1 and per_worker_batch(5, 0) == 5
    n = 1000
    steps = [max(1, n // (per_worker_batch(128, w) * w)) for w in (1, 2)]
    assert steps == [7, 7]
