"""Numenta Anomaly Benchmark (NAB v1.1) scoring, vectorised with numpy.

Follows NAB v1.1's ``Sweeper`` (per-row sweep scores, threshold sweep) and its corpus-wide threshold optimiser:

* a series' first ``min(floor(0.15 * n), 0.15 * 5000)`` rows are probationary and ignored;
* a window's edges are row timestamps (first occurrence when a timestamp repeats); a row inside window ``[l, r]``
  (row indices, width ``w = r - l + 1``) is worth ``tpWeight * S(-(r - i + 1) / w) / S(-1)``, with the scaled sigmoid
  ``S(x) = 2 * sigmoid(-5x) - 1`` (``-1`` for ``x > 3``): ``+tpWeight`` at the window's first row, ~0 at its last;
* a row outside every window is worth ``fpWeight * S(|r_prev - i| / (w_prev - 1))`` where ``r_prev``/``w_prev`` are
  the right edge and width of the last window that ended before it, and ``-fpWeight`` before any window;
* at a threshold ``t`` the detections are the scorable rows with ``score >= t``; a window counts only its best
  (earliest) detection, a window without one costs ``-fnWeight``, every detection outside windows adds its own value;
  windows are those seen among scorable rows (a window lying wholly in the probationary period does not count);
* the threshold is swept over the distinct scores of the whole corpus (rows with equal scores enter together, plus
  NAB's leading 1.1 "detect nothing" threshold); one threshold per profile maximises the corpus raw score (ties go
  to the highest threshold, as NAB's stable sort does);
* normalised score ``100 * (raw - null) / (perfect - null)``: null is the never-detecting detector
  (``-fnWeight * windows``), perfect detects every window at its first scorable row.

Deviations from NAB (cases where NAB crashes or silently mis-scores): a window edge that is not a row timestamp, a
window ending before it starts, or overlapping / unordered windows raise ``MalformedInputError``; after a one-row
window NAB divides by zero, here rows after it count as far from it (``S = -1``); scores must be finite; when some
score is >= 1.1 the "detect nothing" threshold is ``inf`` instead of 1.1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sunday.data.importers.nab import SERIES_TS_FORMAT, load_profiles, load_series, load_windows
from sunday.errors import DatasetMissingError, MalformedInputError, UnknownNameError

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = 5000
NO_DETECTION_THRESHOLD = 1.1  # NAB's starting threshold: above every score in [0, 1]
RESULTS_FILE = Path("results") / "final_results.json"

Window = tuple[pd.Timestamp, pd.Timestamp]


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's ``2 * sigmoid(-5 x) - 1``, and -1 for ``x > 3`` (also for ``x = inf``)."""
    x = np.asarray(x, dtype=np.float64)
    far = x > 3.0
    with np.errstate(over="ignore"):
        val = 2.0 * (1.0 / (1.0 + np.exp(5.0 * np.where(far, 3.0, x)))) - 1.0
    return np.where(far, -1.0, val)


MAX_TP = float(scaled_sigmoid(-1.0))


def probationary_length(n_rows: int) -> float:
    """Rows ``i < probationary_length(n)`` are ignored (NAB: ``min(floor(0.15 n), 0.15 * 5000)``)."""
    return min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * PROBATION_CAP_ROWS)


