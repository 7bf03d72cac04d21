"""Simulated notifications, inbox sessions and clicks, derived from a finished simulation.

:func:`simulate_notifications` reads the observable event log of a :class:`SimTables` (and, for the hidden
engagement model only, who really works with whom over the whole period) and draws every random number from its own
stream, ``SeedSequence(seed, spawn_key=(STREAM, workspace ordinal))``: the simulation itself is neither read from
nor written to, so existing simulator outputs stay byte-identical.

**Notifications** (observable), one per recipient, from the events as a tracker would send them -- never to the
event's own actor:

* ``assigned``: the first assignment, to the assignee; ``reassigned``: to the new and to the previous assignee;
* ``comment``: to the task's watchers (reporter, assignees so far, earlier commenters); ``mention``: a comment
  mentions a member of the project's team (``mention_rate`` of comments), who gets a ``mention`` instead;
* ``status_changed`` (a status change other than to done) and ``completed``: to the watchers;
* ``due_soon``: a reminder ``reminder_hours`` before the due date, to the assignee of a task still open and
  assigned then (no sender).

**Inbox sessions** (observable): each user opens the inbox 1-3 times on a working day they work (UTC 08:00-18:00),
and sees the notifications that arrived since the previous visit in the logged order, *newest first*
(``position`` 1 = top; ``session_id``, ``opened_at``). Notifications that arrive after a user's last visit are
never seen (``session_id``, ``position``, ``clicked`` null).

**Clicks** (observable ``clicked``) come from a hidden position-based model: P(click) = P(examine | position) *
P(attractive), with P(examine) = ``position ** -position_power`` and logit P(attractive) = base[type] +
taste[user, type] + user bias + ``tie_weight`` * (tie(user, sender) - mean tie) + ``priority_weight`` * (priority
- 1.5) + ``due_soon_weight`` when the task is open and due within 48 h at the visit (``overdue_weight`` when open
and overdue) + ``age_weight`` * log(1 + age in days). The true tie is 0.6 * same team + 0.45 * log(1 + tasks both
touched over the *whole* period) + a symmetric per-pair draw -- future included, so hidden; the ranker only sees
the past. The hidden values (``p_attract``, ``p_examine``, ``p_click``, ``taste``, ``tie``, ``user_bias``,
``time_sensitive``) go to the truth table only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.errors import SundayError

#: spawn key of the notification stream (the simulator uses 0 for the plan and 1 for workspaces)
STREAM = 9
NOTIFICATION_TYPES: tuple[str, ...] = (
    "assigned", "reassigned", "mention", "comment", "status_changed", "completed", "due_soon",
)
(N_ASSIGNED, N_REASSIGNED, N_MENTION, N_COMMENT, N_STATUS, N_COMPLETED, N_DUE) = range(7)
PRIORITY_LEVELS = {"low": 0, "medium": 1, "high": 2, "critical": 3}
TS = pa.timestamp("us")
US = 1_000_000
HOUR_US = 3600 * US
DAY_US = 24 * HOUR_US

OBSERVABLE_SCHEMA = pa.schema([
    ("notification_id", pa.string()), ("workspace_id", pa.string()), ("user_id", pa.string()),
    ("sender_id", pa.string()), ("task_id", pa.string()), ("project_id", pa.string()), ("type", pa.string()),
    ("created_at", TS), ("event_id", pa.string()), ("session_id", pa.string()), ("opened_at", TS),
    ("position", pa.int32()), ("clicked", pa.int8()),
])
TRUTH_SCHEMA = pa.schema([
    ("notification_id", pa.string()), ("workspace_id", pa.string()), ("session_id", pa.string()),
    ("p_attract", pa.float64()), ("p_examine", pa.float64()), ("p_click", pa.float64()),
    ("taste", pa.float64()), ("tie", pa.float64()), ("user_bias", pa.float64()), ("time_sensitive", pa.bool_()),
])
#: columns that exist only in the truth table
TRUTH_ONLY = tuple(c for c in TRUTH_SCHEMA.names if c not in OBSERVABLE_SCHEMA.names)


@dataclass(frozen=True)
class NotifyConfig:
    """How notifications, visits and clicks are drawn (the hidden engagement model's weights included)."""

    reminder_hours: float = 24.0
    mention_rate: float = 0.3
    work_day_p: tuple[float, float] = (0.75, 0.97)  # per-user chance of working on a working day (uniform range)
    extra_visit_p: tuple[float, float] = (0.1, 0.7)  # per-user chance of each of 2 extra visits on a work day
    position_power: float = 0.7
    base: tuple[float, ...] = (-0.3, -0.6, 0.0, -1.3, -2.4, -1.9, -0.7)  # per NOTIFICATION_TYPES
    taste_sd: float = 0.8
    user_bias_sd: float = 0.5
    pair_sd: float = 0.5
    tie_weight: float = 0.9
    priority_weight: float = 0.35
    due_soon_weight: float = 1.0
    overdue_weight: float = 0.6
    age_weight: float = -0.25

    def __post_init__(self) -> None:
        if len(self.base) != len(NOTIFICATION_TYPES):
            raise SundayError(f"NotifyConfig.base needs {len(NOTIFICATION_TYPES)} values, got {len(self.base)}")
        if not 0 <= self.mention_rate <= 1:
            raise SundayError(f"NotifyConfig.mention_rate must be in [0, 1], got {self.mention_rate}")
        if self.reminder_hours <= 0:
            raise SundayError(f"NotifyConfig.reminder_hours must be positive, got {self.reminder_hours}")


# -- notifications from the event log ------------------------------------------------------------------------------

_EV_CODES = {"created": 0, "assigned": 1, "reassigned": 2, "status_changed": 3, "commented": 4, "completed": 5}
_REMINDER = 9


def _us(col: pd.Series) -> np.ndarray:
    return col.to_numpy("datetime64[us]").astype(np.int64)


def _derive(ev: pd.DataFrame, tasks: pd.DataFrame, ucode: dict[str, int], team_members: dict[int, np.ndarray],
            project_team: np.ndarray, rng: np.random.Generator, cfg: NotifyConfig, end_us: int) -> pd.DataFrame:
    """Notifications of one workspace (recipient / sender as user codes, -1 = none)."""
    tcode = {t: i for i, t in enumerate(tasks["task_id"])}
    et = ev["event_type"].map(_EV_CODES).fillna(-1).to_numpy(np.int64)
    keep = et >= 0
    ev = ev[keep]
    et = et[keep]
    task = ev["task_id"].map(tcode).to_numpy(np.int64)
    ts = _us(ev["timestamp"])
    user = ev["user_id"].map(ucode).fillna(-1).to_numpy(np.int64)
    actor = ev["actor_id"].map(ucode).fillna(-1).to_numpy(np.int64)
    to_done = (ev["to_status"] == "done").to_numpy()
    closing = (ev["to_status"].isin(["done", "cancelled"]).to_numpy()) | (et == _EV_CODES["completed"])
    ev_row = np.arange(len(ev))

    # due reminders as pseudo-events (after every real event of the same instant)
    due = _us(tasks["due_date"].fillna(pd.Timestamp(0)))
    has_due = tasks["due_date"].notna().to_numpy()
    r_at = due - int(cfg.reminder_hours * HOUR_US)
    r_ok = has_due & (r_at <= end_us) & (r_at >= (ts.min() if len(ts) else 0))
    r_task = np.flatnonzero(r_ok)
    n_r = len(r_task)
    task = np.concatenate([task, r_task])
    ts = np.concatenate([ts, r_at[r_task]])
    et = np.concatenate([et, np.full(n_r, _REMINDER)])
    user = np.concatenate([user, np.full(n_r, -1)])
    actor = np.concatenate([actor, np.full(n_r, -1)])
    to_done = np.concatenate([to_done, np.zeros(n_r, bool)])
    closing = np.concatenate([closing, np.zeros(n_r, bool)])
    ev_row = np.concatenate([ev_row, np.full(n_r, -1)])
    order = np.lexsort((et == _REMINDER, np.arange(len(ts)), ts, task))

    # mention draws, one pair per comment (drawn for every comment in log order: the stream does not depend on state)
    is_comment = et == _EV_CODES["commented"]
    m_draw = np.full(len(et), np.nan)
    m_pick = np.full(len(et), np.nan)
    n_c = int(is_comment.sum())
    m_draw[is_comment] = rng.random(n_c)
    m_pick[is_comment] = rng.random(n_c)
    team_of_task = project_team[tasks["project_code"].to_numpy(np.int64)]

    rec, snd, typ, t_at, row, tsk = [], [], [], [], [], []

    def send(r: int, s: int, kind: int, i: int) -> None:
        if r >= 0 and r != s:
            rec.append(r)
            snd.append(s)
            typ.append(kind)
            t_at.append(ts[i])
            row.append(ev_row[i])
            tsk.append(task[i])

    cur_task = -1
    watchers: list[int] = []
    assignee = -1
    closed = False
    for i in order:
        k = task[i]
        if k != cur_task:
            cur_task, watchers, assignee, closed = k, [], -1, False
        e, a, u = et[i], actor[i], user[i]
        if e == 0:  # created: the reporter watches
            if a >= 0 and a not in watchers:
                watchers.append(a)
        elif e == 1 or e == 2:  # (re)assigned
            kind = N_ASSIGNED if e == 1 else N_REASSIGNED
            send(u, a, kind, i)
            if e == 2 and assignee >= 0 and assignee != u:
                send(assignee, a, N_REASSIGNED, i)
            assignee = u
            if u >= 0 and u not in watchers:
                watchers.append(u)
        elif e == 3:  # status changed (done: the completed event notifies)
            if not to_done[i]:
                for w in watchers:
                    send(w, a, N_STATUS, i)
        elif e == 5:
            for w in watchers:
                send(w, a, N_COMPLETED, i)
        elif e == 4:  # comment, maybe with a mention of a project team member
            mentioned = -1
            if m_draw[i] < cfg.mention_rate:
                members = team_members[int(team_of_task[k])]
                members = members[members != a]
                if len(members):
                    mentioned = int(members[int(m_pick[i] * len(members))])
                    send(mentioned, a, N_MENTION, i)
            for w in watchers:
                if w != mentioned:
                    send(w, a, N_COMMENT, i)
            if a >= 0 and a not in watchers:
                watchers.append(a)
        elif e == _REMINDER:
            if not closed and assignee >= 0:
                send(assignee, -1, N_DUE, i)
        if closing[i]:
            closed = True
    return pd.DataFrame({"recipient": np.asarray(rec, np.int64), "sender": np.asarray(snd, np.int64),
                         "type": np.asarray(typ, np.int64), "created_us": np.asarray(t_at, np.int64),
                         "ev_row": np.asarray(row, np.int64), "task": np.asarray(tsk, np.int64)})


# -- visits, sessions and clicks -----------------------------------------------------------------------------------

def _visits(rng: np.random.Generator, n_users: int, start_us: int, end_us: int, cfg: NotifyConfig
            ) -> tuple[np.ndarray, np.ndarray]:
    """(user, time) of every inbox visit, sorted by user then time."""
    day0 = start_us // DAY_US
    days = np.arange(day0, end_us // DAY_US + 1)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday: 0 = Monday
    days = days[weekday < 5]
    D = len(days)
    p_work = rng.uniform(*cfg.work_day_p, n_users)
    p_extra = rng.uniform(*cfg.extra_visit_p, n_users)
    works = rng.random((n_users, D)) < p_work[:, None]
    n_vis = 1 + (rng.random((n_users, D, 2)) < p_extra[:, None, None]).sum(axis=2)
    offs = rng.uniform(8.0, 18.0, (n_users, D, 3))
    slot = np.arange(3)[None, None, :] < n_vis[:, :, None]
    ok = works[:, :, None] & slot
    u, d, _ = np.nonzero(ok)
    t = days[d] * DAY_US + np.round(offs[ok] * 3600.0).astype(np.int64) * US
    keep = (t >= start_us) & (t <= end_us)
    u, t = u[keep], t[keep]
    o = np.lexsort((t, u))
    return u[o], t[o]


def _cowork(ev: pd.DataFrame, tcode: dict[str, int], ucode: dict[str, int], n_tasks: int, n_users: int) -> np.ndarray:
    """(U, U) number of tasks both users touched (actor or user of any event) over the whole log."""
    who = pd.concat([ev[["task_id", "actor_id"]].rename(columns={"actor_id": "u"}),
                     ev[["task_id", "user_id"]].rename(columns={"user_id": "u"})]).dropna()
    t = who["task_id"].map(tcode).to_numpy(np.int64)
    u = who["u"].map(ucode).to_numpy(np.int64)
    inc = np.zeros((n_tasks, n_users), dtype=np.int64)
    inc[t, u] = 1
    return inc.T @ inc  # integer matmul: exact, no BLAS


def _workspace(ws: str, ws_index: int, seed: int, ev: pd.DataFrame, tasks: pd.DataFrame, users: pd.DataFrame,
               projects: pd.DataFrame, cfg: NotifyConfig, start_us: int, end_us: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM, ws_index)))
    user_ids = users["user_id"].to_numpy()
    ucode = {u: i for i, u in enumerate(user_ids)}
    U = len(user_ids)
    team_codes, user_team = np.unique(users["team_id"].fillna("").to_numpy(), return_inverse=True)
    tcode_of_team = {t: i for i, t in enumerate(team_codes)}
    team_members = {i: np.flatnonzero(user_team == i) for i in range(len(team_codes))}
    pcode = {p: i for i, p in enumerate(projects["project_id"])}
    project_team = projects["team_id"].map(tcode_of_team).fillna(-1).to_numpy(np.int64)
    team_members[-1] = np.arange(U)
    tasks = tasks.assign(project_code=tasks["project_id"].map(pcode).fillna(-1).astype(np.int64))
    tcode = {t: i for i, t in enumerate(tasks["task_id"])}

    # hidden per-user and per-pair engagement traits (drawn first: they do not depend on the log's size)
    T = len(NOTIFICATION_TYPES)
    taste = rng.normal(0.0, cfg.taste_sd, (U, T))
    user_bias = rng.normal(0.0, cfg.user_bias_sd, U)
    pair = rng.normal(0.0, cfg.pair_sd, (U, U))
    pair = (pair + pair.T) / np.sqrt(2.0)
    visit_u, visit_t = _visits(rng, U, start_us, end_us, cfg)

    n = _derive(ev, tasks, ucode, team_members, project_team, rng, cfg, end_us)

    # the session each notification is seen in: the recipient's first visit strictly after it arrived
    span = end_us - start_us + 2  # user-major keys: (user, time) in one sorted int64
    vkey = visit_u.astype(np.int64) * span + (visit_t - start_us + 1)
    nkey = n["recipient"].to_numpy() * span + (n["created_us"].to_numpy() - start_us + 1)
    j = np.searchsorted(vkey, nkey, side="right")
    if len(vkey):
        last = np.minimum(j, len(vkey) - 1)
        seen = (j < len(vkey)) & (visit_u[last] == n["recipient"].to_numpy())
        n["opened_us"] = np.where(seen, visit_t[last], -1)
    else:
        seen = np.zeros(len(n), dtype=bool)
        n["opened_us"] = -1
    n["visit"] = np.where(seen, j, -1)
    n = n.reset_index(drop=True)
    n["seq"] = np.arange(len(n))

    # position in the logged order: newest first (ties: the later-sent first)
    s = n[seen].sort_values(["visit", "created_us", "seq"], ascending=[True, False, False], kind="stable")
    pos = s.groupby("visit").cumcount().to_numpy() + 1
    n["position"] = 0
    n.loc[s.index, "position"] = pos
    used = np.unique(n.loc[seen, "visit"].to_numpy())
    order_v = used[np.lexsort((visit_u[used], visit_t[used]))]
    session_no = np.full(len(visit_t), -1)
    session_no[order_v] = np.arange(len(order_v))

    # hidden engagement
    r = n["recipient"].to_numpy()
    snd = n["sender"].to_numpy()
    typ = n["type"].to_numpy()
    k = n["task"].to_numpy()
    cow = _cowork(ev, tcode, ucode, len(tasks), U)
    has_s = snd >= 0
    s_safe = np.maximum(snd, 0)
    tie_all = 0.6 * (user_team[:, None] == user_team[None, :]) + 0.45 * np.log1p(cow) + pair
    off = ~np.eye(U, dtype=bool)
    tie_mean = float(tie_all[off].mean()) if U > 1 else 0.0
    tie = np.where(has_s, tie_all[r, s_safe], np.nan)
    prio = tasks["priority"].map(PRIORITY_LEVELS).fillna(1).to_numpy(np.float64)[k]
    due = tasks["due_date"]
    due_us = np.where(due.notna(), _us(due.fillna(pd.Timestamp(0))), np.iinfo(np.int64).max)[k]
    closing = ev[(ev["event_type"] == "completed") | ev["to_status"].isin(["done", "cancelled"])]
    close_us = np.full(len(tasks), np.iinfo(np.int64).max)
    if len(closing):
        first_close = closing.groupby("task_id")["timestamp"].min()
        close_us[first_close.index.map(tcode).to_numpy(np.int64)] = _us(first_close)
    opened = n["opened_us"].to_numpy()
    is_open = close_us[k] > opened
    h_due = (due_us.astype(np.float64) - opened) / HOUR_US
    due_soon = is_open & (h_due > 0) & (h_due <= 48)
    overdue = is_open & (h_due <= 0)
    age_days = np.maximum(opened - n["created_us"].to_numpy(), 0) / DAY_US
    logit = (np.asarray(cfg.base)[typ] + taste[r, typ] + user_bias[r]
             + cfg.tie_weight * np.where(has_s, tie - tie_mean, 0.0) + cfg.priority_weight * (prio - 1.5)
             + cfg.due_soon_weight * due_soon + cfg.overdue_weight * overdue
             + cfg.age_weight * np.log1p(age_days))
    p_attract = 1.0 / (1.0 + np.exp(-logit))
    p_examine = np.where(seen, np.maximum(n["position"].to_numpy(), 1).astype(np.float64) ** -cfg.position_power,
                         0.0)
    p_click = p_attract * p_examine
    clicked = rng.random(len(n)) < p_click

    m = len(n)
    nid = np.array([f"{ws}-n{i:08d}" for i in range(m)], dtype=object)
    sess = np.array([f"{ws}-s{j:06d}" if ok else None
                     for j, ok in zip(session_no[np.maximum(n["visit"].to_numpy(), 0)] if len(session_no) else
                                      np.zeros(m, np.int64), seen)], dtype=object)
    ev_ids = ev["event_id"].to_numpy()
    evr = n["ev_row"].to_numpy()
    task_ids = tasks["task_id"].to_numpy()
    proj_ids = tasks["project_id"].to_numpy()
    obs = {
        "notification_id": nid, "workspace_id": np.full(m, ws, object), "user_id": user_ids[r],
        "sender_id": np.where(has_s, user_ids[s_safe], None), "task_id": task_ids[k], "project_id": proj_ids[k],
        "type": np.asarray(NOTIFICATION_TYPES, object)[typ], "created_at": n["created_us"].to_numpy(),
        "event_id": np.where(evr >= 0, ev_ids[np.maximum(evr, 0)] if len(ev_ids) else None, None),
        "session_id": sess, "opened_at": np.where(seen, opened, -1), "position": np.where(seen, n["position"], -1),
        "clicked": np.where(seen, clicked, False).astype(np.int8), "seen": seen,
    }
    truth = {
        "notification_id": nid, "workspace_id": obs["workspace_id"], "session_id": sess,
        "p_attract": p_attract, "p_examine": p_examine, "p_click": p_click, "taste": taste[r, typ], "tie": tie,
        "user_bias": user_bias[r], "time_sensitive": due_soon | overdue,
    }
    return obs, truth


