"""Statistical rules: robust z-score, EWMA and seasonal baseline, each a :class:`StreamingDetector`.

* :class:`RobustZ`: distance of the point from the median of the last ``window`` points, in robust standard
  deviations (IQR / 1.349, floored by a share of the window's standard deviation so a quantised series with a zero
  IQR does not call every change infinite).
* :class:`Ewma`: distance from an exponentially weighted mean in exponentially weighted standard deviations.
* :class:`Seasonal`: distance from the median of the same slot in the last ``cycles`` seasons (slot = time of day
  for sub-daily series, day of week for daily ones; the period is read from the sampling interval), scaled by the
  recent absolute residual. A series with no recognisable period abstains (scores 0).

Each scores a point against the state *before* the point, then adds it.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sunday.models.anomaly.base import StreamingDetector, TailCalibration

DAY_NS = 86_400 * 10**9


class _SortedWindow:
    """The last ``size`` values, kept sorted too (O(log n) search, O(n) memmove per update)."""

    def __init__(self, size: int):
        self.size = size
        self.fifo: deque[float] = deque()
        self.sorted: list[float] = []
        self.sum = 0.0
        self.sumsq = 0.0

    def add(self, x: float) -> None:
        self.fifo.append(x)
        bisect.insort(self.sorted, x)
        self.sum += x
        self.sumsq += x * x
        if len(self.fifo) > self.size:
            old = self.fifo.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            self.sum -= old
            self.sumsq -= old * old

    def __len__(self) -> int:
        return len(self.fifo)

    def quantile(self, q: float) -> float:
        s = self.sorted
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return s[lo] + (s[hi] - s[lo]) * (pos - lo)

    def std(self) -> float:
        n = len(self.fifo)
        mean = self.sum / n
        return math.sqrt(max(self.sumsq / n - mean * mean, 0.0))


def _floor(scale: float, std: float, level: float) -> float:
    return max(scale, 0.1 * std, 1e-9 * max(abs(level), 1.0))


@dataclass
class RobustZConfig:
    window: int = 500
    min_points: int = 30


class RobustZ(StreamingDetector):
    name = "robust_z"

    def __init__(self, config: RobustZConfig | None = None, calibration: TailCalibration | None = None):
        super().__init__(calibration)
        self.config = config or RobustZConfig()
        self._win = _SortedWindow(self.config.window)

    def statistic(self, value: float, ns: int | None) -> float | None:
        w = self._win
        stat = None
        if len(w) >= self.config.min_points:
            med = w.quantile(0.5)
            scale = (w.quantile(0.75) - w.quantile(0.25)) / 1.349
            stat = abs(value - med) / _floor(scale, w.std(), med)
        w.add(value)
        return stat

    def state_size(self) -> int:
        return super().state_size() + 2 * len(self._win)


@dataclass
class EwmaConfig:
    halflife: float = 100.0   # points
    min_points: int = 30


class Ewma(StreamingDetector):
    name = "ewma"

    def __init__(self, config: EwmaConfig | None = None, calibration: TailCalibration | None = None):
        super().__init__(calibration)
        self.config = config or EwmaConfig()
        self._alpha = 1 - 0.5 ** (1 / self.config.halflife)
        self._mean: float | None = None
        self._var = 0.0
        self._n = 0

    def statistic(self, value: float, ns: int | None) -> float | None:
        self._n += 1
        if self._mean is None:
            self._mean = value
            return None
        diff = value - self._mean
        stat = None
        if self._n > self.config.min_points:
            stat = abs(diff) / max(math.sqrt(self._var), 1e-9 * max(abs(self._mean), 1.0))
        a = self._alpha
        self._mean += a * diff
        self._var = (1 - a) * (self._var + a * diff * diff)
        return stat

    def state_size(self) -> int:
        return super().state_size() + 3


@dataclass
class SeasonalConfig:
    cycles: int = 5           # past seasons per slot
    min_cycles: int = 2
    halflife: float = 200.0   # points, for the residual scale
    period: int | None = None  # points per season; None = from the sampling interval (needs timestamps)


def infer_period(interval_ns: int) -> int | None:
    """Points per season for a sampling interval: a day for sub-daily series, a week for daily ones."""
    if interval_ns <= 0:
        return None
    if interval_ns < DAY_NS and DAY_NS % interval_ns == 0 and DAY_NS // interval_ns >= 4:
        return int(DAY_NS // interval_ns)
    if interval_ns == DAY_NS:
        return 7
    return None


class PeriodProbe:
    """A series' sampling interval (the median of its first ``steps`` increasing timestamp steps) and its season
    (:func:`infer_period`; None when it has none), read point by point."""

    def __init__(self, steps: int = 16):
        self.steps = steps
        self.interval: int | None = None
        self.period: int | None = None
        self._seen: list[int] = []
        self._prev_ns: int | None = None

    @property
    def done(self) -> bool:
        return self.interval is not None

    def feed(self, ns: int | None) -> bool:
        """Read one timestamp (ns, or None: ignored); True once the interval is known."""
        if self.done or ns is None:
            return self.done
        if self._prev_ns is not None and ns > self._prev_ns:
            self._seen.append(ns - self._prev_ns)
        self._prev_ns = ns
        if len(self._seen) >= self.steps:
            self.interval = int(np.median(self._seen))
            self.period = infer_period(self.interval)
        return self.done

    def state_size(self) -> int:
        return len(self._seen)


class Seasonal(StreamingDetector):
    name = "seasonal"

    def __init__(self, config: SeasonalConfig | None = None, calibration: TailCalibration | None = None):
        super().__init__(calibration)
        self.config = config or SeasonalConfig()
        self._probe = PeriodProbe()
        self._slots: dict[int, deque[float]] = {}
        self._count = 0
        self._abs_resid: float | None = None
        self._alpha = 1 - 0.5 ** (1 / self.config.halflife)

    def _slot(self, ns: int | None) -> int | None:
        if self.config.period is not None:
            self._count += 1
            return (self._count - 1) % self.config.period
        probe = self._probe
        if ns is None or not probe.feed(ns) or probe.period is None:
            return None
        return int((ns // probe.interval) % probe.period)

    def statistic(self, value: float, ns: int | None) -> float | None:
        slot = self._slot(ns)
        if slot is None:
            return None
        past = self._slots.setdefault(slot, deque(maxlen=self.config.cycles))
        stat = None
        if len(past) >= self.config.min_cycles:
            resid = value - float(np.median(past))
            if self._abs_resid is None:
                self._abs_resid = abs(resid)
            else:
                stat = abs(resid) / max(self._abs_resid, 1e-9 * max(abs(value), 1.0))
                self._abs_resid += self._alpha * (abs(resid) - self._abs_resid)
        past.append(value)
        return stat

    def state_size(self) -> int:
        return super().state_size() + sum(len(d) for d in self._slots.values()) + self._probe.state_size()
