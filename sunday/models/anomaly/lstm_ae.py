"""LSTM autoencoder on normalised windows, as a :class:`StreamingDetector` (``lstm_ae``).

The model (:class:`LstmAutoencoder`) reconstructs a window of ``window`` (32) normalised values: an LSTM encoder
(hidden 32) whose last hidden state becomes a latent vector (8), repeated as the input of an LSTM decoder whose
outputs are projected back to one value per step. It is trained
(:func:`~sunday.models.anomaly.lstm_ae_train.train_autoencoder`) with MSE on windows of *normal* history only, so
windows unlike the normal ones reconstruct badly.

Normalisation (one parameter set for every series, whatever its scale): a slow running location / scale per series
(:class:`RunningScale`: an exponentially weighted mean and mean absolute deviation, half-life ``halflife`` = 500
points, cumulative averages while it warms up, each update winsorised at ``winsor`` = 32 scales once warm so a
spike does not inflate the scale of the next few hundred points, while a lasting change of scale is followed within
about a hundred points). The window ending at point t is normalised by the state *before its first point* (one
affine map for the whole window, nothing from the window itself or after it), then clipped to [-clip, clip] (8). No
window is scored before that state has seen ``min_points`` (32) points.

The statistic (:class:`LstmAeConfig`): the mean squared reconstruction error of the whole window ending at the
point (``tail_weight`` > 0 mixes in the error of its last ``error_points`` points: ``tail_weight * mean(e[-k:]) +
(1 - tail_weight) * mean(e)``). Measured on NAB (48 series; a model trained on the probationary 15%; the shared
calibration with its 1- and 20-point timescales; threshold 0.7, after the probationary period): the whole window
found 38 of 83 labelled windows with 117 false alert episodes, the last point 39 / 125, the last 4 points 41 / 131,
half-and-half with the last 4 37 / 123; in a top-2 ensemble with robust_z, ewma and seasonal (52 / 88 without the
autoencoder) each found 53-54 windows, with 116 false episodes for the whole window against 118-134 for the others.
On a clean noisy sine (three training seeds, 4,600 scored points each) the whole window put 11 points in all at or
above 0.7, the tail variants 15-29 (the error of the last points depends on the phase, which the 20-point timescale
turns into a slow oscillation). So the whole window is the default: as many windows found, the fewest false alerts.

Scoring: :meth:`LstmAeDetector.update` runs the model on one window per point; :meth:`LstmAeDetector.score` runs
the normaliser over the series (the same scalar code, so the same numbers), batches every window through the model
at once and calibrates the statistics in order: the same scores as point-by-point updates (the model is run in
float64 on the CPU for scoring, so batch size changes nothing beyond ~1e-16), and the detector is left in the state
those updates would have left (NaN points skipped, an already-fed detector continued).

Training (in process or on Ray Train workers) is :mod:`sunday.models.anomaly.lstm_ae_train`; the training job, the
MLflow registry (``anomaly_lstm_ae``) and its pyfunc are :mod:`sunday.models.anomaly.lstm_ae_mlflow`.
"""

from __future__ import annotations

import copy
import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sunday.errors import SundayError
from sunday.models.anomaly.base import StreamingDetector, TailCalibration, check_series
from sunday.runtime import torch_threads

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"


# -- configuration ------------------------------------------------------------------------------------------------

