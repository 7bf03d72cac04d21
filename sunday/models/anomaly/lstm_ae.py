"""LSTM autoencoder on normalised windows, as a :class:`StreamingDetector` (``lstm_ae``), and its training.

The model (:class:`LstmAutoencoder`) reconstructs a window of ``window`` (32) normalised values: an LSTM encoder
(hidden 32) whose last hidden state becomes a latent vector (8), repeated as the input of an LSTM decoder whose
outputs are projected back to one value per step. It is trained (:func:`train_autoencoder`) with MSE on windows of
*normal* history only, so windows unlike the normal ones reconstruct badly.

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

Training and the registry: :func:`train_and_register` (behind ``train_jobs/anomaly_ae.py``) trains on NAB's normal
history (the probationary first 15% of each series), logs to MLflow and registers ``anomaly_lstm_ae``;
:func:`load_registered` loads a registered version by alias.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sunday.errors import SundayError
from sunday.models.anomaly.base import (
    SeriesInputError,
    StreamingDetector,
    TailCalibration,
    check_series,
)

MODEL_NAME = "anomaly_lstm_ae"
EXPERIMENT = "anomaly-lstm-ae"
GATE_METRIC = "val_mse"  # reconstruction MSE of held-out series' normal windows, lower is better
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
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise SundayError(f"autoencoder setting {bad[0]!r} is out of range: {getattr(self, bad[0])!r}")

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


# -- training -----------------------------------------------------------------------------------------------------

def train_epochs(model: nn.Module, windows: np.ndarray, config: AeTrainConfig, rank: int = 0, world: int = 1,
                 device: Any = None, on_epoch: Callable[[dict], None] | None = None) -> list[dict[str, float]]:
    """The loop every trainer runs: each epoch the same (seed, epoch) shuffle on every rank, rank r takes every
    ``world``-th batch (same number of steps on every rank, so DDP all-reduces line up). The epoch loss is the mean
    over every rank's batches."""
    device = device or torch.device("cpu")
    X = torch.from_numpy(np.asarray(windows, np.float32))
    n, bs = len(X), config.batch_size
    steps = max(1, n // (bs * world))
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    history = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng((config.seed, epoch)).permutation(n)
        model.train()
        total = torch.zeros((), dtype=torch.float64)
        for k in range(steps):
            idx = order[(k * world + rank) * bs:(k * world + rank + 1) * bs]
            if len(idx) == 0:
                idx = order[:bs]
            xb = X[torch.from_numpy(idx)].to(device)
            loss = torch.nn.functional.mse_loss(model(xb), xb)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += loss.detach().double().cpu()
        if world > 1:
            import torch.distributed as dist

            t = total.to(device)
            dist.all_reduce(t)
            total = t.cpu() / world
        row = {"epoch": epoch, "loss": float(total) / steps, "seconds": time.perf_counter() - t0}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def resolve_device(device: str) -> torch.device:
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SundayError("device 'cuda' asked for but CUDA is not available")
        return torch.device("cuda")
    return torch.device("cpu")


@contextlib.contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    if before == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_local(windows: np.ndarray, config: AeTrainConfig, device: str | None = None) -> LstmAutoencoder:
    dev = resolve_device(device or config.device)
    with _threads(config.threads):
        torch.manual_seed(config.seed)
        net = LstmAutoencoder(config).to(dev)
        history = train_epochs(net, windows, config, device=dev)
    net = net.cpu().eval()
    net.history_ = history
    return net


def _ray_worker(loop_config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    config = AeTrainConfig.from_dict(loop_config["config"])
    windows = ray.get(loop_config["windows"])
    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()  # CUDA with use_gpu, else CPU
    torch.manual_seed(config.seed)
    net = LstmAutoencoder(config)
    model = ray.train.torch.prepare_model(net)  # to the device; DDP when world > 1
    module = getattr(model, "module", model)
    history: list[dict] = []

    def on_epoch(row: dict) -> None:
        history.append(row)
        metrics = {**row, "device": device.type}
        if row["epoch"] < config.epochs - 1 or rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="sunday-lstm-ae-ckpt-") as tmp:
            module.history_ = history
            module.save(tmp)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    train_epochs(model, windows, config, rank=rank, world=world, device=device, on_epoch=on_epoch)


def train_with_ray(windows: np.ndarray, config: AeTrainConfig, num_workers: int = 2, use_gpu: bool = False,
                   storage_path: str | Path | None = None) -> LstmAutoencoder:
    """Train on ``num_workers`` Ray Train workers (DDP; gloo on CPU, NCCL on GPUs); the model from the checkpoint."""
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from sunday.models.raytrain import controller_poll_interval, default_storage_path

    if not ray.is_initialized():
        raise RuntimeError("Ray is not running; start it first (sunday.runtime.ensure_ray(settings))")
    if num_workers < 1:
        raise SundayError(f"num_workers must be at least 1, got {num_workers}")
    storage = Path(os.path.abspath(storage_path)) if storage_path else default_storage_path()
    name = f"lstm-ae-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    trainer = TorchTrainer(
        _ray_worker, train_loop_config={"config": config.to_dict(), "windows": ray.put(windows)},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1, **({"GPU": 1} if use_gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=str(storage), checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=0)))
    with controller_poll_interval(0.2):
        result = trainer.fit()
    if result.error is not None or result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} failed: {result.error}")
    with result.checkpoint.as_directory() as ckpt:
        return LstmAutoencoder.load(ckpt)


