"""Workspaces, teams, users (with hidden skills, speed and capacity), projects and tasks of one workspace.

All times are float hours relative to ``config.start``. Everything is drawn from the workspace's own generator, in a
fixed order, with vectorised numpy (loops only over the handful of teams, projects and users).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sunday.data.simulator import text as T
from sunday.data.simulator.config import SimConfig

DAY = 24.0
FIBONACCI = np.array([0.5, 1, 2, 3, 5, 8, 13, 21], dtype=np.float64)
PRIORITIES = ("low", "medium", "high", "critical")
KINDS = ("bug", "feature", "chore")
#: mean true effort of a task in hours (lognormal below), used to size the team to the workload
MEAN_EFFORT_HOURS = 8.5
#: effective ticket hours a user delivers per week on average (capacity x speed x skill match)
EFFECTIVE_WEEKLY_HOURS = 22.0


@dataclass
class Org:
    """One workspace's people and projects. Fields marked hidden never reach the observable tables."""

    ws_index: int
    ws_id: str
    name: str
    created_h: float
    tz: str
    # hidden workspace culture: how the assignment policy weighs skill, load and noise; estimation habits
    skill_weight: float
    load_weight: float
    temperature: float
    utilisation: float
    hours_per_point: float
    # teams
    team_ids: list[str]
    team_names: list[str]
    team_focus: np.ndarray  # (T, S)
    team_bias: np.ndarray  # (T,) hidden log-bias of the team's estimates
    # users
    user_ids: list[str]
    user_names: list[str]
    user_team: np.ndarray  # (U,)
    user_tz: list[str]
    is_lead: np.ndarray  # (U,) bool, first member of each team
    proficiency: np.ndarray  # (U, S) hidden, in [0, 1]
    primary_skill: np.ndarray  # (U,) hidden
    speed: np.ndarray  # (U,) hidden multiplier on work rate
    true_capacity: np.ndarray  # (U,) hidden weekly hours actually available for tickets
    log_factor: np.ndarray  # (U,) hidden: how much of the real time a user logs
    declared_capacity: np.ndarray  # (U,) observable
    declared: np.ndarray  # (U, S) bool observable
    # projects
    project_ids: list[str]
    project_names: list[str]
    project_team: np.ndarray  # (P,)
    project_start: np.ndarray  # (P,) hours
    project_end: np.ndarray  # (P,) planned end, hours
    project_active_end: np.ndarray  # (P,) last time tasks are created
    project_mix: np.ndarray  # (P, S) hidden skill mix

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def team_leads(self) -> np.ndarray:
        """User index of each team's lead."""
        return np.flatnonzero(self.is_lead)

    def team_members(self, team: int) -> np.ndarray:
        return np.flatnonzero(self.user_team == team)