def probation_values(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each series' probationary rows: NAB's unscored learning period, the detectors' normal history."""
    return {sid: np.asarray(v)[: int(probationary_length(len(v)))] for sid, v in values.items()}


@dataclass(frozen=True)
class Profile:
    """NAB cost weights of one application profile (tnWeight plays no part in the score)."""

    name: str
    tp: float
    fp: float
    fn: float

    def __post_init__(self) -> None:
        if self.tp < 0 or self.fn < 0:
            raise ValueError(f"profile {self.name!r}: tp and fn weights must be >= 0 (got tp={self.tp}, fn={self.fn})")


@dataclass
class LabelledSeries:
    """One NAB series with its windows and the per-row scoring layout (computed at construction).

    Layout (row-aligned arrays): ``window_of`` (window index or -1 outside), ``probationary`` (bool),
    ``tp_value`` (unweighted TP value ``S(pos) / S(-1)`` inside windows, 0 outside), ``fp_value`` (unweighted FP
    value outside windows, 0 inside); per window: ``window_rows`` ((k, 2) first/last row) and ``window_counts``
    (True when the window has a scorable row).
    """

    series_id: str
    timestamps: np.ndarray
    values: np.ndarray
    windows: list[Window]
    window_of: np.ndarray = field(init=False, repr=False)
    probationary: np.ndarray = field(init=False, repr=False)
    tp_value: np.ndarray = field(init=False, repr=False)
    fp_value: np.ndarray = field(init=False, repr=False)
    window_rows: np.ndarray = field(init=False, repr=False)
    window_counts: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timestamps = np.asarray(self.timestamps).astype("datetime64[us]")
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.timestamps.ndim != 1 or self.values.shape != self.timestamps.shape:
            raise MalformedInputError(f"series {self.series_id!r}: timestamps and values must be 1-d of equal length")
        self.windows = [(pd.Timestamp(s), pd.Timestamp(e)) for s, e in self.windows]
        self._build_layout()

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def n_counted_windows(self) -> int:
        return int(self.window_counts.sum())

    def _edge_row(self, t: pd.Timestamp, j: int, which: str) -> int:
        hits = np.flatnonzero(self.timestamps == np.datetime64(t.to_datetime64(), "us"))
        if hits.size == 0:
            raise MalformedInputError(f"series {self.series_id!r}: window {j} {which} {t} is not a row timestamp")
        return int(hits[0])

    def _build_layout(self) -> None:
        n = len(self.timestamps)
        idx = np.arange(n)
        bounds = np.zeros((len(self.windows), 2), dtype=np.int64)
        for j, (start, end) in enumerate(self.windows):
            left, right = self._edge_row(start, j, "start"), self._edge_row(end, j, "end")
            if right < left:
                raise MalformedInputError(f"series {self.series_id!r}: window {j} ({start}, {end}) ends before it "
                                          f"starts (rows {left} > {right})")
            if j and left <= bounds[j - 1, 1]:
                raise MalformedInputError(f"series {self.series_id!r}: window {j} ({start}, {end}) overlaps or "
                                          f"precedes window {j - 1}; windows must be ordered and disjoint")
            bounds[j] = left, right
        window_of = np.full(n, -1, dtype=np.int64)
        tp_value = np.zeros(n)
        for j, (left, right) in enumerate(bounds):
            rows = idx[left:right + 1]
            window_of[left:right + 1] = j
            tp_value[left:right + 1] = scaled_sigmoid(-(right - rows + 1) / float(right - left + 1)) / MAX_TP
        # outside rows: distance past the right edge of the last window ending before the row
        outside = window_of < 0
        prev = np.searchsorted(bounds[:, 1], idx, side="left") - 1  # last window with right < i
        fp_value = np.zeros(n)
        before_any = outside & (prev < 0)
        fp_value[before_any] = -1.0
        after = outside & (prev >= 0)
        if after.any():
            p = prev[after]
            span = (bounds[p, 1] - bounds[p, 0]).astype(np.float64)  # width - 1
            with np.errstate(divide="ignore"):
                position = np.where(span > 0, np.abs(bounds[p, 1] - idx[after]) / np.where(span > 0, span, 1.0),
                                    np.inf)
            fp_value[after] = scaled_sigmoid(position)
        prob_len = probationary_length(n)
        self.window_of = window_of
        self.probationary = idx < prob_len
        self.tp_value = tp_value
        self.fp_value = fp_value
        self.window_rows = bounds
        self.window_counts = bounds[:, 1] >= prob_len if len(bounds) else np.zeros(0, dtype=bool)


@dataclass
class _Flat:
    """Scorable rows of a whole corpus, concatenated in series order (windows get corpus-wide ids)."""

    series_ids: tuple[str, ...]
    rows: list[np.ndarray]  # per series: scorable row indices
    series_of: np.ndarray  # per flat point: series position
    window: np.ndarray  # per flat point: corpus window id or -1
    tp_value: np.ndarray
    fp_value: np.ndarray
    window_series: np.ndarray  # per corpus window: series position
    first_tp: np.ndarray  # per corpus window: tp_value at its first scorable row

    @property
    def n_windows(self) -> int:
        return len(self.window_series)


@dataclass
class NabCorpus:
    """Labelled series and scoring profiles; ``scores`` passed to the functions below are keyed by series id."""

    series: dict[str, LabelledSeries]
    profiles: dict[str, Profile]
    _flat: _Flat | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, source_dir: Path, series_ids: Iterable[str] | None = None) -> NabCorpus:
        """Read a NAB folder (data/, labels/combined_windows.json, config/profiles.json), optionally a subset."""
        frames = load_series(Path(source_dir))
        windows = load_windows(Path(source_dir))
        ids = list(frames) if series_ids is None else list(series_ids)
        unknown = [sid for sid in ids if sid not in frames]
        if unknown:
            raise UnknownNameError("NAB series", unknown[0], list(frames))
        series = {sid: LabelledSeries(sid, frames[sid]["timestamp"].to_numpy(), frames[sid]["value"].to_numpy(),
                                      windows.get(sid, [])) for sid in ids}
        profiles = {name: Profile(name, w["tp"], w["fp"], w["fn"]) for name, w in load_profiles(source_dir).items()}
        return cls(series, profiles)

    def profile(self, name: str) -> Profile:
        if name not in self.profiles:
            raise UnknownNameError("NAB profile", name, list(self.profiles))
        return self.profiles[name]

    def flat(self) -> _Flat:
        """The concatenated scorable layout, built once (rebuilt if the set of series changed)."""
        ids = tuple(self.series)
        if self._flat is None or self._flat.series_ids != ids:
            self._flat = _flatten(self.series)
        return self._flat


