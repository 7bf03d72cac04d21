"""``sunday demo``: the main job on embedded defaults. Later issues add their steps to ``STEPS``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from sunday.settings import Settings


@dataclass
class DemoContext:
    settings: Settings
    events: int
    seed: int
    console: Console
    summary: list[tuple[str, str]] = field(default_factory=list)  # (what, figure)
    state: dict[str, Any] = field(default_factory=dict)


def step_ray(ctx: DemoContext) -> None:
    from sunday.runtime import cluster_resources, ensure_ray

    ray = ensure_ray(ctx.settings)
    res = cluster_resources()
    where = ctx.settings.ray_address or "local"
    ctx.summary.append(("ray cluster", f"{where}: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPU, "
                                       f"{res.get('GPU', 0):g} GPU"))


def step_import(ctx: DemoContext) -> None:
    from sunday.data.importers import importer_names
    from sunday.data.pipeline import import_many, render_imports

    if not ctx.settings.data_dir.is_dir():
        ctx.console.print(f"datasets folder {ctx.settings.data_dir} not found: running on the simulator alone")
        ctx.summary.append(("datasets", "none (folder missing): simulator only"))
        return
    outcomes = import_many(importer_names(), ctx.settings, fail_fast=False)
    render_imports(outcomes)
    ok = [o for o in outcomes if not o.error]
    rows = sum(sum(o.counts.values()) for o in ok)
    ctx.summary.append(("datasets imported", f"{len(ok)}/{len(outcomes)} ({rows:,} rows)"))
    for o in outcomes:
        if o.error:
            ctx.summary.append((f"dataset {o.name}", f"failed: {o.error}"))


def step_simulate(ctx: DemoContext) -> None:
    from sunday.data.pipeline import render_simulation, run_simulation

    result = run_simulation(ctx.settings, events=ctx.events, seed=ctx.seed, engine="ray", name="demo")
    render_simulation(result)
    ctx.state["simulation"] = result
    c = result.counts
    ctx.summary.append(("simulated workspace", f"{c.get('users', 0):,} users, {c.get('projects', 0):,} projects, "
                                               f"{c.get('tasks', 0):,} tasks, {c.get('events', 0):,} events "
                                               f"({result.events_per_second:,.0f} events/s)"))


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("start or join Ray", step_ray),
    ("import datasets", step_import),
    ("simulate a workspace", step_simulate),
]


def run_demo(settings: Settings, events: int = 200_000, seed: int = 0) -> DemoContext:
    console = Console()
    ctx = DemoContext(settings=settings, events=events, seed=seed, console=console)
    t_all = time.perf_counter()
    for i, (title, fn) in enumerate(STEPS, 1):
        console.rule(f"[{i}/{len(STEPS)}] {title}")
        t0 = time.perf_counter()
        fn(ctx)
        ctx.summary.append((f"  step time: {title}", f"{time.perf_counter() - t0:.1f} s"))
    table = Table(title="Sunday ML demo summary", show_header=False)
    for what, figure in ctx.summary:
        table.add_row(what, figure)
    table.add_row("state folder", str(settings.home))
    table.add_row("total time", f"{time.perf_counter() - t_all:.1f} s")
    console.print(table)
    return ctx
