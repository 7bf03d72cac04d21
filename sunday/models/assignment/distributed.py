"""Train the multi-objective neural ranker with Ray Train (``TorchTrainer``), with DDP or DeepSpeed ZeRO.

:func:`train_with_ray` validates and standardises the data on the driver (the normalisation stats are fitted once,
on all of it), puts the arrays into the object store and starts ``config.num_workers`` Ray Train workers, one CPU
each (plus one GPU each with ``use_gpu``). Every worker runs the same loop as the local trainer
(:func:`sunday.models.assignment.neural.train_epochs`) on its shard of the *task groups*: all workers shuffle the
tasks with the same (seed, epoch) and take every ``world_size``-th one, with the same number of steps each, so the
per-step gradient all-reduce always lines up. Whole tasks go to one worker because the listwise loss needs every
candidate of a task in the same batch. At ~10-100 MB the pair matrix fits in every worker's memory; Ray Data
sharding would only add a dependency on the shape of its blocks.

* **DDP** (default): ``ray.train.torch.prepare_model`` wraps the net in ``DistributedDataParallel`` over the process
  group Ray Train sets up (``gloo`` on CPU, ``nccl`` on GPU; :class:`ray.train.torch.TorchConfig`).
* **DeepSpeed** (``config.deepspeed``): ``deepspeed.initialize`` over the same process group (DeepSpeed reuses an
  initialised ``torch.distributed``), ZeRO stage ``config.zero_stage``, fp32, with the same torch ``AdamW`` as the
  DDP path (``zero_allow_untested_optimizer``): DeepSpeed's own fused / CPU Adam would need a JIT-compiled C++
  extension on CPU (~45 s of g++ on first use). ZeRO-1/2 keep full parameters on every worker; with ZeRO-3 the
  checkpoint gathers the partitioned parameters first.

After each epoch every worker calls ``ray.train.report`` (it is a barrier in Train v2); rank 0 attaches a checkpoint
directory holding ``model.pt`` (the full state dict), ``stats.json`` and ``history.json``. Train v2 persists only
metrics attached to checkpoints, so the whole per-epoch history travels inside the checkpoint and the run keeps only
the latest checkpoint (``CheckpointConfig(num_to_keep=1)``). The final state comes from ``Result.checkpoint``, the last
epoch's metrics from ``Result.metrics``.

``storage_path`` defaults to ``$SUNDAY_HOME/ray_results``, an absolute path (the settings make ``SUNDAY_HOME``
absolute against the working directory). It must be a path every Ray node can write and the driver can read: on one
machine any local absolute path works, ``ray job submit`` included; there the driver runs in a temporary copy of
``--working-dir``, so give the job an absolute ``SUNDAY_HOME`` (``--runtime-env-json '{"env_vars": {"SUNDAY_HOME":
"/abs/state"}}'``) or pass ``storage_path``, else the default lands inside that temporary copy. On a multi-node
cluster point it at shared storage (NFS). Ray itself must already be running (:func:`sunday.runtime.ensure_ray`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from sunday.models.raytrain import (fit_torch, full_state_dict,
                                     per_worker_batch, skip_deepspeed_shm_op)
from sunday.models.assignment.neural import (
    NeuralRankerConfig,
    PairArrays,
    build_net,
    local_step_fn,
    make_optimizer,
    prepare_training_data,
    train_epochs,
)

_CHECKPOINT_MODEL = "model.pt"
_CHECKPOINT_STATS = "stats.json"
_CHECKPOINT_HISTORY = "history.json"


def deepspeed_config(config: NeuralRankerConfig) -> dict[str, Any]:
    """The DeepSpeed config for ``config``: ZeRO ``zero_stage``, fp32, micro batch = each worker's share of
    ``batch_tasks`` tasks.

    ``config.deepspeed_config`` is merged over it (nested dicts merge key by key), e.g.
    ``{"bf16": {"enabled": True}}`` on GPUs or ``{"zero_optimization": {"reduce_bucket_size": 1e6}}``.
    ``train_batch_size`` is left to DeepSpeed (micro batch x accumulation steps x workers). DeepSpeed counts its
    "samples" in tasks here; only the micro batch / accumulation bookkeeping uses it.
    """
    ds: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": per_worker_batch(config.batch_tasks, max(1, config.num_workers)),
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": config.zero_stage},
        "zero_allow_untested_optimizer": True,  # the torch AdamW shared with the DDP path
        "bf16": {"enabled": False},
        "fp16": {"enabled": False},
        "steps_per_print": 2**31 - 1,  # DeepSpeed's own progress lines off; metrics go through ray.train.report
        "wall_clock_breakdown": False,
    }
    return _merge(ds, config.deepspeed_config or {})


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _train_worker(loop_config: dict) -> None:
    """Ray Train per-worker function: the shared loop on this worker's task shard, one report per epoch."""
    import ray
    import ray.train
    import ray.train.torch
    import torch

    config = NeuralRankerConfig.from_dict(loop_config["config"])
    data: PairArrays = ray.get(loop_config["data"])
    stats = loop_config["stats"]
    torch.set_num_threads(int(loop_config.get("threads", 1)))
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()

    net = build_net(config)  # same seed on every rank: identical initial weights
    if config.deepspeed:
        import deepspeed

        if device.type == "cpu":
            skip_deepspeed_shm_op()
        engine, _, _, _ = deepspeed.initialize(
            model=net, model_parameters=net.parameters(), optimizer=make_optimizer(net.parameters(), config),
            config=deepspeed_config(config))

        def step(loss):
            engine.backward(loss)
            engine.step()

        forward, module, set_train, zero_stage = engine, engine.module, engine.train, config.zero_stage
        device = engine.device
    else:
        model = ray.train.torch.prepare_model(net)  # DDP (and to the worker's device) when world > 1
        step, _ = local_step_fn(model, config)
        forward, module, set_train, zero_stage = model, getattr(model, "module", model), model.train, None

    history: list[dict[str, Any]] = []

    def on_epoch(metrics: dict[str, Any]) -> None:
        history.append(metrics)
        state = full_state_dict(module, zero_stage)  # collective under ZeRO-3: every rank
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="sunday-neural-ckpt-") as tmp:
            torch.save(state, os.path.join(tmp, _CHECKPOINT_MODEL))
            Path(tmp, _CHECKPOINT_STATS).write_text(json.dumps(stats))
            Path(tmp, _CHECKPOINT_HISTORY).write_text(json.dumps(history))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    train_epochs(forward, step, data, config, rank=rank, world=world, device=device, on_epoch=on_epoch,
                 set_train=set_train)




