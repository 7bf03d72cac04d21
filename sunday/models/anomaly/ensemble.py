"""The ensemble: several streaming detectors on one series, one combined score, and alerts with reasons.

    ens = Ensemble(EnsembleConfig(), signal="project p1 velocity")
    for ts, x in stream:
        point = ens.update(x, ts)          # EnsemblePoint(score, scores per detector, alert or None)
    scores, alerts = Ensemble(...).detect(values, timestamps)    # a whole series at once (same result)

The combined score is the mean of the ``top_k`` highest detector scores (each detector's score is already
calibrated to a tail probability, see :mod:`~sunday.models.anomaly.base`), so it is high only when at least
``top_k`` detectors find the point rare -- or when one detector is all but certain: a lone score counts at weight
``solo`` (0.8), so it raises an alert by itself from 0.875 (a tail probability below about 1 in 20,000).

An alert opens when the score reaches ``threshold`` (0.7) and no alert opened in the last ``refractory`` points; points at or above the threshold inside that period extend the open
alert instead of raising new ones. An alert names the signal, its span (first and last point at or above
``threshold``) and the detectors whose own score reached ``agree`` inside the span.

A high combined score that recurs at the same time of the season (the same time of day for sub-daily series, the
same weekday for daily ones; :class:`Recurrence`) is halved: a daily job's spike is the series' normal.

``alert_score`` is the score with those extending points set to 0: one detection per alert, the series to hand
to a scorer that counts every detection (NAB) or to a pager.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from sunday.errors import UnknownNameError
from sunday.models.anomaly.base import (
    StreamingDetector, TailCalibration, check_point, check_series,
)
from sunday.models.anomaly.stats import PeriodProbe


def _registry() -> dict[str, Callable[..., StreamingDetector]]:
    from sunday.models.anomaly.iforest import WindowIsolationForest
    from sunday.models.anomaly.stats import Ewma, RobustZ, Seasonal

    return {"robust_z": RobustZ, "ewma": Ewma, "seasonal": Seasonal, "iforest": WindowIsolationForest}


DEFAULT_DETECTORS = ("robust_z", "ewma", "seasonal", "iforest")


def make_detector(name: str, calibration: TailCalibration | None = None, **extra: Any) -> StreamingDetector:
    """A fresh detector by name (``lstm_ae`` needs ``model=`` a trained :class:`LstmAutoencoder`)."""
    if name == "lstm_ae":
        from sunday.models.anomaly.lstm_ae import LstmAeDetector

        return LstmAeDetector(calibration=calibration, **extra)
    reg = _registry()
    if name not in reg:
        raise UnknownNameError("detector", name, [*reg, "lstm_ae"])
    return reg[name](calibration=calibration, **extra)


@dataclass
class EnsembleConfig:
    detectors: tuple[str, ...] = DEFAULT_DETECTORS
    top_k: int = 2
    solo: float = 0.8           # a lone detector counts at this weight (0.8: it alerts alone only at score >= 0.875)
    threshold: float = 0.7
    agree: float = 0.6
    refractory: int = 100       # points after an alert opens during which no new alert opens
    recurrence_cycles: int = 3  # seasons looked back for the same high score (0 = off)
    recurrence_slack: int = 3   # points either side of the same slot
    recurrence_factor: float = 0.5
    period: int | None = None   # points per season; None = from the sampling interval (day, or week for daily data)
    calibration: TailCalibration = field(default_factory=TailCalibration)

    def __post_init__(self) -> None:
        if not self.detectors:
            raise ValueError("an ensemble needs at least one detector")
        if not 1 <= self.top_k <= len(self.detectors):
            raise ValueError(f"top_k must be between 1 and {len(self.detectors)}, got {self.top_k}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 0 <= self.solo <= 1:
            raise ValueError(f"solo must be in [0, 1], got {self.solo}")
        if self.recurrence_cycles < 0 or self.recurrence_slack < 0 or not 0 <= self.recurrence_factor <= 1:
            raise ValueError("recurrence_cycles and recurrence_slack must be >= 0 and recurrence_factor in [0, 1]")
        if self.period is not None and self.period < 2:
            raise ValueError(f"period must be at least 2 points, got {self.period}")


class Recurrence:
    """Discounts a combined score that already reached ``level`` at the same time of the season (+- ``slack``
    points, at most ``period // 24``) in one of the last ``cycles`` seasons: a daily backup spike, a Monday
    planning burst, are the series' normal. Bounded: a ring of ``cycles * period + slack + 1`` past scores."""

    def __init__(self, config: EnsembleConfig):
        c = config
        self.cycles, self.slack, self.factor, self.level = (c.recurrence_cycles, c.recurrence_slack,
                                                            c.recurrence_factor, c.threshold)
        self.period = c.period
        self._probe = PeriodProbe()
        self._buf: np.ndarray | None = None
        self._n = 0

    def __call__(self, score: float, ns: int | None) -> float:
        if not self.cycles:
            return score
        if self.period is None:
            if self._probe.feed(ns):
                self.period = self._probe.period or 0
            return score
        P = self.period
        slack = min(self.slack, P // 24)  # at most an hour of a day; none for a week of days
        if self._buf is None:
            self._buf = np.zeros(self.cycles * P + self.slack + 1)
        L, n, out = len(self._buf), self._n, score
        for k in range(1, self.cycles + 1):
            lo, hi = n - k * P - slack, n - k * P + slack
            if hi < 0:
                break
            idx = np.arange(max(lo, 0, n - L + 1), hi + 1) % L
            if len(idx) and self._buf[idx].max() >= self.level:
                out = score * self.factor
                break
        self._buf[n % L] = score
        self._n += 1
        return out

    def state_size(self) -> int:
        return 0 if self._buf is None else len(self._buf)


@dataclass
class Alert:
    signal: str | None
    start: Any                 # timestamp (or point index when the series has none)
    end: Any
    start_index: int
    end_index: int
    score: float               # peak combined score in the span
    detectors: list[str]       # detectors whose own score reached ``agree`` in the span
    open: bool = True          # still at or above the threshold at the last point seen

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for k in ("start", "end"):
            if isinstance(out[k], (np.datetime64,)):
                out[k] = str(out[k])
        return out


@dataclass
class EnsemblePoint:
    score: float
    scores: dict[str, float]
    alert: Alert | None = None   # the alert this point opened or extended
    alert_score: float = 0.0     # ``score``, or 0 when the point only extends an open alert


@dataclass
class EnsembleRun:
    """A whole series: combined and alert scores, per-detector scores (n, detectors) and the alerts raised."""

    scores: np.ndarray
    alert_scores: np.ndarray
    detector_scores: np.ndarray
    alerts: list[Alert]


class Ensemble:
    """Detectors on one series -> combined score and alerts (see the module docstring)."""

    def __init__(self, config: EnsembleConfig | None = None, signal: str | None = None,
                 detector_args: Mapping[str, Mapping[str, Any]] | None = None):
        self.config = config or EnsembleConfig()
        self.signal = signal
        args = detector_args or {}
        self.detectors = [make_detector(n, self.config.calibration, **dict(args.get(n, {})))
                          for n in self.config.detectors]
        self.alerts: list[Alert] = []
        self._open: Alert | None = None
        self._n = 0
        self._last_ns: int | None = None
        self._recurrence = Recurrence(self.config)

    def combine(self, scores: np.ndarray) -> np.ndarray:
        """Per-detector scores (n_points, n_detectors) -> combined score per point."""
        k = self.config.top_k
        top = scores.mean(axis=1) if scores.shape[1] == k else np.sort(scores, axis=1)[:, -k:].mean(axis=1)
        return np.maximum(top, self.config.solo * scores.max(axis=1))

    def _track(self, i: int, score: float, row: np.ndarray, when: Any) -> tuple[Alert | None, float]:
        """(the alert the point opened or extended, its alert score)."""
        c = self.config
        names = self.config.detectors
        a = self._open
        if a is not None and i - a.start_index > c.refractory and score < c.threshold:
            a.open = False
            self._open = a = None
        if score < c.threshold:
            return None, score
        agreed = [n for n, s in zip(names, row) if s >= c.agree]
        if a is not None and i - a.start_index <= c.refractory:
            a.end, a.end_index, a.score = when, i, max(a.score, score)
            a.detectors = sorted(set(a.detectors) | set(agreed), key=names.index)
            return a, 0.0
        if a is not None:
            a.open = False
        a = Alert(self.signal, when, when, i, i, score, agreed)
        self.alerts.append(a)
        self._open = a
        return a, score

    def update(self, value: Any, timestamp: Any = None) -> EnsemblePoint:
        x, ns = check_point(value, timestamp, self._last_ns, self._n)
        if ns is not None:
            self._last_ns = ns
        when = np.datetime64(ns, "ns") if ns is not None else self._n
        row = np.array([d._step(x, ns) for d in self.detectors])
        score = self._recurrence(float(self.combine(row[None, :])[0]), ns)
        alert, alert_score = self._track(self._n, score, row, when)
        self._n += 1
        return EnsemblePoint(score, dict(zip(self.config.detectors, row.tolist())), alert, alert_score)

    def detector_scores(self, values: Any, timestamps: Any = None) -> np.ndarray:
        """(n_points, n_detectors) scores of a whole series (each detector's block path)."""
        v, t = check_series(values, timestamps, self.signal)
        return np.column_stack([d.score(v, t) for d in self.detectors])

    def run(self, values: Any, timestamps: Any = None) -> EnsembleRun:
        """A whole series at once, exactly as :meth:`update` point by point (detectors use their block paths)."""
        v, t = check_series(values, timestamps, self.signal, after_ns=self._last_ns)
        return self.run_scores(self.detector_scores(v, t), t)

    def run_scores(self, rows: np.ndarray, timestamps: Any = None) -> EnsembleRun:
        """Combine detector scores already computed (columns in ``config.detectors`` order; e.g. a subset of
        another run's columns, for an ablation) into scores and alerts, as :meth:`run` does."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.detectors):
            raise ValueError(f"expected (points, {len(self.detectors)}) detector scores, got {rows.shape}")
        t = None if timestamps is None else np.asarray(timestamps, dtype="datetime64[ns]")
        v = rows[:, 0]
        combined = self.combine(rows).tolist()
        ns = t.astype("int64").tolist() if t is not None else [None] * len(v)
        scores = np.array([self._recurrence(s, n) for s, n in zip(combined, ns)])
        alert_scores = scores.copy()
        first = len(self.alerts)
        for i, (s, row) in enumerate(zip(scores.tolist(), rows)):
            alert_scores[i] = self._track(self._n + i, s, row, t[i] if t is not None else self._n + i)[1]
        self._n += len(v)
        if t is not None:
            self._last_ns = int(t[-1].astype("int64"))
        return EnsembleRun(scores, alert_scores, rows, self.alerts[first:])

    def detect(self, values: Any, timestamps: Any = None) -> tuple[np.ndarray, list[Alert]]:
        """Combined scores and the alerts of a whole series (as :meth:`update` point by point)."""
        out = self.run(values, timestamps)
        return out.scores, out.alerts

    def state_size(self) -> int:
        return sum(d.state_size() for d in self.detectors) + self._recurrence.state_size()
