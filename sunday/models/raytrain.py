"""Ray Train plumbing shared by the models trained with ``TorchTrainer`` (assignment network, timeline forecaster,
LSTM autoencoder, collaborative filter): one :func:`fit_torch`, storage, DeepSpeed helpers, batch sizes."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def default_storage_path() -> Path:
    """``$SUNDAY_HOME/ray_results`` (absolute), created if missing."""
    from sunday.settings import get_settings

    path = get_settings().home / "ray_results"
    path.mkdir(parents=True, exist_ok=True)
    return path


def full_state_dict(module, zero_stage: int | None) -> dict:
    """CPU copy of the full state dict; under ZeRO-3 every rank must call this (parameters are gathered)."""
    if zero_stage == 3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def skip_deepspeed_shm_op() -> None:
    """Keep DeepSpeed's CPU backend from JIT-compiling its shared-memory all-reduce (~45 s of g++ on first use).

    ``TorchBackend`` builds that op whenever ``deepspeed.ops.__compatible_ops__`` marks it compatible, but only
    ``inference_all_reduce`` uses it; training collectives go through ``torch.distributed`` (gloo) either way. The
    dict is DeepSpeed's module-level cache (edits persist, see ``deepspeed/ops/__init__.py``).
    """
    import deepspeed.ops

    compatible = deepspeed.ops.__compatible_ops__
    if "deepspeed_shm_comm" in compatible:
        compatible["deepspeed_shm_comm"] = False


@contextlib.contextmanager
def controller_poll_interval(seconds: float | None):
    """Set ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` for the runs started inside (unless the user set it).

    Train v2 hands each ``ray.train.report`` to the controller through a one-slot queue that the controller drains
    when it polls the workers, every 2 s by default: each epoch's report then blocked its worker for up to 2 s,
    against ~0.03 s of training per epoch on small data. The variable is read by the controller actor, which gets it
    from the driver's environment when ``fit()`` starts it (Train's env propagation), so it is set around ``fit()``.
    """
    if seconds is None or _POLL_ENV in os.environ:
        yield
        return
    os.environ[_POLL_ENV] = f"{float(seconds):g}"
    try:
        yield
    finally:
        os.environ.pop(_POLL_ENV, None)


def resolve_device(device: str):
    """``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available) as a torch device; SundayError when CUDA is asked
    for and absent."""
    import torch

    from sunday.errors import SundayError

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SundayError("device 'cuda' asked for but CUDA is not available")
        return torch.device("cuda")
    return torch.device("cpu")


def epoch_row(epoch: int, total, steps: int, world: int, device, started: float) -> dict:
    """One epoch's history row: the mean batch loss (``total`` summed over ``steps`` batches, averaged over the
    ``world`` DDP workers) and its seconds since ``started`` (``time.perf_counter()``)."""
    import time

    if world > 1:
        import torch.distributed as dist

        t = total.to(device)
        dist.all_reduce(t)
        total = t.cpu() / world
    return {"epoch": epoch, "loss": float(total) / steps, "seconds": time.perf_counter() - started}


def per_worker_batch(global_batch: int, world: int) -> int:
    """Each of ``world`` data-parallel workers' batch for a ``global_batch`` (ceil): the optimizer then makes as
    many steps per epoch on Ray Train as in process, with about the same batch (a per-worker batch of the full size
    halves the steps on 2 workers: the timeline forecaster's holdout MAE went from 10.4 to 15.9 days)."""
    return max(1, -(-int(global_batch) // max(1, int(world))))


def fit_torch(worker, loop_config: dict, name_prefix: str, num_workers: int, use_gpu: bool = False,
              storage_path: str | Path | None = None, run_name: str | None = None,
              poll_interval_s: float | None = 0.2):
    """Run ``worker`` on ``num_workers`` Ray Train workers (``TorchTrainer``: gloo on CPU, NCCL with one GPU per
    worker; one checkpoint kept; no retries), under ``storage_path`` (default :func:`default_storage_path`).

    Returns ``(result, run name, fit seconds)``; RuntimeError when Ray is not running, the run fails or it reported
    no checkpoint; SundayError for ``num_workers`` < 1."""
    import time
    import uuid

    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from sunday.errors import SundayError

    if not ray.is_initialized():
        raise RuntimeError("Ray is not running; start it first (sunday.runtime.ensure_ray(settings))")
    if num_workers < 1:
        raise SundayError(f"num_workers must be at least 1, got {num_workers}")
    storage = Path(os.path.abspath(storage_path)) if storage_path is not None else default_storage_path()
    storage.mkdir(parents=True, exist_ok=True)
    name = run_name or f"{name_prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    trainer = TorchTrainer(
        worker, train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": 1, **({"GPU": 1} if use_gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=str(storage), checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=0)))
    t0 = time.perf_counter()
    try:
        with controller_poll_interval(poll_interval_s):
            result = trainer.fit()
    except Exception as exc:  # TrainingFailedError wraps the worker's exception
        raise RuntimeError(f"Ray Train run {name!r} failed: {exc}") from exc
    fit_s = time.perf_counter() - t0
    if result.error is not None:
        raise RuntimeError(f"Ray Train run {name!r} failed: {result.error}")
    if result.checkpoint is None:
        raise RuntimeError(f"Ray Train run {name!r} reported no checkpoint")
    return result, name, fit_s
