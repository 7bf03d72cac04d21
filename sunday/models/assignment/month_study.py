"""A simulated month of task assignment with the hidden skills known: baselines vs the learned ranker.

The issue's simulator question: completion rate, mean quality and the team workload Gini of round-robin,
least-loaded, skill-only and the learned :class:`~sunday.models.assignment.ranker.AssignmentRanker`, with the
target *Gini < 0.25 while keeping at least 95 % of the skill-only ranker's top-1 accuracy*.

Environment (:class:`MonthEnv`), one simulated workspace
    People and tasks come from the workspace simulator's own building blocks: :func:`build_org` (teams, hidden
    proficiency / speed / true capacity, declared capacity) and :func:`build_tasks` (arrivals from project backlogs
    and flows, hidden skill requirements and effort, the noisy skill labels put on the ticket, story points,
    priority, due dates). Tasks are decided in order of their first-assignment time ``assign_at``; cancelled tasks
    and dependencies are left out, candidates are the members of the task's team. The first ``history_days`` are the
    *history*: every task is assigned by the simulator's historical policy (``events.py``: perceived fit = half the
    true proficiency match, half the declared skills, plus noise; minus the workspace's load weight times the
    queued weeks of work; Gumbel noise at the workspace's temperature). The next ``eval_days`` are the *evaluation
    month*: each arriving task is given to the policy under test, from the same post-history state, with the same
    arrivals and the same per-task noise for every policy (common random numbers).

Outcome model (kept simple; the pace, rework and review formulas of ``events.py``)
    * hidden fit of user u for task k: ``fit = sum_s req_weights[k, s] * proficiency[u, s]`` (``events.py``);
    * a task's work starts when it is assigned; a user shares their time equally among the tasks in hand
      (processor sharing) and each task moves at ``true_capacity / 168 * speed * (0.3 + 0.7 * fit)`` effort hours
      per hour of that time (``events.py``'s pace; its overload slow-down is here the sharing itself: a user's
      capacity is conserved, so piling work on the best person delays all of it);
    * rework, with probability ``0.06 + 0.4 * (1 - fit)^2``, adds 10-35 % to the effort; after the work a review wait
      (lognormal, median 8 h), plus a send-back wait (median 6 h) when reworked; ``review_cycles`` is 1 or 2;
    * quality on 0-5: ``clip(1 + 4 * fit - 0.75 * rework + N(0, 0.5), 0, 5)``;
    * users log ``log_factor`` of the hours they are busy (``events.py``'s hidden log factor).
    ``load`` scales the task flow against the one ``build_org`` sizes the teams for: at the default 0.5 users hold
    1-2 open tasks (1.6) on average and a task takes about 8 days, as in the workspace simulator's own output (1-2
    open tasks per user, 4-5 days); 1.0 (7 open tasks per user) is a saturated team.

As-of features (:func:`asof_candidates`)
    The candidate columns of the pair-frame contract (:mod:`sunday.models.assignment.pairs`) are computed from the
    observable part of the :class:`Ledger` alone (who got which task when, in review / done times, review cycles,
    logged hours), each used only when it is at or before the decision time. Skill counts count the *observed*
    skill labels of the tasks a user completed before the decision. Hidden proficiency, speed, capacity, effort,
    fit and the per-task noise never enter them (``reassignment_count`` is always 0: reassignments are not
    modelled).

Metrics (:func:`month_metrics`, over the tasks assigned in the evaluation month)
    ``completion_rate``: done by the month's end. ``mean_quality``: of every task assigned in the month (fixed at
    assignment). ``on_time_rate``: tasks due within the month, done by their due date. ``top1``: share of tasks given
    to the team member with the best hidden fit; ``top1_vs_skill_only``: its ratio to skill-only's. ``gini``: the
    team workload Gini = the normalised Gini (``team_balance``'s ``open_points_gini``,
    :func:`sunday.features.compute.team.gini`: 0 even, 1 one member holds everything) of the open story points of a
    team's members at each day end of the month, averaged over the days, then over every team of every workspace;
    ``gini_raw`` the same with the plain Gini (at most (n-1)/n; for comparison with papers that use it);
    ``gini_assigned`` the Gini of the story points each member received during the month. ``mean_fit`` (hidden fit
    of the chosen user) and ``mean_cycle_days`` (assigned to done; the work in hand at the month's end finishes
    without further arrivals).

Policies (:class:`Policy`: ``choose(task, candidates) -> user_id``)
    round-robin within the team, least-loaded (fewest open points), skill-only (highest ``skill_match`` of
    :func:`pair_features`, ties to fewer open points), the learned ranker (fit on the history's pair frames: label
    = the historical assignee, completed / quality = the observed outcome of that assignment, NaN for the others)
    with its default weights and with other balance weights, and two references that read the hidden truth: the
    historical policy and an oracle that always picks the best hidden fit.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd

from sunday.data.simulator.config import SimConfig
from sunday.data.simulator.entities import (
    DAY, EFFECTIVE_WEEKLY_HOURS, MEAN_EFFORT_HOURS, Org, allocate_tasks, build_org, build_tasks,
)
from sunday.features.compute.team import gini
from sunday.models.assignment.pairs import pair_features

WEEK = 7 * DAY
#: a history assignment counts as completed when done within this many days (the ranker's ``completed`` label)
COMPLETION_WINDOW_DAYS = 14
#: task flow relative to the one ``build_org`` sizes the teams for (see the module docstring)
DEFAULT_LOAD = 0.5
#: the issue's target
TARGET_GINI = 0.25
TARGET_TOP1_RATIO = 0.95
#: expected share of effective capacity the simulator's workload fills (``build_org`` draws it in 0.6-0.9)
_MEAN_UTILISATION = 0.75

USER_COLUMNS = ("open_task_count", "open_points", "hours_logged_7d", "capacity_utilisation", "completed_count",
                "mean_completion_hours", "completion_rate", "on_time_rate", "review_cycles", "reassignment_count",
                "skill_counts", "skill_task_count")
TASK_COLUMNS = ("required_skills", "story_points", "priority_score", "required_skill_count", "complexity",
                "days_to_due")


# ----------------------------------------------------------------------------------------------------------------
# the environment
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ObservedTasks:
    """What a tracker shows of each task of the stream (decision order)."""

    ids: list[str]
    team: np.ndarray  # (n,) team index
    decide_at: np.ndarray  # (n,) hours: when the task is assigned
    points: np.ndarray  # story points at creation
    priority: np.ndarray  # 0 low .. 3 critical
    due: np.ndarray  # hours, nan = none
    req_observed: np.ndarray  # (n, S) bool: the skill labels on the ticket
    complexity: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class HiddenTasks:
    """The truth behind the stream: fit of every user, effort and the per-task noise (shared by all policies)."""

    fit: np.ndarray  # (n, U) hidden skill fit
    req_true: np.ndarray  # (n, S) bool: the skills the task really needs
    effort: np.ndarray  # (n,) true effort hours
    rework_u: np.ndarray  # uniform draws for the rework coin
    rework_frac: np.ndarray
    review_wait: np.ndarray
    back_wait: np.ndarray
    quality_noise: np.ndarray
    hist_noise: np.ndarray  # (n, U) normal(0, 0.1): the historical policy's perception noise
    hist_gumbel: np.ndarray  # (n, U)


@dataclass
class Ledger:
    """The state of a workspace: the observable record of the assignments so far, and the work in progress.

    Observable (what an event log shows; nan until it happens): per task ``assignee``, ``assigned_at`` (work starts
    at once), ``work_end`` (in review), ``done``, ``review_cycles`` and ``quality`` (the review rating); per user the
    ``busy`` intervals with the hours they logged. ``done`` may lie after the current time (the review is still
    running), so readers compare it with their decision time. Hidden (the environment's, never read by features):
    ``remaining`` effort hours, ``pace`` of each task in progress, each user's ``active`` tasks and ``clock`` (the
    time the user's work has been simulated up to).
    """

    assignee: np.ndarray
    assigned_at: np.ndarray
    work_end: np.ndarray
    done: np.ndarray
    review_cycles: np.ndarray
    quality: np.ndarray
    busy: list[list[list[float]]]  # per user: [from, to, logged hours]
    remaining: np.ndarray
    pace: np.ndarray
    active: list[list[int]]
    clock: np.ndarray

    @classmethod
    def empty(cls, n: int, n_users: int) -> "Ledger":
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        return cls(np.full(n, -1, dtype=np.int64), nan(), nan(), nan(), nan(), nan(), [[] for _ in range(n_users)],
                   nan(), nan(), [[] for _ in range(n_users)], np.zeros(n_users))

    def copy(self) -> "Ledger":
        return Ledger(self.assignee.copy(), self.assigned_at.copy(), self.work_end.copy(), self.done.copy(),
                      self.review_cycles.copy(), self.quality.copy(), [[list(iv) for iv in b] for b in self.busy],
                      self.remaining.copy(), self.pace.copy(), [list(a) for a in self.active], self.clock.copy())


@dataclass
class Decision:
    """One assignment decision: the task, its candidates' as-of columns, and the chosen user (index into org)."""

    k: int
    task: dict[str, Any]
    candidates: pd.DataFrame
    chosen: int


class MonthEnv:
    """One simulated workspace: history (historical policy) then an evaluation month (policy under test)."""

    def __init__(self, seed: int = 0, ws_index: int = 0, teams: int = 2, users_per_team: int = 6,
                 history_days: int = 60, eval_days: int = 30, load: float = DEFAULT_LOAD) -> None:
        self.seed, self.ws_index = int(seed), int(ws_index)
        self.history_days, self.eval_days = int(history_days), int(eval_days)
        days = self.history_days + self.eval_days
        self.config = SimConfig(n_events=1, seed=self.seed, days=max(30, days), users_per_team=users_per_team)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(7, self.ws_index)))
        weeks = self.config.days / 7.0
        n_tasks = max(1, int(round(teams * users_per_team * EFFECTIVE_WEEKLY_HOURS * weeks * _MEAN_UTILISATION
                                   / MEAN_EFFORT_HOURS)))
        org = build_org(rng, self.config, self.ws_index, n_tasks)
        counts = allocate_tasks(rng, org, max(1, int(round(n_tasks * load))))
        tasks = build_tasks(rng, self.config, org, counts, [])
        self.org: Org = org
        self.history_end = self.history_days * DAY
        self.eval_end = (self.history_days + self.eval_days) * DAY

        keep = ~tasks.cancelled & (tasks.assign_at < self.eval_end)
        idx = np.flatnonzero(keep)
        idx = idx[np.argsort(tasks.assign_at[idx], kind="stable")]
        n, U, S = len(idx), org.n_users, len(self.config.skills)
        title = tasks.title.to_pylist()
        desc = tasks.description.to_pylist()
        desc_len = np.array([len(title[i] or "") + len(desc[i] or "") for i in idx], dtype=np.float64)
        req = tasks.req_observed[idx]
        deps_n = (tasks.deps[idx] >= 0).sum(axis=1)
        points = tasks.points0[idx].astype(np.float64)
        ids = tasks.ids.to_pylist()
        self.tasks = ObservedTasks(
            ids=[ids[i] for i in idx], team=tasks.team[idx].astype(np.int64), decide_at=tasks.assign_at[idx],
            points=points, priority=tasks.priority[idx].astype(np.int64), due=tasks.due[idx], req_observed=req,
            complexity=np.log1p(desc_len) + req.sum(axis=1) + deps_n + np.log1p(points),
        )
        R = tasks.req_weights[idx]
        noise = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(8, self.ws_index)))
        self.hidden = HiddenTasks(
            fit=(R[:, None, :] * org.proficiency[None, :, :]).sum(axis=2), req_true=tasks.req_true[idx],
            effort=tasks.effort[idx],
            rework_u=noise.random(n), rework_frac=noise.uniform(0.1, 0.35, n),
            review_wait=0.2 + noise.lognormal(np.log(8.0), 0.8, n),
            back_wait=0.2 + noise.lognormal(np.log(6.0), 0.7, n),
            quality_noise=noise.normal(0.0, 0.5, n),
            hist_noise=noise.normal(0.0, 0.1, (n, U)), hist_gumbel=noise.gumbel(size=(n, U)),
        )
        self.skills = tuple(self.config.skills)
        self.n_skills = S
        self.task_index = {t: k for k, t in enumerate(self.tasks.ids)}
        self.members = [org.team_members(t) for t in range(len(org.team_ids))]
        self.history_tasks = np.flatnonzero(self.tasks.decide_at < self.history_end)
        self.eval_tasks = np.flatnonzero(self.tasks.decide_at >= self.history_end)
        self._history: tuple[Ledger, list[Decision]] | None = None

    # -- observable views -------------------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return self.org.n_users

    def task_dict(self, k: int) -> dict[str, Any]:
        """The task's columns of the pair-frame contract as of its decision time."""
        ot = self.tasks
        t = ot.decide_at[k]
        due = ot.due[k]
        req = [s for s, on in zip(self.skills, ot.req_observed[k]) if on]
        return {
            "task_id": ot.ids[k], "team_id": self.org.team_ids[ot.team[k]], "required_skills": req,
            "story_points": float(ot.points[k]), "priority_score": int(ot.priority[k]),
            "required_skill_count": len(req), "complexity": float(ot.complexity[k]),
            "days_to_due": float((due - t) / DAY) if np.isfinite(due) else np.nan,
        }

    def candidates(self, ledger: Ledger, k: int) -> pd.DataFrame:
        """The task's team members with their as-of columns at the task's decision time."""
        return asof_candidates(ledger, self.tasks, self.org.user_ids, self.org.declared_capacity,
                               self.members[self.tasks.team[k]], float(self.tasks.decide_at[k]))

    # -- dynamics ---------------------------------------------------------------------------------------------
    def advance(self, ledger: Ledger, u: int, t1: float) -> None:
        """Simulate user ``u``'s work up to ``t1`` (``inf``: until idle): processor sharing, each of the ``n`` tasks
        in progress gets ``1/n`` of the user's time and moves at its own pace."""
        c = float(ledger.clock[u])
        act = ledger.active[u]
        rate = self.org.true_capacity[u] / 168.0 * self.org.log_factor[u]  # hours logged per busy hour
        h = self.hidden
        while act and c < t1:
            n = len(act)
            idx = np.asarray(act)
            cal = ledger.remaining[idx] / ledger.pace[idx] * n  # calendar hours to finish each at this share
            j = int(np.argmin(cal))
            step = min(float(cal[j]), t1 - c)
            ledger.remaining[idx] -= step / n * ledger.pace[idx]
            self._log(ledger, u, c, c + step, rate)
            c += step
            if step == float(cal[j]):
                k = act.pop(j)
                ledger.remaining[k] = 0.0
                ledger.work_end[k] = c
                ledger.done[k] = c + h.review_wait[k] + (h.back_wait[k] if ledger.review_cycles[k] > 1 else 0.0)
        ledger.clock[u] = max(c, t1) if np.isfinite(t1) else c

    @staticmethod
    def _log(ledger: Ledger, u: int, a: float, b: float, rate: float) -> None:
        busy = ledger.busy[u]
        if busy and busy[-1][1] == a:  # contiguous: extend the last interval
            busy[-1][1] = b
            busy[-1][2] += (b - a) * rate
        elif b > a:
            busy.append([a, b, (b - a) * rate])

    def assign(self, ledger: Ledger, k: int, u: int) -> None:
        """Give task ``k`` to user ``u`` at its decision time (``u``'s work must be simulated up to it)."""
        org, h = self.org, self.hidden
        t = float(self.tasks.decide_at[k])
        self.advance(ledger, u, t)
        fit = float(h.fit[k, u])
        rework = bool(h.rework_u[k] < 0.06 + 0.4 * (1.0 - fit) ** 2)
        ledger.assignee[k] = u
        ledger.assigned_at[k] = t
        ledger.review_cycles[k] = 2.0 if rework else 1.0
        ledger.quality[k] = float(np.clip(1.0 + 4.0 * fit - 0.75 * rework + h.quality_noise[k], 0.0, 5.0))
        ledger.remaining[k] = h.effort[k] * (1.0 + (h.rework_frac[k] if rework else 0.0))
        ledger.pace[k] = org.true_capacity[u] / 168.0 * org.speed[u] * (0.3 + 0.7 * fit)
        ledger.active[u].append(k)

    def drain(self, ledger: Ledger) -> None:
        """No more arrivals: every user finishes the work in hand (gives every assigned task its ``done``)."""
        for u in range(self.n_users):
            self.advance(ledger, u, np.inf)

    def historical_choice(self, ledger: Ledger, k: int) -> int:
        """The simulator's historical policy (``events.py``), restricted to the task's team: perceived fit (half
        true, half declared skills, plus noise), minus the load weight times the queued effort in weeks of true
        capacity, plus Gumbel noise at the workspace's temperature."""
        org, h = self.org, self.hidden
        members = self.members[self.tasks.team[k]]
        need = h.req_true[k]
        fit_decl = (need[None, :] & org.declared[members]).sum(axis=1) / max(1, need.sum())
        perceived = 0.5 * h.fit[k, members] + 0.5 * fit_decl + h.hist_noise[k, members]
        queued = np.array([ledger.remaining[ledger.active[u]].sum() for u in members])
        load = queued / org.true_capacity[members]
        score = (2.0 * org.skill_weight * perceived - org.load_weight * load
                 + org.temperature * h.hist_gumbel[k, members])
        return int(members[int(np.argmax(score))])

    def best_fit(self, k: int) -> int:
        """Index (into org users) of the team member with the best hidden fit for task ``k``."""
        members = self.members[self.tasks.team[k]]
        return int(members[int(np.argmax(self.hidden.fit[k, members]))])

    def _decide(self, ledger: Ledger, k: int, choose: Callable[[Ledger, int], int],
                record: list | None = None) -> None:
        t = float(self.tasks.decide_at[k])
        for u in self.members[self.tasks.team[k]]:
            self.advance(ledger, int(u), t)
        u = choose(ledger, k)
        if record is not None:
            record.append(Decision(k, self.task_dict(k), self.candidates(ledger, k), u))
        self.assign(ledger, k, u)

    def run_history(self) -> tuple[Ledger, list[Decision]]:
        """The history phase (cached): every history task assigned by the historical policy, each decision recorded
        with its as-of candidates; the state is simulated up to the history's end."""
        if self._history is None:
            ledger = Ledger.empty(len(self.tasks), self.n_users)
            decisions: list[Decision] = []
            for k in self.history_tasks:
                self._decide(ledger, int(k), self.historical_choice, decisions)
            for u in range(self.n_users):
                self.advance(ledger, u, self.history_end)
            self._history = (ledger, decisions)
        return self._history

    def run_month(self, policy: "Policy") -> Ledger:
        """The evaluation month under ``policy``, from a copy of the post-history state; drained at the end."""
        ledger = self.run_history()[0].copy()
        ids = {uid: i for i, uid in enumerate(self.org.user_ids)}

        def choose(ledger: Ledger, k: int) -> int:
            uid = policy.choose(self.task_dict(k), self.candidates(ledger, k))
            u = ids.get(uid, -1)
            if u < 0 or self.org.user_team[u] != self.tasks.team[k]:
                raise ValueError(f"policy {getattr(policy, 'name', policy)!r} chose {uid!r}: not a candidate")
            return u

        if isinstance(policy, HiddenTruthPolicy):
            policy.ledger = ledger
        for k in self.eval_tasks:
            self._decide(ledger, int(k), choose)
        self.drain(ledger)
        return ledger

    # -- training data for the learned ranker -----------------------------------------------------------------
    def history_pairs(self) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        """(pairs, assigned, completed, quality) of the history, as :meth:`AssignmentRanker.fit` takes them.

        ``completed`` of the assigned row: 1 when done within :data:`COMPLETION_WINDOW_DAYS`, 0 when the window
        closed (before the history's end) without it, NaN when still open and the window has not closed yet;
        ``quality``: the review rating when done by the history's end. Both NaN for the other candidates.
        """
        ledger, decisions = self.run_history()
        frames, assigned, completed, quality = [], [], [], []
        window = COMPLETION_WINDOW_DAYS * DAY
        for d in decisions:
            c = d.candidates
            f = c.copy()
            for col, v in d.task.items():
                if col == "task_id":
                    continue
                f[col] = [v] * len(f) if isinstance(v, list) else v
            f.insert(0, "task_id", d.task["task_id"])
            frames.append(f)
            hit = (c["user_id"] == self.org.user_ids[d.chosen]).to_numpy().astype(np.float64)
            assigned.append(hit)
            done, at = ledger.done[d.k], ledger.assigned_at[d.k]
            known_done = done <= self.history_end
            if known_done and done - at <= window:
                comp = 1.0
            elif at + window <= self.history_end:
                comp = 0.0
            else:
                comp = np.nan
            completed.append(np.where(hit == 1, comp, np.nan))
            quality.append(np.where(hit == 1, ledger.quality[d.k] if known_done else np.nan, np.nan))
        if not frames:
            return pd.DataFrame(), np.zeros(0), np.zeros(0), np.zeros(0)
        pairs = pd.concat(frames, ignore_index=True)
        return pairs, np.concatenate(assigned), np.concatenate(completed), np.concatenate(quality)


