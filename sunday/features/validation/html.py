"""Evidently's data drift report as a standalone HTML file (optional: any problem is logged, never raised).

Written against evidently 0.7 (``evidently.Report``/``Dataset``/``DataDefinition``, ``presets.DataDriftPreset``):
``Report.run(current, reference)`` returns a ``Snapshot``; ``Snapshot.save_html`` writes only when given a *str*
path (a ``pathlib.Path`` is silently ignored), so the file is written from ``get_html_str`` here and checked.
"""

from __future__ import annotations

import logging
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

log = logging.getLogger(__name__)


def _frame(table: pa.Table, columns: list[str], max_rows: int, seed: int):  # -> pandas.DataFrame
    import numpy as np

    if table.num_rows > max_rows:
        idx = np.sort(np.random.default_rng(seed).choice(table.num_rows, max_rows, replace=False))
        table = table.take(idx)
    # ints with nulls become float64 NaN: Evidently treats both as numerical columns
    return table.select(columns).to_pandas()


def write_drift_html(folder: Path, group: str, current: pa.Table, reference: pa.Table, columns: list[str],
                     max_rows: int = 50_000, seed: int = 0, keep: int = 30) -> tuple[Path | None, str | None]:
    """Write ``<folder>/<group>-<UTC timestamp>.html``; return (path, None) or (None, why it was skipped).

    Each file is a few MB (Evidently inlines its JavaScript): only the newest ``keep`` of a group are kept.
    """
    if not columns:
        return None, "no numeric column to compare"
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset
    except Exception as e:  # noqa: BLE001 - an optional report: any import problem only skips it
        why = f"evidently does not import ({type(e).__name__}: {e})"
        log.warning("feature drift HTML report for %s skipped: %s", group, why)
        return None, why
    try:
        definition = DataDefinition(numerical_columns=columns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cur = Dataset.from_pandas(_frame(current, columns, max_rows, seed), data_definition=definition)
            ref = Dataset.from_pandas(_frame(reference, columns, max_rows, seed), data_definition=definition)
            snapshot = Report([DataDriftPreset(columns=columns)]).run(cur, ref)
            html = snapshot.get_html_str(as_iframe=False)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{group}-{stamp}.html"
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(path)
        for old in sorted(folder.glob(f"{group}-*.html"))[:-keep]:
            old.unlink(missing_ok=True)
        return path, None
    except Exception as e:  # noqa: BLE001 - never fail a build because of the report
        why = f"evidently failed ({type(e).__name__}: {e})"
        log.warning("feature drift HTML report for %s skipped: %s", group, why)
        return None, why
