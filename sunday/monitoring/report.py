"""The drift report as a standalone HTML page: Evidently's data-drift preset when it works, else our own table.

Written against Evidently 0.7 (the version in this environment, 0.7.23): ``evidently.Report([DataDriftPreset()])``,
``report.run(current, reference)`` -> a snapshot with ``save_html(path)``. Evidently is optional: when it is not
installed, has another API or fails on the frames, :func:`write_html` writes the fallback page (our PSI / KS /
chi-square table) and says why in :attr:`HtmlReport.note`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from sunday.monitoring.drift import DriftReport


@dataclass
class HtmlReport:
    path: Path
    engine: str  # "evidently <version>" or "sunday (fallback)"
    note: str = ""


def evidently_version() -> str | None:
    try:
        import evidently
    except Exception:
        return None
    return str(getattr(evidently, "__version__", "unknown"))


def write_evidently(reference: pd.DataFrame, current: pd.DataFrame, path: Path,
                    columns: Sequence[str] | None = None) -> str:
    """Evidently's data-drift report of ``columns`` as HTML at ``path``; returns the engine string."""
    import warnings

    from evidently import Report
    from evidently.presets import DataDriftPreset

    cols = list(columns) if columns is not None else [c for c in reference.columns if c in current.columns]
    ref, cur = _plain(reference[cols]), _plain(current[cols])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(cur, ref)
        snapshot.save_html(str(path))
    return f"evidently {evidently_version()}"


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Evidently infers column types from dtypes: nullable / object numbers become floats, the rest strings."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            num = pd.to_numeric(out[c], errors="coerce")
            if num.notna().sum() == out[c].notna().sum():
                out[c] = num.astype(float)
            else:
                out[c] = out[c].astype(str).where(out[c].notna(), None)
        elif pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].astype(str)
    return out


def fallback_html(drift: DriftReport, title: str) -> str:
    table = drift.table()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, r in table.iterrows():
        cells = []
        for c in table.columns:
            v = r[c]
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            cells.append(f"<td>{html.escape(text)}</td>")
        style = ' style="background:#fdd"' if r.get("drifted") else ""
        rows.append(f"<tr{style}>{''.join(cells)}</tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(drift.line())}</p>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{''.join(rows)}</table>"
            "</body></html>")


def write_html(reference: pd.DataFrame, current: pd.DataFrame, drift: DriftReport, path: Path, title: str,
               use_evidently: bool = True) -> HtmlReport:
    """The HTML report at ``path``: Evidently's, or the fallback table with the reason in ``note``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    note = "evidently disabled"
    if use_evidently:
        cols = [f.feature for f in drift.checked]
        try:
            return HtmlReport(path, write_evidently(reference, current, path, cols))
        except ImportError as exc:
            note = f"evidently not usable ({exc}): fallback table written"
        except Exception as exc:  # another API or a failure on these frames
            note = f"evidently failed ({type(exc).__name__}: {exc}): fallback table written"
    path.write_text(fallback_html(drift, title))
    return HtmlReport(path, "sunday (fallback)", note)


__all__ = ["HtmlReport", "write_html", "write_evidently", "fallback_html", "evidently_version"]
