"""``project_velocity``: one row per project at the end of every day from its first event to its last.

Flows (that day's events): points and tasks completed, hours logged, tasks created, scope changes, reassignments,
users assigned in the project for the first time. Stocks (at day end, from the task state timeline): open tasks
and points, open critical tasks, and open tasks still waiting on an unfinished dependency (a dependency is
finished once it is done or cancelled; dependencies outside the workspace are ignored).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.compute.common import SCALE, US_PER_DAY, Timeline, empty, fixed, to_arrow

GROUP = "project_velocity"
INF = 1 << 62  # "never" (exact in float64, so it survives a fillna)


def _first_close(tl: Timeline) -> pd.Series:
    """task_id -> time it first became done / cancelled (tasks never closed are absent)."""
    closed = ~tl.open_after
    s = pd.Series(tl.ts[closed], index=tl.task_id[closed])
    return s[~s.index.duplicated()]


def blocked_intervals(tl: Timeline, tasks: pd.DataFrame) -> pd.DataFrame:
    """(project_id, start, end) while each task with dependencies is open and waits on one: from its first event
    to the earlier of its own first close and its last dependency's first close (end = INF while open)."""
    first = tl.first
    info = pd.DataFrame({"task_id": tl.task_id[first], "project_id": tl.project_id[first], "start": tl.ts[first]})
    t = tasks[["task_id", "dependencies"]].drop_duplicates("task_id")
    t = t[t["dependencies"].map(lambda d: d is not None and not isinstance(d, float) and len(d) > 0)]
    if t.empty or info.empty:
        return pd.DataFrame({"project_id": [], "start": np.zeros(0, np.int64), "end": np.zeros(0, np.int64)})
    pairs = t.explode("dependencies").rename(columns={"dependencies": "dep"})
    known = set(tl.task_id[first]) | set(tasks["task_id"])
    pairs = pairs[pairs["dep"].isin(known)]
    close = _first_close(tl)
    pairs["dep_close"] = close.reindex(pairs["dep"].to_numpy()).fillna(INF).to_numpy(np.int64)
    wait = pairs.groupby("task_id")["dep_close"].max()
    info = info[info["task_id"].isin(wait.index)]
    own = close.reindex(info["task_id"].to_numpy()).fillna(INF).to_numpy(np.int64)
    info = info.assign(end=np.minimum(own, wait.reindex(info["task_id"].to_numpy()).to_numpy(np.int64)))
    return info[info["end"] > info["start"]]


def compute(tl: Timeline, tasks: pd.DataFrame) -> pa.Table:
    if tl.n == 0:
        return empty(GROUP)
    has_project = pd.notna(tl.project_id)
    day = np.floor_divide(tl.ts, US_PER_DAY)
    projects = pd.Index(pd.unique(tl.project_id[has_project]))
    pcode = projects.get_indexer(tl.project_id)
    first_day = np.full(len(projects), np.iinfo(np.int64).max)
    last_day = np.full(len(projects), np.iinfo(np.int64).min)
    np.minimum.at(first_day, pcode[has_project], day[has_project])
    np.maximum.at(last_day, pcode[has_project], day[has_project])
    n_days = last_day - first_day + 1
    offset = np.concatenate([[0], np.cumsum(n_days)[:-1]])
    total = int(n_days.sum())

    def pos(pc: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = (pc >= 0)
        ok &= (d >= first_day[np.maximum(pc, 0)]) & (d <= last_day[np.maximum(pc, 0)])
        return np.where(ok, offset[np.maximum(pc, 0)] + d - first_day[np.maximum(pc, 0)], 0), ok

    def flow(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        p, ok = pos(pcode[mask], day[mask])
        w = np.ones(ok.sum(), dtype=np.int64) if weights is None else np.asarray(weights)[mask][ok]
        out = np.zeros(total, dtype=np.int64)
        np.add.at(out, p[ok], w.astype(np.int64))
        return out

    def stock(pc: np.ndarray, d: np.ndarray, delta: np.ndarray) -> np.ndarray:
        p, ok = pos(pc, d)
        out = np.zeros(total, dtype=np.int64)
        np.add.at(out, p[ok], np.asarray(delta, dtype=np.int64)[ok])
        c = np.cumsum(out)
        return c - np.concatenate([[0], c])[offset[np.repeat(np.arange(len(projects)), n_days)]]

    et = tl.etype
    completed = et == "completed"
    if completed.any():  # a task counts once: its first completion
        dup = pd.Series(tl.task_id[completed]).duplicated().to_numpy()
        idx = np.flatnonzero(completed)
        completed = np.zeros(tl.n, dtype=bool)
        completed[idx[~dup]] = True
    asg = np.isin(et, ("assigned", "reassigned")) & (tl.user >= 0)
    first_in_project = np.zeros(tl.n, dtype=bool)
    if asg.any():
        idx = np.flatnonzero(asg)
        order = idx[np.lexsort((tl.seq[idx], tl.ts[idx]))]
        key = pd.DataFrame({"p": pcode[order], "u": tl.user[order]})
        first_in_project[order[~key.duplicated().to_numpy()]] = True

    d_open = tl.open_after.astype(np.int64) - tl.open_before.astype(np.int64)
    d_points = tl.load_after - tl.load_before
    prio = tasks.drop_duplicates("task_id").set_index("task_id")["priority"]
    critical = (prio.reindex(tl.task_id).to_numpy() == "critical")
    blocked = blocked_intervals(tl, tasks)
    bp = projects.get_indexer(blocked["project_id"].to_numpy()) if len(blocked) else np.zeros(0, np.int64)
    b_start, b_end = blocked["start"].to_numpy(np.int64), blocked["end"].to_numpy(np.int64)
    fin = b_end < INF
    b_pc = np.concatenate([bp, bp[fin]])
    b_day = np.floor_divide(np.concatenate([b_start, b_end[fin]]), US_PER_DAY)
    b_delta = np.concatenate([np.ones(len(bp), np.int64), -np.ones(int(fin.sum()), np.int64)])

    grid_p = np.repeat(np.arange(len(projects)), n_days)
    grid_day = first_day[grid_p] + (np.arange(total) - offset[grid_p])
    return to_arrow(GROUP, {
        "project_id": projects.to_numpy()[grid_p].astype(object),
        "event_timestamp": (grid_day + 1) * US_PER_DAY - 1,
        "points_done": flow(completed, tl.points_after) / SCALE,
        "tasks_done": flow(completed),
        "hours_logged": flow(et == "time_logged", fixed(tl.hours)) / SCALE,
        "tasks_created": flow(et == "created"),
        "backlog_tasks": stock(pcode, day, d_open),
        "backlog_points": stock(pcode, day, d_points) / SCALE,
        "blocked_tasks": stock(b_pc, b_day, b_delta),
        "scope_changes": flow(et == "scope_changed"),
        "critical_bugs": stock(pcode, day, np.where(critical, d_open, 0)),
        "team_changes": flow(first_in_project),
        "reassignments": flow(et == "reassigned"),
    })