def _flatten(series: dict[str, LabelledSeries]) -> _Flat:
    rows, series_of, window, tp, fp, window_series, first_tp = [], [], [], [], [], [], []
    n_windows = 0
    for pos, s in enumerate(series.values()):
        r = np.flatnonzero(~s.probationary)
        # local window index -> corpus id, for the windows that count (the others have no scorable row anyway)
        ids = np.full(len(s.windows) + 1, -1, dtype=np.int64)
        counted = np.flatnonzero(s.window_counts)
        ids[counted] = n_windows + np.arange(len(counted))
        n_windows += len(counted)
        w = ids[s.window_of[r]]  # window_of == -1 picks ids[-1] == -1
        rows.append(r)
        series_of.append(np.full(len(r), pos, dtype=np.int64))
        window.append(w)
        tp.append(np.where(w >= 0, s.tp_value[r], 0.0))
        fp.append(np.where(w < 0, s.fp_value[r], 0.0))
        window_series.append(np.full(len(counted), pos, dtype=np.int64))
        first_rows = np.maximum(s.window_rows[counted, 0], len(s) - len(r))  # first scorable row of each window
        first_tp.append(s.tp_value[first_rows])

    def cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    return _Flat(tuple(series), rows, cat(series_of, np.int64), cat(window, np.int64), cat(tp, np.float64),
                 cat(fp, np.float64), cat(window_series, np.int64), cat(first_tp, np.float64))


@dataclass
class ProfileScore:
    """NAB result of one profile: threshold, raw/null/perfect raw scores, normalised score and window counts."""

    profile: str
    threshold: float
    raw: float
    null_raw: float
    perfect_raw: float
    score: float
    tp: int  # windows detected
    fp: int  # detections outside windows
    fn: int  # windows missed
    per_series: dict[str, float]


