"""Render an :class:`EvalResult` as a table, each published anchor beside our figure for the same row/metric."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sunday.evaluation.base import EvalResult


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)


def render(result: EvalResult, console: Console | None = None) -> None:
    console = console or Console()
    anchors: dict[tuple[str, str], list] = {}
    for a in result.anchors:
        anchors.setdefault((a.row, a.metric), []).append(a)
    sources = sorted({a.source for a in result.anchors})
    cols = result.columns()
    table = Table(title=f"sunday eval {result.name}", show_lines=False)
    for c in cols:
        table.add_column(c, justify="left" if c == result.key else "right")
        for s in sources:
            if any(k[1] == c for k in anchors if any(a.source == s for a in anchors[k])):
                table.add_column(f"{c} ({s})", justify="right", style="cyan")
    for r in result.rows:
        cells = []
        for c in cols:
            cells.append(_fmt(r.get(c)))
            for s in sources:
                if any(k[1] == c for k in anchors if any(a.source == s for a in anchors[k])):
                    match = [a for a in anchors.get((str(r.get(result.key)), c), []) if a.source == s]
                    cells.append(_fmt(match[0].value) if match else "-")
        table.add_row(*cells)
    console.print(table)
    for n in result.notes:
        console.print(f"- {n}")
