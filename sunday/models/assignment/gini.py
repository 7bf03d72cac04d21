"""Workload Gini of a team, the feature platform's definition (``team_balance.open_points_gini``): the Gini of
open story points over the members, normalised by n/(n-1) so 0 = even and 1 = one member holds everything."""

from __future__ import annotations

import numpy as np

from sunday.features.compute.team import gini as gini_rows


def gini(values: np.ndarray) -> float:
    """Normalised Gini of non-negative values (0 when all are 0 or there is one member)."""
    x = np.clip(np.asarray(values, dtype="float64"), 0, None)
    return float(gini_rows(x[None, :])[0]) if len(x) else 0.0


def gini_after_each(loads: np.ndarray, add: float) -> np.ndarray:
    """Gini of ``loads`` after adding ``add`` to member i, for every i (one row per choice)."""
    loads = np.clip(np.asarray(loads, dtype="float64"), 0, None)
    n = len(loads)
    if n == 0:
        return np.zeros(0)
    trial = np.repeat(loads[None, :], n, axis=0)
    trial[np.arange(n), np.arange(n)] += max(float(add), 0.0)
    return gini_rows(trial)
