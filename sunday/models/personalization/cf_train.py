"""Training the collaborative-filtering network (:mod:`sunday.models.personalization.cf`), in process or on Ray Train.

:func:`train_net` trains a :class:`~sunday.models.personalization.cf.CFNet` on an encoded
:class:`~sunday.models.personalization.cf.CFData`, either on Ray Train workers (:func:`train_with_ray`: a
``TorchTrainer`` with DDP workers, gloo on CPU, NCCL on GPUs; the weights come back from the run's checkpoint) or in
process (:func:`train_local`). Both run the same loop, :func:`train_epochs`: each epoch the same seeded shuffle of
the positives on every rank, rank r takes every ``world``-th batch (the same number of steps on every rank, so the
DDP all-reduces line up), negatives sampled per batch from a generator seeded by (seed, epoch, rank). With one
worker the Ray run is the in-process run step for step; with ``world`` workers each optimizer step sees ``world``
batches. Ray is imported only when training on it. :class:`CFRecommender` calls :func:`train_net` from ``fit``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sunday.errors import SundayError
from sunday.models.personalization.cf import CFConfig, CFData, CFNet, auto_batch_size
from sunday.models.raytrain import epoch_row, resolve_device
from sunday.runtime import torch_threads

CKPT_NET = "net.pt"
CKPT_HISTORY = "history.json"


def _tensors(data: CFData, device: torch.device) -> dict[str, torch.Tensor]:
    return {"users": torch.as_tensor(data.users, dtype=torch.long),
            "items": torch.as_tensor(data.items, dtype=torch.long),
            "times": torch.as_tensor(data.times, dtype=torch.float64),
            "weights": torch.as_tensor(data.weights, dtype=torch.float32),
            "created": torch.as_tensor(data.item_created, dtype=torch.float64),
            "ws_lo": torch.as_tensor(data.item_ws_lo, dtype=torch.long),
            "ws_n": torch.as_tensor(data.item_ws_n, dtype=torch.long),
            "team_lo": torch.as_tensor(data.item_team_lo, dtype=torch.long),
            "team_n": torch.as_tensor(data.item_team_n, dtype=torch.long)}


def sample_negatives(T: dict[str, torch.Tensor], items: torch.Tensor, m: int, hard_share: float,
                     gen: torch.Generator) -> torch.Tensor:
    """``m`` task indices per positive: uniform over the positive's workspace, a ``hard_share`` of them over its
    team (the model never ranks across workspaces, so it never needs to learn that)."""
    b = len(items)
    hard = torch.rand((b, m), generator=gen) < hard_share
    lo = torch.where(hard, T["team_lo"][items][:, None], T["ws_lo"][items][:, None])
    n = torch.where(hard, T["team_n"][items][:, None], T["ws_n"][items][:, None])
    return lo + (torch.rand((b, m), generator=gen, dtype=torch.float64) * n).long().clamp(max=n - 1)


def batch_loss(model: torch.nn.Module, T: dict[str, torch.Tensor], idx: torch.Tensor, config: CFConfig,
               gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """The weighted BPR / logistic loss of the positives ``idx`` against sampled negatives (ages at each
    positive's first touch)."""
    u, i, t, w = T["users"][idx], T["items"][idx], T["times"][idx], T["weights"][idx]
    m = config.negatives
    j = sample_negatives(T, i, m, config.hard_share, gen)
    if config.horizon_days > 0:  # the scoring time: up to horizon_days before the touch
        t = t - torch.rand(len(t), generator=gen, dtype=torch.float64) * config.horizon_days
    age_p = (t - T["created"][i]).float()
    age_n = (t[:, None] - T["created"][j]).float()
    uu = torch.cat([u, u.repeat_interleave(m)]).to(device)
    ii = torch.cat([i, j.reshape(-1)]).to(device)
    aa = torch.cat([age_p, age_n.reshape(-1)]).to(device)
    s = model(uu, ii, aa)
    sp, sn = s[:len(u)], s[len(u):].view(len(u), m)
    w = w.to(device)
    if config.loss == "bpr":
        return -(w[:, None] * F.logsigmoid(sp[:, None] - sn)).mean()
    return (w * F.softplus(-sp)).mean() + F.softplus(sn).mean()


def train_epochs(model: torch.nn.Module, data: CFData, config: CFConfig, rank: int = 0, world: int = 1,
                 device: Any = None, on_epoch: Callable[[dict], None] | None = None) -> list[dict[str, float]]:
    """The loop every trainer runs (see the module docstring); the epoch loss is the mean over every rank's
    batches."""
    device = device or torch.device("cpu")
    T = _tensors(data, device)
    n = len(data)
    bs = config.batch_size or auto_batch_size(n, world)
    steps = max(1, n // (bs * world))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = []
    for epoch in range(config.epochs):
        t0 = time.perf_counter()
        order = torch.from_numpy(np.random.default_rng((config.seed, epoch)).permutation(n))
        seed = int(np.random.SeedSequence((config.seed, epoch, rank)).generate_state(1)[0])
        gen = torch.Generator().manual_seed(seed)
        model.train()
        total = torch.zeros((), dtype=torch.float64)
        for k in range(steps):
            idx = order[(k * world + rank) * bs:(k * world + rank + 1) * bs]
            if len(idx) == 0:
                idx = order[:bs]
            loss = batch_loss(model, T, idx, config, gen, device)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach().double().cpu()
        row = epoch_row(epoch, total, steps, world, device, t0)
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def train_local(data: CFData, config: CFConfig, device: str | None = None) -> tuple[CFNet, list[dict]]:
    """The loop in this process (on ``device``, default ``config.device``); the net comes back on the CPU."""
    dev = resolve_device(device or config.device)
    with torch_threads(config.threads):
        net = CFNet(data, config).to(dev)
        history = train_epochs(net, data, config, device=dev)
    return net.cpu().eval(), history


def _ray_worker(loop_config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    config = CFConfig.from_dict(loop_config["config"])
    data = ray.get(loop_config["data"])
    torch.set_num_threads(1)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()  # CUDA with use_gpu, else CPU
    net = CFNet(data, config)
    model = ray.train.torch.prepare_model(net)  # to the device; DDP when world > 1
    module = getattr(model, "module", model)
    history: list[dict] = []

    def on_epoch(row: dict) -> None:
        history.append(row)
        metrics = {**row, "device": device.type}
        if row["epoch"] < config.epochs - 1 or rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="sunday-cf-ckpt-") as tmp:
            torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, Path(tmp) / CKPT_NET)
            (Path(tmp) / CKPT_HISTORY).write_text(json.dumps(history))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    train_epochs(model, data, config, rank=rank, world=world, device=device, on_epoch=on_epoch)


def train_with_ray(data: CFData, config: CFConfig, num_workers: int = 2, use_gpu: bool = False,
                   storage_path: str | Path | None = None) -> tuple[CFNet, list[dict]]:
    """Train on ``num_workers`` Ray Train workers (DDP; gloo on CPU, NCCL on GPUs); the net from the checkpoint."""
    import ray

    from sunday.models.raytrain import fit_torch

    data_ref = ray.put(data) if ray.is_initialized() else None
    result, _name, _fit_s = fit_torch(_ray_worker, {"config": config.to_dict(), "data": data_ref},
                                      "personalization-cf", num_workers, use_gpu, storage_path)
    net = CFNet(data, config)
    with result.checkpoint.as_directory() as ckpt:
        net.load_state_dict(torch.load(Path(ckpt) / CKPT_NET, map_location="cpu", weights_only=True))
        history = json.loads((Path(ckpt) / CKPT_HISTORY).read_text())
    return net.eval(), history


def train_net(data: CFData, config: CFConfig, trainer: str = "local", num_workers: int = 2,
              use_gpu: bool = False) -> tuple[CFNet, list[dict]]:
    """``(net, history)``: ``trainer="ray"`` on Ray Train workers (Ray must be running), ``"local"`` in process
    (``use_gpu`` forces CUDA)."""
    if trainer == "ray":
        return train_with_ray(data, config, num_workers=num_workers, use_gpu=use_gpu)
    if trainer != "local":
        raise SundayError(f"trainer must be 'local' or 'ray', got {trainer!r}")
    return train_local(data, config, device="cuda" if use_gpu else None)