@dataclass
class Tasks:
    """Tasks of one workspace in creation order (task ``k`` is the k-th created)."""

    ids: pa.Array
    project: np.ndarray
    team: np.ndarray
    created: np.ndarray
    kind: np.ndarray
    priority: np.ndarray
    primary: np.ndarray
    req_weights: np.ndarray  # (n, S) hidden true requirement weights, rows sum to 1
    req_true: np.ndarray  # (n, S) bool hidden
    req_observed: np.ndarray  # (n, S) bool: the skill labels put on the ticket (noisy)
    effort0: np.ndarray  # hidden: true effort of the original scope
    effort: np.ndarray  # hidden: true effort after scope changes
    scope_change: np.ndarray  # bool
    points0: np.ndarray  # story points at creation
    points1: np.ndarray  # story points after a scope change (== points0 when none)
    due: np.ndarray  # hours, nan when no due date
    cancelled: np.ndarray  # bool
    cancel_at: np.ndarray  # hours (nan when not cancelled)
    reporter: np.ndarray  # user index
    assign_at: np.ndarray  # hours of the first assignment
    deps: np.ndarray  # (n, 2) earlier task indices of the same project, -1 = none
    spike: np.ndarray  # bool: created by an injected creation spike
    title: pa.Array
    description: pa.Array

    def __len__(self) -> int:
        return len(self.created)


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of a (n, k) probability matrix."""
    cum = np.cumsum(probs, axis=1)
    u = rng.random(len(probs)) * cum[:, -1]
    return np.minimum((u[:, None] > cum).sum(axis=1), probs.shape[1] - 1)


def fib_round(x: np.ndarray) -> np.ndarray:
    """Nearest Fibonacci-like story point value, in log space."""
    x = np.clip(x, FIBONACCI[0], FIBONACCI[-1])
    logs = np.log(FIBONACCI)
    idx = np.abs(np.log(x)[:, None] - logs[None, :]).argmin(axis=1)
    return FIBONACCI[idx]


def build_org(rng: np.random.Generator, config: SimConfig, ws_index: int, n_tasks: int) -> Org:
    skills = config.skills
    S = len(skills)
    H = config.horizon_hours
    weeks = config.days / 7.0
    ws_id = f"w{ws_index:06d}"
    name = f"{rng.choice(T.COMPANY_A)}{rng.choice(T.COMPANY_B)} {ws_index}"
    tz = str(rng.choice(T.TIMEZONES))
    created_h = -float(rng.uniform(1, 400)) * DAY
    skill_weight = float(rng.uniform(1.5, 4.0))
    load_weight = float(rng.uniform(0.4, 2.0))
    temperature = float(rng.uniform(0.25, 0.8))
    utilisation = float(rng.uniform(0.6, 0.9))
    hours_per_point = float(rng.uniform(3.0, 6.0))

    # -- teams: sized so the workload is about `utilisation` of the people's effective capacity
    n_users_target = n_tasks * MEAN_EFFORT_HOURS / (EFFECTIVE_WEEKLY_HOURS * weeks * utilisation)
    n_teams = max(1, int(round(n_users_target / config.users_per_team)))
    archetype = rng.integers(0, len(T.TEAM_ARCHETYPES), n_teams)
    team_focus = np.full((n_teams, S), 0.15)
    team_names = []
    for t, a in enumerate(archetype):
        arch_name, weights = T.TEAM_ARCHETYPES[a]
        for skill, w in weights.items():
            if skill in skills:
                team_focus[t, skills.index(skill)] += w
        suffix = T.TEAM_SUFFIXES[int(rng.integers(0, len(T.TEAM_SUFFIXES)))]
        team_names.append(f"{arch_name} {suffix}".strip() + (f" {t + 1}" if n_teams > len(T.TEAM_ARCHETYPES) else ""))
    team_focus *= rng.gamma(4.0, 0.25, (n_teams, S))
    team_focus /= team_focus.sum(axis=1, keepdims=True)
    team_bias = rng.normal(0.0, 0.2, n_teams)
    team_ids = [f"{ws_id}-t{t:02d}" for t in range(n_teams)]

    # -- users with hidden proficiency vectors
    sizes = np.maximum(2, config.users_per_team + rng.integers(-1, 2, n_teams))
    user_team = np.repeat(np.arange(n_teams), sizes)
    U = len(user_team)
    is_lead = np.zeros(U, dtype=bool)
    is_lead[np.concatenate([[0], np.cumsum(sizes)[:-1]])] = True
    primary = _categorical(rng, team_focus[user_team])
    mix = 0.6 * team_focus[user_team] + 0.4 / S
    mix[np.arange(U), primary] = 0.0
    second = _categorical(rng, mix)
    mix[np.arange(U), second] = 0.0
    third = _categorical(rng, mix)
    has_third = rng.random(U) < 0.4
    prof = rng.beta(1.2, 6.0, (U, S)) * 0.45
    prof[np.arange(U), second] = 0.35 + 0.35 * rng.beta(3, 3, U)
    third_prof = 0.35 + 0.3 * rng.beta(3, 3, U)
    prof[np.arange(U)[has_third], third[has_third]] = third_prof[has_third]
    prof[np.arange(U), primary] = 0.65 + 0.35 * rng.beta(5, 2, U)
    speed = np.clip(rng.lognormal(0.0, 0.25, U), 0.5, 2.0)
    declared_capacity = rng.choice(np.array([40.0] * 7 + [36.0, 32.0, 30.0, 24.0, 20.0]), U)
    true_capacity = declared_capacity * rng.uniform(0.55, 0.95, U)
    log_factor = np.clip(rng.lognormal(-0.1, 0.15, U), 0.5, 1.3)

    # declared skills: the top skills, sometimes missing one, sometimes with a skill the user is weak at
    declared = np.zeros((U, S), dtype=bool)
    ranked = np.argsort(-prof, axis=1, kind="stable")
    drop = rng.random((U, 3)) < 0.2
    add_wrong = rng.random(U) < 0.25
    wrong_pick = rng.random(U)
    for u in range(U):
        declared[u, primary[u]] = True
        for r in range(1, 3):
            s = ranked[u, r]
            if prof[u, s] >= 0.5 and not drop[u, r]:
                declared[u, s] = True
        if add_wrong[u]:
            weak = np.flatnonzero(prof[u] < 0.35)
            if len(weak):
                declared[u, weak[int(wrong_pick[u] * len(weak))]] = True
    first = rng.integers(0, len(T.FIRST_NAMES), U)
    last = rng.integers(0, len(T.LAST_NAMES), U)
    user_names = [f"{T.FIRST_NAMES[a]} {T.LAST_NAMES[b]}" for a, b in zip(first, last)]
    other_tz = rng.integers(0, len(T.TIMEZONES), U)
    user_tz = [tz if keep else T.TIMEZONES[o] for keep, o in zip(rng.random(U) < 0.75, other_tz)]
    user_ids = [f"{ws_id}-u{u:04d}" for u in range(U)]

    # -- projects: each team runs a sequence of overlapping projects over the period
    p_team, p_start, p_end = [], [], []
    for t in range(n_teams):
        s = float(rng.uniform(0, 21)) * DAY
        while True:
            p_team.append(t)
            p_start.append(s)
            p_end.append(s + float(rng.uniform(45, 160)) * DAY)
            s += float(rng.uniform(35, 110)) * DAY
            if s > H - 30 * DAY:
                break
    project_team = np.array(p_team)
    project_start = np.array(p_start)
    project_end = np.array(p_end)
    project_active_end = np.minimum(project_end + 14 * DAY, H)
    P = len(project_team)
    project_mix = team_focus[project_team] * rng.gamma(2.0, 0.5, (P, S))
    project_mix /= project_mix.sum(axis=1, keepdims=True)
    code = rng.integers(0, len(T.CODENAMES), P)
    theme = rng.integers(0, len(T.PROJECT_THEMES), P)
    project_names = [f"{T.CODENAMES[c]} {T.PROJECT_THEMES[h]}" for c, h in zip(code, theme)]
    project_ids = [f"{ws_id}-p{p:03d}" for p in range(P)]

    return Org(
        ws_index=ws_index, ws_id=ws_id, name=name, created_h=created_h, tz=tz,
        skill_weight=skill_weight, load_weight=load_weight, temperature=temperature, utilisation=utilisation,
        hours_per_point=hours_per_point, team_ids=team_ids, team_names=team_names, team_focus=team_focus,
        team_bias=team_bias, user_ids=user_ids, user_names=user_names, user_team=user_team, user_tz=user_tz,
        is_lead=is_lead, proficiency=prof, primary_skill=primary, speed=speed, true_capacity=true_capacity,
        log_factor=log_factor, declared_capacity=declared_capacity, declared=declared, project_ids=project_ids,
        project_names=project_names, project_team=project_team, project_start=project_start,
        project_end=project_end, project_active_end=project_active_end, project_mix=project_mix,
    )


def allocate_tasks(rng: np.random.Generator, org: Org, n_tasks: int) -> np.ndarray:
    """Number of (regular) tasks per project: teams by head count, projects by how long they are active."""
    team_size = np.bincount(org.user_team, minlength=len(org.team_ids)).astype(float)
    active = np.maximum(org.project_active_end - org.project_start, DAY)
    team_active = np.bincount(org.project_team, weights=active, minlength=len(org.team_ids))
    weights = team_size[org.project_team] / team_size.sum() * active / team_active[org.project_team]
    return rng.multinomial(n_tasks, weights / weights.sum())


def build_tasks(rng: np.random.Generator, config: SimConfig, org: Org, counts: np.ndarray,
                spikes: list[tuple[int, float, float, int]]) -> Tasks:
    """Tasks of every project; ``spikes`` adds (project, start, end, n) bursts of extra tasks."""
    S = len(config.skills)
    # creation times: a backlog burst when the project starts, then a steady flow while it is active
    proj = np.repeat(np.arange(len(counts)), counts)
    n_reg = len(proj)
    ps, pe = org.project_start[proj], org.project_active_end[proj]
    backlog = rng.random(n_reg) < 0.25
    created = np.where(backlog, ps + rng.random(n_reg) * 7 * DAY, ps + rng.random(n_reg) * (pe - ps))
    spike = np.zeros(n_reg, dtype=bool)
    if spikes:
        sp_proj = np.concatenate([np.full(n, p) for p, _, _, n in spikes])
        sp_created = np.concatenate([s + rng.random(n) * (e - s) for _, s, e, n in spikes])
        proj = np.concatenate([proj, sp_proj])
        created = np.concatenate([created, sp_created])
        backlog = np.concatenate([backlog, np.zeros(len(sp_proj), dtype=bool)])
        spike = np.concatenate([spike, np.ones(len(sp_proj), dtype=bool)])
    created = np.clip(created, 0.0, config.horizon_hours - 1.0)
    order = np.lexsort((proj, created))  # creation order; project breaks (impossible) ties
    proj, created, backlog, spike = proj[order], created[order], backlog[order], spike[order]
    n = len(proj)
    team = org.project_team[proj]

    # kind, skills
    kind = rng.choice(3, n, p=[0.35, 0.45, 0.2])
    kind[spike] = np.where(rng.random(int(spike.sum())) < 0.7, 0, kind[spike])
    mix = org.project_mix[proj]
    primary = _categorical(rng, mix)
    n_sec = rng.choice(3, n, p=[0.45, 0.4, 0.15])
    sec1 = _categorical(rng, mix)
    sec2 = _categorical(rng, mix)
    sec1 = np.where((n_sec >= 1) & (sec1 != primary), sec1, -1)
    sec2 = np.where((n_sec >= 2) & (sec2 != primary) & (sec2 != sec1), sec2, -1)
    sec1, sec2 = np.where(sec1 >= 0, sec1, sec2), np.where(sec1 >= 0, sec2, -1)
    rows = np.arange(n)
    req_true = np.zeros((n, S), dtype=bool)
    req_true[rows, primary] = True
    req_true[rows[sec1 >= 0], sec1[sec1 >= 0]] = True
    req_true[rows[sec2 >= 0], sec2[sec2 >= 0]] = True
    req_weights = req_true * 0.5
    req_weights[rows, primary] = 1.0
    req_weights /= req_weights.sum(axis=1, keepdims=True)
    # labels on the ticket: mostly right, sometimes missing one, rarely an unrelated one
    keep = np.where(req_weights >= 0.5, rng.random((n, S)) < 0.92, rng.random((n, S)) < 0.75)
    req_observed = req_true & keep
    extra = rng.random(n) < 0.05
    req_observed[rows[extra], rng.integers(0, S, int(extra.sum()))] = True

    # effort (hidden), estimates (observable), scope changes
    n_skills = req_true.sum(axis=1)
    kind_adj = np.array([-0.25, 0.2, -0.1])[kind]
    effort0 = np.clip(rng.lognormal(np.log(5.0) + kind_adj + 0.3 * (n_skills - 1), 0.75), 0.5, 160.0)
    scope_change = rng.random(n) < np.where(effort0 > 12, 0.13, 0.07)
    growth = np.where(scope_change, rng.uniform(1.3, 2.0, n), 1.0)
    effort = effort0 * growth
    est_noise = rng.lognormal(0.0, 0.45, n) * np.exp(org.team_bias[team])
    points0 = fib_round(effort0 * est_noise / org.hours_per_point)
    points1 = fib_round(points0 * growth * rng.lognormal(0.0, 0.15, n))
    bump = scope_change & (points1 <= points0)
    points1[bump] = FIBONACCI[np.minimum(np.searchsorted(FIBONACCI, points0[bump]) + 1, len(FIBONACCI) - 1)]
    points1 = np.where(scope_change, points1, points0)
    scope_change &= points1 != points0  # a 21-pointer growing further stays 21: not a visible change

    priority = np.where(kind == 0, rng.choice(4, n, p=[0.1, 0.4, 0.35, 0.15]),
                        rng.choice(4, n, p=[0.3, 0.47, 0.18, 0.05]))
    priority[spike] = np.maximum(priority[spike], 2)
    pri_factor = np.array([1.3, 1.0, 0.8, 0.5])[priority]
    due = created + DAY * (1.5 + points0 * org.hours_per_point / (DAY * 0.14) * rng.uniform(0.9, 3.0, n) * pri_factor)
    due_day = np.floor(due / DAY)
    due = np.where(due_day * DAY + 17 >= due, due_day * DAY + 17, (due_day + 1) * DAY + 17)
    due[rng.random(n) < 0.25] = np.nan

    cancelled = (rng.random(n) < 0.03) & ~spike
    cancel_at = np.where(cancelled, created + 1.0 + rng.exponential(12 * DAY, n), np.nan)

    # reporter: a member of the project's team (sometimes anyone in the workspace)
    members_sorted = np.argsort(org.user_team, kind="stable")
    team_size = np.bincount(org.user_team, minlength=len(org.team_ids))
    team_off = np.concatenate([[0], np.cumsum(team_size)[:-1]])
    reporter = members_sorted[team_off[team] + (rng.random(n) * team_size[team]).astype(np.int64)]
    anyone = rng.random(n) < 0.1
    reporter[anyone] = rng.integers(0, org.n_users, int(anyone.sum()))

    # first assignment: urgent work is picked up fast, the initial backlog waits for the project to ramp up
    pri_delay = np.array([30.0, 10.0, 4.0, 1.0])[priority]
    assign_at = created + 0.1 + rng.lognormal(np.log(pri_delay), 0.9)
    assign_at += np.where(backlog, rng.uniform(0, 45 * DAY, n), 0.0)

    deps = _dependencies(rng, proj, kind, assign_at)

    title, description = T.TicketText(config.skills).titles_and_descriptions(rng, kind, primary, sec1)
    ids = T.join(pa.scalar(f"{org.ws_id}-k"),
                 pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width=6, padding="0"), sep="")
    return Tasks(
        ids=ids, project=proj, team=team, created=created, kind=kind, priority=priority, primary=primary,
        req_weights=req_weights, req_true=req_true, req_observed=req_observed, effort0=effort0, effort=effort,
        scope_change=scope_change, points0=points0, points1=points1, due=due, cancelled=cancelled,
        cancel_at=cancel_at, reporter=reporter, assign_at=assign_at, deps=deps, spike=spike, title=title,
        description=description,
    )


def _dependencies(rng: np.random.Generator, proj: np.ndarray, kind: np.ndarray, assign_at: np.ndarray) -> np.ndarray:
    """Up to two dependencies per task on recent earlier tasks of the same project (a DAG by construction).

    A task only depends on tasks created *and* first assigned before it, so the scheduler in ``events.py`` always
    knows a dependency's completion time when it plans the dependent task.
    """
    n = len(proj)
    by_proj = np.lexsort((np.arange(n), proj))  # creation order within each project
    pos = np.empty(n, dtype=np.int64)
    pos[by_proj] = np.arange(n)
    first_of_proj = np.searchsorted(proj[by_proj], proj, side="left")  # position where the project block starts
    p_dep = np.array([0.12, 0.4, 0.25])[kind]
    has1 = rng.random(n) < p_dep
    has2 = has1 & (rng.random(n) < 0.3)
    deps = np.full((n, 2), -1, dtype=np.int64)
    for col, has in ((0, has1), (1, has2)):
        back = rng.integers(1, 9, n)
        cand_pos = pos - back
        ok = has & (cand_pos >= first_of_proj)
        cand = np.where(ok, by_proj[np.clip(cand_pos, 0, n - 1)], -1)
        ok &= (cand >= 0) & (cand < np.arange(n))
        ok &= assign_at[np.maximum(cand, 0)] < assign_at
        if col == 1:
            ok &= cand != deps[:, 0]
        deps[:, col] = np.where(ok, cand, -1)
    # keep the first column filled first
    swap = (deps[:, 0] < 0) & (deps[:, 1] >= 0)
    deps[swap] = deps[swap][:, ::-1]
    return deps
