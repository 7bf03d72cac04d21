"""Injected anomalies and their ground-truth labels.

Five kinds, each with a window (start, end) and the entity it concerns:

=========================  ==========================================================================================
kind                       what is injected (and how it shows in the observable event log)
=========================  ==========================================================================================
``velocity_drop``          a project's work pace drops to 15-35 % inside the window (fewer completions and hours)
``creation_spike``         a burst of 5-10x the project's usual task creation over 1-3 days (many ``created``)
``stuck_task``             a started task makes no progress for 20-60 days (no event at all inside the window)
``reassignment_churn``     a task is passed around 3-6 times in a few days (a run of ``reassigned`` events)
``workload_concentration`` most of a team's new work goes to one person for 3-5 weeks (``assigned`` share jumps)
=========================  ==========================================================================================

Labels are ground truth and are only written under ``truth/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sunday.data.simulator.config import SimConfig
from sunday.data.simulator.entities import DAY, Org, Tasks

KINDS = ("velocity_drop", "creation_spike", "stuck_task", "reassignment_churn", "workload_concentration")

ANOMALY_SCHEMA = pa.schema([
    ("anomaly_id", pa.string()), ("kind", pa.string()), ("workspace_id", pa.string()), ("team_id", pa.string()),
    ("project_id", pa.string()), ("user_id", pa.string()), ("task_id", pa.string()),
    ("start", pa.timestamp("us")), ("end", pa.timestamp("us")), ("magnitude", pa.float64()),
])


@dataclass
class AnomalyPlan:
    # per project: velocity-drop window and pace factor (inf / 1 when none)
    vd_start: np.ndarray
    vd_end: np.ndarray
    vd_rate: np.ndarray
    spikes: list[tuple[int, float, float, int]] = field(default_factory=list)  # project, start, end, n tasks
    concentration: list[tuple[int, int, float, float, float]] = field(default_factory=list)  # team, user, s, e, boost
    # per task (filled by pick_tasks)
    stuck: np.ndarray | None = None
    stuck_frac: np.ndarray | None = None
    stuck_gap: np.ndarray | None = None
    churn: np.ndarray | None = None
    churn_k: np.ndarray | None = None


def _how_many(rng: np.random.Generator, expected: float, rate: float, eligible: int) -> int:
    if rate <= 0 or eligible <= 0:
        return 0
    return int(min(eligible, max(1, rng.poisson(expected * rate))))


def plan_projects(rng: np.random.Generator, config: SimConfig, org: Org, counts: np.ndarray) -> AnomalyPlan:
    """Project- and user-level anomalies, decided before tasks exist (spikes add tasks)."""
    H = config.horizon_hours
    rate = config.anomaly_rate
    P = len(org.project_ids)
    plan = AnomalyPlan(np.full(P, np.inf), np.full(P, np.inf), np.ones(P))
    ps, ae = org.project_start, org.project_active_end
    work_end = np.minimum(org.project_end, H)

    # velocity drops: inside the active period, after the ramp-up
    lo, hi = ps + 21 * DAY, work_end - 28 * DAY
    eligible = np.flatnonzero((hi > lo + DAY) & (counts >= 30))
    k = _how_many(rng, 0.1 * P, rate, len(eligible))
    for p in np.sort(rng.choice(eligible, k, replace=False)) if k else ():
        s = float(rng.uniform(lo[p], hi[p]))
        plan.vd_start[p] = s
        plan.vd_end[p] = s + float(rng.uniform(14, 28)) * DAY
        plan.vd_rate[p] = float(rng.uniform(0.15, 0.35))

    # creation spikes: away from the initial backlog burst
    lo, hi = ps + 14 * DAY, ae - 5 * DAY
    eligible = np.flatnonzero((hi > lo + DAY) & (counts >= 20))
    k = _how_many(rng, 0.08 * P, rate, len(eligible))
    for p in np.sort(rng.choice(eligible, k, replace=False)) if k else ():
        s = float(rng.uniform(lo[p], hi[p]))
        days = float(rng.uniform(1, 3))
        per_day = counts[p] * 0.75 / max((ae[p] - ps[p]) / DAY, 1.0)
        n_extra = int(max(10, round(rng.uniform(5, 10) * per_day * days)))
        plan.spikes.append((int(p), s, s + days * DAY, n_extra))

    # workload concentration: one member of a team of 3+ gets most new work for a few weeks
    team_size = np.bincount(org.user_team, minlength=len(org.team_ids))
    eligible = np.flatnonzero(team_size >= 3)
    k = _how_many(rng, 0.15 * len(org.team_ids), rate, len(eligible)) if H > 80 * DAY else 0
    for t in np.sort(rng.choice(eligible, k, replace=False)) if k else ():
        members = org.team_members(int(t))
        user = int(members[1 + int(rng.integers(0, len(members) - 1))])  # not the lead
        s = float(rng.uniform(30 * DAY, H - 45 * DAY))
        plan.concentration.append((int(t), user, s, s + float(rng.uniform(21, 35)) * DAY, 10.0))
    return plan


def pick_tasks(rng: np.random.Generator, config: SimConfig, tasks: Tasks, plan: AnomalyPlan) -> None:
    """Task-level anomalies: stuck tasks and reassignment churn."""
    H = config.horizon_hours
    rate = config.anomaly_rate
    n = len(tasks)
    plan.stuck = np.zeros(n, dtype=bool)
    plan.stuck_frac = rng.uniform(0.15, 0.85, n)
    plan.stuck_gap = rng.uniform(20, 60, n) * DAY
    plan.churn = np.zeros(n, dtype=bool)
    plan.churn_k = rng.integers(3, 7, n)
    normal = ~tasks.cancelled & ~tasks.spike
    eligible = np.flatnonzero(normal & (tasks.assign_at < H - 80 * DAY))
    k = _how_many(rng, 0.0025 * n, rate, len(eligible))
    if k:
        plan.stuck[rng.choice(eligible, k, replace=False)] = True
    eligible = np.flatnonzero(normal & ~plan.stuck & (tasks.assign_at < H - 14 * DAY))
    k = _how_many(rng, 0.002 * n, rate, len(eligible))
    if k:
        plan.churn[rng.choice(eligible, k, replace=False)] = True


def labels(config: SimConfig, org: Org, tasks: Tasks, plan: AnomalyPlan, tl) -> pa.Table:
    """The ground-truth label table of one workspace (``tl`` is the schedule from ``events.schedule``)."""
    rows: dict[str, list] = {name: [] for name in ANOMALY_SCHEMA.names}
    base = config.start_us
    H = config.horizon_hours

    def add(kind, team=None, project=None, user=None, task=None, start=0.0, end=0.0, magnitude=np.nan):
        rows["kind"].append(kind)
        rows["team_id"].append(org.team_ids[team] if team is not None else None)
        rows["project_id"].append(org.project_ids[project] if project is not None else None)
        rows["user_id"].append(org.user_ids[user] if user is not None and user >= 0 else None)
        rows["task_id"].append(tasks.ids[int(task)].as_py() if task is not None else None)
        rows["start"].append(base + int(round(start * 3600)) * 1_000_000)
        rows["end"].append(base + int(round(min(end, H) * 3600)) * 1_000_000)
        rows["magnitude"].append(float(magnitude))

    for p in np.flatnonzero(np.isfinite(plan.vd_start)):
        add("velocity_drop", team=int(org.project_team[p]), project=int(p), start=plan.vd_start[p],
            end=plan.vd_end[p], magnitude=plan.vd_rate[p])
    for p, s, e, n_extra in plan.spikes:
        add("creation_spike", team=int(org.project_team[p]), project=p, start=s, end=e, magnitude=n_extra)
    for i in np.flatnonzero(tl.stuck):
        add("stuck_task", team=int(tasks.team[i]), project=int(tasks.project[i]), user=int(tl.final_user[i]),
            task=i, start=tl.stuck_at[i], end=tl.stuck_at[i] + plan.stuck_gap[i], magnitude=plan.stuck_gap[i] / DAY)
    churn_tasks = np.flatnonzero(tl.reason == 2)
    if len(churn_tasks):
        sel = np.isin(tl.re_task, churn_tasks)
        first = {}
        last = {}
        for t, at in zip(tl.re_task[sel], tl.re_time[sel]):
            first.setdefault(int(t), at)
            last[int(t)] = at
        for i in churn_tasks:
            add("reassignment_churn", team=int(tasks.team[i]), project=int(tasks.project[i]),
                user=int(tl.final_user[i]), task=i, start=first[int(i)], end=last[int(i)],
                magnitude=float(plan.churn_k[i]))
    for team, user, s, e, boost in plan.concentration:
        add("workload_concentration", team=team, user=user, start=s, end=e, magnitude=boost)
    n = len(rows["kind"])
    rows["anomaly_id"] = [f"{org.ws_id}-a{i:04d}" for i in range(n)]
    rows["workspace_id"] = [org.ws_id] * n
    return pa.table({name: pa.array(rows[name], type=ANOMALY_SCHEMA.field(name).type)
                     for name in ANOMALY_SCHEMA.names}, schema=ANOMALY_SCHEMA)
