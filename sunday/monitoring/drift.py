"""Data drift between a reference frame (what a model was trained / first served on) and a current one.

Per column of both frames (any DataFrame: features, predictions or both):

* **numeric** (ints, floats; not bool): PSI over ``bins`` quantile bins of the *reference* (the inner edges are the
  reference's deciles by default, deduplicated) plus a bucket below the reference's minimum and one above its
  maximum -- or, for a reference with at most ``bins`` distinct values, one bucket per value and one for any
  other -- and the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``);
* **categorical** (strings, bools, objects): PSI over the reference's ``max_categories`` most frequent values
  (+ one ``__other__`` bucket) and the chi-square test of homogeneity on the same buckets
  (``scipy.stats.chi2_contingency``).

Missing values are a bucket of their own in the PSI (a column that starts arriving empty drifts). Proportions are
floored at ``eps`` so that an empty bucket gives a large, finite PSI:

    PSI = sum_b (cur_b - ref_b) * ln(cur_b / ref_b)

A column **drifts** when its PSI exceeds ``psi_threshold`` *and* its test's p-value is below ``p_value``: a large
effect (PSI, insensitive to the sample size) that is not noise (the test; on its own it flags negligible shifts once
the windows hold thousands of rows). The **drift share** is the share of checked columns that drift; the frame
drifts when it exceeds ``share_threshold`` (the monitoring job starts retraining then).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from sunday.errors import SundayError

MISSING = "__missing__"
OTHER = "__other__"


@dataclass(frozen=True)
class DriftConfig:
    bins: int = 10  # quantile bins of the reference for numeric PSI
    psi_threshold: float = 0.2  # a column's PSI above this is a large shift (0.1 moderate, 0.25 major by convention)
    p_value: float = 0.01  # ... and its KS / chi-square p-value below this
    share_threshold: float = 0.3  # the frame drifts when more than this share of its columns drift
    min_rows: int = 30  # fewer non-missing rows in either frame: the column is skipped
    max_categories: int = 20  # categorical buckets kept from the reference (the rest: __other__)
    eps: float = 1e-4  # floor of bucket proportions in the PSI

    def __post_init__(self) -> None:
        if not isinstance(self.bins, int) or self.bins < 2:
            raise SundayError(f"DriftConfig.bins: must be an integer >= 2, got {self.bins!r}")
        if not self.psi_threshold > 0:
            raise SundayError(f"DriftConfig.psi_threshold: must be > 0, got {self.psi_threshold!r}")
        if not 0 < self.p_value < 1:
            raise SundayError(f"DriftConfig.p_value: must be between 0 and 1, got {self.p_value!r}")
        if not 0 <= self.share_threshold < 1:
            raise SundayError(f"DriftConfig.share_threshold: must be in [0, 1), got {self.share_threshold!r}")
        if not isinstance(self.min_rows, int) or self.min_rows < 1:
            raise SundayError(f"DriftConfig.min_rows: must be an integer >= 1, got {self.min_rows!r}")
        if not isinstance(self.max_categories, int) or self.max_categories < 1:
            raise SundayError(f"DriftConfig.max_categories: must be an integer >= 1, got {self.max_categories!r}")
        if not 0 < self.eps < 0.1:
            raise SundayError(f"DriftConfig.eps: must be between 0 and 0.1, got {self.eps!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DriftConfig":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise SundayError(f"DriftConfig: unknown setting(s) {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    psi: float | None
    test: str  # ks | chi2 | skipped
    statistic: float | None
    p_value: float | None
    drifted: bool
    ref_rows: int
    cur_rows: int
    ref_summary: float | str | None = None  # mean (numeric) or most frequent value (categorical)
    cur_summary: float | str | None = None
    note: str = ""


@dataclass
class DriftReport:
    features: list[FeatureDrift]
    config: DriftConfig
    rows_reference: int
    rows_current: int

    @property
    def checked(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.test != "skipped"]

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def drift_share(self) -> float:
        checked = self.checked
        return len(self.drifted_features) / len(checked) if checked else 0.0

    @property
    def max_psi(self) -> float:
        values = [f.psi for f in self.checked if f.psi is not None]
        return max(values) if values else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.checked) and self.drift_share > self.config.share_threshold

    def table(self) -> pd.DataFrame:
        """One row per column, the most shifted first."""
        df = pd.DataFrame([asdict(f) for f in self.features])
        if df.empty:
            return df
        return df.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        return {"drift_share": self.drift_share, "drifted": self.drifted, "n_features": len(self.checked),
                "n_drifted": len(self.drifted_features), "drifted_features": self.drifted_features,
                "max_psi": self.max_psi, "rows_reference": self.rows_reference, "rows_current": self.rows_current}

    def line(self) -> str:
        top = ", ".join(f"{f.feature} (PSI {f.psi:.2f})" for f in sorted(
            (f for f in self.features if f.drifted), key=lambda f: -(f.psi or 0))[:5])
        verdict = "DRIFT" if self.drifted else "no drift"
        return (f"{verdict}: {len(self.drifted_features)}/{len(self.checked)} columns drifted "
                f"(share {self.drift_share:.2f} vs threshold {self.config.share_threshold:.2f}; max PSI "
                f"{self.max_psi:.3f}; {self.rows_reference} reference vs {self.rows_current} current rows)"
                + (f": {top}" if top else ""))


# -- PSI -----------------------------------------------------------------------------------------------------------

def quantile_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges: the reference's ``1/bins .. (bins-1)/bins`` quantiles, deduplicated (ties collapse bins)."""
    ref = np.asarray(reference, dtype=float)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        return np.array([])
    return np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` followed by the missing count."""
    v = np.asarray(values, dtype=float)
    nan = np.isnan(v)
    idx = np.searchsorted(edges, v[~nan], side="left")  # value == edge goes to the lower bin
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return np.append(counts, nan.sum())


def psi_from_counts(ref_counts: Sequence[float] | np.ndarray, cur_counts: Sequence[float] | np.ndarray,
                    eps: float = 1e-4) -> float:
    r = np.asarray(ref_counts, dtype=float)
    c = np.asarray(cur_counts, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        raise SundayError("psi: a frame has no rows")
    rp = np.maximum(r / r.sum(), eps)
    cp = np.maximum(c / c.sum(), eps)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def numeric_counts(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Both frames' bucket counts for the numeric PSI.

    * a reference with at most ``bins`` distinct values (counts, flags, ranks): one bucket per reference value and
      one for any other value (a constant reference then still sees a current frame that moved);
    * otherwise the reference's quantile bins (:func:`bin_counts`) plus a bucket below the reference's minimum
      and one above its maximum, so that values outside the reference range are not absorbed by the outer bins.

    The missing count is the last bucket in both cases."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    r_ok, c_ok = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    values = np.unique(r_ok)
    if values.size == 0:
        return (np.array([0.0, ref.size - r_ok.size]), np.array([float(c_ok.size), cur.size - c_ok.size]))
    if values.size <= bins:
        def count(v: np.ndarray, n_missing: int) -> np.ndarray:
            pos = np.searchsorted(values, v)
            hit = (pos < values.size) & (values[np.minimum(pos, values.size - 1)] == v)
            exact = np.bincount(pos[hit], minlength=values.size)
            return np.concatenate([exact, [(~hit).sum(), n_missing]]).astype(float)

        return count(r_ok, ref.size - r_ok.size), count(c_ok, cur.size - c_ok.size)
    edges = quantile_edges(r_ok, bins)
    lo, hi = values[0], values[-1]

    def count_q(v: np.ndarray, n_missing: int) -> np.ndarray:
        inside = v[(v >= lo) & (v <= hi)]
        counts = bin_counts(inside, edges)[:-1]
        return np.concatenate([[(v < lo).sum()], counts, [(v > hi).sum(), n_missing]]).astype(float)

    return count_q(r_ok, ref.size - r_ok.size), count_q(c_ok, cur.size - c_ok.size)


def psi_numeric(reference: Iterable[float], current: Iterable[float], bins: int = 10, eps: float = 1e-4) -> float:
    """PSI of ``current`` against ``reference`` over the reference's buckets (:func:`numeric_counts`)."""
    ref = np.asarray(list(reference) if not isinstance(reference, np.ndarray) else reference, dtype=float)
    cur = np.asarray(list(current) if not isinstance(current, np.ndarray) else current, dtype=float)
    r, c = numeric_counts(ref, cur, bins)
    return psi_from_counts(r, c, eps)


def category_counts(reference: pd.Series, current: pd.Series, max_categories: int = 20
                    ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Buckets (the reference's most frequent values, ``__other__``, ``__missing__``) and both frames' counts."""
    ref = reference.astype(object).where(reference.notna(), MISSING).astype(str)
    cur = current.astype(object).where(current.notna(), MISSING).astype(str)
    top = [c for c in ref.value_counts().index if c != MISSING][:max_categories]
    keep = set(top)
    buckets = top + [OTHER, MISSING]

    def count(s: pd.Series) -> np.ndarray:
        mapped = s.where(s.isin(keep) | (s == MISSING), OTHER)
        vc = mapped.value_counts()
        return np.array([vc.get(b, 0) for b in buckets], dtype=float)

    return buckets, count(ref), count(cur)


def psi_categorical(reference: pd.Series, current: pd.Series, max_categories: int = 20, eps: float = 1e-4) -> float:
    _, r, c = category_counts(pd.Series(reference), pd.Series(current), max_categories)
    return psi_from_counts(r, c, eps)


# -- per column ----------------------------------------------------------------------------------------------------

def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def column_drift(name: str, reference: pd.Series, current: pd.Series, config: DriftConfig) -> FeatureDrift:
    from scipy import stats

    numeric = is_numeric(reference) and is_numeric(current)
    kind = "numeric" if numeric else "categorical"
    ref_n, cur_n = int(reference.notna().sum()), int(current.notna().sum())
    if min(ref_n, cur_n) < config.min_rows:
        return FeatureDrift(name, kind, None, "skipped", None, None, False, ref_n, cur_n,
                            note=f"fewer than {config.min_rows} non-missing rows")
    if numeric:
        r = reference.to_numpy(dtype=float, na_value=np.nan)
        c = current.to_numpy(dtype=float, na_value=np.nan)
        psi = psi_numeric(r, c, config.bins, config.eps)
        res = stats.ks_2samp(r[~np.isnan(r)], c[~np.isnan(c)])
        stat, p = float(res.statistic), float(res.pvalue)
        return FeatureDrift(name, kind, psi, "ks", stat, p, psi > config.psi_threshold and p < config.p_value,
                            ref_n, cur_n, float(np.nanmean(r)), float(np.nanmean(c)))
    buckets, rc, cc = category_counts(reference, current, config.max_categories)
    psi = psi_from_counts(rc, cc, config.eps)
    table = np.vstack([rc, cc])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # one bucket in both frames: nothing to test, no drift
        stat, p = 0.0, 1.0
    else:
        chi = stats.chi2_contingency(table, correction=False)
        stat, p = float(chi.statistic), float(chi.pvalue)
    ref_mode = buckets[int(np.argmax(rc))]
    cur_mode = buckets[int(np.argmax(cc))]
    return FeatureDrift(name, kind, psi, "chi2", stat, p, psi > config.psi_threshold and p < config.p_value,
                        ref_n, cur_n, ref_mode, cur_mode)


def compute_drift(reference: pd.DataFrame, current: pd.DataFrame, config: DriftConfig | None = None,
                  columns: Sequence[str] | None = None, exclude: Iterable[str] = ()) -> DriftReport:
    """Drift of every column the two frames share (or ``columns``), minus ``exclude`` (ids, timestamps)."""
    config = config or DriftConfig()
    if columns is None:
        skip = set(exclude)
        columns = [c for c in reference.columns if c in current.columns and c not in skip]
    else:
        missing = [c for c in columns if c not in reference.columns or c not in current.columns]
        if missing:
            raise SundayError(f"compute_drift: column(s) {', '.join(missing)} not in both frames")
    if not len(columns):
        raise SundayError("compute_drift: the reference and current frames share no column")
    feats = [column_drift(c, reference[c], current[c], config) for c in columns]
    return DriftReport(feats, config, len(reference), len(current))


__all__ = ["DriftConfig", "DriftReport", "FeatureDrift", "compute_drift", "column_drift", "psi_numeric",
           "psi_categorical", "psi_from_counts", "quantile_edges", "bin_counts", "numeric_counts", "category_counts"]
