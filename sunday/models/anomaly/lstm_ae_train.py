"""Training the LSTM autoencoder (:mod:`sunday.models.anomaly.lstm_ae`) on windows of normal history.

:func:`train_autoencoder` turns the series into normalised windows
(:func:`~sunday.models.anomaly.lstm_ae.training_windows`) and trains with MSE, either on Ray Train workers
(:func:`train_with_ray`: a ``TorchTrainer`` with DDP workers, gloo on CPU, NCCL on GPUs; the model comes back from
the run's checkpoint) or in process (:func:`train_local`, on ``config.device``). Both run the same loop,
:func:`train_epochs`. Ray is imported only when training on it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sunday.models.anomaly.lstm_ae import AeTrainConfig, LstmAutoencoder, training_windows
from sunday.models.raytrain import epoch_row, per_worker_batch, resolve_device
from sunday.runtime import torch_threads


def train_epochs(model: nn.Module, windows: np.ndarray, config: AeTrainConfig, rank: int = 0, world: int = 1,
                 device: Any = None, on_epoch: Callable[[dict], None] | None = None) -> list[dict[str, float]]:
    """The loop every trainer runs: each epoch the same (seed, epoch) shuffle on every rank, rank r takes every
    ``world``-th batch (same number of steps on every rank, so DDP all-reduces line up). The epoch loss is the mean
    over every rank's batches. ``batch_size`` is the global batch (each rank takes its share), so a Ray Train fit
    makes as many optimizer steps per epoch as one in process."""
    device = device or torch.device("cpu")
    X = torch.from_numpy(np.asarray(windows, np.float32))
    n, bs = len(X), per_worker_batch(config.batch_size, world)
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
        row = epoch_row(epoch, total, steps, world, device, t0)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def train_local(windows: np.ndarray, config: AeTrainConfig, device: str | None = None) -> LstmAutoencoder:
    dev = resolve_device(device or config.device)
    with torch_threads(config.threads):
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

    from sunday.models.raytrain import fit_torch

    windows_ref = ray.put(windows) if ray.is_initialized() else None
    result, _name, _fit_s = fit_torch(_ray_worker, {"config": config.to_dict(), "windows": windows_ref}, "lstm-ae",
                                      num_workers, use_gpu, storage_path)
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
