"""One workspace (and one partition of workspaces) as Arrow tables: the observable ones and the hidden truth.

Observable tables follow the data-model specs (``workspaces``, ``teams``, ``users``, ``projects``, ``tasks``,
``task_events``) and are validated per partition. They carry only what a real tracker would show: declared skills
and capacity, story points, the final status and assignee at the end of the observation period. The hidden values
(true proficiencies, speed, real capacity, true effort, true completion, the assignment policy, anomaly labels) go to
the ``truth`` tables only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sunday.data.simulator import anomalies as A
from sunday.data.simulator import text as T
from sunday.data.simulator.config import EVENTS_PER_TASK, Plan, SimConfig
from sunday.data.simulator.entities import KINDS, PRIORITIES, allocate_tasks, build_org, build_tasks
from sunday.data.simulator.events import EVENT_TYPES, STATUSES, build_events, schedule
from sunday.schema import validate

TS = pa.timestamp("us")

#: observable table name -> data-model spec it is validated against
OBSERVABLE_SPECS = {
    "workspaces": "workspaces", "teams": "teams", "users": "users", "projects": "projects", "tasks": "tasks",
    "events": "task_events",
}

TRUTH_SCHEMAS: dict[str, pa.Schema] = {
    "workspace_truth": pa.schema([
        ("workspace_id", pa.string()), ("policy_skill_weight", pa.float64()), ("policy_load_weight", pa.float64()),
        ("policy_temperature", pa.float64()), ("utilisation", pa.float64()), ("hours_per_point", pa.float64()),
    ]),
    "user_skills": pa.schema([
        ("user_id", pa.string()), ("workspace_id", pa.string()), ("skill", pa.string()),
        ("proficiency", pa.float64()),
    ]),
    "user_truth": pa.schema([
        ("user_id", pa.string()), ("workspace_id", pa.string()), ("team_id", pa.string()),
        ("primary_skill", pa.string()), ("speed", pa.float64()), ("true_weekly_capacity_hours", pa.float64()),
        ("time_log_factor", pa.float64()), ("is_lead", pa.bool_()),
    ]),
    "task_truth": pa.schema([
        ("task_id", pa.string()), ("workspace_id", pa.string()), ("project_id", pa.string()), ("kind", pa.string()),
        ("true_skills", pa.list_(pa.string())), ("initial_effort_hours", pa.float64()),
        ("true_effort_hours", pa.float64()), ("worker_id", pa.string()), ("skill_match", pa.float64()),
        ("load_weeks_at_planning", pa.float64()), ("true_start", TS), ("true_completion", TS),
        ("cancelled", pa.bool_()), ("completed_in_period", pa.bool_()), ("late", pa.bool_()),
        ("reassign_reason", pa.string()), ("stuck", pa.bool_()), ("dependency_wait_hours", pa.float64()),
    ]),
    "anomalies": A.ANOMALY_SCHEMA,
}

REASSIGN_REASONS = ("none", "mismatch_or_overload", "churn")


def _ts(config: SimConfig, hours: np.ndarray) -> pa.Array:
    hours = np.asarray(hours, dtype=np.float64)
    mask = ~np.isfinite(hours)
    us = config.start_us + np.round(np.where(mask, 0.0, hours) * 3600.0).astype(np.int64) * 1_000_000
    return pa.array(us, type=TS, mask=mask)


def _take(values: pa.Array | list, idx: np.ndarray) -> pa.Array:
    """values[idx] with idx < 0 as null."""
    if not isinstance(values, pa.Array):
        values = pa.array(values, type=pa.string())
    idx = np.asarray(idx, dtype=np.int64)
    return values.take(pa.array(idx, mask=idx < 0))


def _const(value: str, n: int) -> pa.Array:
    return pa.array([value], type=pa.string()).take(pa.array(np.zeros(n, dtype=np.int64)))


def _lists(mask: np.ndarray, names: pa.Array) -> pa.Array:
    """Row i -> names of the True columns of mask[i]."""
    rows, cols = np.nonzero(mask)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=mask.shape[0]))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), names.take(pa.array(cols.astype(np.int64))))


def _nullable(values: np.ndarray) -> pa.Array:
    values = np.asarray(values, dtype=np.float64)
    return pa.array(values, mask=np.isnan(values))


def generate_workspace(config: SimConfig, ws_index: int, n_events: int) -> dict[str, pa.Table]:
    """All tables of workspace ``ws_index`` given its event budget (observable + ``truth/...``)."""
    rng = np.random.default_rng(config.workspace_seed(ws_index))
    n_tasks = max(1, int(round(n_events / EVENTS_PER_TASK)))
    org = build_org(rng, config, ws_index, n_tasks)
    counts = allocate_tasks(rng, org, n_tasks)
    plan = A.plan_projects(rng, config, org, counts)
    tasks = build_tasks(rng, config, org, counts, plan.spikes)
    A.pick_tasks(rng, config, tasks, plan)
    sc = schedule(rng, config, org, tasks, plan)
    ev, final = build_events(rng, config, org, tasks, sc, plan)

    skills = pa.array(list(config.skills), type=pa.string())
    ws = org.ws_id
    U, P, n, m = org.n_users, len(org.project_ids), len(tasks), len(ev.task)
    user_ids = pa.array(org.user_ids, type=pa.string())
    team_ids = pa.array(org.team_ids, type=pa.string())
    project_ids = pa.array(org.project_ids, type=pa.string())
    out: dict[str, pa.Table] = {}

    out["workspaces"] = pa.table({
        "workspace_id": [ws], "name": [org.name], "source": ["simulator"],
        "created_at": _ts(config, np.array([org.created_h])),
    })
    out["teams"] = pa.table({"team_id": team_ids, "workspace_id": _const(ws, len(org.team_ids)),
                             "name": pa.array(org.team_names, type=pa.string())})
    out["users"] = pa.table({
        "user_id": user_ids, "workspace_id": _const(ws, U), "name": pa.array(org.user_names, type=pa.string()),
        "team_id": _take(team_ids, org.user_team), "skills": _lists(org.declared, skills),
        "weekly_capacity_hours": pa.array(org.declared_capacity), "timezone": pa.array(org.user_tz, type=pa.string()),
    })
    out["projects"] = pa.table({
        "project_id": project_ids, "workspace_id": _const(ws, P), "team_id": _take(team_ids, org.project_team),
        "name": pa.array(org.project_names, type=pa.string()), "start_date": _ts(config, org.project_start),
        "planned_end": _ts(config, org.project_end),
    })
    dep_mask = tasks.deps >= 0
    dep_rows = np.repeat(np.arange(n), dep_mask.sum(axis=1))
    dep_offsets = np.concatenate([[0], np.cumsum(dep_mask.sum(axis=1))]).astype(np.int32)
    out["tasks"] = pa.table({
        "task_id": tasks.ids, "workspace_id": _const(ws, n), "project_id": _take(project_ids, tasks.project),
        "title": tasks.title, "description": tasks.description,
        "required_skills": _lists(tasks.req_observed, skills), "story_points": pa.array(final.points),
        "priority": _take(list(PRIORITIES), tasks.priority), "status": _take(list(STATUSES), final.status),
        "assignee_id": _take(user_ids, final.assignee), "created_at": _ts(config, tasks.created),
        "due_date": _ts(config, tasks.due),
        "dependencies": pa.ListArray.from_arrays(pa.array(dep_offsets), tasks.ids.take(
            pa.array(tasks.deps[dep_mask].astype(np.int64)))) if len(dep_rows) else
        pa.ListArray.from_arrays(pa.array(dep_offsets), pa.array([], type=pa.string())),
        "split": pa.nulls(n, pa.string()), "source_key": pa.nulls(n, pa.string()),
        "source_order": pa.array(np.arange(n, dtype=np.int64)),
    })
    event_ids = T.join(pa.scalar(f"{ws}-e"), pc.utf8_lpad(pc.cast(pa.array(np.arange(m)), pa.string()),
                                                          width=8, padding="0"), sep="")
    out["events"] = pa.table({
        "event_id": event_ids, "workspace_id": _const(ws, m), "project_id": _take(project_ids, tasks.project[ev.task]),
        "task_id": tasks.ids.take(pa.array(ev.task)), "event_type": _take(list(EVENT_TYPES), ev.etype),
        "timestamp": pa.array(ev.ts_us, type=TS), "user_id": _take(user_ids, ev.user),
        "actor_id": _take(user_ids, ev.actor), "from_status": _take(list(STATUSES), ev.from_status),
        "to_status": _take(list(STATUSES), ev.to_status), "hours": _nullable(ev.hours),
        "story_points": _nullable(ev.points), "text": _take(list(T.COMMENTS), ev.text),
    })

    # -- hidden ground truth
    out["truth/workspace_truth"] = pa.table({
        "workspace_id": [ws], "policy_skill_weight": [org.skill_weight], "policy_load_weight": [org.load_weight],
        "policy_temperature": [org.temperature], "utilisation": [org.utilisation],
        "hours_per_point": [org.hours_per_point],
    })
    S = len(config.skills)
    out["truth/user_skills"] = pa.table({
        "user_id": _take(user_ids, np.repeat(np.arange(U), S)), "workspace_id": _const(ws, U * S),
        "skill": skills.take(pa.array(np.tile(np.arange(S), U))), "proficiency": pa.array(org.proficiency.ravel()),
    })
    out["truth/user_truth"] = pa.table({
        "user_id": user_ids, "workspace_id": _const(ws, U), "team_id": _take(team_ids, org.user_team),
        "primary_skill": skills.take(pa.array(org.primary_skill)), "speed": pa.array(org.speed),
        "true_weekly_capacity_hours": pa.array(org.true_capacity), "time_log_factor": pa.array(org.log_factor),
        "is_lead": pa.array(org.is_lead),
    })
    H = config.horizon_hours
    completion = np.where(tasks.cancelled, np.nan, sc.done)
    dep_done = np.where(dep_mask, sc.finish[np.maximum(tasks.deps, 0)], -np.inf).max(axis=1)
    dep_wait = np.where(np.isfinite(dep_done), np.maximum(0.0, dep_done - sc.last_assign), 0.0)
    out["truth/task_truth"] = pa.table({
        "task_id": tasks.ids, "workspace_id": _const(ws, n), "project_id": _take(project_ids, tasks.project),
        "kind": _take(list(KINDS), tasks.kind), "true_skills": _lists(tasks.req_true, skills),
        "initial_effort_hours": pa.array(tasks.effort0), "true_effort_hours": pa.array(tasks.effort),
        "worker_id": _take(user_ids, sc.final_user), "skill_match": _nullable(sc.fit),
        "load_weeks_at_planning": _nullable(sc.load), "true_start": _ts(config, sc.start),
        "true_completion": _ts(config, completion), "cancelled": pa.array(tasks.cancelled),
        "completed_in_period": pa.array(~tasks.cancelled & (sc.done <= H)),
        "late": pa.array(~tasks.cancelled & ~np.isnan(tasks.due) & (np.nan_to_num(sc.done) > tasks.due)),
        "reassign_reason": _take(list(REASSIGN_REASONS), sc.reason.astype(np.int64)), "stuck": pa.array(sc.stuck),
        "dependency_wait_hours": _nullable(np.where(tasks.cancelled, np.nan, dep_wait)),
    })
    out["truth/anomalies"] = A.labels(config, org, tasks, plan, sc)
    return out


def table_names() -> list[str]:
    return list(OBSERVABLE_SPECS) + [f"truth/{name}" for name in TRUTH_SCHEMAS]


def conform(name: str, table: pa.Table) -> pa.Table:
    """Validate an observable table against its spec, or cast a truth table to its fixed schema."""
    if name in OBSERVABLE_SPECS:
        return validate(OBSERVABLE_SPECS[name], table)
    schema = TRUTH_SCHEMAS[name.split("/", 1)[1]]
    return table.select(schema.names).cast(schema)


@dataclass(frozen=True)
class PartitionOutput:
    index: int
    tables: dict[str, pa.Table]  # validated / conformed, all workspaces of the partition concatenated

    @property
    def n_events(self) -> int:
        return self.tables["events"].num_rows


def generate_partition(config: SimConfig, plan: Plan, index: int) -> PartitionOutput:
    lo, hi = plan.partitions[index]
    per_ws = [generate_workspace(config, w, plan.workspace_events[w]) for w in range(lo, hi)]
    tables = {name: conform(name, pa.concat_tables([t[name] for t in per_ws])) for name in table_names()}
    return PartitionOutput(index, tables)
