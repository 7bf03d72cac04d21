"""The work itself: who gets each task, when it is started and finished, and the event log that results.

``schedule`` walks the tasks in order of first assignment, one planning batch (a day) at a time. Within a batch
everything is vectorised: the assignment policy scores every (task, user) pair from a noisy view of skill match
(half true proficiency, half declared skills) and the current load, picks with Gumbel noise, sometimes reassigns
(more often on a skill mismatch or overload), and computes the true duration from the hidden skill match, speed,
capacity, overload, dependencies and any injected anomaly. ``build_events`` then turns the schedule into the
observable events, cut at the end of the observation period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sunday.data.simulator import text as T
from sunday.data.simulator.anomalies import AnomalyPlan
from sunday.data.simulator.config import SimConfig
from sunday.data.simulator.entities import DAY, Org, Tasks

BATCH_HOURS = 24.0

EVENT_TYPES = ("created", "assigned", "status_changed", "commented", "completed", "reassigned", "scope_changed",
               "time_logged")
STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "cancelled")
(E_CREATED, E_ASSIGNED, E_STATUS, E_COMMENT, E_COMPLETED, E_REASSIGNED, E_SCOPE, E_TIME) = range(8)
(S_TODO, S_PROGRESS, S_REVIEW, S_BLOCKED, S_DONE, S_CANCELLED) = range(6)


def warp(start: np.ndarray, work: np.ndarray, w_start: np.ndarray, w_end: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """When ``work`` hours of calendar time at normal pace, begun at ``start``, are done if the pace is ``rate``
    inside ``[w_start, w_end)`` (a velocity-drop window; ``w_start = inf`` means none)."""
    end = start + work
    hit = (end > w_start) & (start < w_end)
    if not hit.any():
        return end
    with np.errstate(invalid="ignore"):
        before = np.clip(w_start - start, 0.0, None)
        rest = work - np.minimum(work, before)
        t_in = np.maximum(start, w_start)
        room = (w_end - t_in) * rate
        slow = np.where(rest <= room, t_in + rest / rate, w_end + (rest - room))
    return np.where(hit, slow, end)


@dataclass
class Schedule:
    first_user: np.ndarray  # -1: never assigned (cancelled first)
    final_user: np.ndarray  # who does the work (-1 never assigned)
    last_assign: np.ndarray
    start: np.ndarray
    review1: np.ndarray
    back: np.ndarray  # review sent it back (rework), nan otherwise
    review2: np.ndarray
    done: np.ndarray
    finish: np.ndarray  # done, or the cancellation time
    rework: np.ndarray
    stuck: np.ndarray  # effective stuck anomaly
    stuck_at: np.ndarray
    work: np.ndarray  # calendar hours of the main work at normal pace
    fit: np.ndarray  # true skill match of the worker
    load: np.ndarray  # worker's queued work (weeks) when planned
    reason: np.ndarray  # 0 none, 1 reassigned (mismatch / overload), 2 churn anomaly
    re_task: np.ndarray
    re_time: np.ndarray
    re_user: np.ndarray
    re_actor: np.ndarray
    vd: tuple[np.ndarray, np.ndarray, np.ndarray]  # velocity-drop window per task


def schedule(rng: np.random.Generator, config: SimConfig, org: Org, tasks: Tasks, plan: AnomalyPlan) -> Schedule:
    n, U = len(tasks), org.n_users
    H = config.horizon_hours
    prof = org.proficiency
    declared = org.declared
    cap, speed, user_team = org.true_capacity, org.speed, org.user_team
    leads = org.team_leads
    members = [org.team_members(t) for t in range(len(org.team_ids))]
    vd = (plan.vd_start[tasks.project], plan.vd_end[tasks.project], plan.vd_rate[tasks.project])

    first_user = np.full(n, -1)
    final_user = np.full(n, -1)
    nan = lambda: np.full(n, np.nan)  # noqa: E731
    last_assign, start, review1, back, review2, done, finish = (nan() for _ in range(7))
    stuck_at, work_all, fit_all, load_all = nan(), nan(), nan(), nan()
    rework_all = np.zeros(n, dtype=bool)
    stuck_all = np.zeros(n, dtype=bool)
    reason = np.zeros(n, dtype=np.int8)
    re_task, re_time, re_user, re_actor = [], [], [], []
    load_effort = np.where(tasks.cancelled, 0.0, tasks.effort)

    order = np.argsort(tasks.assign_at, kind="stable")
    active = np.zeros(0, dtype=np.int64)  # assigned, not cancelled, maybe not finished: the load on people
    batch_no = np.floor(tasks.assign_at[order] / BATCH_HOURS).astype(np.int64)
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(batch_no)) + 1, [n]])
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        idx = order[lo:hi]
        m = len(idx)
        t0 = tasks.assign_at[idx[0]]
        at = tasks.assign_at[idx]
        cancelled = tasks.cancelled[idx]
        never = cancelled & (tasks.cancel_at[idx] <= at)

        # queued work per user at planning time (remaining share of each active task's effort), in weeks
        # (planning times only grow, so a task finished before this batch never counts again)
        active = active[finish[active] > t0]
        load = np.zeros(U)
        if len(active):
            span = np.maximum(finish[active] - start[active], 1e-9)
            left = np.clip((finish[active] - np.maximum(t0, start[active])) / span, 0.0, 1.0)
            load = np.bincount(final_user[active], weights=load_effort[active] * left, minlength=U) / cap

        # assignment policy: skill-aware + load-aware + noise, mostly within the project's team
        R = tasks.req_weights[idx]
        # explicit sums rather than BLAS matmul: the result must not depend on the process' BLAS threading
        fit_true = (R[:, None, :] * prof[None, :, :]).sum(axis=2)
        need = R > 0
        fit_decl = (need[:, None, :] & declared[None, :, :]).sum(axis=2) / need.sum(axis=1, keepdims=True)
        perceived = 0.5 * fit_true + 0.5 * fit_decl + rng.normal(0.0, 0.1, (m, U))
        team = tasks.team[idx]
        same_team = team[:, None] == user_team[None, :]
        score = (2.0 * org.skill_weight * perceived - org.load_weight * load[None, :]
                 + np.where(same_team, 0.0, -2.5) + org.temperature * rng.gumbel(size=(m, U)))
        boosted = np.zeros(m, dtype=bool)
        for c_team, c_user, c_start, c_end, c_boost in plan.concentration:
            hit = (team == c_team) & (at >= c_start) & (at < c_end)
            if hit.any():
                # the lead keeps piling work on this person: their load no longer holds the policy back
                score[hit, c_user] += c_boost + org.load_weight * load[c_user]
                boosted |= hit
        a0 = score.argmax(axis=1)
        rows = np.arange(m)

        # reassignment: likelier when the pick is a poor skill match or overloaded
        fit0, load0 = fit_true[rows, a0], load[a0]
        p_re = 1.0 / (1.0 + np.exp(-(-2.2 + 6.0 * (0.5 - fit0) + 1.0 * (load0 - 1.0))))
        churn = plan.churn[idx]
        p_re[cancelled | churn | boosted] = 0.0
        re = rng.random(m) < p_re
        score2 = (3.0 * fit_true - load[None, :] + np.where(same_team, 0.0, -2.5)
                  + 0.3 * rng.gumbel(size=(m, U)))
        score2[rows, a0] = -np.inf
        a1 = score2.argmax(axis=1)
        re_at = at + 0.2 + rng.lognormal(np.log(18.0), 0.7, m)
        final = np.where(re, a1, a0)
        last = np.where(re, re_at, at)
        lead = leads[team]
        if re.any():
            re_task.append(idx[re])
            re_time.append(re_at[re])
            re_user.append(a1[re])
            re_actor.append(lead[re])
        reason_b = np.where(re, 1, 0)
        for j in np.flatnonzero(churn):  # injected churn: passed around k times within a few days
            k = int(plan.churn_k[idx[j]])
            times = at[j] + np.cumsum(0.5 + rng.uniform(1.0, 20.0, k))
            team_members = members[team[j]]
            cur = a0[j]
            users = []
            for draw in rng.random(k):
                others = team_members[team_members != cur]
                if len(others) == 0:
                    others = np.setdiff1d(np.arange(U), [cur])
                cur = int(others[int(draw * len(others))])
                users.append(cur)
            re_task.append(np.full(k, idx[j]))
            re_time.append(times)
            re_user.append(np.array(users))
            re_actor.append(np.full(k, lead[j]))
            final[j], last[j], reason_b[j] = cur, times[-1], 2

        # the work: pace from hidden capacity, speed and skill match, slowed by overload
        fitf, loadf = fit_true[rows, final], load[final]
        pace = cap[final] / 168.0 * speed[final] * (0.3 + 0.7 * fitf) / np.maximum(1.0, loadf) ** 0.7
        work = tasks.effort[idx] / pace
        ready = last + 0.25 + rng.exponential(6.0 + 24.0 * loadf)
        review_wait = 0.2 + rng.lognormal(np.log(8.0), 0.8, m)
        rework = rng.random(m) < 0.06 + 0.4 * (1.0 - fitf) ** 2
        rework_work = work * rng.uniform(0.1, 0.35, m)
        back_wait = 0.2 + rng.lognormal(np.log(6.0), 0.7, m)
        done_wait = 0.2 + rng.lognormal(np.log(6.0), 0.8, m)
        st = plan.stuck[idx]
        frac, gap = plan.stuck_frac[idx], plan.stuck_gap[idx]
        ws, we, wr = vd[0][idx], vd[1][idx], vd[2][idx]
        # in a velocity drop the team also starts little new work: most tasks that become ready wait it out
        deferred = rng.random(m) > wr
        resume = we + rng.uniform(0.5, 48.0, m)
        deps = tasks.deps[idx]
        has_dep = deps >= 0
        dep_safe = np.maximum(deps, 0)

        # dependencies inside the batch: iterate to the fixed point (deps come earlier in assignment order)
        finish[idx] = -np.inf
        for _ in range(m + 1):
            dep_done = np.where(has_dep, finish[dep_safe], -np.inf).max(axis=1)
            s = np.maximum(ready, dep_done + 0.5)
            s = np.where(deferred & (s >= ws) & (s < we), resume, s)
            s_at = warp(s, frac * work, ws, we, wr)
            st_eff = st & (s_at < H - 7 * DAY)
            r1 = warp(s, work, ws, we, wr) + np.where(st_eff, gap, 0.0)
            b = r1 + review_wait
            r2 = warp(b, rework_work, ws, we, wr)
            d = np.where(rework, r2, r1) + done_wait
            fin = np.where(cancelled, tasks.cancel_at[idx], d)
            if np.array_equal(fin, finish[idx]):
                break
            finish[idx] = fin

        ok = ~cancelled
        first_user[idx] = np.where(never, -1, a0)
        final_user[idx] = np.where(never, -1, np.where(cancelled, a0, final))
        last_assign[idx] = np.where(never, np.nan, np.where(cancelled, at, last))
        start[idx] = np.where(ok, s, np.nan)
        review1[idx] = np.where(ok, r1, np.nan)
        back[idx] = np.where(ok & rework, b, np.nan)
        review2[idx] = np.where(ok & rework, r2, np.nan)
        done[idx] = np.where(ok, d, np.nan)
        rework_all[idx] = ok & rework
        stuck_all[idx] = ok & st_eff
        stuck_at[idx] = np.where(ok & st_eff, s_at, np.nan)
        work_all[idx] = work
        fit_all[idx] = np.where(never, np.nan, fitf)
        load_all[idx] = np.where(never, np.nan, loadf)
        reason[idx] = np.where(cancelled, 0, reason_b)
        active = np.concatenate([active, idx[ok]])

    cat = lambda parts, dtype: np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)  # noqa: E731
    re_task_a, re_time_a = cat(re_task, np.int64), cat(re_time, np.float64)
    re_user_a, re_actor_a = cat(re_user, np.int64), cat(re_actor, np.int64)
    o = np.lexsort((re_time_a, re_task_a))
    return Schedule(
        first_user=first_user, final_user=final_user, last_assign=last_assign, start=start, review1=review1,
        back=back, review2=review2, done=done, finish=finish, rework=rework_all, stuck=stuck_all,
        stuck_at=stuck_at, work=work_all, fit=fit_all, load=load_all, reason=reason, re_task=re_task_a[o],
        re_time=re_time_a[o], re_user=re_user_a[o], re_actor=re_actor_a[o], vd=vd,
    )


@dataclass
class EventArrays:
    """The observable log of one workspace, sorted by time (ties: task, then lifecycle order)."""

    task: np.ndarray
    ts_us: np.ndarray
    etype: np.ndarray
    user: np.ndarray  # -1 = null
    actor: np.ndarray
    from_status: np.ndarray  # -1 = null
    to_status: np.ndarray
    hours: np.ndarray  # nan = null
    points: np.ndarray
    text: np.ndarray  # comment index, -1 = null


@dataclass
class FinalState:
    status: np.ndarray  # status index at the end of the observation period
    assignee: np.ndarray  # -1 = unassigned
    points: np.ndarray


def _spread(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Task index of each of ``counts.sum()`` items, and a uniform draw in (0, 1) for each."""
    task = np.repeat(np.arange(len(counts)), counts)
    return task, rng.uniform(0.02, 0.98, len(task))