@dataclass
class AeTrainConfig:
    """The autoencoder, its normalisation and its training (saved with the model)."""

    window: int = 32
    hidden: int = 32
    latent: int = 8
    halflife: float = 500.0   # points: the running location / scale of a series
    clip: float = 8.0         # normalised values are clipped to [-clip, clip]
    winsor: float = 32.0      # once warm, a running update moves by at most this many scales (spikes)
    min_points: int = 32      # points the running scale must have seen before a window is normalised
    epochs: int = 40
    lr: float = 5e-3
    batch_size: int = 128
    max_windows: int = 50_000  # training windows at most (a seeded random subset)
    seed: int = 0
    device: str = "auto"      # in-process training: "auto" (CUDA when available), "cpu" or "cuda"
    threads: int = 1          # torch threads of in-process training

    def __post_init__(self) -> None:
        checks = {"window": self.window >= 2, "hidden": self.hidden >= 1, "latent": self.latent >= 1,
                  "halflife": self.halflife > 0, "clip": self.clip > 0, "winsor": self.winsor > 0,
                  "min_points": self.min_points >= 1,
                  "epochs": self.epochs >= 1, "lr": self.lr > 0, "batch_size": self.batch_size >= 1,
                  "max_windows": self.max_windows >= 1, "threads": self.threads >= 1,
                  "device": self.device in ("auto", "cpu", "cuda")}
        from sunday.jobs import check_ranges

        check_ranges(self, checks, "autoencoder")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AeTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class LstmAeConfig:
    """Detector settings (the window and the normalisation are the model's, :class:`AeTrainConfig`)."""

    tail_weight: float = 0.0  # statistic = w * mean error of the last error_points + (1 - w) * window mean error
    error_points: int = 4     # the tail mixed in when tail_weight > 0 (0: the whole window)
    batch: int = 256       # windows per forward pass of the block path
    threads: int | None = 1  # torch threads while scoring (restored after; None: torch's own setting)

    def __post_init__(self) -> None:
        if self.error_points < 0 or not 0 <= self.tail_weight <= 1 or self.batch < 1 or (self.threads or 1) < 1:
            raise SundayError(f"lstm_ae settings out of range: {self!r} (error_points >= 0, 0 <= tail_weight <= 1, "
                              "batch >= 1, threads >= 1)")


# -- normalisation ------------------------------------------------------------------------------------------------

class RunningScale:
    """Slow running location / scale of one series: EW mean and EW mean absolute deviation (half-life in points).

    Cumulative averages while ``n <= warm`` (no start-up bias); afterwards each update is winsorised at ``limit``
    scales. ``scale()`` is floored (a constant series has a zero deviation).
    """

    __slots__ = ("alpha", "dev", "limit", "loc", "n", "warm")

    def __init__(self, halflife: float, limit: float, warm: int):
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.limit = float(limit)
        self.warm = int(warm)
        self.n = 0
        self.loc = 0.0
        self.dev = 0.0

    def scale(self) -> float:
        return max(self.dev, 1e-9 * max(abs(self.loc), 1.0))

    def update(self, x: float) -> None:
        self.n += 1
        n = self.n
        if n == 1:
            self.loc = x
            return
        diff = x - self.loc
        adiff = abs(diff)
        if n > self.warm:
            lim = self.limit * self.scale()
            if adiff > lim:
                diff = lim if diff > 0 else -lim
                adiff = lim
            a = b = self.alpha
        else:
            a = max(self.alpha, 1.0 / n)
            b = max(self.alpha, 1.0 / (n - 1))
        self.dev += b * (adiff - self.dev)
        self.loc += a * diff

    def state(self) -> tuple[float, float, float]:
        """(location, scale, points seen): what the window starting at the next point is normalised with."""
        return (self.loc, self.scale(), float(self.n))

    def scan(self, values: Sequence[float]) -> np.ndarray:
        """(len(values), 3) states before each value, updating as it goes (the per-point arithmetic exactly)."""
        out = []
        for x in values:
            out.append((self.loc, self.scale(), float(self.n)))
            self.update(x)
        return np.array(out, dtype=np.float64).reshape(-1, 3)


def new_scale(config: AeTrainConfig) -> RunningScale:
    return RunningScale(config.halflife, config.winsor, config.min_points)