# ----------------------------------------------------------------------------------------------------------------
# as-of features (observable only)
# ----------------------------------------------------------------------------------------------------------------
def asof_candidates(ledger: Ledger, tasks: ObservedTasks, user_ids: Sequence[str], declared_capacity: np.ndarray,
                    members: np.ndarray, t: float) -> pd.DataFrame:
    """One row per member (``user_id`` + :data:`USER_COLUMNS`) as of time ``t``.

    Reads only the ledger's observable fields, the tasks' observable fields and the declared capacity, and only
    what happened at or before ``t``: a task counts as assigned when ``assigned_at <= t``, done when ``done <= t``;
    logged hours are those of the busy time inside ``[t - 7 days, t]``.
    """
    members = np.asarray(members, dtype=np.int64)
    m = len(members)
    pos = np.full(max(len(user_ids), 1), -1, dtype=np.int64)
    pos[members] = np.arange(m)
    a = ledger.assignee
    seen = (a >= 0) & (ledger.assigned_at <= t)
    idx = np.flatnonzero(seen)
    idx = idx[pos[a[idx]] >= 0]
    p = pos[a[idx]]
    done = ledger.done[idx]
    fin = done <= t
    pts = tasks.points[idx]
    assigned_n = np.bincount(p, minlength=m).astype(np.float64)
    open_n = np.bincount(p[~fin], minlength=m)
    open_pts = np.bincount(p[~fin], weights=pts[~fin], minlength=m)
    comp_n = np.bincount(p[fin], minlength=m).astype(np.float64)
    dur = np.bincount(p[fin], weights=(done - ledger.assigned_at[idx])[fin], minlength=m)
    due = tasks.due[idx]
    has_due = fin & np.isfinite(due)
    due_n = np.bincount(p[has_due], minlength=m).astype(np.float64)
    on_time = np.bincount(p[has_due], weights=(done[has_due] <= due[has_due]).astype(np.float64), minlength=m)
    cycles = np.bincount(p[fin], weights=ledger.review_cycles[idx][fin], minlength=m)
    hours = np.array([_logged(ledger.busy[u], t - WEEK, t) for u in members])
    counts = np.zeros((m, tasks.req_observed.shape[1]))
    np.add.at(counts, p[fin], tasks.req_observed[idx[fin]].astype(np.float64))
    cap = np.asarray(declared_capacity, dtype=np.float64)[members]
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame({
            "user_id": [user_ids[u] for u in members],
            "open_task_count": open_n.astype(np.int64),
            "open_points": open_pts,
            "hours_logged_7d": hours,
            "capacity_utilisation": np.where(cap > 0, hours / cap, np.nan),
            "completed_count": comp_n.astype(np.int64),
            "mean_completion_hours": np.where(comp_n > 0, dur / comp_n, np.nan),
            "completion_rate": np.where(assigned_n > 0, comp_n / assigned_n, np.nan),
            "on_time_rate": np.where(due_n > 0, on_time / due_n, np.nan),
            "review_cycles": np.where(comp_n > 0, cycles / comp_n, np.nan),
            "reassignment_count": np.zeros(m, dtype=np.int64),
            "skill_counts": list(counts),
            "skill_task_count": comp_n.astype(np.int64),
        })


