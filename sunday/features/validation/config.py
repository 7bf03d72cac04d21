"""Thresholds of feature-batch validation, in one frozen object (defaults documented per field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class ValidationConfig:
    # -- contract checks --
    min_rows: int = 1
    """a batch with fewer rows fails (an empty build would otherwise replace the live version with nothing)"""
    allow_extra_columns: bool = False
    """columns outside the contract: False = failure; True = warning, and they are dropped from the checked table"""
    null_rate_warn: float = 0.5
    """nullable feature with a null rate above this: a *warning* (a young workspace legitimately has mostly-null
    completion features, so a high null rate alone must not block the build)"""
    null_rate_fail: float | None = None
    """nullable feature with a null rate above this: a failure (None: never)"""
    future_tolerance: timedelta = timedelta(days=1)
    """timestamps later than now + this fail (a day: rows stamped at the end of the current day are fine)"""
    list_lengths: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({"skill_embedding": 384}))
    """expected lengths of float-list features (all-MiniLM-L6-v2 embeddings are 384 long); other float lists
    only have to be the same length within the batch and as in the reference"""
    # -- drift against the reference batch --
    psi_bins: int = 10
    """quantile bins of the reference (plus one bin below its minimum and one above its maximum)"""
    psi_epsilon: float = 1e-4
    """added to every bin share (then renormalised) so that empty bins give a finite log ratio"""
    psi_warn: float = 0.1
    psi_fail: float = 0.25
    ks_stat: float = 0.1
    """a column is KS-drifted when the KS statistic is above this ..."""
    ks_alpha: float = 0.05
    """... and its p-value is below this (large samples make p tiny for trivial shifts; the statistic guards that)"""
    drift_min_rows: int = 200
    """PSI of two small samples of one distribution is biased upwards (about (bins-1)*(1/n+1/m)); with fewer
    non-null values than this on either side a PSI above psi_fail is only a warning"""
    drift_fails: bool = True
    """PSI >= psi_fail fails the batch; False turns drift into warnings (e.g. to accept a reviewed real shift)"""
    html_report: bool = True
    """write Evidently's data drift HTML report when a reference is given and evidently imports"""
    html_max_rows: int = 50_000
    """rows sampled per side for the HTML report (Evidently is slow on millions of rows)"""
    html_keep: int = 30
    """HTML reports kept per group (each is a few MB: Evidently inlines its JavaScript)"""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.null_rate_warn <= 1:
            raise ValueError("null_rate_warn must be in [0, 1]")
        if self.psi_warn > self.psi_fail:
            raise ValueError("psi_warn must not exceed psi_fail")
        if self.psi_bins < 2:
            raise ValueError("psi_bins must be at least 2")
