"""The streaming detector interface, input checks and the tail calibration every detector shares.

A detector sees one point at a time (:meth:`StreamingDetector.update`), never looks ahead and keeps bounded state.
It turns each point into a raw *statistic* (how unusual the point is by its own measure: a robust z, a
reconstruction error, an isolation depth) and the shared :class:`TailCalibrator` turns the statistic into a score in
[0, 1] with one meaning for every detector::

    score = min(1, -log10(p) / decades)        p = tail probability of the statistic under its own recent history

so ``score >= 0.7`` with the default 5 decades means "rarer than about 1 in 3,000 of this detector's recent
statistics". The tail beyond the 98th percentile of the history is an exponential fit (peaks over threshold), so
probabilities smaller than 1 / history size stay graded instead of saturating. Each statistic is calibrated at two
timescales (``TailCalibration.timescales``): as is (a spike) and averaged over the last 20 points (a sustained
shift, as HTM's anomaly likelihood averages its raw scores); the detector's score is the larger.

:meth:`StreamingDetector.score` scores a whole series; detectors whose per-point update is costly (the isolation
forest, the autoencoder) override it with a block computation that gives exactly the per-point result (tested).

Input rules (:func:`check_series`, :func:`check_point`): timestamps must not go backwards (equal ones are allowed:
NAB repeats a few), values must be numbers; a NaN or infinite value is *skipped*: it scores 0 and leaves the
detector's state untouched. An empty series is an error.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from sunday.errors import SundayError


class SeriesInputError(SundayError):
    """A series or point a detector cannot take (the message names the field and the position)."""

    def __init__(self, field: str, message: str, position: int | None = None, series: str | None = None):
        self.field, self.position, self.series = field, position, series
        where = f"series {series!r}" if series else "series"
        if position is not None:
            where += f" point {position}"
        super().__init__(f"{where}: field '{field}' {message}")


def _as_ns(ts: Any) -> int | None:
    if ts is None:
        return None
    try:
        return int(np.datetime64(ts, "ns").astype("int64"))
    except (ValueError, TypeError):
        raise SeriesInputError("timestamp", f"cannot be read as a timestamp: {ts!r}") from None


def check_series(values: Any, timestamps: Any = None, series: str | None = None,
                 after_ns: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(values float64, timestamps datetime64[ns] or None), or :class:`SeriesInputError` naming what is wrong;
    ``after_ns``: the last timestamp already seen (the series continues a stream)."""
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        raise SeriesInputError("value", "must be numbers", series=series) from None
    if v.size == 0:
        raise SeriesInputError("value", "is empty: a series needs at least one point", series=series)
    if timestamps is None:
        return v, None
    try:
        t = np.asarray(timestamps, dtype="datetime64[ns]").reshape(-1)
    except (ValueError, TypeError):
        raise SeriesInputError("timestamp", "cannot be read as timestamps", series=series) from None
    if len(t) != len(v):
        raise SeriesInputError("timestamp", f"has {len(t)} entries for {len(v)} values", series=series)
    if np.isnat(t).any():
        raise SeriesInputError("timestamp", "is missing (NaT)", int(np.flatnonzero(np.isnat(t))[0]), series)
    back = np.flatnonzero(np.diff(t.astype("int64")) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise SeriesInputError("timestamp", f"goes backwards: {t[i]} comes after {t[i - 1]} (timestamps must not "
                               "decrease)", i, series)
    if after_ns is not None and int(t[0].astype("int64")) < after_ns:
        raise SeriesInputError("timestamp", "goes backwards from the last point already seen", 0, series)
    return v, t


def check_point(value: Any, timestamp: Any, last_ns: int | None, position: int | None = None,
                series: str | None = None) -> tuple[float, int | None]:
    """One point -> (value, timestamp ns); a decreasing timestamp or a non-number raises SeriesInputError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SeriesInputError("value", f"must be a number, got {value!r}", position, series)
    ns = _as_ns(timestamp)
    if ns is not None and last_ns is not None and ns < last_ns:
        raise SeriesInputError("timestamp", f"goes backwards: {np.datetime64(ns, 'ns')} after "
                               f"{np.datetime64(last_ns, 'ns')} (timestamps must not decrease)", position, series)
    return float(value), ns


@dataclass
class TailCalibration:
    """Settings of :class:`TailCalibrator` (shared by every detector)."""

    history: int = 2000       # statistics kept (bounded memory)
    min_history: int = 64     # scores are 0 until this many statistics were seen
    tail: float = 0.02        # the exponential tail starts at the (1 - tail) quantile
    refresh: int = 32         # re-sort the history every this many statistics
    decades: float = 5.0      # score 1 = tail probability 10**-decades
    timescales: tuple[int, ...] = (1, 20)  # statistics averaged before calibration: the point, a sustained shift


class TailCalibrator:
    """Statistic -> score in [0, 1]: ``-log10(tail probability) / decades`` under the recent statistics.

    Below the tail threshold ``u`` (the ``1 - tail`` quantile) the probability is the empirical exceedance; above
    it, ``tail * exp(-(s - u) / beta)`` with ``beta`` the mean excess over ``u``. The sorted snapshot is refreshed
    every ``refresh`` statistics; a statistic is scored against the history *before* it is added.
    """

    def __init__(self, config: TailCalibration | None = None, smooth: int = 1):
        self.config = config or TailCalibration()
        self.smooth = max(1, int(smooth))
        self._hist: deque[float] = deque(maxlen=self.config.history)
        self._sorted = np.empty(0)
        self._u = math.inf
        self._beta = 1.0
        self._since = 0
        self._recent: deque[float] = deque(maxlen=self.smooth)

    def _refresh(self) -> None:
        c = self.config
        self._sorted = np.sort(np.fromiter(self._hist, dtype=np.float64, count=len(self._hist)))
        n = len(self._sorted)
        k = min(n - 1, int(math.floor((1 - c.tail) * n)))
        self._u = float(self._sorted[k])
        excess = self._sorted[k:] - self._u
        self._beta = max(float(excess.mean()), 1e-9 * max(abs(self._u), 1.0), 1e-12)
        self._since = 0

    def probability(self, stat: float) -> float:
        """Tail probability of ``stat`` under the snapshot (1.0 while too little history)."""
        n = len(self._sorted)
        if n < self.config.min_history:
            return 1.0
        if stat > self._u:
            return self.config.tail * math.exp(-(stat - self._u) / self._beta)
        above = n - int(np.searchsorted(self._sorted, stat, side="left"))
        return max(above / n, self.config.tail)

    def score_of(self, stat: float) -> float:
        p = self.probability(stat)
        return min(1.0, max(0.0, -math.log10(max(p, 1e-300)) / self.config.decades))

    def update(self, stat: float) -> float:
        """Score ``stat`` (the mean of the last ``smooth`` statistics) against the history, then add it."""
        if self.smooth > 1:
            self._recent.append(stat)
            stat = sum(self._recent) / len(self._recent)
        out = self.score_of(stat)
        self.add(stat)
        return out

    def add(self, stat: float) -> None:
        self._hist.append(float(stat))
        self._since += 1
        if self._since >= self.config.refresh or (len(self._sorted) < self.config.min_history
                                                  and len(self._hist) >= self.config.min_history):
            self._refresh()

    def state_size(self) -> int:
        return len(self._hist) + len(self._sorted) + len(self._recent)


class Calibrator:
    """One :class:`TailCalibrator` per timescale of ``config.timescales``; a statistic's score is the largest."""

    def __init__(self, config: TailCalibration | None = None):
        self.config = config or TailCalibration()
        if not self.config.timescales or min(self.config.timescales) < 1:
            raise ValueError(f"timescales must be positive integers, got {self.config.timescales!r}")
        self.scales = [TailCalibrator(self.config, k) for k in self.config.timescales]

    def update(self, stat: float) -> float:
        return max(c.update(stat) for c in self.scales)

    def state_size(self) -> int:
        return sum(c.state_size() for c in self.scales)


class StreamingDetector(ABC):
    """One series, one point at a time. Subclasses implement :meth:`statistic` (and may override :meth:`score`)."""

    name: ClassVar[str]

    def __init__(self, calibration: TailCalibration | None = None):
        self.calibrator = Calibrator(calibration)
        self.n_seen = 0
        self.n_skipped = 0
        self._last_ns: int | None = None

    @abstractmethod
    def statistic(self, value: float, ns: int | None) -> float | None:
        """The raw statistic of the next point (None while warming up), updating the detector's state."""

    def update(self, value: Any, timestamp: Any = None) -> float:
        """Score the next point in [0, 1]; NaN / inf values are skipped (score 0, state unchanged)."""
        x, ns = check_point(value, timestamp, self._last_ns, self.n_seen + self.n_skipped)
        return self._step(x, ns)

    def _step(self, x: float, ns: int | None) -> float:
        if ns is not None:
            self._last_ns = ns
        if not math.isfinite(x):
            self.n_skipped += 1
            return 0.0
        self.n_seen += 1
        stat = self.statistic(x, ns)
        if stat is None or not math.isfinite(stat):
            return 0.0
        return self.calibrator.update(stat)

    def score(self, values: Sequence[float] | np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Scores of a whole series, exactly as :meth:`update` point by point would give them."""
        v, t = check_series(values, timestamps, after_ns=self._last_ns)
        ts = t.astype("int64").tolist() if t is not None else [None] * len(v)
        return np.fromiter((self._step(x, n) for x, n in zip(v.tolist(), ts)), dtype=np.float64, count=len(v))

    def state_size(self) -> int:
        """Numbers held in memory (bounded: independent of the series length)."""
        return self.calibrator.state_size()
