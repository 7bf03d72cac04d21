"""NAB scoring: hand-computed cases, and the vectorised sweep against a row-by-row reference written after NAB's
``Sweeper.calcSweepScore`` / ``calcScoreByThreshold`` loops."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from sunday.errors import MalformedInputError
from sunday.evaluation.nab_scoring import (
    PROFILES,
    LabelledSeries,
    NabCorpus,
    Profile,
    nab_scores,
    null_scores,
    perfect_scores,
    random_scores,
    read_anchors,
    scaled_sigmoid,
    score_at,
    sweep,
    write_results,
)

PROFS = {
    "standard": Profile("standard", 1.0, 0.11, 1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
}
START = np.datetime64("2020-01-01T00:00:00", "us")
STEP = np.timedelta64(5 * 60, "s")


def make_series(sid: str, n: int, window_rows=(), dup_rows=()) -> LabelledSeries:
    """n rows every 5 minutes; each row in ``dup_rows`` repeats the previous timestamp; windows given as rows."""
    ts = START + np.arange(n) * STEP
    for r in sorted(dup_rows):
        ts[r:] -= STEP
    windows = [(pd.Timestamp(ts[lo]), pd.Timestamp(ts[hi])) for lo, hi in window_rows]
    return LabelledSeries(sid, ts, np.arange(n, dtype=float), windows)


def make_corpus(*series: LabelledSeries) -> NabCorpus:
    return NabCorpus({s.series_id: s for s in series}, dict(PROFS))


def detect(n: int, rows, value: float = 1.0) -> np.ndarray:
    out = np.zeros(n)
    out[list(rows)] = value
    return out


# ---- reference: NAB's loops, row by row -------------------------------------------------------------------------


def _ref_s(x: float) -> float:
    return -1.0 if x > 3.0 else 2 * (1 / (1 + math.exp(5 * x))) - 1.0


def _ref_rows(s: LabelledSeries, scores, prof: Profile):
    """(score, weighted sweep value, window name | None | 'probationary') per row, as NAB's calcSweepScore."""
    ts = s.timestamps.tolist()
    limits = [(a.to_pydatetime(), b.to_pydatetime()) for a, b in s.windows]
    prob = min(math.floor(0.15 * len(ts)), 0.15 * 5000)
    cur = name = right = width = prev_right = prev_width = None
    out = []
    for i, (t, a) in enumerate(zip(ts, scores, strict=True)):
        if limits and t == limits[0][0]:
            cur = limits.pop(0)
            name = f"{s.series_id}|{cur[0]}"
            right = ts.index(cur[1])
            width = float(right - ts.index(cur[0]) + 1)
        if cur is not None:
            val = _ref_s(-(right - i + 1) / width) * prof.tp / _ref_s(-1.0)
        else:
            if prev_right is None:
                u = -1.0
            elif prev_width == 1:
                u = -1.0  # NAB divides by zero here; the module counts such rows as far from the window
            else:
                u = _ref_s(abs(prev_right - i) / (prev_width - 1))
            val = u * prof.fp
        out.append((float(a), val, name if i >= prob else "probationary"))
        if cur is not None and t == cur[1]:
            prev_right, prev_width = i, width
            cur = name = right = width = None
    return out


def _ref_by_threshold(rows, prof: Profile):
    """[(threshold, raw)] as NAB's calcScoreByThreshold (leading 1.1 threshold, then every distinct score)."""
    scorable = sorted([r for r in rows if r[2] != "probationary"], key=lambda r: r[0], reverse=True)
    parts = {"fp": 0.0}
    for r in scorable:
        if r[2] is not None:
            parts[r[2]] = -prof.fn
    out, cur = [], 1.1
    for a, val, name in scorable:
        if a != cur:
            out.append((cur, sum(parts.values())))
            cur = a
        if name is None:
            parts["fp"] += val
        else:
            parts[name] = max(parts[name], val)
    out.append((cur, sum(parts.values())))
    return out


def _ref_score_dataset(s: LabelledSeries, scores, prof: Profile, threshold: float) -> float:
    """NAB's scoreDataSet: the row of the file's own sweep matching ``threshold``."""
    prev = None
    for t, raw in _ref_by_threshold(_ref_rows(s, scores, prof), prof):
        if t == threshold:
            return raw
        if t < threshold:
            return prev
        prev = raw
    return prev