def _gather(corpus: NabCorpus, scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Validate ``scores`` (every corpus series, right length, finite) -> the scorable scores, flattened."""
    flat = corpus.flat()
    parts = []
    for sid, s in corpus.series.items():
        if sid not in scores:
            raise MalformedInputError(f"anomaly scores: series {sid!r} is missing")
        try:
            arr = np.asarray(scores[sid], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise MalformedInputError(f"anomaly scores: series {sid!r}: not numeric: {exc}") from None
        if arr.ndim != 1 or len(arr) != len(s):
            raise MalformedInputError(f"anomaly scores: series {sid!r}: expected {len(s)} scores, got shape "
                                      f"{arr.shape}")
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(bad.argmax())
            raise MalformedInputError(f"anomaly scores: series {sid!r}: row {i} is not a finite number: {arr[i]}")
        parts.append(arr)
    return np.concatenate([p[r] for p, r in zip(parts, flat.rows, strict=True)]) if parts else np.zeros(0)


@dataclass
class _Sweep:
    """Profile-independent cumulative sums at every distinct threshold (descending)."""

    thresholds: np.ndarray  # leading "detect nothing" threshold, then the distinct scores, descending
    fp_sum: np.ndarray  # sum of unweighted FP values of the detections outside windows
    tp_sum: np.ndarray  # sum over detected windows of their best unweighted TP value
    detected: np.ndarray  # windows detected
    n_windows: int

    def raw(self, p: Profile) -> np.ndarray:
        return -p.fn * self.n_windows + p.fn * self.detected + p.tp * self.tp_sum + p.fp * self.fp_sum


def _sweep(flat: _Flat, s: np.ndarray) -> _Sweep:
    m = len(s)
    order = np.argsort(-s, kind="stable")
    ss = s[order]
    win = flat.window[order]
    inside = win >= 0
    fp_inc = np.where(inside, 0.0, flat.fp_value[order])
    # a window's best detection is its earliest (TP value falls along the window): per window, running minimum of
    # the flat position in score order; windows are grouped in descending id order so each group starts below all
    # positions seen before it and a plain running minimum restarts at every group.
    pos_in = np.flatnonzero(inside)
    group = np.argsort(-win[pos_in], kind="stable")
    at = pos_in[group]  # sorted positions, grouped by window
    w = win[at]
    first = np.ones(len(at), dtype=bool)
    first[1:] = w[1:] != w[:-1]
    best = flat.tp_value[np.minimum.accumulate(order[at])] if len(at) else np.zeros(0)
    prev_best = np.zeros(len(at))
    prev_best[1:] = best[:-1]
    prev_best[first] = 0.0
    tp_inc = np.zeros(m)
    tp_inc[at] = best - prev_best
    det_inc = np.zeros(m)
    det_inc[at] = first
    ends = np.flatnonzero(np.append(ss[1:] != ss[:-1], True)) if m else np.zeros(0, dtype=np.int64)
    lead = NO_DETECTION_THRESHOLD if (m == 0 or ss[0] < NO_DETECTION_THRESHOLD) else np.inf

    def at_ends(inc: np.ndarray) -> np.ndarray:
        return np.concatenate(([0.0], np.cumsum(inc)[ends]))

    return _Sweep(np.concatenate(([lead], ss[ends])), at_ends(fp_inc), at_ends(tp_inc), at_ends(det_inc),
                  flat.n_windows)


def sweep(corpus: NabCorpus, scores: Mapping[str, np.ndarray], profile: str) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds descending, corpus raw score at each threshold), detections being ``score >= threshold``."""
    sw = _sweep(corpus.flat(), _gather(corpus, scores))
    return sw.thresholds, sw.raw(corpus.profile(profile))


def _null_perfect(flat: _Flat, p: Profile) -> tuple[float, float]:
    return -p.fn * flat.n_windows, float(p.tp * flat.first_tp.sum())


def _normalise(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")


def _score_at(corpus: NabCorpus, s: np.ndarray, p: Profile, threshold: float) -> ProfileScore:
    flat = corpus.flat()
    n_series = len(corpus.series)
    det = s >= threshold
    out_det = det & (flat.window < 0)
    fp_part = p.fp * np.bincount(flat.series_of[out_det], weights=flat.fp_value[out_det], minlength=n_series)
    best = np.zeros(flat.n_windows)
    in_det = det & (flat.window >= 0)
    np.maximum.at(best, flat.window[in_det], flat.tp_value[in_det])
    hit = np.zeros(flat.n_windows, dtype=bool)
    hit[flat.window[in_det]] = True
    contrib = np.where(hit, np.maximum(-p.fn, p.tp * best), -p.fn)
    win_part = np.bincount(flat.window_series, weights=contrib, minlength=n_series)
    per = fp_part + win_part
    raw = float(per.sum())
    null, perfect = _null_perfect(flat, p)
    return ProfileScore(profile=p.name, threshold=float(threshold), raw=raw, null_raw=null, perfect_raw=perfect,
                        score=_normalise(raw, null, perfect), tp=int(hit.sum()), fp=int(out_det.sum()),
                        fn=int(flat.n_windows - hit.sum()),
                        per_series={sid: float(v) for sid, v in zip(corpus.series, per, strict=True)})


def score_at(corpus: NabCorpus, scores: Mapping[str, np.ndarray], profile: str, threshold: float) -> ProfileScore:
    """Score the corpus with detections ``score >= threshold`` (no optimisation)."""
    return _score_at(corpus, _gather(corpus, scores), corpus.profile(profile), threshold)


def nab_scores(corpus: NabCorpus, scores: Mapping[str, np.ndarray],
               profiles: Iterable[str] = PROFILES) -> dict[str, ProfileScore]:
    """NAB scores with the threshold optimised over the whole corpus, per profile (first best = highest threshold)."""
    s = _gather(corpus, scores)
    sw = _sweep(corpus.flat(), s)
    out = {}
    for name in profiles:
        p = corpus.profile(name)
        best = int(np.argmax(sw.raw(p)))
        out[name] = _score_at(corpus, s, p, float(sw.thresholds[best]))
    return out


def null_scores(corpus: NabCorpus) -> dict[str, np.ndarray]:
    """The never-detecting detector: all-zero scores (its best threshold detects nothing: normalised score 0)."""
    return {sid: np.zeros(len(s)) for sid, s in corpus.series.items()}


def random_scores(corpus: NabCorpus, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform [0, 1) scores, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return {sid: rng.random(len(s)) for sid, s in corpus.series.items()}


def perfect_scores(corpus: NabCorpus) -> dict[str, np.ndarray]:
    """1 at the first scorable row of every counted window, else 0 (normalised score 100)."""
    out = {}
    for sid, s in corpus.series.items():
        arr = np.zeros(len(s))
        first = np.maximum(s.window_rows[s.window_counts, 0], int(np.count_nonzero(s.probationary)))
        arr[first] = 1.0
        out[sid] = arr
    return out


def write_results(out_dir: Path, detector: str, corpus: NabCorpus, scores: Mapping[str, np.ndarray]) -> list[Path]:
    """NAB results layout: ``out_dir/<detector>/<category>/<detector>_<file>.csv`` with
    ``timestamp,value,anomaly_score,label`` (label 1 when the timestamp lies in a labelled window, as NAB's labeler
    sets it), so NAB's own scorer can read them."""
    _gather(corpus, scores)  # validate everything before writing anything
    paths = []
    for sid, s in corpus.series.items():
        category, _, name = sid.rpartition("/")
        path = Path(out_dir) / detector / category / f"{detector}_{name}"
        label = np.zeros(len(s), dtype=np.int64)
        for start, end in s.windows:
            lo, hi = np.datetime64(start.to_datetime64(), "us"), np.datetime64(end.to_datetime64(), "us")
            label[(s.timestamps >= lo) & (s.timestamps <= hi)] = 1
        frame = pd.DataFrame({
            "timestamp": pd.Series(s.timestamps).dt.strftime(SERIES_TS_FORMAT),
            "value": s.values,
            "anomaly_score": np.asarray(scores[sid], dtype=np.float64),
            "label": label,
        })
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        paths.append(path)
    return paths


def read_anchors(source_dir: Path) -> dict[str, dict[str, float]]:
    """results/final_results.json: detector -> profile -> published normalised score (58-series NAB corpus)."""
    path = Path(source_dir) / RESULTS_FILE
    if not path.exists():
        raise DatasetMissingError(f"missing file: {path}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {str(det): {str(p): float(v) for p, v in prof.items()} for det, prof in raw.items()}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
        raise MalformedInputError(f"{path}: expected {{detector: {{profile: score}}}}: {exc!r}") from None