def _logged(busy: list[list[float]], a: float, b: float) -> float:
    """Hours logged inside ``[a, b]`` (pro rata of each busy interval)."""
    total = 0.0
    for lo, hi, hours in reversed(busy):
        if hi <= a:
            break
        if lo >= b or hi <= lo:
            continue
        total += hours * (min(hi, b) - max(lo, a)) / (hi - lo)
    return total


# ----------------------------------------------------------------------------------------------------------------
# policies
# ----------------------------------------------------------------------------------------------------------------
class Policy(Protocol):
    name: str

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        """The ``user_id`` (one of ``candidates['user_id']``) who gets the task."""


def _tiebreak(primary: np.ndarray, open_points: np.ndarray) -> int:
    """Row with the highest ``primary`` (NaN lowest), ties to fewer open points, then to the first row."""
    p = np.where(np.isnan(primary), -np.inf, primary)
    best = np.flatnonzero(p == p.max())
    return int(best[np.argmin(open_points[best])])


class RoundRobin:
    """Members of the task's team in turn (candidate order), one pointer per team."""

    name = "round-robin"

    def __init__(self) -> None:
        self._next: dict[Any, int] = {}

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        users = candidates["user_id"].tolist()
        key = task.get("team_id", tuple(users))
        i = self._next.get(key, 0)
        self._next[key] = i + 1
        return users[i % len(users)]


