"""Accept or quarantine a feature batch; the hook the feature pipeline calls before it swaps in a new version.

A rejected batch goes to ``<home>/features/quarantine/<group>/<batch-id>/`` (``batch.parquet`` as received, and
``report.json``), then ``BatchRejected`` is raised. The pipeline writes each new version aside
(``sunday.store.atomic_version``) and validates inside that block, so a rejection removes the staging folder and
the last accepted version stays live.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from sunday.errors import SundayError
from sunday.features.validation.batch import resolve_group, validate_batch
from sunday.features.validation.checks import to_arrow
from sunday.features.validation.config import ValidationConfig
from sunday.features.validation.report import ValidationReport
from sunday.settings import Settings
from sunday.store import current_version

log = logging.getLogger(__name__)

ReferenceLoader = Callable[[str], "pa.Table | None"]


class BatchRejected(SundayError):
    """A feature batch broke its contract or drifted too far; it was quarantined and not accepted."""

    def __init__(self, report: ValidationReport, path: Path | None, why_not_saved: str | None = None):
        self.report, self.path = report, path
        checks: dict[str, list[str]] = {}
        for f in report.failures:
            checks.setdefault(f["column"], []).append(f["check"])
        cols = ", ".join(f"{c} ({'/'.join(dict.fromkeys(v))})" for c, v in checks.items())
        where = f"quarantined in {path}" if path else f"could not be quarantined ({why_not_saved})"
        super().__init__(f"feature batch for '{report.group}' rejected; failing columns: {cols}; {where}")

    @property
    def columns(self) -> list[str]:
        return self.report.failing_columns


def features_dir(settings: Settings) -> Path:
    return settings.home / "features"


def quarantine(settings: Settings, report: ValidationReport, batch: Any) -> Path:
    """Write the batch (Parquet; pickle when Arrow cannot read it) and the report under the quarantine folder."""
    folder = features_dir(settings) / "quarantine" / report.group
    final = folder / report.batch_id
    staging = folder / f".staging-{report.batch_id}"
    staging.mkdir(parents=True)
    try:
        try:
            pq.write_table(to_arrow(batch), staging / "batch.parquet")
        except (TypeError, pa.ArrowException):
            batch.to_pickle(staging / "batch.pkl")  # a DataFrame with mixed-type columns
        report.quarantine_path = str(final)
        (staging / "report.json").write_text(report.to_json())
        os.rename(staging, final)
    except BaseException:
        report.quarantine_path = None
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def validate_or_quarantine(settings: Settings, group: str, batch: Any, reference: Any = None,
                           config: ValidationConfig | None = None, now: datetime | None = None,
                           reference_error: str | None = None) -> ValidationReport:
    """Validate ``batch``; on failure quarantine it and raise ``BatchRejected``; on success return the report."""
    fg = resolve_group(group)
    report = validate_batch(fg, batch, reference, config, now, features_dir(settings) / "reports", reference_error)
    if report.ok:
        log.info("%s", report.summary())
        return report
    try:
        path, why = quarantine(settings, report, batch), None
    except Exception as e:  # noqa: BLE001 - the batch is rejected either way
        path, why = None, f"{type(e).__name__}: {e}"
    log.warning("%s", report.summary())
    raise BatchRejected(report, path, why)


def make_validator(settings: Settings, reference_loader: ReferenceLoader | None = None,
                   config: ValidationConfig | None = None) -> Callable[[str, pa.Table], None]:
    """The pipeline's ``validate(group_name, table)`` hook: raises ``BatchRejected`` on failure.

    ``reference_loader(group_name)`` returns the group's currently accepted table, or None (first build: contract
    checks only). A loader that raises is logged and recorded as a warning; the batch is then checked without drift.
    """

    def validate(group_name: str, table: pa.Table) -> None:
        reference, error = None, None
        if reference_loader is not None:
            try:
                reference = reference_loader(group_name)
            except Exception as e:  # noqa: BLE001
                error = f"{type(e).__name__}: {e}"
                log.warning("reference for feature group %s not loaded: %s", group_name, error)
        validate_or_quarantine(settings, group_name, table, reference, config, reference_error=error)

    return validate


def versioned_reference_loader(root: Path, filename: str | None = None) -> ReferenceLoader:
    """A reference loader for ``<root>/<group>/`` folders written with ``sunday.store.atomic_version``.

    Reads ``filename`` (default: every ``*.parquet``) of the group's live version; None when nothing is live yet.
    """

    def load(group_name: str) -> pa.Table | None:
        version = current_version(Path(root) / group_name)
        if version is None:
            return None
        files = [version / filename] if filename else sorted(version.glob("*.parquet"))
        files = [f for f in files if f.exists()]
        if not files:
            return None
        return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")

    return load