def train_autoencoder(series: list[np.ndarray], config: AeTrainConfig | None = None, use_ray: bool = True,
                      num_workers: int = 2, use_gpu: bool = False) -> LstmAutoencoder:
    """Train on the normalised windows of ``series`` (normal history only); the model has ``history_``.

    ``use_ray``: Ray Train ``TorchTrainer`` with ``num_workers`` DDP workers (``use_gpu``: one GPU each, NCCL;
    Ray must be running). Otherwise the same loop in process, on ``config.device`` (``use_gpu`` forces CUDA).
    """
    config = config or AeTrainConfig()
    windows = training_windows(series, config)
    if use_ray:
        return train_with_ray(windows, config, num_workers=num_workers, use_gpu=use_gpu)
    return train_local(windows, config, device="cuda" if use_gpu else None)


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
                              "it with sunday.models.anomaly.lstm_ae.load_registered(settings)")
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
        with torch.no_grad(), (_threads(threads) if threads else contextlib.nullcontext()):
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
        v, t = check_series(values, timestamps)
        if self._last_ns is not None and t is not None and int(t[0].astype("int64")) < self._last_ns:
            raise SeriesInputError("timestamp", "goes backwards from the last point already seen", 0)
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


# -- registry -----------------------------------------------------------------------------------------------------

def load_registered(settings, alias: str = "champion", name: str = MODEL_NAME) -> LstmAutoencoder | None:
    """The registered autoencoder ``name`` at ``alias`` (None when nothing is registered under it)."""
    from sunday import tracking

    tracking.configure(settings)
    version = tracking.alias_version(name, alias)
    if version is None:
        return None
    with tempfile.TemporaryDirectory(prefix="sunday-lstm-ae-") as tmp:
        return LstmAutoencoder.load(tracking.download_version(name, version, Path(tmp)))


def _pyfunc_class():
    """The MLflow pyfunc wrapper, built once on first use so importing this module does not import MLflow."""
    cached = globals().get("LstmAePyfunc")
    if cached is not None:
        return cached
    import mlflow.pyfunc
    import pandas as pd

    class LstmAePyfunc(mlflow.pyfunc.PythonModel):
        """``predict(DataFrame with 'value' [and 'timestamp'], one series in order)`` -> DataFrame ``score`` (the
        calibrated [0, 1] scores a fresh :class:`LstmAeDetector` gives the series)."""

        # predict is untyped (the input example gives the signature): no type-hint validation, nor its warning
        _skip_type_hint_validation = True

        def load_context(self, context: Any) -> None:
            self.model = LstmAutoencoder.load(context.artifacts["model"])

        def predict(self, context, model_input, params=None):
            if not isinstance(model_input, pd.DataFrame) or "value" not in model_input.columns:
                raise SundayError("input must be a DataFrame with a 'value' column (one series, in time order)")
            ts = model_input["timestamp"].to_numpy() if "timestamp" in model_input.columns else None
            return pd.DataFrame({"score": LstmAeDetector(self.model).score(model_input["value"].to_numpy(), ts)})

    LstmAePyfunc.__module__ = __name__
    LstmAePyfunc.__qualname__ = "LstmAePyfunc"
    globals()["LstmAePyfunc"] = LstmAePyfunc
    return LstmAePyfunc


def __getattr__(name: str) -> Any:  # ``LstmAePyfunc`` on demand (the same class: pickled by reference)
    if name == "LstmAePyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the training job ---------------------------------------------------------------------------------------------

def probation_length(n: int) -> int:
    """NAB's probationary period of an ``n``-point series: min(floor(0.15 n), 750) points."""
    return min(math.floor(0.15 * n), 750)


def nab_normal_history(data_dir: Path) -> dict[str, np.ndarray]:
    """series id -> the probationary (normal) history of every NAB series under ``data_dir / 'nab'``."""
    from sunday.data.importers.nab import load_series

    out = {}
    for sid, frame in load_series(Path(data_dir) / "nab").items():
        v = frame["value"].to_numpy(np.float64)
        out[sid] = v[:probation_length(len(v))]
    return out