class LeastLoaded:
    """Fewest open story points (ties: fewer open tasks, then candidate order)."""

    name = "least-loaded"

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        pts = candidates["open_points"].to_numpy(np.float64)
        n = candidates["open_task_count"].to_numpy(np.float64)
        order = np.lexsort((np.arange(len(pts)), n, pts))
        return str(candidates["user_id"].iloc[int(order[0])])


class SkillOnly:
    """Highest observed skill match (``pair_features``' ``skill_match``), ties to fewer open points."""

    name = "skill-only"

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        frame = candidates.assign(task_id=task["task_id"],
                                  required_skills=[list(task["required_skills"])] * len(candidates))
        match = pair_features(frame)["skill_match"].to_numpy(np.float64)
        i = _tiebreak(match, candidates["open_points"].to_numpy(np.float64))
        return str(candidates["user_id"].iloc[i])


class RankerPolicy:
    """The learned ranker's first recommendation, with the given rank weights (``None``: the ranker's defaults)."""

    def __init__(self, ranker: Any, weights: Any = None, name: str = "ranker") -> None:
        self.ranker, self.weights, self.name = ranker, weights, name

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        recs = self.ranker.rank(task, candidates, weights=self.weights)
        return str(recs[0].user_id)


class HiddenTruthPolicy:
    """Reference policies that read the environment's hidden truth: ``oracle`` (best hidden fit) or ``historical``
    (the simulator's noisy historical policy). Not deployable; rows for scale only."""

    def __init__(self, env: MonthEnv, kind: str) -> None:
        if kind not in ("oracle", "historical"):
            raise ValueError(f"unknown reference policy {kind!r}")
        self.env, self.kind = env, kind
        self.ledger: Ledger | None = None  # set by MonthEnv.run_month
        self.name = "oracle (hidden fit)" if kind == "oracle" else "historical (simulator)"

    def choose(self, task: dict[str, Any], candidates: pd.DataFrame) -> str:
        k = self.env.task_index[task["task_id"]]
        if self.kind == "oracle":
            u = self.env.best_fit(k)
        else:
            assert self.ledger is not None, "run it through MonthEnv.run_month"
            u = self.env.historical_choice(self.ledger, k)
        return self.env.org.user_ids[u]


