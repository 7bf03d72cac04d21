"""``sunday features build``: Ray Data pipeline -> validation -> Feast apply -> materialize into the online store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sunday.errors import SundayError
from sunday.settings import Settings


@dataclass
class PlatformResult:
    sim_path: Path
    offline_version: Path
    rows: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    offline_store: str = ""
    online_store: str = ""
    build: Any = None


def simulation_path(settings: Settings, name: str) -> Path:
    from sunday.store import current_version

    path = current_version(settings.simulations_dir / name)
    if path is None:
        raise SundayError(f"no simulation named '{name}' (run: sunday data simulate --name {name})")
    return path


def build_platform(settings: Settings, sim_name: str = "default", engine: str = "ray",
                   progress: bool = True, accept_drift: bool = False) -> PlatformResult:
    """``accept_drift``: a reviewed, real shift in the data; drift is reported as warnings instead of rejecting
    the batch (schema, range and null checks still reject)."""
    from sunday.features import repo
    from sunday.features.groups import GROUPS
    from sunday.features.pipeline import build_features, offline_path
    from sunday.features.validation import ValidationConfig, make_validator
    from sunday.runtime import ensure_ray

    if engine not in ("ray", "local"):
        raise SundayError(f"--engine must be 'ray' or 'local', got {engine!r}")
    sim = simulation_path(settings, sim_name)
    seconds: dict[str, float] = {}
    if engine == "ray" or repo.offline_backend() == "ray":
        ensure_ray(settings)

    t0 = time.perf_counter()
    validator = make_validator(settings, lambda group: _current_group(settings, group),
                               config=ValidationConfig(drift_fails=not accept_drift))
    build = build_features(settings, sim, engine=engine, progress=progress, validate=validator)
    seconds["pipeline"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    repo.apply(settings, {g: offline_path(settings, g) for g in GROUPS})
    seconds["apply"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    repo.materialize(settings)
    seconds["materialize"] = time.perf_counter() - t0
    cfg = repo.feast_config(settings)
    return PlatformResult(sim_path=sim, offline_version=build.path, rows=dict(build.rows), seconds=seconds,
                          offline_store=cfg.offline_store.type, online_store=cfg.online_store.type, build=build)


def _current_group(settings: Settings, group: str):
    """The last accepted batch of a group (drift reference), or None before the first build."""
    import pyarrow.dataset as pads

    from sunday.features.pipeline import offline_path

    try:
        path = offline_path(settings, group)
    except SundayError:
        return None
    return pads.dataset(path, format="parquet").to_table()


def render_platform(result: PlatformResult) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="feature platform")
    t.add_column("feature group")
    t.add_column("rows", justify="right")
    for g, n in result.rows.items():
        t.add_row(g, f"{n:,}")
    console = Console()
    console.print(t)
    console.print(f"offline store: {result.offline_store} over {result.offline_version}")
    console.print(f"online store: {result.online_store}; "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items()))
