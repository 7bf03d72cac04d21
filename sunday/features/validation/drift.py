"""Drift of a batch's numeric features against a reference batch: PSI and two-sample Kolmogorov-Smirnov.

PSI: the reference's quantiles cut ``psi_bins`` bins; two more bins catch values below the reference's minimum and
above its maximum (so a constant reference still sees a shift either way). Every bin share gets ``psi_epsilon``
added and the shares are renormalised; PSI = sum((cur - ref) * ln(cur / ref)). Nulls and non-finite values are
left out (null rates are a contract check).

Severity: PSI >= psi_fail fails the batch (a warning when ``drift_fails`` is off or either side has fewer than
``drift_min_rows`` values); PSI >= psi_warn, or a KS flag (statistic > ks_stat and p < ks_alpha), is a warning.
A column is ``drifted`` when PSI >= psi_fail or KS flags it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sunday.features.groups import FeatureGroup
from sunday.features.validation.config import ValidationConfig
from sunday.features.validation.report import DriftRow, Issue, issue


def numeric_features(group: FeatureGroup) -> list[str]:
    return [f.name for f in group.features if f.dtype in ("int", "float")]


def values(table: pa.Table, column: str) -> np.ndarray:
    """Non-null finite values of a column as float64 (empty when the column is absent or not numeric)."""
    if column not in table.column_names:
        return np.empty(0)
    col = table.column(column)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return np.empty(0)
    arr = np.asarray(pc.drop_null(col).to_numpy(zero_copy_only=False), dtype=np.float64)
    return arr[np.isfinite(arr)]


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10, epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` (both non-empty, finite)."""
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    lo, hi = reference.min(), reference.max()
    k = len(inner) + 3  # below min | len(inner)+1 quantile bins | above max

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(inner, x, side="right") + 1
        idx[x < lo] = 0
        idx[x > hi] = k - 1
        s = np.bincount(idx, minlength=k) / len(x) + epsilon
        return s / s.sum()

    r, c = shares(reference), shares(current)
    return float(np.sum((c - r) * np.log(c / r)))


def ks(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    from scipy.stats import ks_2samp  # scipy is slow to import; only drift runs need it

    res = ks_2samp(reference, current)
    return float(res.statistic), float(res.pvalue)


def drift_table(group: FeatureGroup, table: pa.Table, reference: pa.Table,
                config: ValidationConfig) -> tuple[list[DriftRow], list[Issue], list[Issue]]:
    """Per numeric feature of ``group``: PSI, KS and the drifted flag; with drift failures and warnings."""
    rows: list[DriftRow] = []
    failures: list[Issue] = []
    warnings: list[Issue] = []
    for name in numeric_features(group):
        ref, cur = values(reference, name), values(table, name)
        if not ref.size or not cur.size:
            rows.append(DriftRow(name, None, None, None, False, int(ref.size), int(cur.size)))
            if name in reference.column_names and name in table.column_names:
                warnings.append(issue(name, "drift", f"not compared: {ref.size} reference and {cur.size} "
                                                     "current non-null values"))
            continue
        p = psi(ref, cur, config.psi_bins, config.psi_epsilon)
        stat, pvalue = ks(ref, cur)
        ks_flag = stat > config.ks_stat and pvalue < config.ks_alpha
        rows.append(DriftRow(name, p, stat, pvalue, p >= config.psi_fail or ks_flag, int(ref.size), int(cur.size)))
        detail = f"PSI {p:.3f}, KS {stat:.3f} (p={pvalue:.2g}) on {cur.size} vs {ref.size} reference values"
        if p >= config.psi_fail:
            small = min(ref.size, cur.size) < config.drift_min_rows
            if config.drift_fails and not small:
                failures.append(issue(name, "drift", f"{detail}: PSI >= {config.psi_fail}"))
            else:
                why = f"fewer than {config.drift_min_rows} values" if small else "drift_fails is off"
                warnings.append(issue(name, "drift", f"{detail}: PSI >= {config.psi_fail} ({why})"))
        elif p >= config.psi_warn or ks_flag:
            warnings.append(issue(name, "drift", detail))
    return rows, failures, warnings
