"""Implicit user-task interactions and user-user collaboration pairs from the observable event log.

Everything here reads the OBSERVABLE ``events`` table (``task_events`` schema) and, for the item and user
catalogues, the observable ``tasks`` and ``users`` tables; never the simulator's hidden ``truth/...`` tables (true
skills, effort, the assignment policy). An event touches up to two people: its ``user_id`` (the assignee the event
is about: the new assignee of ``assigned`` / ``reassigned``, the worker of ``status_changed`` / ``time_logged`` /
``completed`` / ``scope_changed``) and its ``actor_id`` (who did it: the reporter of ``created``, the lead who
assigns, the reviewer who moves a task to done or back, a commenter). Each (event type, role) carries a weight,
:data:`EVENT_WEIGHTS`: doing the work weighs most, assigning or reviewing someone else's work less, a comment or a
report least. A person counted in both roles of one event gets the larger weight once.

:func:`build_interactions` deduplicates to one row per (workspace, user, task): ``first_ts`` (first touch),
``last_ts``, ``weight`` (sum of the event weights), ``n_events`` and the task's ``project_id``.
:func:`collaboration_pairs` pairs the users who touched the same task. :func:`time_split` holds out each user's
most recent tasks (by first touch): the protocol of ``sunday eval cf-sim`` and of the training job.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sunday.errors import SundayError

#: (event type) -> (weight of its ``user_id``, weight of its ``actor_id``); 0 = the role does not count
EVENT_WEIGHTS: dict[str, tuple[float, float]] = {
    "created": (0.0, 1.0),         # actor: the reporter
    "assigned": (3.0, 1.0),        # user: the new assignee; actor: who assigned (a lead)
    "reassigned": (3.0, 1.0),
    "status_changed": (2.0, 1.5),  # user: the worker; actor: the worker or a reviewer / lead
    "completed": (3.0, 3.0),       # user and actor: the worker
    "time_logged": (2.0, 2.0),
    "scope_changed": (1.0, 1.0),   # user: the worker; actor: a lead
    "commented": (0.0, 1.5),       # actor: the commenter (events carry no user_id)
}

EVENT_COLUMNS = ("workspace_id", "task_id", "event_type", "timestamp", "user_id", "actor_id")
INTERACTION_COLUMNS = ["workspace_id", "user_id", "task_id", "project_id", "first_ts", "last_ts", "weight",
                       "n_events"]
PAIR_COLUMNS = ["workspace_id", "user_a", "user_b", "first_ts", "n_tasks"]


def _frame(table: Any, name: str, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """A pandas frame of ``columns`` from a pyarrow table or a DataFrame; SundayError naming a missing column."""
    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):
        present = set(table.column_names)
        missing = [c for c in columns if c not in present]
        if missing:
            raise SundayError(f"{name}: missing column(s) {missing}")
        return table.select(list(columns)).to_pandas()
    if not isinstance(table, pd.DataFrame):
        raise SundayError(f"{name} must be a pyarrow Table or a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise SundayError(f"{name}: missing column(s) {missing}")
    return table[list(columns)]


def build_interactions(events: Any, weights: dict[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """One row per (workspace, user, task) someone touched (columns :data:`INTERACTION_COLUMNS`), by first touch.

    ``events``: the observable event log (pyarrow Table or DataFrame with ``workspace_id, task_id, event_type,
    timestamp, user_id, actor_id`` and optionally ``project_id``). ``weights``: per event type, the weights of the
    ``user_id`` and ``actor_id`` roles (default :data:`EVENT_WEIGHTS`; unknown event types count 0).
    """
    weights = EVENT_WEIGHTS if weights is None else weights
    cols = [*EVENT_COLUMNS]
    has_project = "project_id" in (events.column_names if hasattr(events, "column_names") else events.columns)
    if has_project:
        cols.append("project_id")
    ev = _frame(events, "events", cols)
    wu = ev["event_type"].map({k: v[0] for k, v in weights.items()}).fillna(0.0).to_numpy(np.float64)
    wa = ev["event_type"].map({k: v[1] for k, v in weights.items()}).fillna(0.0).to_numpy(np.float64)
    user, actor = ev["user_id"].to_numpy(object), ev["actor_id"].to_numpy(object)
    same = (user == actor)
    wu_eff = np.where(same, np.maximum(wu, wa), wu)  # one person in both roles: the larger weight, once
    wa_eff = np.where(same, 0.0, wa)
    base = ev[["workspace_id", "task_id", "timestamp"] + (["project_id"] if has_project else [])]
    parts = []
    for who, w in ((user, wu_eff), (actor, wa_eff)):
        keep = pd.notna(who) & (w > 0)
        part = base.loc[keep].copy()
        part["user_id"] = who[keep]
        part["weight"] = w[keep]
        parts.append(part)
    touches = pd.concat(parts, ignore_index=True)
    if not has_project:
        touches["project_id"] = None
    if touches.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in INTERACTION_COLUMNS})
    touches = touches.astype({"user_id": str})
    out = (touches.groupby(["workspace_id", "user_id", "task_id"], sort=False, dropna=False)
           .agg(project_id=("project_id", "first"), first_ts=("timestamp", "min"), last_ts=("timestamp", "max"),
                weight=("weight", "sum"), n_events=("weight", "size"))
           .reset_index())
    out = out.sort_values(["first_ts", "workspace_id", "user_id", "task_id"], kind="stable").reset_index(drop=True)
    return out[INTERACTION_COLUMNS]


def collaboration_pairs(interactions: pd.DataFrame) -> pd.DataFrame:
    """User pairs (``user_a < user_b``) who touched the same task: ``first_ts`` (the first time both had touched one
    task: the later of their two first touches, minimised over shared tasks) and ``n_tasks`` shared."""
    x = interactions[["workspace_id", "task_id", "user_id", "first_ts"]]
    m = x.merge(x, on=["workspace_id", "task_id"], suffixes=("_a", "_b"))
    m = m[m["user_id_a"] < m["user_id_b"]]
    if m.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS})
    m = m.assign(first_ts=np.maximum(m["first_ts_a"].to_numpy(), m["first_ts_b"].to_numpy()))
    out = (m.groupby(["workspace_id", "user_id_a", "user_id_b"], sort=False)
           .agg(first_ts=("first_ts", "min"), n_tasks=("task_id", "size")).reset_index()
           .rename(columns={"user_id_a": "user_a", "user_id_b": "user_b"}))
    return out.sort_values(["first_ts", "user_a", "user_b"], kind="stable").reset_index(drop=True)[PAIR_COLUMNS]


def item_catalog(tasks: Any) -> pd.DataFrame:
    """The observable task catalogue the model may rank: ``task_id, workspace_id, project_id, required_skills,
    created_at`` (from the ``tasks`` table; its end-of-log status / assignee are not used)."""
    df = _frame(tasks, "tasks", ("task_id", "workspace_id", "project_id", "required_skills", "created_at"))
    df = df.copy()
    df["required_skills"] = [list(s) if s is not None and not (isinstance(s, float) and math.isnan(s)) else []
                             for s in df["required_skills"]]
    return df.reset_index(drop=True)


def user_catalog(users: Any) -> pd.DataFrame:
    """``user_id, workspace_id, team_id`` from the observable ``users`` table (users with no interaction yet are
    the model's cold-start users)."""
    return _frame(users, "users", ("user_id", "workspace_id", "team_id")).reset_index(drop=True)


def time_split(interactions: pd.DataFrame, holdout: float = 0.2, min_tasks: int = 2
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): for each user with at least ``min_tasks`` distinct tasks, the last ``holdout`` share of them
    by first touch (at least 1, rounded) is held out; users with fewer tasks stay whole in train."""
    if not 0 < holdout < 1:
        raise SundayError(f"holdout must be between 0 and 1, got {holdout}")
    if min_tasks < 2:
        raise SundayError(f"min_tasks must be at least 2 (one to train on, one to hold out), got {min_tasks}")
    x = interactions.sort_values(["user_id", "first_ts", "task_id"], kind="stable")
    n = x.groupby("user_id")["task_id"].transform("size").to_numpy()
    pos = x.groupby("user_id").cumcount().to_numpy()
    n_ho = np.where(n >= min_tasks, np.maximum(1, np.round(holdout * n)).astype(np.int64), 0)
    test_mask = pos >= n - n_ho
    train = x[~test_mask].sort_values("first_ts", kind="stable").reset_index(drop=True)
    test = x[test_mask].sort_values("first_ts", kind="stable").reset_index(drop=True)
    return train, test
