"""The timeline forecaster: LSTM over the daily series + attention + static encoder -> quantiles and risk.

Net (:class:`TimelineNet`): a one-layer LSTM reads the last :data:`~sunday.models.timeline.data.WINDOW` days
(log1p of every ``project_velocity`` channel plus a "real day" mask channel, left-padded); additive attention pools
its outputs (padding masked out); an MLP encodes the standardised static features. The concatenation [last hidden
state, attention context, static code] goes through a dropout trunk into

* a quantile head: p50 plus two softplus gaps, so p10 <= p50 <= p90 always (days from the cut / ``target_scale``),
  trained with the pinball loss;
* a 4-class risk head (:data:`~sunday.models.timeline.data.RISK_CLASSES`), cross-entropy.

:class:`TimelineForecaster` is the sklearn-like wrapper: ``fit(train_snapshots)`` (local loop, or ``trainer="ray"``
for Ray Train DDP / DeepSpeed workers running the same loop), ``predict_quantiles``, ``predict_risk``,
``sample`` (MC dropout: dropout kept on, ``mc_samples`` passes). With ``calibration_fraction`` > 0, a slice of the
training *projects* is held out and the p10/p90 band is widened (or narrowed) by split-conformal quantile regression
(CQR) so that it covers 80 % of the held-out targets (``refit=True`` then refits the net on every training project).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sunday.errors import SundayError
from sunday.models.raytrain import per_worker_batch
from sunday.models.timeline.data import (
    RISK_CLASSES, SERIES_COLUMNS, STATIC_COLUMNS, WINDOW, Snapshots, split_projects,
)

QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class TimelineConfig:
    hidden: int = 32
    static_hidden: int = 32
    dropout: float = 0.15
    lr: float = 4e-3
    weight_decay: float = 1e-4
    epochs: int = 25
    batch_size: int = 128  # the global batch: Ray Train's workers take batch_size / num_workers rows each
    risk_weight: float = 0.3
    target_scale: float = 30.0
    seed: int = 0
    threads: int = 1
    calibration_fraction: float = 0.2  # share of training projects held out for the conformal band (0 = off)
    refit: bool = False  # after calibrating, refit on every training project (twice the training time)
    # Ray Train
    num_workers: int = 2
    use_gpu: bool = False
    deepspeed: bool = False
    zero_stage: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TimelineConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _torch():
    import torch

    return torch


def build_net(config: TimelineConfig, n_series: int = len(SERIES_COLUMNS) + 1, n_static: int = len(STATIC_COLUMNS)):
    torch = _torch()
    nn = torch.nn

    class TimelineNet(nn.Module):
        def __init__(self):
            super().__init__()
            h, hs = config.hidden, config.static_hidden
            self.lstm = nn.LSTM(n_series, h, batch_first=True)
            self.attn = nn.Sequential(nn.Linear(h, h), nn.Tanh(), nn.Linear(h, 1))
            self.static = nn.Sequential(nn.Linear(n_static, hs), nn.ReLU(), nn.Dropout(config.dropout),
                                        nn.Linear(hs, hs), nn.ReLU())
            self.trunk = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * h + hs, h), nn.ReLU(),
                                       nn.Dropout(config.dropout))
            self.quantile = nn.Linear(h, 3)
            self.risk = nn.Linear(h, len(RISK_CLASSES))

        def forward(self, series, static, return_attention: bool = False):
            mask = series[:, :, -1] > 0.5  # the "real day" channel
            out, (hn, _) = self.lstm(series)
            score = self.attn(out).squeeze(-1).masked_fill(~mask, -1e9)
            weights = torch.softmax(score, dim=1)
            context = (weights.unsqueeze(-1) * out).sum(1)
            z = self.trunk(torch.cat([hn[-1], context, self.static(static)], dim=1))
            raw = self.quantile(z)
            mid = raw[:, 1]
            q = torch.stack([mid - nn.functional.softplus(raw[:, 0]), mid, mid + nn.functional.softplus(raw[:, 2])], 1)
            logits = self.risk(z)
            return (q, logits, weights) if return_attention else (q, logits)

    torch.manual_seed(config.seed)
    return TimelineNet()


def pinball_loss(pred, target, quantiles=QUANTILES):
    torch = _torch()
    q = torch.tensor(quantiles, dtype=pred.dtype, device=pred.device)
    diff = target.unsqueeze(1) - pred
    return torch.maximum(q * diff, (q - 1) * diff).mean()


# -- arrays ------------------------------------------------------------------------------------------------------

def series_tensor(series: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Raw windows (n, WINDOW, F) -> log1p values + mask channel (n, WINDOW, F + 1), float32."""
    n = len(series)
    x = np.log1p(np.maximum(np.asarray(series, np.float64), 0.0))
    mask = (np.arange(WINDOW)[None, :] >= (WINDOW - np.asarray(length)[:, None])).astype(np.float64)
    return np.concatenate([x * mask[..., None], mask[..., None]], axis=2).astype(np.float32).reshape(n, WINDOW, -1)