def build_events(rng: np.random.Generator, config: SimConfig, org: Org, tasks: Tasks, sc: Schedule,
                 plan: AnomalyPlan) -> tuple[EventArrays, FinalState]:
    n = len(tasks)
    H = config.horizon_hours
    leads = org.team_leads
    lead = leads[tasks.team]
    ok = ~tasks.cancelled
    final = sc.final_user
    ws, we, wr = sc.vd
    gap = np.where(sc.stuck, plan.stuck_gap, 0.0)
    stuck_frac = plan.stuck_frac
    team_size = np.bincount(org.user_team, minlength=len(org.team_ids))
    members_sorted = np.argsort(org.user_team, kind="stable")
    team_off = np.concatenate([[0], np.cumsum(team_size)[:-1]])

    def team_member(task_idx: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        t = tasks.team[task_idx]
        draw = rng.random(len(task_idx))
        pick = members_sorted[team_off[t] + (draw * team_size[t]).astype(np.int64)]
        if exclude is not None:  # the next member instead, when the draw hits the excluded one
            clash = (pick == exclude) & (team_size[t] > 1)
            nxt = (((draw * team_size[t]).astype(np.int64) + 1) % team_size[t])
            pick = np.where(clash, members_sorted[team_off[t] + nxt], pick)
        return pick

    reviewer = team_member(np.arange(n), exclude=final)
    parts: list[tuple] = []  # (task, t, etype, user, actor, from, to, hours, points, text, seq)

    def add(task, t, etype, user=-1, actor=-1, frm=-1, to=-1, hours=np.nan, points=np.nan, text=-1, seq=0):
        k = len(task)
        full = lambda v, dt: np.broadcast_to(np.asarray(v, dtype=dt), (k,))  # noqa: E731
        parts.append((task, t, full(etype, np.int8), full(user, np.int64), full(actor, np.int64),
                      full(frm, np.int8), full(to, np.int8), full(hours, np.float64), full(points, np.float64),
                      full(text, np.int64), full(seq, np.int8)))

    all_t = np.arange(n)
    add(all_t, tasks.created, E_CREATED, actor=tasks.reporter, points=tasks.points0, seq=0)
    i = np.flatnonzero(sc.first_user >= 0)
    add(i, tasks.assign_at[i], E_ASSIGNED, user=sc.first_user[i], actor=lead[i], seq=1)
    if len(sc.re_task):
        add(sc.re_task, sc.re_time, E_REASSIGNED, user=sc.re_user, actor=sc.re_actor, seq=2)
    i = np.flatnonzero(ok)
    add(i, sc.start[i], E_STATUS, final[i], final[i], S_TODO, S_PROGRESS, seq=3)
    add(i, sc.review1[i], E_STATUS, final[i], final[i], S_PROGRESS, S_REVIEW, seq=5)
    j = np.flatnonzero(sc.rework)
    add(j, sc.back[j], E_STATUS, final[j], reviewer[j], S_REVIEW, S_PROGRESS, seq=6)
    add(j, sc.review2[j], E_STATUS, final[j], final[j], S_PROGRESS, S_REVIEW, seq=7)
    add(i, sc.done[i], E_STATUS, final[i], reviewer[i], S_REVIEW, S_DONE, seq=8)
    add(i, sc.done[i], E_COMPLETED, final[i], final[i], seq=9)
    c = np.flatnonzero(tasks.cancelled)
    add(c, tasks.cancel_at[c], E_STATUS, final[c], lead[c], S_TODO, S_CANCELLED, seq=8)

    def during_work(task_idx: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Time at work fraction ``u`` of the main work of each task (skipping a stuck gap)."""
        t = warp(sc.start[task_idx], u * sc.work[task_idx], ws[task_idx], we[task_idx], wr[task_idx])
        return t + np.where(u > stuck_frac[task_idx], gap[task_idx], 0.0)

    # scope changes while the work is under way
    j = np.flatnonzero(ok & tasks.scope_change)
    add(j, during_work(j, rng.uniform(0.05, 0.9, len(j))), E_SCOPE, final[j], lead[j],
        points=tasks.points1[j], seq=4)

    # time logs: a few entries adding up to the (under-)logged true effort
    n_logs = np.where(ok, 1 + rng.poisson(np.clip(tasks.effort / 8.0, 0.0, 4.0)), 0)
    j, u = _spread(rng, n_logs)
    share = rng.exponential(1.0, len(j))
    share /= np.bincount(j, weights=share, minlength=n)[j]
    logged = tasks.effort * org.log_factor[np.maximum(final, 0)] * rng.lognormal(0.0, 0.2, n)
    hours = np.maximum(0.25, np.round(share * logged[j] * 4.0) / 4.0)
    add(j, during_work(j, u), E_TIME, final[j], final[j], hours=hours, seq=4)

    # comments: more of them, and more troubled ones, when the work goes badly
    fit = np.nan_to_num(sc.fit, nan=0.5)
    load = np.nan_to_num(sc.load, nan=0.0)
    n_skills = tasks.req_true.sum(axis=1)
    lam = np.where(ok, 0.9 + 0.9 * (1.0 - fit) + 0.3 * n_skills + 0.4 * np.minimum(load, 2.0), 0.5)
    n_com = rng.poisson(lam)
    j, u = _spread(rng, n_com)
    end = np.where(ok, sc.done, tasks.cancel_at)
    t_c = tasks.created[j] + u * (end[j] - gap[j] - tasks.created[j])
    t_c = t_c + np.where(sc.stuck[j] & (t_c >= sc.stuck_at[j]), gap[j], 0.0)
    trouble_p = np.clip(0.08 + 0.6 * (1.0 - fit) + 0.15 * (load > 1.2), 0.0, 0.9)[j]
    trouble = rng.random(len(j)) < trouble_p
    n_neutral, n_trouble = len(T.COMMENTS_NEUTRAL), len(T.COMMENTS_TROUBLE)
    text = np.where(trouble, n_neutral + (rng.random(len(j)) * n_trouble).astype(np.int64),
                    (rng.random(len(j)) * n_neutral).astype(np.int64))
    by_worker = (final[j] >= 0) & (t_c >= np.nan_to_num(sc.last_assign[j], nan=np.inf)) & (rng.random(len(j)) < 0.6)
    actor = np.where(by_worker, final[j], team_member(j))
    add(j, t_c, E_COMMENT, actor=actor, text=text, seq=4)

    cols = [np.concatenate([p[k] for p in parts]) for k in range(11)]
    task, t, etype, user, actor, frm, to, hours, points, text, seq = cols
    keep = t <= H  # the observable log ends at the cut-off
    task, t, etype, user, actor, frm, to, hours, points, text, seq = (
        c[keep] for c in (task, t, etype, user, actor, frm, to, hours, points, text, seq))
    ts_us = config.start_us + np.round(t * 3600.0).astype(np.int64) * 1_000_000
    o = np.lexsort((seq, task, ts_us))
    ev = EventArrays(task=task[o], ts_us=ts_us[o], etype=etype[o], user=user[o], actor=actor[o],
                     from_status=frm[o], to_status=to[o], hours=hours[o], points=points[o], text=text[o])
    return ev, final_state(n, ev, tasks)


def _last_per_task(n: int, task: np.ndarray, values: np.ndarray, default, dtype) -> np.ndarray:
    """Value of each task's last (in log order) selected event."""
    out = np.full(n, default, dtype=dtype)
    if len(task):
        rev_task = task[::-1]
        uniq, first_in_rev = np.unique(rev_task, return_index=True)
        out[uniq] = values[::-1][first_in_rev]
    return out


def final_state(n: int, ev: EventArrays, tasks: Tasks) -> FinalState:
    s = ev.etype == E_STATUS
    status = _last_per_task(n, ev.task[s], ev.to_status[s], S_TODO, np.int64)
    a = (ev.etype == E_ASSIGNED) | (ev.etype == E_REASSIGNED)
    assignee = _last_per_task(n, ev.task[a], ev.user[a], -1, np.int64)
    p = ev.etype == E_SCOPE
    points = _last_per_task(n, ev.task[p], ev.points[p], np.nan, np.float64)
    points = np.where(np.isnan(points), tasks.points0, points)
    return FinalState(status=status, assignee=assignee, points=points)