# ----------------------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------------------
def daily_team_gini(env: MonthEnv, ledger: Ledger, normalised: bool = True) -> np.ndarray:
    """(teams, days): Gini of open story points across each team's members at each day end of the month.

    ``normalised``: the ``team_balance`` feature's Gini (x n/(n-1): 1 = one member holds everything); else the
    plain Gini (mean absolute difference / 2 mean, at most (n-1)/n).
    """
    snaps = env.history_end + DAY * np.arange(1, env.eval_days + 1)
    a = ledger.assignee
    k = np.flatnonzero(a >= 0)
    open_at = (ledger.assigned_at[k][None, :] <= snaps[:, None]) & (ledger.done[k][None, :] > snaps[:, None])
    pts = open_at * env.tasks.points[k][None, :]  # (days, tasks)
    per_user = np.zeros((len(snaps), env.n_users))
    for j, u in enumerate(a[k]):
        per_user[:, u] += pts[:, j]
    out = np.stack([gini(per_user[:, members]) for members in env.members])
    if not normalised:
        sizes = np.array([len(m) for m in env.members], dtype=np.float64)
        out = out * ((sizes - 1) / np.maximum(sizes, 1))[:, None]
    return out


def month_metrics(env: MonthEnv, ledger: Ledger) -> dict[str, Any]:
    """The metrics of one evaluation month (see the module docstring), plus the raw sums to pool workspaces."""
    E = env.eval_tasks
    u = ledger.assignee[E]
    done = ledger.done[E]
    due = env.tasks.due[E]
    has_due = np.isfinite(due) & (due <= env.eval_end)
    best = np.array([env.best_fit(int(k)) for k in E], dtype=np.int64)
    fit = env.hidden.fit[E, u] if len(E) else np.zeros(0)
    g = daily_team_gini(env, ledger)
    sizes = np.array([len(m) for m in env.members], dtype=np.float64)
    given = np.bincount(u, weights=env.tasks.points[E], minlength=env.n_users)
    n = len(E)
    return {
        "n_tasks": n,
        "completed": int((done <= env.eval_end).sum()),
        "quality_sum": float(ledger.quality[E].sum()),
        "n_due": int(has_due.sum()),
        "on_time": int((done[has_due] <= due[has_due]).sum()),
        "top1_hits": int((u == best).sum()),
        "fit_sum": float(fit.sum()),
        "cycle_sum": float(((done - ledger.assigned_at[E]) / DAY).sum()),
        "team_gini": g.mean(axis=1).tolist(),
        "team_gini_raw": (g.mean(axis=1) * (sizes - 1) / np.maximum(sizes, 1)).tolist(),
        "team_gini_assigned": [float(gini(given[m][None, :])[0]) for m in env.members],
    }


