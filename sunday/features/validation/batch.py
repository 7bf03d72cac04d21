"""Validate one feature batch: contract checks, then drift against the reference batch when there is one."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from sunday.errors import UnknownNameError
from sunday.features.groups import GROUPS, FeatureGroup
from sunday.features.validation.checks import check_batch, check_reference_shapes, conform, to_arrow
from sunday.features.validation.config import ValidationConfig
from sunday.features.validation.drift import drift_table, numeric_features, values
from sunday.features.validation.html import write_drift_html
from sunday.features.validation.report import BATCH, ValidationReport, issue


def resolve_group(group: str | FeatureGroup) -> FeatureGroup:
    if isinstance(group, FeatureGroup):
        return group
    if group not in GROUPS:
        raise UnknownNameError("feature group", group, list(GROUPS))
    return GROUPS[group]


def _reference_table(group: FeatureGroup, reference: Any, config: ValidationConfig) -> pa.Table:
    """The reference's contract columns that cast cleanly (it was accepted once, but the contract may have moved)."""
    columns, _, _ = conform(group, to_arrow(reference), config)
    return pa.table(columns) if columns else pa.table({})


def validate_batch(group: str | FeatureGroup, batch: Any, reference: Any = None,
                   config: ValidationConfig | None = None, now: datetime | None = None,
                   reports_dir: Path | None = None, reference_error: str | None = None) -> ValidationReport:
    """Check ``batch`` (pa.Table / DataFrame of one group) against the contract and, given one, the reference.

    ``reports_dir``: where Evidently's HTML drift report goes (skipped when None or without a reference).
    ``reference_error``: why the reference could not be loaded (recorded as a warning; drift is then skipped).
    """
    fg = resolve_group(group)
    config = config or ValidationConfig()
    try:
        table = to_arrow(batch)
    except (TypeError, pa.ArrowException) as e:
        rows = len(batch) if hasattr(batch, "__len__") else 0
        return ValidationReport(fg.name, rows, failures=[issue(BATCH, "type", f"unreadable batch: {e}")])
    conformed, failures, warnings = check_batch(fg, table, config, now)
    report = ValidationReport(fg.name, table.num_rows, failures=failures, warnings=warnings)
    if reference_error:
        report.warnings.append(issue("(reference)", "reference", f"not loaded, drift not checked: {reference_error}"))
    if reference is None:
        return report
    ref = _reference_table(fg, reference, config)
    report.reference_rows = ref.num_rows
    # a batch that failed the schema check still gets drift on its readable columns
    current = conformed if conformed is not None else pa.table(conform(fg, table, config)[0])
    report.failures += check_reference_shapes(fg, current, ref)
    report.drift, drift_failures, drift_warnings = drift_table(fg, current, ref, config)
    report.failures += drift_failures
    report.warnings += drift_warnings
    if config.html_report and reports_dir is not None:
        cols = [c for c in numeric_features(fg) if values(ref, c).size and values(current, c).size]
        path, why = write_drift_html(reports_dir, fg.name, current, ref, cols, config.html_max_rows,
                                     config.seed, config.html_keep)
        report.html_path, report.html_skipped = (str(path) if path else None), why
    return report