def static_transform(static: np.ndarray) -> np.ndarray:
    """Signed log1p of the static features (counts and day spans are heavy-tailed)."""
    s = np.asarray(static, np.float64)
    return np.sign(s) * np.log1p(np.abs(s))


@dataclass
class Arrays:
    series: np.ndarray
    static: np.ndarray
    target: np.ndarray  # scaled
    risk: np.ndarray


def make_arrays(snap: Snapshots, stats: dict[str, list[float]], scale: float) -> Arrays:
    s = (static_transform(snap.static) - np.array(stats["mean"])) / np.array(stats["std"])
    return Arrays(series_tensor(snap.series, snap.length), s.astype(np.float32),
                  (snap.target / scale).astype(np.float32) if len(snap) and "target_days" in snap.meta else
                  np.zeros(len(snap), np.float32),
                  snap.risk if "risk" in snap.meta else np.zeros(len(snap), np.int64))


def fit_stats(static: np.ndarray) -> dict[str, list[float]]:
    s = static_transform(static)
    return {"mean": s.mean(0).tolist(), "std": np.where(s.std(0) > 1e-6, s.std(0), 1.0).tolist()}


# -- the shared training loop ------------------------------------------------------------------------------------

def train_epochs(model, data: Arrays, config: TimelineConfig, step: Callable, rank: int = 0, world: int = 1,
                 device=None, on_epoch: Callable | None = None) -> list[dict[str, Any]]:
    """The loop every trainer runs: each epoch, the same (seed, epoch) shuffle on every rank, rank r takes every
    ``world``-th batch-sized slice (same number of steps on every rank, so DDP all-reduces line up)."""
    torch = _torch()
    device = device or torch.device("cpu")
    X = torch.from_numpy(data.series)
    S = torch.from_numpy(data.static)
    y = torch.from_numpy(data.target)
    r = torch.from_numpy(np.asarray(data.risk, np.int64))
    n = len(y)
    bs = per_worker_batch(config.batch_size, world)
    steps = max(1, n // (bs * world))
    history = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        order = np.random.default_rng((config.seed, epoch)).permutation(n)
        model.train()
        total = 0.0
        for k in range(steps):
            idx = order[(k * world + rank) * bs:(k * world + rank + 1) * bs]
            if len(idx) == 0:
                idx = order[:bs]
            idx = torch.from_numpy(idx)
            q, logits = model(X[idx].to(device), S[idx].to(device))
            loss = pinball_loss(q, y[idx].to(device)) + config.risk_weight * torch.nn.functional.cross_entropy(
                logits, r[idx].to(device))
            step(loss)
            total += float(loss.detach())
        metrics = {"epoch": epoch, "loss": total / steps, "seconds": time.perf_counter() - t0}
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history


def local_step(model, config: TimelineConfig):
    torch = _torch()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return step


def train_local(data: Arrays, config: TimelineConfig) -> tuple[dict, list[dict[str, Any]]]:
    torch = _torch()
    torch.set_num_threads(max(1, int(config.threads)))
    net = build_net(config)
    history = train_epochs(net, data, config, local_step(net, config))
    return {k: v.detach().clone() for k, v in net.state_dict().items()}, history


# -- Ray Train (DDP / DeepSpeed) ---------------------------------------------------------------------------------

def _ray_worker(loop_config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch
    import torch

    config = TimelineConfig.from_dict(loop_config["config"])
    data: Arrays = ray.get(loop_config["data"])
    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    net = build_net(config)
    if config.deepspeed:
        import deepspeed

        from sunday.models.raytrain import skip_deepspeed_shm_op

        if device.type == "cpu":
            skip_deepspeed_shm_op()
        ds_config = {"train_micro_batch_size_per_gpu": per_worker_batch(config.batch_size, world),
                     "gradient_accumulation_steps": 1,
                     "zero_optimization": {"stage": config.zero_stage}, "gradient_clipping": 1.0,
                     "zero_allow_untested_optimizer": True}
        engine, _, _, _ = deepspeed.initialize(
            model=net, model_parameters=net.parameters(),
            optimizer=torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay),
            config=ds_config)

        def step(loss):
            engine.backward(loss)
            engine.step()

        model, module, device = engine, engine.module, engine.device
    else:
        model = ray.train.torch.prepare_model(net)
        module = getattr(model, "module", model)
        step = local_step(model, config)

    def on_epoch(metrics):
        last = metrics["epoch"] == config.epochs - 1
        if not last:
            ray.train.report(metrics)
            return
        from sunday.models.raytrain import full_state_dict

        state = full_state_dict(module, config.zero_stage if config.deepspeed else None)
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="sunday-timeline-ckpt-") as tmp:
            torch.save(state, os.path.join(tmp, "model.pt"))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    train_epochs(model, data, config, step, rank=rank, world=world, device=device, on_epoch=on_epoch)