def normalise_windows(raw: np.ndarray, states: np.ndarray, config: AeTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Every ``window``-long window of ``raw`` normalised by the state before its first point.

    ``states[i]`` is the (loc, scale, n) before ``raw[i]``. Returns ``(z, valid)``: ``z[m]`` is the window ending at
    ``raw[m + window - 1]``, ``valid[m]`` whether its state had seen ``min_points`` points.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    w = config.window
    if len(raw) < w:
        return np.empty((0, w)), np.empty(0, dtype=bool)
    wins = sliding_window_view(np.asarray(raw, np.float64), w)
    st = states[: len(wins)]
    z = np.clip((wins - st[:, 0:1]) / st[:, 1:2], -config.clip, config.clip)
    return z, st[:, 2] >= config.min_points


def series_windows(values: np.ndarray, config: AeTrainConfig) -> np.ndarray:
    """The valid normalised windows of one series (non-finite values dropped, as the detector skips them)."""
    v = np.asarray(values, np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    states = new_scale(config).scan(v.tolist())
    z, valid = normalise_windows(v, states, config)
    return z[valid]


def training_windows(series: Sequence[np.ndarray], config: AeTrainConfig) -> np.ndarray:
    """(n, window) float32 windows of every series, at most ``config.max_windows`` (a seeded random subset)."""
    parts = [series_windows(s, config) for s in series]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise SundayError(f"no training windows: every series is shorter than min_points + window "
                          f"({config.min_points + config.window} finite points)")
    x = np.concatenate(parts)
    if len(x) > config.max_windows:
        keep = np.sort(np.random.default_rng(config.seed).choice(len(x), config.max_windows, replace=False))
        x = x[keep]
    return np.ascontiguousarray(x, dtype=np.float32)


# -- the model ----------------------------------------------------------------------------------------------------

class LstmAutoencoder(nn.Module):
    """(batch, window) normalised values -> (batch, window) reconstruction."""

    def __init__(self, config: AeTrainConfig | None = None):
        super().__init__()
        self.config = config or AeTrainConfig()
        c = self.config
        self.encoder = nn.LSTM(1, c.hidden, batch_first=True)
        self.to_latent = nn.Linear(c.hidden, c.latent)
        self.decoder = nn.LSTM(c.latent, c.hidden, batch_first=True)
        self.out = nn.Linear(c.hidden, 1)
        self.history_: list[dict[str, float]] = []  # per-epoch training loss (set by train_autoencoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x.unsqueeze(-1))
        z = self.to_latent(h[-1])
        y, _ = self.decoder(z.unsqueeze(1).expand(-1, x.shape[1], -1))
        return self.out(y).squeeze(-1)

    def inference_copy(self) -> LstmAutoencoder:
        """A float64 CPU copy in eval mode (what the detector scores with: batch-size independent numbers)."""
        net = copy.deepcopy(self).to(device="cpu", dtype=torch.float64).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net

    def reconstruction_mse(self, windows: np.ndarray, batch: int = 1024) -> float:
        """Mean squared reconstruction error of ``windows`` (n, window), per value."""
        if len(windows) == 0:
            return float("nan")
        net = self.inference_copy()
        total = 0.0
        with torch.no_grad():
            for i in range(0, len(windows), batch):
                x = torch.from_numpy(np.asarray(windows[i:i + batch], np.float64))
                total += float(((net(x) - x) ** 2).sum())
        return total / windows.size

    def save(self, path: str | Path) -> Path:
        """A model folder: ``model.pt`` (state dict) and ``config.json`` (config and training history)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in self.state_dict().items()}, path / MODEL_FILE)
        (path / CONFIG_FILE).write_text(json.dumps({"config": self.config.to_dict(), "history": self.history_},
                                                   indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LstmAutoencoder:
        path = Path(path)
        if not (path / MODEL_FILE).is_file() or not (path / CONFIG_FILE).is_file():
            raise SundayError(f"{path} is not an LSTM autoencoder folder ({MODEL_FILE} and {CONFIG_FILE} needed)")
        meta = json.loads((path / CONFIG_FILE).read_text())
        model = cls(AeTrainConfig.from_dict(meta["config"]))
        model.load_state_dict(torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True))
        model.history_ = list(meta.get("history") or [])
        return model.eval()


# -- the detector -------------------------------------------------------------------------------------------------

class LstmAeDetector(StreamingDetector):
    """Reconstruction error of the window ending at each point (see the module docstring)."""

    name = "lstm_ae"

    def __init__(self, model: LstmAutoencoder | None = None, config: LstmAeConfig | None = None,
                 calibration: TailCalibration | None = None, model_path: str | Path | None = None):
        super().__init__(calibration)
        if model is None and model_path is not None:
            model = LstmAutoencoder.load(model_path)
        if model is None:
            raise SundayError("the lstm_ae detector needs a trained model (model= an LstmAutoencoder, or "
                              "model_path= its folder); train one with python train_jobs/anomaly_ae.py and load "
                              "it with sunday.models.anomaly.lstm_ae_mlflow.load_registered(settings)")
        self.model = model
        self.config = config or LstmAeConfig()
        mc = model.config
        self.window = mc.window
        k = self.config.error_points
        self._k = self.window if k <= 0 or k > self.window else int(k)
        self._net = model.inference_copy()
        self._norm = new_scale(mc)
        self._raw: deque[float] = deque(maxlen=self.window)
        self._states: deque[tuple[float, float, float]] = deque(maxlen=self.window)

    def _stats(self, z: np.ndarray) -> np.ndarray:
        """Statistics of normalised windows (n, window): tail and whole-window squared errors, weighted."""
        out = np.empty(len(z))
        b = max(1, int(self.config.batch))
        threads = self.config.threads
        w = float(self.config.tail_weight)
        with torch.no_grad(), torch_threads(threads):
            for i in range(0, len(z), b):
                x = np.ascontiguousarray(z[i:i + b])
                rec = self._net(torch.from_numpy(x)).numpy()
                e = (x - rec) ** 2
                out[i:i + b] = w * e[:, -self._k:].mean(axis=1) + (1.0 - w) * e.mean(axis=1)
        return out

    def statistic(self, value: float, ns: int | None) -> float | None:
        self._states.append(self._norm.state())
        self._raw.append(value)
        stat = None
        if len(self._raw) == self.window:
            loc, scale, n = self._states[0]
            if n >= self.model.config.min_points:
                win = np.fromiter(self._raw, dtype=np.float64, count=self.window)
                z = np.clip((win - loc) / scale, -self.model.config.clip, self.model.config.clip)
                stat = float(self._stats(z[None, :])[0])
        self._norm.update(value)
        return stat

    def score(self, values: Sequence[float] | np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Block path: every window through the model at once; the scores and the state point-by-point gives."""
        v, t = check_series(values, timestamps, after_ns=self._last_ns)
        finite = np.isfinite(v)
        x = v[finite]
        out = np.zeros(len(v))
        if len(x):
            prev_raw = np.fromiter(self._raw, dtype=np.float64, count=len(self._raw))
            prev_states = np.array(list(self._states), dtype=np.float64).reshape(-1, 3)
            states = np.concatenate([prev_states, self._norm.scan(x.tolist())])
            raw = np.concatenate([prev_raw, x])
            z, valid = normalise_windows(raw, states, self.model.config)
            # window m ends at raw[m + window - 1]; the new points are raw[len(prev_raw):]
            first_new = len(prev_raw)
            ends = np.arange(len(z)) + self.window - 1
            take = (ends >= first_new) & valid
            stats = np.full(len(x), np.nan)
            if take.any():
                stats[ends[take] - first_new] = self._stats(z[take])
            scores = np.zeros(len(x))
            for i, s in enumerate(stats.tolist()):
                if math.isfinite(s):
                    scores[i] = self.calibrator.update(s)
            out[finite] = scores
            self._raw.extend(x[-self.window:].tolist())
            self._states.extend(map(tuple, states[-self.window:].tolist()))
        self.n_seen += int(finite.sum())
        self.n_skipped += int(len(v) - finite.sum())
        if t is not None:
            self._last_ns = int(t[-1].astype("int64"))
        return out

    def state_size(self) -> int:
        return super().state_size() + len(self._raw) + 3 * len(self._states) + 3
