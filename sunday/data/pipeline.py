"""Data steps shared by the CLI and the demo: import datasets, run the simulator, render summaries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sunday.errors import SundayError
from sunday.settings import Settings


@dataclass
class ImportOutcome:
    name: str
    counts: dict[str, int] | None = None
    error: str | None = None
    notes: list[str] | None = None


def import_many(names: list[str], settings: Settings, fail_fast: bool = True,
                progress: bool = True) -> list[ImportOutcome]:
    """Import each dataset in turn. With ``fail_fast`` the first error is raised; otherwise it is recorded
    and the others still import (each dataset is stored atomically, so a failure leaves its old data)."""
    from rich.progress import Progress

    from sunday.data.importers import get_importer, import_dataset
    from sunday.store import Warehouse

    for n in names:  # an unknown name fails before anything runs
        get_importer(n)
    wh = Warehouse(settings.warehouse_dir)
    out: list[ImportOutcome] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("importing", total=len(names))
        for n in names:
            bar.update(task, description=f"importing {n}")
            try:
                res = import_dataset(n, settings.data_dir, wh)
                out.append(ImportOutcome(n, res.counts, notes=res.notes))
            except SundayError as exc:
                if fail_fast:
                    raise
                out.append(ImportOutcome(n, error=str(exc)))
            bar.advance(task)
    return out


def render_imports(outcomes: list[ImportOutcome]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="imported datasets")
    for c in ("dataset", "table", "rows"):
        t.add_column(c, justify="right" if c == "rows" else "left")
    for o in outcomes:
        if o.error:
            t.add_row(o.name, "[red]failed[/red]", o.error)
            continue
        for i, (table, rows) in enumerate((o.counts or {}).items()):
            t.add_row(o.name if i == 0 else "", table, f"{rows:,}")
    console = Console()
    console.print(t)
    for o in outcomes:
        for note in o.notes or []:
            console.print(f"- {o.name}: {note}")


def run_simulation(settings: Settings, events: int, seed: int = 0, engine: str = "ray",
                   name: str = "default", progress: bool = True) -> Any:
    from sunday.data.simulator import SimConfig, simulate

    if engine not in ("ray", "local"):
        raise SundayError(f"--engine must be 'ray' or 'local', got {engine!r}")
    config = SimConfig(n_events=events, seed=seed)
    if engine == "ray":
        from sunday.runtime import ensure_ray

        ensure_ray(settings)
    return simulate(config, settings.simulations_dir / name, engine=engine, progress=progress)


def render_simulation(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="simulated workspace")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for table, rows in result.counts.items():
        t.add_row(table, f"{rows:,}")
    console = Console()
    console.print(t)
    console.print(f"written to {result.path}")
    console.print(f"{result.counts.get('events', 0):,} events in {result.seconds:.1f} s "
                  f"({result.events_per_second:,.0f} events/s)")