def summarise(parts: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Pool per-workspace :func:`month_metrics` into the reported rates (Gini: mean over all teams)."""
    parts = list(parts)
    tot = lambda key: float(sum(p[key] for p in parts))  # noqa: E731
    n = tot("n_tasks")
    ginis = [g for p in parts for g in p["team_gini"]]
    mean_of = lambda key: float(np.mean([g for p in parts for g in p[key]])) if ginis else float("nan")  # noqa: E731
    div = lambda a, b: a / b if b else float("nan")  # noqa: E731
    return {
        "completion_rate": div(tot("completed"), n),
        "mean_quality": div(tot("quality_sum"), n),
        "on_time_rate": div(tot("on_time"), tot("n_due")),
        "gini": float(np.mean(ginis)) if ginis else float("nan"),
        "gini_raw": mean_of("team_gini_raw"),
        "gini_assigned": mean_of("team_gini_assigned"),
        "top1": div(tot("top1_hits"), n),
        "mean_fit": div(tot("fit_sum"), n),
        "mean_cycle_days": div(tot("cycle_sum"), n),
        "n_tasks": int(n),
    }


# ----------------------------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------------------------
BASELINES: dict[str, Callable[[], Policy]] = {
    "round-robin": RoundRobin, "least-loaded": LeastLoaded, "skill-only": SkillOnly,
}
REFERENCE = ("historical (simulator)", "oracle (hidden fit)")
DEFAULT_BALANCE = (0.0, 0.3, 1.0, 3.0)


@dataclass
class StudyResult:
    rows: list[dict[str, Any]]  # one per policy
    per_workspace: list[dict[str, Any]]  # one per (workspace, policy)
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self, policy: str) -> dict[str, Any]:
        return next(r for r in self.rows if r["policy"] == policy)


def make_envs(seed: int = 0, workspaces: int = 4, teams: int = 2, users_per_team: int = 6, history_days: int = 60,
              eval_days: int = 30, load: float = DEFAULT_LOAD) -> list[MonthEnv]:
    return [MonthEnv(seed, w, teams, users_per_team, history_days, eval_days, load) for w in range(workspaces)]


def fit_ranker(envs: Sequence[MonthEnv]) -> Any:
    """An :class:`AssignmentRanker` fit on the pooled history pair frames of ``envs``."""
    from sunday.models.assignment.ranker import AssignmentRanker

    parts = [env.history_pairs() for env in envs]
    parts = [p for p in parts if len(p[0])]
    pairs = pd.concat([p[0] for p in parts], ignore_index=True)
    cat = lambda i: np.concatenate([p[i] for p in parts])  # noqa: E731
    return AssignmentRanker().fit(pairs, cat(1), cat(2), cat(3))


def ranker_available() -> bool:
    try:
        import sunday.models.assignment.ranker  # noqa: F401
    except ImportError:
        return False
    return True


def _ranker_policies(ranker: Any, balance: Sequence[float]) -> dict[str, Callable[[], Policy]]:
    from sunday.models.assignment.ranker import RankWeights

    out: dict[str, Callable[[], Policy]] = {"ranker": functools.partial(RankerPolicy, ranker, None, "ranker")}
    default = RankWeights()
    for b in balance:
        if np.isclose(b, default.balance):
            continue
        name = f"ranker (balance={b:g})"
        out[name] = functools.partial(RankerPolicy, ranker, dataclasses.replace(default, balance=float(b)), name)
    return out


def run_study(seed: int = 0, workspaces: int = 4, teams: int = 2, users_per_team: int = 6, history_days: int = 60,
              eval_days: int = 30, load: float = DEFAULT_LOAD, ranker: Any | bool | None = None,
              balance: Sequence[float] = DEFAULT_BALANCE,
              references: bool = True, progress: bool = False, envs: Sequence[MonthEnv] | None = None) -> StudyResult:
    """Every policy over the same evaluation months of ``workspaces`` simulated workspaces.

    ``ranker``: a fitted ranker, ``True``/``None`` to fit one on the pooled history when ``ranker.py`` exists
    (``None``: skip quietly when it does not), ``False`` for baselines only. ``balance``: extra ranker rows with
    these balance weights (the other weights at the ranker's defaults).
    """
    import time

    from tqdm import tqdm

    envs = list(envs) if envs is not None else make_envs(seed, workspaces, teams, users_per_team, history_days,
                                                         eval_days, load)
    meta: dict[str, Any] = {"seed": seed, "workspaces": len(envs), "teams_target": teams,
                            "users_per_team": users_per_team, "history_days": history_days, "eval_days": eval_days,
                            "load": load}
    t0 = time.perf_counter()
    for env in tqdm(envs, desc="history", unit="ws", disable=not progress):
        env.run_history()
    policies: dict[str, Callable[[], Policy]] = dict(BASELINES)
    if ranker is None:
        ranker = True if ranker_available() else False
    if ranker is True:
        t1 = time.perf_counter()
        ranker = fit_ranker(envs)
        meta["ranker_fit_seconds"] = round(time.perf_counter() - t1, 2)
    if ranker is not False:
        policies.update(_ranker_policies(ranker, balance))
    meta["ranker"] = ranker is not False
    names = list(policies) + (list(REFERENCE) if references else [])
    per_ws: list[dict[str, Any]] = []
    seconds: dict[str, float] = {n: 0.0 for n in names}
    with tqdm(total=len(envs) * len(names), desc="months", unit="run", disable=not progress) as bar:
        for env in envs:
            for name in names:
                t1 = time.perf_counter()
                if name in policies:
                    pol = policies[name]()
                else:
                    pol = HiddenTruthPolicy(env, "oracle" if name.startswith("oracle") else "historical")
                ledger = env.run_month(pol)
                seconds[name] += time.perf_counter() - t1
                m = month_metrics(env, ledger)
                per_ws.append({"workspace": env.org.ws_id, "policy": name, **m})
                bar.update(1)
    rows: list[dict[str, Any]] = []
    for name in names:
        s = summarise(p for p in per_ws if p["policy"] == name)
        rows.append({"policy": name, **s, "seconds": round(seconds[name], 2)})
    skill_top1 = float(next(r["top1"] for r in rows if r["policy"] == "skill-only"))
    for r in rows:
        r["top1_vs_skill_only"] = r["top1"] / skill_top1 if skill_top1 else float("nan")
        r["meets_target"] = bool(r["gini"] < TARGET_GINI and r["top1_vs_skill_only"] >= TARGET_TOP1_RATIO)
    meta["seconds"] = round(time.perf_counter() - t0, 2)
    meta["teams"] = sum(len(e.members) for e in envs)
    meta["users"] = sum(e.n_users for e in envs)
    meta["history_tasks"] = sum(len(e.history_tasks) for e in envs)
    return StudyResult(rows, per_ws, meta)
