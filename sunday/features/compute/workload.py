"""``user_workload``: one row per user at the end of every day on which the user had an event.

A user "has an event" when an event names them (``user_id``: assigned, reassigned to, status changes, time logs,
completions, scope changes of their task) or takes a task away from them (a ``reassigned`` event on a task they
held). Each such event changes the user's state by a *delta* (open tasks +-1, open points +-p, hours +h, one more
completion with its duration / due-date outcome / review cycles, one more assigned task, one more reassignment
away); the state at any time T is the sum of the deltas at or before T. The batch rows and
:func:`user_workload_asof` (the streaming path) go through the same two functions, :func:`user_deltas` and
:func:`workload_at`, and all sums are integers, so both give identical values at the same timestamp.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.compute.common import (
    SCALE, US_PER_DAY, US_PER_HOUR, Timeline, day_end, fixed, prepare_events, scalar_us, to_arrow, to_us,
)

GROUP = "user_workload"
WINDOW_US = 7 * US_PER_DAY
DELTAS = ("d_open", "d_points", "d_hours", "d_completed", "d_dur_us", "d_dur_n", "d_due_n", "d_ontime", "d_review",
          "d_assigned", "d_away")


def user_index(events: pd.DataFrame, users: pd.DataFrame) -> pd.Index:
    """Every user id known to the users table or named by an event (the code space of the computations)."""
    ids = pd.concat([users["user_id"], events["user_id"]], ignore_index=True).dropna()
    return pd.Index(pd.unique(ids.to_numpy()))


def _due_us(tasks: pd.DataFrame) -> pd.Series:
    due = to_us(tasks["due_date"].reset_index(drop=True)) if "due_date" in tasks.columns else np.array([], np.int64)
    s = pd.Series(due, index=tasks["task_id"].to_numpy())
    s = s[~s.index.duplicated()]
    return s.where(s != np.iinfo(np.int64).min)  # NaT -> NaN (float)


def user_deltas(tl: Timeline, tasks: pd.DataFrame) -> pd.DataFrame:
    """Per-user state changes (integer deltas), one row per (user, event), with the events' ts / seq."""
    parts = []
    zero = lambda k: np.zeros(k, dtype=np.int64)  # noqa: E731

    def add(mask, user, **cols):
        k = int(mask.sum())
        if not k:
            return
        d = {"user": user[mask], "ts": tl.ts[mask], "seq": tl.seq[mask]}
        for name in DELTAS:
            v = cols.get(name)
            d[name] = zero(k) if v is None else np.broadcast_to(v, tl.ts.shape)[mask].astype(np.int64)
        parts.append(pd.DataFrame(d))

    # open tasks / open points: the task leaves its holder before the event and joins its holder after it
    changed = ((tl.assignee_before != tl.assignee_after) | (tl.open_before != tl.open_after)
               | (tl.load_before != tl.load_after))
    add(changed & (tl.assignee_before >= 0), tl.assignee_before, d_open=-tl.open_before.astype(np.int64),
        d_points=-tl.load_before)
    add(changed & (tl.assignee_after >= 0), tl.assignee_after, d_open=tl.open_after.astype(np.int64),
        d_points=tl.load_after)
    # hours logged
    add((tl.etype == "time_logged") & (tl.user >= 0), tl.user, d_hours=fixed(tl.hours))
    # completions (a task counts once per user: its first completion)
    comp = (tl.etype == "completed") & (tl.user >= 0)
    if comp.any():
        key = pd.DataFrame({"t": tl.task_id[comp], "u": tl.user[comp]})
        first = np.zeros(tl.n, dtype=bool)
        first[np.flatnonzero(comp)[~key.duplicated().to_numpy()]] = True
        comp = first
    known = (tl.assignee_after == tl.user) & (tl.assign_ts_after > np.iinfo(np.int64).min)
    due = _due_us(tasks).reindex(tl.task_id).to_numpy()
    has_due = ~np.isnan(due)
    on_time = has_due & (tl.ts <= np.nan_to_num(due, nan=-np.inf))
    add(comp, tl.user, d_completed=1, d_dur_us=np.where(known, tl.ts - np.where(known, tl.assign_ts_after, tl.ts), 0),
        d_dur_n=known.astype(np.int64), d_due_n=has_due.astype(np.int64), d_ontime=on_time.astype(np.int64),
        d_review=tl.reviews_after)
    # tasks assigned to the user (each task once per user)
    asg = np.isin(tl.etype, ("assigned", "reassigned")) & (tl.user >= 0)
    if asg.any():
        key = pd.DataFrame({"t": tl.task_id[asg], "u": tl.user[asg]})
        first = np.zeros(tl.n, dtype=bool)
        first[np.flatnonzero(asg)[~key.duplicated().to_numpy()]] = True
        add(first, tl.user, d_assigned=1)
    # reassignments away from the previous holder
    away = (tl.etype == "reassigned") & (tl.assignee_before >= 0) & (tl.assignee_before != tl.assignee_after)
    add(away, tl.assignee_before, d_away=1)
    if not parts:
        return pd.DataFrame({c: np.zeros(0, np.int64) for c in ("user", "ts", "seq") + DELTAS})
    return pd.concat(parts, ignore_index=True)