def train_with_ray(X: pd.DataFrame, group_ids, assigned, completed, quality, config: NeuralRankerConfig,
                   storage_path: str | Path | None = None, run_name: str | None = None,
                   poll_interval_s: float | None = 0.2) -> tuple[dict, dict, dict[str, Any]]:
    """Train on Ray Train workers: ``(state_dict, stats, metrics)``.

    ``metrics`` holds ``final`` (the last epoch's metrics, ``Result.metrics``), ``history`` (every epoch),
    ``path`` (the run folder under ``storage_path``), ``checkpoint`` (the final checkpoint's path) and ``fit_s``
    (wall seconds of ``trainer.fit()``, worker start-up included; the epochs' own time is in ``history``).
    ``poll_interval_s`` is how often the Train controller polls the workers (and so takes their reports; None keeps
    Ray's 2 s). Raises ValueError for bad input (before any worker starts) and RuntimeError when Ray is not running
    or the run failed.
    """
    import ray
    import torch

    if not ray.is_initialized():
        raise RuntimeError("Ray is not running; start it first (sunday.runtime.ensure_ray(settings))")
    data, stats = prepare_training_data(X, group_ids, assigned, completed, quality)
    if data.n_groups < config.num_workers:
        raise ValueError(f"{data.n_groups} task group(s) cannot be sharded over {config.num_workers} workers")
    if config.deepspeed and importlib.util.find_spec("deepspeed") is None:  # fail here, not in every worker
        raise RuntimeError("config.deepspeed is set but deepspeed is not installed")

    result, name, fit_s = fit_torch(
        _train_worker, {"config": config.to_dict(), "data": ray.put(data), "stats": stats, "threads": 1},
        "assignment-neural", config.num_workers, config.use_gpu, storage_path, run_name, poll_interval_s)
    with result.checkpoint.as_directory() as ckpt:
        state = torch.load(os.path.join(ckpt, _CHECKPOINT_MODEL), map_location="cpu", weights_only=True)
        history = json.loads(Path(ckpt, _CHECKPOINT_HISTORY).read_text())
    metrics = {"final": dict(result.metrics or {}), "history": history, "path": str(result.path),
               "checkpoint": str(result.checkpoint.path), "fit_s": fit_s, "run_name": name}
    return state, stats, metrics
