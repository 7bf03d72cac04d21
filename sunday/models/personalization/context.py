"""The bandits' context vector for one user, from the online ``user_workload`` feature group.

Eight numbers, each on a unit-ish scale so one ridge prior fits them all: a bias (1), log1p of the open task count,
log1p of the open points, the 7-day hours logged over 40, capacity use (clipped at 2), the completion rate, the
on-time rate and log1p of reassignments away (the two rates default to 0.5 and the counts to 0 when the user has
no row or the value is missing: a new user gets the prior's choice). :data:`CONTEXT_FEATURES` names them in order;
``ProductBandits.context_dim`` must equal their count.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

GROUP = "user_workload"
CONTEXT_FEATURES = ("bias", "log_open_tasks", "log_open_points", "hours_7d_over_40", "capacity_utilisation",
                    "completion_rate", "on_time_rate", "log_reassignments")
_SOURCES = ("open_task_count", "open_points", "hours_logged_7d", "capacity_utilisation", "completion_rate",
            "on_time_rate", "reassignment_count")


def _num(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def context_vector(row: Mapping[str, Any] | None) -> np.ndarray:
    """The context of a user whose ``user_workload`` features are ``row`` (None or missing values: defaults)."""
    r = row or {}
    return np.array([
        1.0,
        math.log1p(max(_num(r.get("open_task_count"), 0.0), 0.0)),
        math.log1p(max(_num(r.get("open_points"), 0.0), 0.0)),
        max(_num(r.get("hours_logged_7d"), 0.0), 0.0) / 40.0,
        min(max(_num(r.get("capacity_utilisation"), 0.0), 0.0), 2.0),
        min(max(_num(r.get("completion_rate"), 0.5), 0.0), 1.0),
        min(max(_num(r.get("on_time_rate"), 0.5), 0.0), 1.0),
        math.log1p(max(_num(r.get("reassignment_count"), 0.0), 0.0)),
    ], dtype=np.float64)


def user_contexts(features, user_ids: list[str]) -> list[np.ndarray]:
    """Contexts of ``user_ids`` read through ``features.get_columns`` (an :class:`OnlineFeatures` or its cache)."""
    cols = features.get_columns(GROUP, [{"user_id": u} for u in user_ids]) if features is not None else {}
    rows = [{k: (cols.get(k) or [None] * len(user_ids))[i] for k in _SOURCES} for i in range(len(user_ids))]
    return [context_vector(r) for r in rows]