def train_with_ray(data: Arrays, config: TimelineConfig, storage_path: str | Path | None = None
                   ) -> tuple[dict, dict[str, Any]]:
    """Train on ``config.num_workers`` Ray Train workers (DDP, or DeepSpeed ZeRO with ``config.deepspeed``)."""
    import ray
    import torch

    from sunday.models.raytrain import fit_torch

    data_ref = ray.put(data) if ray.is_initialized() else None
    result, name, fit_s = fit_torch(_ray_worker, {"config": config.to_dict(), "data": data_ref}, "timeline",
                                    config.num_workers, config.use_gpu, storage_path)
    with result.checkpoint.as_directory() as ckpt:
        state = torch.load(os.path.join(ckpt, "model.pt"), map_location="cpu", weights_only=True)
    return state, {"final": dict(result.metrics or {}), "fit_s": fit_s, "run_name": name}


# -- the estimator ------------------------------------------------------------------------------------------------

@dataclass
class TimelineForecaster:
    config: TimelineConfig = field(default_factory=TimelineConfig)
    trainer: str = "local"  # "local" or "ray"
    stats_: dict | None = None
    state_: dict | None = None
    conformal_: float = 0.0  # CQR offset (scaled units) added to p90 and removed from p10
    history_: list = field(default_factory=list)

    # - training
    def _train(self, snap: Snapshots) -> tuple[dict, list]:
        data = make_arrays(snap, self.stats_, self.config.target_scale)
        if self.trainer == "ray":
            state, metrics = train_with_ray(data, self.config)
            return state, [metrics]
        if self.trainer != "local":
            raise SundayError(f"trainer must be 'local' or 'ray', got {self.trainer!r}")
        return train_local(data, self.config)

    def fit(self, snap: Snapshots) -> "TimelineForecaster":
        if len(snap) == 0:
            raise SundayError("no training snapshots")
        if not np.isfinite(snap.target).all() or (snap.target < 0).any():
            raise SundayError("training targets must be finite and >= 0")
        self.stats_ = fit_stats(snap.static)
        self.conformal_ = 0.0
        frac = self.config.calibration_fraction
        if frac > 0 and snap.meta["project_id"].nunique() >= 5:
            fit_idx, cal_idx = split_projects(snap, frac, seed=self.config.seed + 1)
            self.state_, self.history_ = self._train(snap.take(fit_idx))
            cal = snap.take(cal_idx)
            q = self._raw_quantiles(cal)
            y = cal.target / self.config.target_scale
            score = np.maximum(q[:, 0] - y, y - q[:, 2])
            n = len(score)
            level = min(1.0, math.ceil((n + 1) * 0.8) / n)
            self.conformal_ = float(np.quantile(score, level, method="higher"))
            if not self.config.refit:
                return self
        self.state_, self.history_ = self._train(snap)
        return self

    # - inference
    def _net(self):
        if self.state_ is None:
            raise SundayError("the forecaster is not fitted")
        net = build_net(self.config)
        net.load_state_dict(self.state_)
        return net

    def _forward(self, snap: Snapshots, mc_samples: int = 0, attention: bool = False):
        torch = _torch()
        data = make_arrays(snap, self.stats_, self.config.target_scale)
        net = self._net()
        X, S = torch.from_numpy(data.series), torch.from_numpy(data.static)
        with torch.no_grad():
            if mc_samples:
                net.train()  # MC dropout
                torch.manual_seed(self.config.seed)
                outs = [net(X, S) for _ in range(mc_samples)]
                q = torch.stack([o[0] for o in outs]).numpy()
                p = torch.stack([torch.softmax(o[1], -1) for o in outs]).numpy()
                return q, p, None
            net.eval()
            q, logits, w = net(X, S, return_attention=True)
            return q.numpy(), torch.softmax(logits, -1).numpy(), w.numpy()

    def _raw_quantiles(self, snap: Snapshots) -> np.ndarray:
        return self._forward(snap)[0]

    def predict_quantiles(self, snap: Snapshots, mc_samples: int = 0) -> np.ndarray:
        """(n, 3) p10 / p50 / p90 days from the cut (conformal band applied; >= 0; ordered). With ``mc_samples``,
        the mean of the MC-dropout passes' quantiles."""
        q = self._forward(snap, mc_samples)[0]
        if mc_samples:
            q = q.mean(0)
        return self._finish(q)

    def _finish(self, q: np.ndarray) -> np.ndarray:
        q = np.array(q, np.float64)
        q[:, 0] -= self.conformal_
        q[:, 2] += self.conformal_
        q = np.maximum(np.sort(q, axis=1), 0.0) * self.config.target_scale
        return q

    def predict_risk(self, snap: Snapshots, mc_samples: int = 0) -> np.ndarray:
        """(n, 4) probabilities over :data:`RISK_CLASSES`."""
        p = self._forward(snap, mc_samples)[1]
        return p.mean(0) if mc_samples else p

    def sample(self, snap: Snapshots, mc_samples: int = 30) -> np.ndarray:
        """(mc_samples, n, 3) quantiles from MC-dropout passes (days; the conformal band applied to each)."""
        q = self._forward(snap, mc_samples)[0]
        return np.stack([self._finish(s) for s in q])

    def attention(self, snap: Snapshots) -> np.ndarray:
        """(n, WINDOW) attention weights over the days of the window (last = the cut day)."""
        return self._forward(snap, attention=True)[2]

    # - persistence
    def save(self, path: str | Path) -> Path:
        torch = _torch()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_, path / "model.pt")
        (path / "meta.json").write_text(json.dumps({"config": self.config.to_dict(), "stats": self.stats_,
                                                    "conformal": self.conformal_}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TimelineForecaster":
        torch = _torch()
        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        return cls(config=TimelineConfig.from_dict(meta["config"]), stats_=meta["stats"],
                   state_=torch.load(path / "model.pt", weights_only=True), conformal_=meta["conformal"])