@dataclass
class AeJobConfig:
    model: AeTrainConfig = field(default_factory=AeTrainConfig)
    use_ray: bool = True
    num_workers: int = 2
    use_gpu: bool = False
    holdout: float = 0.1   # share of the series held out: their normal windows give the gate's val_mse
    register: bool = True
    model_name: str = MODEL_NAME

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise SundayError(f"--holdout must be between 0 and 1, got {self.holdout}")
        if self.num_workers < 1:
            raise SundayError(f"--num-workers must be at least 1, got {self.num_workers}")


@dataclass
class AeJobResult:
    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model: LstmAutoencoder
    model_dir: Path
    history: list[dict[str, float]]
    n_train_series: int
    n_holdout_series: int
    n_windows: int
    seconds: dict[str, float]


def split_series(ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded ``holdout`` share of the series (at least one each side)."""
    if len(ids) < 2:
        raise SundayError(f"need at least 2 series to hold one out, got {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_ho = min(len(ids) - 1, max(1, round(holdout * len(ids))))
    held = sorted(ids[i] for i in order[:n_ho])
    return [i for i in ids if i not in set(held)], held


def train_and_register(settings, job: AeJobConfig, log: Callable[..., Any] = print) -> AeJobResult:
    """NAB normal history -> autoencoder (Ray Train or in process) -> MLflow run, ``anomaly_lstm_ae`` version,
    ``challenger`` alias, ``champion`` when its held-out val_mse beats the champion's on the same windows."""
    from sunday import tracking

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    history = nab_normal_history(settings.data_dir)
    train_ids, held_ids = split_series(sorted(history), job.holdout, job.model.seed)
    seconds["data"] = time.perf_counter() - t0
    cfg = job.model
    n_all = sum(len(series_windows(history[s], cfg)) for s in train_ids)
    log(f"NAB normal history: {len(history)} series ({sum(len(v) for v in history.values()):,} points, the "
        f"probationary 15%); {len(train_ids)} to train on ({n_all:,} windows, {min(n_all, cfg.max_windows):,} "
        f"used), {len(held_ids)} held out")
    if job.use_ray:
        from sunday.runtime import ensure_ray

        ensure_ray(settings)
    t0 = time.perf_counter()
    model = train_autoencoder([history[s] for s in train_ids], cfg, use_ray=job.use_ray,
                              num_workers=job.num_workers, use_gpu=job.use_gpu)
    seconds["fit"] = time.perf_counter() - t0
    for row in model.history_:
        log(f"  epoch {int(row['epoch']) + 1}/{cfg.epochs}: loss {row['loss']:.4f} ({row['seconds']:.1f} s)")
    held_windows = np.concatenate([series_windows(history[s], cfg) for s in held_ids] or [np.empty((0, cfg.window))])
    metrics = {"final_train_loss": float(model.history_[-1]["loss"]) if model.history_ else float("nan"),
               GATE_METRIC: model.reconstruction_mse(held_windows)}
    model_dir = model.save(Path(tempfile.mkdtemp(prefix="lstm-ae-")) / "model")

    run_id = version = promotion = None
    if job.register:
        import mlflow
        import pandas as pd

        with tracking.run(settings, EXPERIMENT, run_name="lstm-ae-nab",
                          tags={"trainer": "ray" if job.use_ray else "local", "data": "nab-probationary"}) as run:
            run_id = run.info.run_id
            mlflow.log_params(tracking.flat_params(cfg, "model."))
            mlflow.log_params({"use_ray": job.use_ray, "num_workers": job.num_workers, "use_gpu": job.use_gpu,
                               "holdout": job.holdout, "n_train_series": len(train_ids),
                               "n_holdout_series": len(held_ids), "n_windows_available": n_all,
                               "n_windows": min(n_all, cfg.max_windows), "n_holdout_windows": len(held_windows)})
            for row in model.history_:
                mlflow.log_metric("train_loss", float(row["loss"]), step=int(row["epoch"]))
            mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            example = pd.DataFrame({"value": np.asarray(history[held_ids[0]][:200], np.float64)})
            info = tracking.log_model_folder(model_dir, _pyfunc_class()(), input_example=example)
            version = tracking.register(info.model_uri, job.model_name,
                                        tags={"gate_metric": GATE_METRIC, "higher_is_better": "false"})

            def score_version(v: str) -> float:
                with tempfile.TemporaryDirectory() as tmp:
                    champ = LstmAutoencoder.load(tracking.download_version(job.model_name, v, Path(tmp)))
                wins = np.concatenate([series_windows(history[s], champ.config) for s in held_ids])
                return champ.reconstruction_mse(wins)

            promotion = tracking.promote(job.model_name, version, metrics[GATE_METRIC], GATE_METRIC, score_version,
                                         higher_is_better=False)
            tracking.log_promotion(promotion)
    return AeJobResult(metrics, run_id, version, promotion, model, model_dir, list(model.history_), len(train_ids),
                       len(held_ids), min(n_all, cfg.max_windows), seconds)
