"""Point-in-time features of each user at weekly cuts, and next-week hours labels, for the workload predictor.

Features (:func:`workload_features`): one row per (user, cut) for the users named by some event (``user_id``) at or
before the cut, from the observable ``users`` / ``tasks`` / ``task_events`` tables and only the events at or before
the cut:

* the ``user_workload`` feature group's values at the cut, through its own code
  (:func:`sunday.features.compute.workload.workload_at` over :func:`~sunday.features.compute.workload.user_deltas`):
  open tasks / points, hours logged in 7 days, capacity use, completions, completion / on-time rates, mean
  completion hours, review cycles, reassignments away;
* hours logged in each of the 4 weeks before the cut, tasks assigned in the last 7 days, the user's mean weekly
  hours and utilisation since their first event, declared ``weekly_capacity_hours``;
* the user's open tasks at the cut (each task's latest state from its events <= the cut): count and points by
  status (to do / in progress / in review / blocked), story points due in the next 7 / 14 days and overdue, hours
  already logged on them, and an estimate of their remaining hours (points x the workspace's logged hours per point
  of the tasks completed by the cut, less what is logged on the task, at least 0);
* the user's pace: task-hours their tasks spent in progress (summed over tasks, up to the cut) in the last 4 weeks
  and since joining, hours logged per such task-hour, and from it the hours the tasks in progress at the cut would
  take next week (per task min(remaining estimate, pace x 168 h));
* the user's team (``users.team_id``; a task's team is its project's ``projects.team_id``): open tasks not yet
  assigned, tasks created and tasks first assigned in the last 7 days, each per team member -- the flow of work
  the next week's assignments come from (NaN without a ``projects`` table or team ids).

Never read: the tasks table's end-of-log ``status`` / ``assignee_id`` / ``story_points``, events after the cut, any
``truth/...`` table. Labels, read only by :func:`true_hours_next_week` / :func:`logged_hours_next_week`:

* **truth** (hidden): the user's true hours of work in ``(cut, cut + 7 days]``. The simulator
  (``events.schedule``) works a task at a constant calendar pace from ``true_start`` to the end of its main work,
  then the task waits for review (lognormal, median ~8 h) and for the close (median ~6 h), with rework on 6-40 %
  of tasks. ``truth/task_truth`` has the start and the completion but not the end of the main work, so the label
  spreads ``true_effort_hours`` uniformly over ``[true_start, true_completion - w]``, ``w`` = :data:`TAIL_HOURS`
  (8 h, at most half the span) -- an approximation: stuck gaps, velocity-drop slow-downs and rework are not
  resolved. Checked against the simulator's own main-work span ``[start, review1]`` (re-run internals, 2
  workspaces of seed 0, 200k events): MAE 0.68 h / R^2 0.990 per user-week with ``w`` = 5-10 h, 0.82 h spreading
  over the whole span, 0.89 h taking off the mean waits (19.7 h);
* **logged** (observable): the user's ``time_logged`` hours in ``(cut, cut + 7 days]``.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.features.compute.common import (
    SCALE, STATUS_CODES, US_PER_DAY, US_PER_HOUR, Timeline, fixed, group_cumsum, last_valid, prepare_events, to_us,
    week_end,
)
from sunday.features.compute.workload import capacities, cumulative, state_at, user_deltas, user_index, workload_at
from sunday.models.priority.features import observable_frames

WEEK_US = 7 * US_PER_DAY
NOT_SET = np.iinfo(np.int64).min
#: hours taken off the end of a task's [true_start, true_completion] span for the review / close waits (module doc)
TAIL_HOURS = 8.0

TASK_COLUMNS = ("task_id", "due_date")
EVENT_COLUMNS = ("event_id", "task_id", "event_type", "timestamp", "user_id")
USER_COLUMNS = ("user_id", "weekly_capacity_hours")
ID_COLUMNS = ("user_id", "workspace_id", "cut")

WORKLOAD_GROUP = ("open_task_count", "open_points", "hours_logged_7d", "capacity_utilisation", "completed_count",
                  "mean_completion_hours", "completion_rate", "on_time_rate", "review_cycles", "reassignment_count")
FEATURES: tuple[str, ...] = WORKLOAD_GROUP + (
    "hours_logged_w2", "hours_logged_w3", "hours_logged_w4", "hours_logged_4w_mean", "assigned_7d",
    "declared_capacity", "mean_weekly_hours", "mean_utilisation", "weeks_active",
    "todo_tasks", "in_progress_tasks", "in_review_tasks", "blocked_tasks", "in_progress_points",
    "due_7d_points", "due_14d_points", "overdue_points", "open_hours_logged", "remaining_hours_est",
    "workspace_hours_per_point", "in_progress_task_hours_4w", "hours_per_task_hour_4w", "hours_per_task_hour",
    "active_hours_est", "team_unassigned_per_member", "team_created_7d_per_member", "team_assigned_7d_per_member",
)
FEATURE_LABELS: dict[str, str] = {
    "open_task_count": "open tasks", "open_points": "open story points", "hours_logged_7d": "hours logged last week",
    "capacity_utilisation": "last week's hours / capacity", "completed_count": "tasks completed so far",
    "mean_completion_hours": "mean hours assigned-to-done", "completion_rate": "completion rate",
    "on_time_rate": "on-time rate", "review_cycles": "review cycles per task", "reassignment_count": "tasks lost",
    "hours_logged_w2": "hours logged 2 weeks ago", "hours_logged_w3": "hours logged 3 weeks ago",
    "hours_logged_w4": "hours logged 4 weeks ago", "hours_logged_4w_mean": "mean weekly hours, last 4 weeks",
    "assigned_7d": "tasks assigned last week", "declared_capacity": "declared weekly capacity",
    "mean_weekly_hours": "mean weekly hours since joining", "mean_utilisation": "mean utilisation since joining",
    "weeks_active": "weeks since first event", "todo_tasks": "open tasks not started",
    "in_progress_tasks": "tasks in progress", "in_review_tasks": "tasks in review", "blocked_tasks": "blocked tasks",
    "in_progress_points": "points in progress", "due_7d_points": "points due in 7 days",
    "due_14d_points": "points due in 14 days", "overdue_points": "overdue open points",
    "open_hours_logged": "hours already logged on open tasks", "remaining_hours_est": "estimated remaining hours",
    "workspace_hours_per_point": "workspace hours per point",
    "in_progress_task_hours_4w": "task-hours in progress, last 4 weeks",
    "hours_per_task_hour_4w": "hours logged per in-progress task-hour, last 4 weeks",
    "hours_per_task_hour": "hours logged per in-progress task-hour since joining",
    "active_hours_est": "estimated hours next week on tasks in progress",
    "team_unassigned_per_member": "team's unassigned open tasks per member",
    "team_created_7d_per_member": "team's tasks created last week per member",
    "team_assigned_7d_per_member": "team's tasks first assigned last week per member",
}


# ------------------------------------------------------------------------------------------------------- input


def _frames(tables: Any) -> dict[str, pd.DataFrame]:
    f = observable_frames(tables, {"tasks": TASK_COLUMNS, "events": EVENT_COLUMNS, "users": USER_COLUMNS})
    obs = getattr(tables, "observable", tables)
    if "projects" in obs:  # optional: the team of each task (team flow features)
        f.update(observable_frames(tables, {"projects": ("project_id", "team_id")}))
    return f


def _by_workspace(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    if "workspace_id" not in df.columns:
        return {"workspace": df}
    return {str(w): g for w, g in df.groupby(df["workspace_id"].astype(str), sort=True)}


def weekly_cuts(first_us: int, last_us: int, first_cut_days: float = 28.0) -> np.ndarray:
    """Week ends (Sunday 23:59:59.999999 UTC) from ``first_cut_days`` after ``first_us`` to ``last_us``."""
    start = int(week_end(np.array([first_us + int(first_cut_days * US_PER_DAY)]))[0])
    if start > last_us:
        return np.zeros(0, dtype=np.int64)
    return np.arange(start, last_us + 1, WEEK_US, dtype=np.int64)


# ---------------------------------------------------------------------------------------------------- features


def _task_state(tl: Timeline, group_end: np.ndarray, cut: int) -> np.ndarray:
    """Per task (timeline group), the row of its last event at or before ``cut`` (-1: none yet)."""
    li = last_valid(tl.ts <= cut, tl.start)
    return li[group_end]


def _team_codes(tasks: pd.DataFrame, users: pd.DataFrame, projects: pd.DataFrame | None, vocab: pd.Index,
                task_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(team code per user code, team code per task (timeline group), members per team); -1 where unknown."""
    if projects is None or "team_id" not in users.columns or "project_id" not in tasks.columns:
        return np.full(len(vocab), -1), np.full(len(task_ids), -1), np.zeros(0)
    teams = pd.Index(pd.unique(pd.concat([users["team_id"], projects["team_id"]]).dropna().astype(str)))
    u_team = pd.Series(users["team_id"].to_numpy(), index=users["user_id"].astype(str).to_numpy())
    u_team = u_team[~u_team.index.duplicated()].reindex(vocab.astype(str))
    user_team = teams.get_indexer(u_team.astype(object).where(u_team.notna(), None)).astype(np.int64)
    p_team = pd.Series(projects["team_id"].to_numpy(), index=projects["project_id"].astype(str).to_numpy())
    t_proj = pd.Series(tasks["project_id"].to_numpy(), index=tasks["task_id"].astype(str).to_numpy())
    t_proj = t_proj[~t_proj.index.duplicated()].reindex(task_ids)
    t_team = p_team[~p_team.index.duplicated()].reindex(t_proj.astype(str).to_numpy())
    task_team = teams.get_indexer(t_team.astype(object).where(t_team.notna(), None)).astype(np.int64)
    members = np.bincount(user_team[user_team >= 0], minlength=len(teams)).astype(np.float64)
    return user_team, task_team, members


