"""Isolation Forest on rolling-window features, refitted as the series goes (a :class:`StreamingDetector`).

Each point becomes a feature row from the last ``window`` values: the value, the change from the previous point,
the window's mean, standard deviation, min and max, and the value's distance from the window mean. Rows are
centred and scaled by the training rows' median and IQR. The forest (scikit-learn) is first fitted when
``warmup`` rows exist and refitted every ``refit`` rows on the last ``buffer`` rows; a row is scored with the
forest fitted before it (``-score_samples``: higher is more isolated). Memory: the buffer and the window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from sunday.models.anomaly.base import StreamingDetector, TailCalibration, check_series


@dataclass
class IForestConfig:
    window: int = 12
    warmup: int = 300
    refit: int = 1000
    buffer: int = 2000
    n_estimators: int = 64
    max_samples: int = 256
    seed: int = 0


N_FEATURES = 7


def window_features(win: np.ndarray) -> np.ndarray:
    """The feature row of the last point of ``win`` (1-d, oldest first, at least 2 values)."""
    x = win[-1]
    mean = win.mean()
    return np.array([x, x - win[-2], mean, win.std(), win.min(), win.max(), x - mean])


def rolling_features(values: np.ndarray, window: int) -> np.ndarray:
    """Feature rows for every point from the ``window``-th on (row j = point j + window - 1), vectorised."""
    from numpy.lib.stride_tricks import sliding_window_view

    wins = sliding_window_view(values, window)
    x = wins[:, -1]
    prev = wins[:, -2]
    mean = wins.mean(axis=1)
    return np.column_stack([x, x - prev, mean, wins.std(axis=1), wins.min(axis=1), wins.max(axis=1), x - mean])


class _Trees:
    """A fitted scikit-learn forest as padded arrays, to score one row without ``score_samples``' per-call overhead
    (about 2 ms): the same arithmetic (the row as float32, the trees' thresholds, path lengths and normaliser)."""

    def __init__(self, forest):
        from sklearn.ensemble._iforest import _average_path_length

        trees = [e.tree_ for e in forest.estimators_]
        T, n = len(trees), max(t.node_count for t in trees)
        self.left = np.full((T, n), -1, dtype=np.int64)
        self.right = np.full((T, n), -1, dtype=np.int64)
        self.feature = np.zeros((T, n), dtype=np.int64)
        self.threshold = np.zeros((T, n))
        self.length = np.zeros((T, n))
        for i, (t, cols) in enumerate(zip(trees, forest.estimators_features_)):
            k = t.node_count
            self.left[i, :k], self.right[i, :k] = t.children_left, t.children_right
            inner = t.children_left >= 0
            self.feature[i, :k] = np.where(inner, np.asarray(cols)[np.maximum(t.feature, 0)], 0)
            self.threshold[i, :k] = t.threshold
            self.length[i, :k] = forest._decision_path_lengths[i] + forest._average_path_length_per_tree[i] - 1.0
        self.depth = max(t.max_depth for t in trees)
        self.denominator = T * float(_average_path_length([forest._max_samples])[0])
        self._rows = np.arange(T)

    def stat(self, row: np.ndarray) -> float:
        """``-score_samples`` of one (scaled) row."""
        x = row.astype(np.float32).astype(np.float64)
        r, node = self._rows, np.zeros(len(self._rows), dtype=np.int64)
        for _ in range(self.depth):
            left = self.left[r, node]
            go = x[self.feature[r, node]] <= self.threshold[r, node]
            node = np.where(left < 0, node, np.where(go, left, self.right[r, node]))
        depths = float(np.add.accumulate(self.length[r, node])[-1])  # tree by tree, as scikit-learn adds them
        if self.denominator == 0:
            return 1.0
        return float(2 ** (-depths / self.denominator))


class _Scaled:
    """A fitted forest with the centre / scale of its training rows."""

    def __init__(self, rows: np.ndarray, config: IForestConfig):
        from sklearn.ensemble import IsolationForest

        self.center = np.median(rows, axis=0)
        q75, q25 = np.percentile(rows, [75, 25], axis=0)
        spread = rows.std(axis=0)
        self.scale = np.maximum(np.maximum((q75 - q25) / 1.349, 0.1 * spread), 1e-9)
        self.forest = IsolationForest(n_estimators=config.n_estimators, max_samples=min(config.max_samples, len(rows)),
                                      random_state=config.seed, n_jobs=1).fit(self._z(rows))
        self.trees = _Trees(self.forest)

    def _z(self, rows: np.ndarray) -> np.ndarray:
        return np.clip((rows - self.center) / self.scale, -1e6, 1e6)

    def stats(self, rows: np.ndarray) -> np.ndarray:
        return -self.forest.score_samples(self._z(rows))

    def stat(self, row: np.ndarray) -> float:
        return self.trees.stat(self._z(row[None, :])[0])


class WindowIsolationForest(StreamingDetector):
    name = "iforest"

    def __init__(self, config: IForestConfig | None = None, calibration: TailCalibration | None = None):
        super().__init__(calibration)
        self.config = config or IForestConfig()
        self._win: deque[float] = deque(maxlen=self.config.window)
        self._rows: deque[np.ndarray] = deque(maxlen=self.config.buffer)
        self._n_rows = 0
        self._model: _Scaled | None = None

    def _due(self, n_rows: int) -> bool:
        c = self.config
        return n_rows == c.warmup or (n_rows > c.warmup and (n_rows - c.warmup) % c.refit == 0)

    def _add_row(self, row: np.ndarray) -> None:
        self._rows.append(row)
        self._n_rows += 1
        if self._due(self._n_rows):
            self._model = _Scaled(np.asarray(self._rows), self.config)

    def statistic(self, value: float, ns: int | None) -> float | None:
        self._win.append(value)
        if len(self._win) < self.config.window:
            return None
        row = window_features(np.fromiter(self._win, dtype=np.float64))
        stat = None if self._model is None else self._model.stat(row)
        self._add_row(row)
        return stat

    def score(self, values, timestamps=None) -> np.ndarray:
        """Block path: the same fits and scores as point-by-point updates, one forest call per refit block."""
        v, t = check_series(values, timestamps, after_ns=self._last_ns)
        if self.n_seen or self.n_skipped or not np.isfinite(v).all() or len(v) < self.config.window:
            return super().score(v, t)
        c = self.config
        rows = rolling_features(v, c.window)  # row j: point j + window - 1
        # rows before this call's first row: none (fresh detector); row k (1-based) is scored by the model
        # fitted after row k-1 was added
        stats = np.full(len(rows), np.nan)
        model = None
        start = 0
        for k in range(1, len(rows) + 1):
            if self._due(k) or k == len(rows):
                if model is not None and k > start:
                    stats[start:k] = model.stats(rows[start:k])
                if self._due(k):
                    model = _Scaled(rows[max(0, k - c.buffer):k], c)
                start = k
        out = np.zeros(len(v))
        first_point = c.window - 1  # the point of row 0
        for j, s in enumerate(stats.tolist()):
            if s == s:  # not NaN
                out[first_point + j] = self.calibrator.update(s)
        # leave the detector in the state the point-by-point path would have
        self.n_seen = len(v)
        if t is not None:
            self._last_ns = int(t[-1].astype("int64"))
        self._win.extend(v[-c.window:].tolist())
        self._rows.extend(list(rows[-c.buffer:]))
        self._n_rows = len(rows)
        self._model = model
        return out

    def state_size(self) -> int:
        return super().state_size() + len(self._win) + N_FEATURES * len(self._rows)
