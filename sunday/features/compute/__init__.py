"""Pure pandas / numpy feature computations, one workspace at a time (the unit the pipelines parallelise over).

Point in time: a row stamped T is computed only from events with timestamp <= T. Daily rows are stamped at the
end of the UTC day (23:59:59.999999) and include that day's events; weekly rows at the end of the ISO week
(Sunday); ``task_features`` rows at the event that creates them. The hidden ``truth`` tables are never read, and
of the tasks table only what is fixed at creation (text, required skills, priority, due date, dependencies) is
used -- its status / assignee / story points are end-of-period values.

    frames = load_workspace(sim_path, "w000003")
    tables = compute_workspace(frames, embedder)   # group name -> pa.Table in GROUPS[name].arrow_schema()

Streaming (one entity recomputed after a new event, same code as the batch):
:func:`user_workload_asof`, :func:`task_features_asof` (and :func:`user_skills_asof`).
"""

from __future__ import annotations

import pyarrow as pa

from sunday.features.compute import project, skills, tasks, team, workload
from sunday.features.compute.common import Timeline, prepare_events
from sunday.features.compute.frame import (
    WorkspaceFrames, frames_from_tables, iter_workspaces, list_workspaces, load_workspace, resolve_simulation,
)
from sunday.features.compute.skills import Embedder, user_skills_asof
from sunday.features.compute.tasks import task_features_asof
from sunday.features.compute.workload import affected_users, previous_assignee, user_workload_asof
from sunday.features.groups import GROUPS

__all__ = [
    "WorkspaceFrames", "compute_workspace", "load_workspace", "iter_workspaces", "list_workspaces",
    "frames_from_tables", "resolve_simulation", "user_workload_asof", "task_features_asof", "user_skills_asof",
    "affected_users", "previous_assignee", "Embedder",
]


def compute_workspace(frames: WorkspaceFrames, embedder: Embedder) -> dict[str, pa.Table]:
    """Every feature group of one workspace: group name -> table in exactly ``GROUPS[name].arrow_schema()``."""
    ev = prepare_events(frames.events)
    vocab = workload.user_index(ev, frames.users)
    tl = Timeline(ev, vocab)
    cum = workload.cumulative(workload.user_deltas(tl, frames.tasks))
    out = {
        "user_workload": workload.compute(tl, frames.tasks, frames.users, vocab, cum=cum),
        "user_skills": skills.compute(ev, frames.tasks, embedder),
        "task_features": tasks.compute(ev, frames.tasks),
        "project_velocity": project.compute(tl, frames.tasks),
        "team_balance": team.compute(cum, workload.active_days(tl), frames.users, vocab),
    }
    for name, table in out.items():
        expected = GROUPS[name].arrow_schema()
        if not table.schema.equals(expected):
            raise AssertionError(f"{name}: schema {table.schema} != contract {expected}")
    return {name: out[name] for name in GROUPS}