def _workspace_rows(ws: str, tasks: pd.DataFrame, users: pd.DataFrame, events: pd.DataFrame,
                    projects: pd.DataFrame | None, cuts: np.ndarray | None, first_cut_days: float
                    ) -> pd.DataFrame | None:
    ev = prepare_events(events)
    if len(ev) == 0:
        return None
    vocab = user_index(ev, users)
    tl = Timeline(ev, vocab)
    cum = cumulative(user_deltas(tl, tasks))
    cap = capacities(users, vocab)
    if cuts is None:
        cuts = weekly_cuts(int(ev["ts"].min()), int(ev["ts"].max()), first_cut_days)
    if len(cuts) == 0:
        return None
    # first event naming each user (rows exist from then on)
    named = tl.user >= 0
    first_named = np.full(len(vocab), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_named, tl.user[named], tl.ts[named])
    # per-task timeline: group ends, hours logged so far, due dates
    n = tl.n
    group_end = np.flatnonzero(np.r_[tl.task_id[1:] != tl.task_id[:-1], True]) if n else np.zeros(0, np.int64)
    hours_cum = group_cumsum(np.where(tl.etype == "time_logged", fixed(tl.hours), 0), tl.start) / SCALE
    due_s = pd.Series(to_us(tasks["due_date"].reset_index(drop=True)), index=tasks["task_id"].astype(str).to_numpy())
    due_s = due_s[~due_s.index.duplicated()]
    task_of_group = tl.task_id[group_end].astype(str)
    due = due_s.reindex(task_of_group).fillna(NOT_SET).to_numpy(np.int64)
    has_due = due != NOT_SET
    # in-progress intervals: from an event leaving the task in progress to the task's next event
    nxt = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    if n:
        same = tl.task_id[1:] == tl.task_id[:-1]
        nxt[:-1] = np.where(same, tl.ts[1:], np.iinfo(np.int64).max)
    # team flow: each task's team, creation (first event) and first assignment
    user_team, task_team, members = _team_codes(tasks, users, projects, vocab, task_of_group)
    g_first = tl.ts[tl.start[group_end]] if n else np.zeros(0, np.int64)
    is_asg = np.isin(tl.etype, ("assigned", "reassigned")) & (tl.user >= 0)
    g_asg = np.full(len(group_end), np.iinfo(np.int64).max, dtype=np.int64)
    if is_asg.any():
        grp = np.cumsum(np.r_[True, tl.task_id[1:] != tl.task_id[:-1]]) - 1
        np.minimum.at(g_asg, grp[is_asg], tl.ts[is_asg])
    prog = (tl.status_after == STATUS_CODES["in_progress"]) & (tl.assignee_after >= 0)
    p_user, p_from, p_to = tl.assignee_after[prog], tl.ts[prog], nxt[prog]
    parts = []
    for c in np.asarray(cuts, dtype=np.int64):
        users_c = np.flatnonzero(first_named <= c)
        if len(users_c) == 0:
            continue
        at = np.full(len(users_c), c, dtype=np.int64)
        w = workload_at(cum, users_c, at, cap[users_c])
        back = [state_at(cum, users_c, at - k * WEEK_US, ["c_hours", "c_assigned"]) for k in range(5)]
        now = state_at(cum, users_c, at, ["c_hours", "c_assigned"])
        hrs = [(now if k == 0 else back[k])["c_hours"].to_numpy() for k in range(5)]
        week_h = [(hrs[k] - hrs[k + 1]) / SCALE for k in range(4)]  # week_h[0] = last 7 days
        weeks_active = np.maximum((c - first_named[users_c]) / WEEK_US, 1.0)
        total_h = now["c_hours"].to_numpy() / SCALE
        ccap = cap[users_c]
        ok = np.isfinite(ccap) & (ccap > 0)
        # open tasks at the cut
        li = _task_state(tl, group_end, int(c))
        seen = li >= 0
        r = np.maximum(li, 0)
        holder = np.where(seen, tl.assignee_after[r], -1)
        open_ = seen & tl.open_after[r] & (holder >= 0)
        status = tl.status_after[r]
        pts = np.nan_to_num(tl.points_after_f[r], nan=0.0)
        logged = hours_cum[r]
        done = seen & (status == STATUS_CODES["done"])
        done_pts = pts[done].sum()
        hpp = logged[done].sum() / done_pts if done_pts > 0 else np.nan
        remaining = np.maximum(pts * (hpp if np.isfinite(hpp) else 0.0) - logged, 0.0)
        pos = pd.Index(users_c).get_indexer(holder)
        sel = open_ & (pos >= 0)

        def per_user(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
            m = sel & mask
            return np.bincount(pos[m], weights=np.asarray(values, dtype=np.float64)[m], minlength=len(users_c))

        # task-hours in progress up to the cut (all, and in the last 4 weeks), per user
        upos = pd.Index(users_c).get_indexer(p_user)
        end_c = np.minimum(p_to, c)
        dur_all = np.clip(end_c - p_from, 0, None) / US_PER_HOUR
        dur_4w = np.clip(end_c - np.maximum(p_from, c - 4 * WEEK_US), 0, None) / US_PER_HOUR
        okp = (upos >= 0) & (p_from <= c)
        prog_all = np.bincount(upos[okp], weights=dur_all[okp], minlength=len(users_c))
        prog_4w = np.bincount(upos[okp], weights=dur_4w[okp], minlength=len(users_c))
        logged_4w = np.sum(week_h, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            pace_4w = np.where(prog_4w > 0, logged_4w / prog_4w, np.nan)
            pace_all = np.where(prog_all > 0, total_h / prog_all, np.nan)
        pace = np.where(np.isfinite(pace_4w), pace_4w, pace_all)
        ones = np.ones(len(li))
        in_prog = status == STATUS_CODES["in_progress"]
        due_in = np.where(has_due, due - c, np.iinfo(np.int64).max)
        row = {
            "user_id": vocab.to_numpy()[users_c].astype(object), "workspace_id": ws,
            "cut": pd.to_datetime(at, unit="us"),
            **{k: np.asarray(w[k], dtype=np.float64) for k in WORKLOAD_GROUP},
            "hours_logged_w2": week_h[1], "hours_logged_w3": week_h[2], "hours_logged_w4": week_h[3],
            "hours_logged_4w_mean": np.mean(week_h, axis=0),
            "assigned_7d": (now["c_assigned"].to_numpy() - back[1]["c_assigned"].to_numpy()).astype(np.float64),
            "declared_capacity": ccap, "mean_weekly_hours": total_h / weeks_active,
            "mean_utilisation": np.where(ok, total_h / weeks_active / np.where(ok, ccap, 1.0), np.nan),
            "weeks_active": weeks_active,
            "todo_tasks": per_user(ones, status == STATUS_CODES["todo"]),
            "in_progress_tasks": per_user(ones, in_prog),
            "in_review_tasks": per_user(ones, status == STATUS_CODES["in_review"]),
            "blocked_tasks": per_user(ones, status == STATUS_CODES["blocked"]),
            "in_progress_points": per_user(pts, in_prog),
            "due_7d_points": per_user(pts, (due_in > 0) & (due_in <= WEEK_US)),
            "due_14d_points": per_user(pts, (due_in > 0) & (due_in <= 2 * WEEK_US)),
            "overdue_points": per_user(pts, has_due & (due_in <= 0)),
            "open_hours_logged": per_user(logged, np.ones(len(li), bool)),
            "remaining_hours_est": per_user(remaining, np.ones(len(li), bool)) if np.isfinite(hpp)
            else np.full(len(users_c), np.nan),
            "workspace_hours_per_point": np.full(len(users_c), hpp),
            "in_progress_task_hours_4w": prog_4w, "hours_per_task_hour_4w": pace_4w,
            "hours_per_task_hour": pace_all,
        }
        if len(members):
            has_team = task_team >= 0
            open_task = seen & tl.open_after[r]

            def per_team(mask: np.ndarray) -> np.ndarray:
                m = has_team & mask
                return np.bincount(task_team[m], minlength=len(members)).astype(np.float64)

            ut = user_team[users_c]
            per_member = lambda v: np.where(ut >= 0, v[np.maximum(ut, 0)] / np.maximum(members[np.maximum(ut, 0)], 1),
                                            np.nan)  # noqa: E731
            row["team_unassigned_per_member"] = per_member(per_team(open_task & (g_asg > c)))
            row["team_created_7d_per_member"] = per_member(per_team((g_first <= c) & (g_first > c - WEEK_US)))
            row["team_assigned_7d_per_member"] = per_member(per_team((g_asg <= c) & (g_asg > c - WEEK_US)))
        else:
            for k in ("team_unassigned_per_member", "team_created_7d_per_member", "team_assigned_7d_per_member"):
                row[k] = np.full(len(users_c), np.nan)
        task_pace = np.where(sel, np.nan_to_num(pace, nan=0.0)[np.maximum(pos, 0)], 0.0)
        row["active_hours_est"] = per_user(np.minimum(remaining, task_pace * 168.0), in_prog) \
            if np.isfinite(hpp) else np.full(len(users_c), np.nan)
        parts.append(pd.DataFrame(row))
    return pd.concat(parts, ignore_index=True) if parts else None


def workload_features(tables: Any, cuts: Iterable | None = None, first_cut_days: float = 28.0,
                      workspaces: Iterable[str] | None = None, user_ids: Iterable[str] | None = None
                      ) -> pd.DataFrame:
    """Feature rows (:data:`ID_COLUMNS` + :data:`FEATURES`) of every user named by an event at or before each cut
    (or only of ``user_ids``: SundayError naming an id in neither the users table nor the events).

    ``cuts``: timestamps (the same for every workspace); default: every week end from ``first_cut_days`` after the
    workspace's first event to its last event. ``tables``: SimTables (observable part only), or a mapping of Arrow
    tables / DataFrames with ``tasks``, ``events`` (``task_events``) and ``users``. SundayError naming a missing
    table or field."""
    f = _frames(tables)
    cut_us = None
    if cuts is not None:
        cut_us = np.sort(to_us(pd.Series(list(cuts))))
        if (cut_us == NOT_SET).any():
            raise SundayError("cuts: every cut must be a timestamp")
    wanted = None
    if user_ids is not None:
        wanted = [str(u) for u in user_ids]
        known = set(f["users"]["user_id"].dropna().astype(str)) | set(f["events"]["user_id"].dropna().astype(str))
        unknown = [u for u in wanted if u not in known]
        if unknown:
            raise SundayError(f"unknown user id(s) {unknown[:5]}: not in the users table nor named by an event")
    tasks, users, events = (_by_workspace(f[k]) for k in ("tasks", "users", "events"))
    projects = _by_workspace(f["projects"]) if "projects" in f else {}
    ids = sorted(events) if workspaces is None else [str(w) for w in workspaces]
    unknown = [w for w in ids if w not in events]
    if unknown:
        raise SundayError(f"unknown workspace id(s) {unknown[:5]}: no events")
    parts = []
    empty_t = f["tasks"].iloc[0:0]
    empty_u = f["users"].iloc[0:0]
    for ws in ids:
        proj = projects.get(ws, f["projects"].iloc[0:0]) if "projects" in f else None
        rows = _workspace_rows(ws, tasks.get(ws, empty_t), users.get(ws, empty_u), events[ws], proj, cut_us,
                               first_cut_days)
        if rows is not None:
            parts.append(rows)
    if not parts:
        raise SundayError("no (user, cut) row: no workspace has a user with events before a cut")
    out = pd.concat(parts, ignore_index=True)
    if wanted is not None:
        out = out[out["user_id"].astype(str).isin(wanted)].reset_index(drop=True)
    return out[list(ID_COLUMNS) + list(FEATURES)]


# ------------------------------------------------------------------------------------------------------ labels


def _rows_us(frame: pd.DataFrame) -> np.ndarray:
    missing = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing:
        raise SundayError(f"workload rows: missing required field(s) {missing}")
    return to_us(frame["cut"].reset_index(drop=True))


def true_hours_next_week(task_truth: Any, frame: pd.DataFrame, tail_hours: float = TAIL_HOURS) -> np.ndarray:
    """The HIDDEN label: each row's user's true hours of work in ``(cut, cut + 7 days]`` from ``truth/task_truth``
    (worker_id, true_start, true_completion, true_effort_hours), effort spread as the module docstring says."""
    tt = task_truth if isinstance(task_truth, pd.DataFrame) else task_truth.to_pandas()
    need = ("worker_id", "true_start", "true_completion", "true_effort_hours")
    missing = [c for c in need if c not in tt.columns]
    if missing:
        raise SundayError(f"task_truth: missing required field(s) {missing}")
    tt = tt[tt["worker_id"].notna() & tt["true_start"].notna() & tt["true_completion"].notna()]
    s = to_us(tt["true_start"].reset_index(drop=True)).astype(np.float64)
    e = to_us(tt["true_completion"].reset_index(drop=True)).astype(np.float64)
    span = np.maximum(e - s, 0.0)
    end = e - np.minimum(tail_hours * US_PER_HOUR, 0.5 * span)
    end = np.maximum(end, s + 1.0)
    rate = tt["true_effort_hours"].to_numpy(np.float64) / (end - s)  # hours of work per microsecond
    worker = tt["worker_id"].astype(str).to_numpy()
    cut = _rows_us(frame).astype(np.float64)
    user = frame["user_id"].astype(str).to_numpy()
    out = np.zeros(len(frame))
    order = np.argsort(worker, kind="stable")
    w_sorted = worker[order]
    for u in np.unique(user):
        rows = np.flatnonzero(user == u)
        lo, hi = np.searchsorted(w_sorted, u, "left"), np.searchsorted(w_sorted, u, "right")
        if lo == hi:
            continue
        k = order[lo:hi]
        a = np.maximum(s[k][None, :], cut[rows][:, None])
        b = np.minimum(end[k][None, :], cut[rows][:, None] + WEEK_US)
        out[rows] = (np.clip(b - a, 0.0, None) * rate[k][None, :]).sum(axis=1)
    return out


def logged_hours_next_week(tables: Any, frame: pd.DataFrame) -> np.ndarray:
    """The observable label: each row's user's ``time_logged`` hours in ``(cut, cut + 7 days]``."""
    ev = observable_frames(tables, {"events": ("event_type", "timestamp", "user_id", "hours")})["events"]
    ev = ev[(ev["event_type"] == "time_logged") & ev["user_id"].notna()]
    ts = to_us(ev["timestamp"].reset_index(drop=True))
    h = pd.to_numeric(ev["hours"], errors="coerce").fillna(0.0).to_numpy(np.float64)
    user = ev["user_id"].astype(str).to_numpy()
    cut = _rows_us(frame)
    ru = frame["user_id"].astype(str).to_numpy()
    out = np.zeros(len(frame))
    order = np.lexsort((ts, user))
    us, tss, cs = user[order], ts[order], np.r_[0.0, np.cumsum(fixed(h[order]))]
    for u in np.unique(ru):
        rows = np.flatnonzero(ru == u)
        lo, hi = np.searchsorted(us, u, "left"), np.searchsorted(us, u, "right")
        t = tss[lo:hi]
        a = lo + np.searchsorted(t, cut[rows], side="right")
        b = lo + np.searchsorted(t, cut[rows] + WEEK_US, side="right")
        out[rows] = (cs[b] - cs[a]) / SCALE
    return out