def random_corpus(rng: np.random.Generator, n_series: int = 3) -> NabCorpus:
    series = []
    for k in range(n_series):
        n = int(rng.integers(20, 160))
        dups = set(rng.choice(np.arange(1, n), size=int(rng.integers(0, 4)), replace=False).tolist())
        rows, pos = [], int(rng.integers(0, 25))
        for _ in range(int(rng.integers(0, 4))):
            width = int(rng.integers(1, 15))
            if pos + width >= n:
                break
            rows.append((pos, pos + width - 1))
            pos += width + int(rng.integers(4, 30))
        series.append(make_series(f"cat{k % 2}/s{k}.csv", n, rows, dups))
    return make_corpus(*series)


def random_detector(rng: np.random.Generator, corpus: NabCorpus, ties: bool) -> dict[str, np.ndarray]:
    return {sid: (rng.integers(0, 6, len(s)) / 6 if ties else rng.random(len(s))) for sid, s in corpus.series.items()}


# ---- tests --------------------------------------------------------------------------------------------------------


def test_scaled_sigmoid_matches_nab():
    assert scaled_sigmoid(-1.0) == pytest.approx(math.tanh(2.5))
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(1.0) == pytest.approx(-math.tanh(2.5))
    assert scaled_sigmoid(3.5) == -1.0 and scaled_sigmoid(np.inf) == -1.0


def test_hand_computed_single_window():
    # n=100 -> probationary rows 0..14; window rows 40..49 (width 10); null = -1, perfect = +1 (standard)
    s = make_series("a/x.csv", 100, [(40, 49)])
    c = make_corpus(s)
    std = PROFS["standard"]

    def raw(rows):
        return score_at(c, {"a/x.csv": detect(100, rows)}, "standard", 0.5).raw

    assert raw([40]) == pytest.approx(1.0)  # first row of the window: +tpWeight
    assert raw([49]) == pytest.approx(math.tanh(0.25) / math.tanh(2.5))  # last row: S(-1/10) / S(-1), small
    assert raw([49]) < 0.25
    assert raw([45]) == pytest.approx(math.tanh(5 * 5 / 20) / math.tanh(2.5))  # position -(49-45+1)/10
    # after the window: scaled sigmoid of the distance past its right edge, over (width - 1); window missed
    assert raw([50]) == pytest.approx(-1.0 - std.fp * math.tanh(5 * (1 / 9) / 2))
    assert raw([59]) == pytest.approx(-1.0 - std.fp * math.tanh(5 * (10 / 9) / 2))
    assert raw([90]) == pytest.approx(-1.0 - std.fp)  # more than 3 widths past: -fpWeight
    assert raw([20]) == pytest.approx(-1.0 - std.fp)  # before any window: -fpWeight
    assert raw([10]) == pytest.approx(-1.0)  # probationary rows are ignored
    assert raw([]) == pytest.approx(-1.0)
    res = score_at(c, {"a/x.csv": detect(100, [40])}, "reward_low_FN_rate", 0.5)
    assert (res.null_raw, res.perfect_raw, res.score) == (pytest.approx(-2.0), pytest.approx(1.0), pytest.approx(100))


def test_best_detection_per_window_and_every_fp_counts():
    s = make_series("a/x.csv", 100, [(40, 49), (70, 79)])
    c = make_corpus(s)
    one = score_at(c, {"a/x.csv": detect(100, [40])}, "standard", 0.5)
    many = score_at(c, {"a/x.csv": detect(100, [45, 40, 42, 48])}, "standard", 0.5)
    assert many.raw == pytest.approx(one.raw) == pytest.approx(1.0 - 1.0)  # window 2 missed
    assert (many.tp, many.fp, many.fn) == (1, 0, 1)
    fps = score_at(c, {"a/x.csv": detect(100, [20, 21, 22])}, "standard", 0.5)
    assert fps.raw == pytest.approx(-2.0 - 3 * 0.11)
    assert (fps.tp, fps.fp, fps.fn) == (0, 3, 2)
    # an FP after the second window is measured from the second window's right edge
    late = score_at(c, {"a/x.csv": detect(100, [80])}, "standard", 0.5)
    assert late.raw == pytest.approx(-2.0 - 0.11 * math.tanh(5 * (1 / 9) / 2))