def cumulative(deltas: pd.DataFrame) -> pd.DataFrame:
    """Running per-user sums of the deltas (``c_*``), sorted by ts (as ``merge_asof`` needs)."""
    d = deltas.sort_values(["user", "ts", "seq"], kind="stable").reset_index(drop=True)
    cum = d.groupby("user", sort=False)[list(DELTAS)].cumsum()
    cum.columns = ["c" + c[1:] for c in DELTAS]
    out = pd.concat([d[["user", "ts", "seq"]], cum], axis=1)
    return out.sort_values(["ts", "seq"], kind="stable").reset_index(drop=True)


def state_at(cum: pd.DataFrame, user: np.ndarray, at: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The cumulative columns of each (user, at) pair: the sums over the user's deltas at or before ``at``
    (0 where none), in the order of the inputs."""
    left = pd.DataFrame({"user": np.asarray(user, dtype=np.int64), "ts": np.asarray(at, dtype=np.int64),
                         "_row": np.arange(len(user))})
    if len(left) == 0:
        return pd.DataFrame({c: np.zeros(0, np.int64) for c in columns})
    left = left.sort_values("ts", kind="stable")
    right = cum[["user", "ts"] + columns]
    m = pd.merge_asof(left, right, on="ts", by="user", direction="backward", allow_exact_matches=True)
    m = m.sort_values("_row")
    return pd.DataFrame({c: m[c].fillna(0).to_numpy(np.int64) for c in columns})


STATE = ["c_open", "c_points", "c_hours", "c_completed", "c_dur_us", "c_dur_n", "c_due_n", "c_ontime", "c_review",
         "c_assigned", "c_away"]


def workload_at(cum: pd.DataFrame, user: np.ndarray, at: np.ndarray, capacity: np.ndarray) -> dict[str, np.ndarray]:
    """The feature values of each (user code, timestamp) pair from the cumulative deltas."""
    s = state_at(cum, user, at, STATE)
    back = state_at(cum, user, np.asarray(at, dtype=np.int64) - WINDOW_US, ["c_hours"])
    hours = (s["c_hours"].to_numpy() - back["c_hours"].to_numpy()) / SCALE
    cap = np.asarray(capacity, dtype=np.float64)
    ok = np.isfinite(cap) & (cap > 0)
    completed = s["c_completed"].to_numpy()
    dur_n, due_n, assigned = s["c_dur_n"].to_numpy(), s["c_due_n"].to_numpy(), s["c_assigned"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "open_task_count": s["c_open"].to_numpy(),
            "open_points": s["c_points"].to_numpy() / SCALE,
            "hours_logged_7d": hours,
            "capacity_utilisation": np.where(ok, hours / np.where(ok, cap, 1.0), 0.0),
            "completed_count": completed,
            "mean_completion_hours": np.where(dur_n > 0, s["c_dur_us"].to_numpy() / np.maximum(dur_n, 1) / US_PER_HOUR,
                                              np.nan),
            "completion_rate": np.where(assigned > 0, np.minimum(completed / np.maximum(assigned, 1), 1.0), np.nan),
            "on_time_rate": np.where(due_n > 0, s["c_ontime"].to_numpy() / np.maximum(due_n, 1), np.nan),
            "review_cycles": np.where(completed > 0, s["c_review"].to_numpy() / np.maximum(completed, 1), np.nan),
            "reassignment_count": s["c_away"].to_numpy(),
        }


def active_days(tl: Timeline) -> pd.DataFrame:
    """(user code, day end) of every day on which the user had an event (named by it, or lost a task by it)."""
    named = tl.user >= 0
    away = (tl.etype == "reassigned") & (tl.assignee_before >= 0) & (tl.assignee_before != tl.assignee_after)
    user = np.concatenate([tl.user[named], tl.assignee_before[away]])
    at = day_end(np.concatenate([tl.ts[named], tl.ts[away]]))
    return pd.DataFrame({"user": user, "at": at}).drop_duplicates().sort_values(["user", "at"]).reset_index(drop=True)


def capacities(users: pd.DataFrame, vocab: pd.Index) -> np.ndarray:
    cap = pd.Series(pd.to_numeric(users["weekly_capacity_hours"], errors="coerce").to_numpy(np.float64),
                    index=users["user_id"].to_numpy())
    cap = cap[~cap.index.duplicated()]
    return cap.reindex(vocab).to_numpy(np.float64)


def compute(tl: Timeline, tasks: pd.DataFrame, users: pd.DataFrame, vocab: pd.Index,
            cum: pd.DataFrame | None = None) -> pa.Table:
    cum = cumulative(user_deltas(tl, tasks)) if cum is None else cum
    rows = active_days(tl)
    user, at = rows["user"].to_numpy(), rows["at"].to_numpy()
    values = workload_at(cum, user, at, capacities(users, vocab)[user] if len(user) else np.zeros(0))
    return to_arrow(GROUP, {"user_id": vocab.to_numpy()[user].astype(object), "event_timestamp": at, **values})


# -- the streaming path -------------------------------------------------------------------------------------------

def involved_events(events: pd.DataFrame, user_id: str, as_of_us: int) -> pd.DataFrame:
    """Prepared events at or before ``as_of`` of every task the user was ever named on (all that can change the
    user's state: their assignments, losses, logs, completions and the tasks' status / points history)."""
    tasks = pd.unique(events.loc[events["user_id"] == user_id, "task_id"].to_numpy())
    ev = prepare_events(events[events["task_id"].isin(tasks)])  # (a task named only later adds no delta)
    return ev[ev["ts"] <= as_of_us]


def user_workload_asof(events: pd.DataFrame, tasks: pd.DataFrame, users: pd.DataFrame, user_id: str,
                       as_of: pd.Timestamp) -> dict[str, object]:
    """One user's ``user_workload`` row as of any timestamp, from that user's events (``events`` may hold other
    users' and later events; only events at or before ``as_of`` are used). Same definitions and code as the batch
    rows: at a batch row's ``event_timestamp`` it returns the batch row's values exactly.

    Which users' rows an event changes: its ``user_id`` and, for ``reassigned``, the task's previous assignee
    (see :func:`previous_assignee`)."""
    at = scalar_us(as_of)
    ev = involved_events(events, user_id, at)
    vocab = pd.Index([user_id]).append(user_index(ev, users[users["user_id"] == user_id])).unique()
    tl = Timeline(ev, vocab)
    cum = cumulative(user_deltas(tl, tasks))
    values = workload_at(cum, np.array([0]), np.array([at], dtype=np.int64), capacities(users, vocab)[:1])
    row: dict[str, object] = {"user_id": user_id, "event_timestamp": pd.Timestamp(at, unit="us", tz="UTC")}
    for name, v in values.items():
        x = v[0]
        if isinstance(x, (np.floating, float)):
            row[name] = None if np.isnan(x) else float(x)
        else:
            row[name] = int(x)
    return row


def previous_assignee(events: pd.DataFrame, task_id: str, before: pd.Timestamp | None = None,
                      event_id: str | None = None) -> str | None:
    """Who held ``task_id`` just before an event (given by its timestamp and, for ties, its event id)."""
    ev = prepare_events(events)
    ev = ev[(ev["task_id"] == task_id) & ev["event_type"].isin(("assigned", "reassigned")) & ev["user_id"].notna()]
    if before is not None:
        at = scalar_us(before)
        keep = ev["ts"] < at
        if event_id is not None:
            keep |= (ev["ts"] == at) & (ev["event_id"] < event_id)
        ev = ev[keep]
    return None if ev.empty else str(ev["user_id"].iloc[-1])


def affected_users(events: pd.DataFrame, event: dict | pd.Series) -> list[str]:
    """The users whose ``user_workload`` row ``event`` changes: its ``user_id`` and, when it is a reassignment,
    the previous assignee of its task (from ``events``, the log before it)."""
    out = []
    if event.get("user_id") is not None and not pd.isna(event.get("user_id")):
        out.append(str(event["user_id"]))
    if event.get("event_type") == "reassigned":
        prev = previous_assignee(events, event["task_id"], event["timestamp"], event.get("event_id"))
        if prev is not None and prev not in out:
            out.append(prev)
    return out
