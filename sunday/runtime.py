"""Start or join Ray according to the settings. Nothing happens at import time."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from sunday.settings import Settings


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, restored after (None / 0: torch's own setting)."""
    import torch

    before = torch.get_num_threads()
    if not n or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ensure_ray(settings: Settings, **init_kwargs):
    """Join ``RAY_ADDRESS`` when set, else start a local Ray with this machine's CPUs (or ``ray_num_cpus``).

    Returns the ``ray`` module. Safe to call twice: an already initialised Ray is reused.
    """
    import logging
    import sys

    import ray

    if not sys.stderr.isatty():
        # without a terminal Ray Data logs its progress line by line; keep warnings only
        import ray.data  # configures its loggers on import; adjust after

        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        return ray
    kwargs = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    kwargs.update(init_kwargs)
    if settings.ray_address:
        ray.init(address=settings.ray_address, **kwargs)
    else:
        num_cpus = settings.ray_num_cpus or os.cpu_count() or 1
        kwargs.setdefault("num_cpus", num_cpus)
        # keep Ray's own files out of the way but findable
        ray.init(**kwargs)
    return ray


def cluster_resources() -> dict:
    import ray

    if not ray.is_initialized():
        return {}
    res = ray.cluster_resources()
    return {k: v for k, v in res.items() if not k.startswith("node:")}


@contextlib.contextmanager
def ray_data_context(settings: Settings | None = None, progress: bool = True) -> Iterator[object]:
    """Ray started or joined, and Ray Data's progress bars on or off for the block; yields the DataContext.

    The previous progress settings are restored on exit.
    """
    import ray

    if not ray.is_initialized():
        from sunday.settings import get_settings

        ensure_ray(settings or get_settings())
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.enable_progress_bars, getattr(ctx, "enable_operator_progress_bars", None))
    ctx.enable_progress_bars = progress
    if saved[1] is not None:
        ctx.enable_operator_progress_bars = progress
    try:
        yield ctx
    finally:
        ctx.enable_progress_bars = saved[0]
        if saved[1] is not None:
            ctx.enable_operator_progress_bars = saved[1]