def test_windows_in_probation_and_first_scorable_point():
    # n=200 -> probationary rows 0..29: window (0, 9) lies in it (not counted), (25, 34) straddles it
    s = make_series("a/x.csv", 200, [(0, 9), (25, 34), (100, 109)])
    c = make_corpus(s)
    assert s.window_counts.tolist() == [False, True, True]
    res = score_at(c, {"a/x.csv": detect(200, [30, 100])}, "standard", 0.5)
    expected_first = math.tanh(2.5 * 5 / 10) / math.tanh(2.5)  # row 30: position -(34-30+1)/10
    assert res.raw == pytest.approx(expected_first + 1.0)
    assert res.perfect_raw == pytest.approx(res.raw) and res.null_raw == -2.0
    assert res.score == pytest.approx(100.0)


def _synthetic_corpus() -> NabCorpus:
    return make_corpus(
        make_series("a/one.csv", 200, [(0, 9), (25, 34), (100, 109)]),
        make_series("a/two.csv", 120, [(40, 40), (60, 80)], dup_rows=[50, 90]),
        make_series("b/none.csv", 60),
    )


def test_null_scores_zero_and_perfect_hundred():
    c = _synthetic_corpus()
    for name, res in nab_scores(c, null_scores(c)).items():
        assert res.score == pytest.approx(0.0), name
        assert res.threshold == 1.1 and res.tp == 0 and res.fp == 0
    for name, res in nab_scores(c, perfect_scores(c)).items():
        assert res.score == pytest.approx(100.0), name
        assert res.fp == 0 and res.fn == 0 and res.tp == 4