def _to_tables(obs: list[dict], truth: list[dict]) -> tuple[pa.Table, pa.Table]:
    def cat(parts: list[dict], key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.array([])

    seen = cat(obs, "seen").astype(bool)
    ts = lambda v, mask=None: pa.array(v.astype(np.int64), type=TS, mask=mask)  # noqa: E731
    o = pa.table({
        "notification_id": pa.array(cat(obs, "notification_id"), pa.string()),
        "workspace_id": pa.array(cat(obs, "workspace_id"), pa.string()),
        "user_id": pa.array(cat(obs, "user_id"), pa.string()),
        "sender_id": pa.array(cat(obs, "sender_id"), pa.string()),
        "task_id": pa.array(cat(obs, "task_id"), pa.string()),
        "project_id": pa.array(cat(obs, "project_id"), pa.string()),
        "type": pa.array(cat(obs, "type"), pa.string()),
        "created_at": ts(cat(obs, "created_at")),
        "event_id": pa.array(cat(obs, "event_id"), pa.string()),
        "session_id": pa.array(cat(obs, "session_id"), pa.string()),
        "opened_at": ts(cat(obs, "opened_at"), ~seen),
        "position": pa.array(cat(obs, "position").astype(np.int32), mask=~seen),
        "clicked": pa.array(cat(obs, "clicked").astype(np.int8), mask=~seen),
    }, schema=OBSERVABLE_SCHEMA)
    t = pa.table({
        "notification_id": o.column("notification_id"), "workspace_id": o.column("workspace_id"),
        "session_id": o.column("session_id"),
        **{c: pa.array(cat(truth, c).astype(np.float64)) for c in ("p_attract", "p_examine", "p_click", "taste")},
        "tie": pa.array(cat(truth, "tie").astype(np.float64), mask=np.isnan(cat(truth, "tie").astype(np.float64))),
        "user_bias": pa.array(cat(truth, "user_bias").astype(np.float64)),
        "time_sensitive": pa.array(cat(truth, "time_sensitive").astype(bool)),
    }, schema=TRUTH_SCHEMA)
    return o, t


def simulate_notifications(tables, seed: int, config: NotifyConfig | None = None) -> tuple[pa.Table, pa.Table]:
    """(observable notifications with sessions and clicks, hidden truth) for every workspace of ``tables``.

    ``tables``: a :class:`~sunday.data.simulator.SimTables` (or any mapping with ``events``, ``tasks``, ``users``
    and ``projects``); it is only read. ``seed``: the simulation's seed (the notification stream is
    ``SeedSequence(seed, spawn_key=(STREAM, i))`` for the i-th workspace in id order). Same tables and seed ->
    identical rows."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SundayError(f"seed must be a non-negative integer, got {seed!r}")
    cfg = config or NotifyConfig()
    try:
        ev_t, tasks_t, users_t, projects_t = (tables[n] for n in ("events", "tasks", "users", "projects"))
    except KeyError as exc:
        raise SundayError(f"tables: missing table {exc.args[0]!r} (need events, tasks, users, projects)") from None
    ev_all = ev_t.select(["event_id", "workspace_id", "task_id", "event_type", "timestamp", "user_id", "actor_id",
                          "to_status"]).to_pandas()
    tasks_all = tasks_t.select(["task_id", "workspace_id", "project_id", "priority", "due_date"]).to_pandas()
    users_all = users_t.select(["user_id", "workspace_id", "team_id"]).to_pandas()
    projects_all = projects_t.select(["project_id", "workspace_id", "team_id"]).to_pandas()
    if ev_all.empty:
        return _to_tables([], [])
    start_us = int(_us(ev_all["timestamp"]).min())
    end_us = int(_us(ev_all["timestamp"]).max())
    obs, truth = [], []
    by = lambda f: dict(tuple(f.groupby("workspace_id", sort=True)))  # noqa: E731
    ev_by, tasks_by, users_by, proj_by = by(ev_all), by(tasks_all), by(users_all), by(projects_all)
    for i, ws in enumerate(sorted(users_by)):
        ev = ev_by.get(ws, ev_all.iloc[:0])
        if ev.empty:
            continue
        o, t = _workspace(ws, i, int(seed), ev.reset_index(drop=True), tasks_by[ws].reset_index(drop=True),
                          users_by[ws].reset_index(drop=True), proj_by[ws].reset_index(drop=True), cfg,
                          start_us, end_us)
        obs.append(o)
        truth.append(t)
    return _to_tables(obs, truth)
