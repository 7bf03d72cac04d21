"""Validation of feature batches before they are accepted: contract checks, drift, reports, quarantine.

Use ``make_validator(settings, reference_loader)`` as the feature pipeline's ``validate(group_name, table)`` hook,
or ``validate_or_quarantine`` / ``validate_batch`` directly. Thresholds live in ``ValidationConfig``.
"""

from sunday.features.validation.batch import validate_batch
from sunday.features.validation.config import ValidationConfig
from sunday.features.validation.drift import ks, psi
from sunday.features.validation.quarantine import (
    BatchRejected,
    make_validator,
    validate_or_quarantine,
    versioned_reference_loader,
)
from sunday.features.validation.report import DriftRow, Issue, ValidationReport

__all__ = [
    "BatchRejected",
    "DriftRow",
    "Issue",
    "ValidationConfig",
    "ValidationReport",
    "ks",
    "make_validator",
    "psi",
    "validate_batch",
    "validate_or_quarantine",
    "versioned_reference_loader",
]