@pytest.mark.parametrize("seed", range(6))
def test_sweep_equals_row_by_row_reference(seed):
    rng = np.random.default_rng(seed)
    corpus = random_corpus(rng)
    scores = random_detector(rng, corpus, ties=seed % 2 == 0)
    for name, prof in PROFS.items():
        rows = [r for sid, s in corpus.series.items() for r in _ref_rows(s, scores[sid], prof)]
        ref = _ref_by_threshold(rows, prof)
        thresholds, raw = sweep(corpus, scores, name)
        assert thresholds.tolist() == [t for t, _ in ref]
        np.testing.assert_allclose(raw, [r for _, r in ref], rtol=0, atol=1e-9)
        assert np.all(np.diff(thresholds) < 0)
        # score_at, per series, equals NAB's per-file scoreDataSet at every threshold
        for t in thresholds[:: max(1, len(thresholds) // 5)]:
            res = score_at(corpus, scores, name, float(t))
            for sid, s in corpus.series.items():
                assert res.per_series[sid] == pytest.approx(_ref_score_dataset(s, scores[sid], prof, t), abs=1e-9)
            assert res.raw == pytest.approx(raw[thresholds.tolist().index(t)], abs=1e-9)


def test_ties_enter_together_and_threshold_is_optimal():
    s = make_series("a/x.csv", 100, [(40, 49)])
    c = make_corpus(s)
    # rows 40 (window start) and 20 (FP) share 0.9; row 60 (FP) has 0.5
    scores = {"a/x.csv": detect(100, [40, 20], 0.9) + detect(100, [60], 0.5)}
    thresholds, raw = sweep(c, scores, "standard")
    assert thresholds.tolist() == [1.1, 0.9, 0.5, 0.0]
    assert raw[1] == pytest.approx(1.0 - 0.11)  # both tied rows enter at 0.9
    res = nab_scores(c, scores)["standard"]
    assert res.threshold == 0.9 and res.raw == pytest.approx(raw.max())

    rng = np.random.default_rng(7)
    corpus = random_corpus(rng, 4)
    det = random_detector(rng, corpus, ties=True)
    for name, res in nab_scores(corpus, det).items():
        thresholds, raw = sweep(corpus, det, name)
        brute = [score_at(corpus, det, name, float(t)).raw for t in thresholds]
        assert res.raw == pytest.approx(max(brute), abs=1e-9)
        assert res.threshold == thresholds[int(np.argmax(raw))]  # first best: the highest threshold among ties


def test_equal_scores_keep_highest_threshold():
    # a detection that adds nothing (later row in an already-detected window) ties the score: keep the higher one
    c = make_corpus(make_series("a/x.csv", 100, [(40, 49)]))
    scores = {"a/x.csv": detect(100, [40], 0.9) + detect(100, [45], 0.7)}
    res = nab_scores(c, scores, profiles=["standard"])["standard"]
    assert res.threshold == 0.9 and res.raw == pytest.approx(1.0)


def test_write_results_nab_format(tmp_path):
    c = make_corpus(make_series("realX/a.csv", 40, [(10, 14)]), make_series("realY/b.csv", 30, dup_rows=[5]))
    det = random_scores(c, seed=3)
    paths = write_results(tmp_path, "mydet", c, det)
    assert paths == [tmp_path / "mydet" / "realX" / "mydet_a.csv", tmp_path / "mydet" / "realY" / "mydet_b.csv"]
    back = pd.read_csv(paths[0], float_precision="round_trip")
    assert list(back.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert back["label"].tolist() == [1 if 10 <= i <= 14 else 0 for i in range(40)]
    assert back["timestamp"].iloc[0] == "2020-01-01 00:00:00"
    np.testing.assert_array_equal(back["anomaly_score"].to_numpy(), det["realX/a.csv"])
    b = pd.read_csv(paths[1])
    assert b["label"].sum() == 0 and b["timestamp"].iloc[4] == b["timestamp"].iloc[5]


def test_bad_input_names_the_series():
    c = _synthetic_corpus()
    good = null_scores(c)
    with pytest.raises(MalformedInputError, match=re.escape("a/two.csv")):
        sweep(c, {**good, "a/two.csv": np.zeros(5)}, "standard")
    with pytest.raises(MalformedInputError, match=re.escape("b/none.csv")):
        nab_scores(c, {k: v for k, v in good.items() if k != "b/none.csv"})
    nan = good["a/one.csv"].copy()
    nan[150] = np.nan
    with pytest.raises(MalformedInputError, match=re.escape("a/one.csv")):
        score_at(c, {**good, "a/one.csv": nan}, "standard", 0.5)
    with pytest.raises(MalformedInputError, match=re.escape("a/one.csv")):
        write_results("/nonexistent-never-written", "d", c, {**good, "a/one.csv": nan})


def test_bad_windows_rejected():
    ts = START + np.arange(50) * STEP
    off_grid = pd.Timestamp(ts[10] + np.timedelta64(1, "s"))
    with pytest.raises(MalformedInputError, match="w.csv.*not a row timestamp"):
        LabelledSeries("w.csv", ts, np.zeros(50), [(off_grid, pd.Timestamp(ts[20]))])
    with pytest.raises(MalformedInputError, match="overlaps"):
        LabelledSeries("w.csv", ts, np.zeros(50), [(pd.Timestamp(ts[10]), pd.Timestamp(ts[20])),
                                                   (pd.Timestamp(ts[20]), pd.Timestamp(ts[30]))])


@pytest.fixture(scope="module")
def nab_corpus(data_dir):
    src = data_dir / "nab"
    if not (src / "labels" / "combined_windows.json").is_file():
        pytest.skip(f"NAB data not present under {src}")
    return src, NabCorpus.load(src)


def test_real_corpus(nab_corpus):
    src, corpus = nab_corpus
    assert set(PROFILES) <= set(corpus.profiles)
    assert corpus.flat().n_windows == sum(len(s.windows) for s in corpus.series.values())
    for res in nab_scores(corpus, null_scores(corpus)).values():
        assert res.score == pytest.approx(0.0)
    for res in nab_scores(corpus, perfect_scores(corpus)).values():
        assert res.score == pytest.approx(100.0)
    for res in nab_scores(corpus, random_scores(corpus)).values():
        assert -100 < res.score < 50
    assert all(v == 0.0 for v in read_anchors(src)["null"].values())
    # the row-by-row reference on two real series with repeated timestamps
    sub = NabCorpus({sid: corpus.series[sid] for sid in ("realAdExchange/exchange-2_cpc_results.csv",
                                                         "realTraffic/occupancy_t4013.csv")}, corpus.profiles)
    det = random_scores(sub, seed=1)
    prof = sub.profiles["standard"]
    rows = [r for sid, s in sub.series.items() for r in _ref_rows(s, det[sid], prof)]
    ref = _ref_by_threshold(rows, prof)
    thresholds, raw = sweep(sub, det, "standard")
    assert thresholds.tolist() == [t for t, _ in ref]
    np.testing.assert_allclose(raw, [r for _, r in ref], rtol=0, atol=1e-8)
