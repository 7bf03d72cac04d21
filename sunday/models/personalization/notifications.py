"""Notification ranking: point-in-time features of (recipient, notification) and a LightGBM ranker over them.

Everything here reads OBSERVABLE data only: the ``task_events`` log, the ``tasks`` table's creation-time attributes
(project, priority, due date), the ``users`` table's team, and the notification log itself (what was sent, which
sessions showed it, at which position, and whether it was clicked). The simulator's hidden engagement model
(``p_attract``, tastes, true ties) is never read: it only scores the evaluation.

**Point in time.** A request row is (recipient ``user_id``, notification ``type``, ``sender_id``, ``task_id`` /
``project_id``, ``created_at``, optional ``due_date``) ranked at ``as_of`` (the session's ``opened_at``). Every
history count uses records strictly before ``as_of``: events, notifications sent, and clicks -- a click is known at
the time of the session that showed it, so the clicks of the session being ranked, or of any later one, never
reach its features. :class:`NotificationHistory` indexes the history once (sorted ``(key, time)`` arrays,
:class:`_Timeline`) and answers every row with binary searches, so a year of inbox sessions and a serving request
of a few rows go through the same code.

**Features** (:data:`FEATURES`; :data:`DESCRIPTIONS` says what each is):

* type: one-hot of :data:`NOTIFICATION_TYPES`;
* sender relevance: same team; tasks both touched before ``as_of`` (count and recency-weighted: exponential decay,
  ``decay_days``); notifications from this sender to the recipient (recency-weighted); how often the recipient
  clicked this sender's notifications (smoothed toward the recipient's own rate);
* the recipient's role on the task at ``as_of``: assignee, reporter, own comments;
* importance: the task's priority (0 low .. 3 critical); the project's open tasks and their share of high/critical
  priority at ``as_of``;
* time sensitivity: due date known, hours to due at ``as_of``, overdue, task still open;
* past engagement: the recipient's click rate overall (smoothed toward ``prior_ctr``) and for this type (smoothed
  toward the overall rate), and how many they saw; the notification's age and the session's size.

**Position bias.** Logged clicks depend on the position the logged (newest-first) order gave a notification. The
ranker sees ``position`` as a training feature (:attr:`RankerConfig.position_feature`) and is scored with the
position set to 1 (the top) for every row at inference: the rest of the model then ranks by how attractive a
notification is wherever it is shown (the "position as a feature" debiasing of click models).
``predict(frame, logged_position=True)`` instead predicts the click at the logged position (click prediction).

:class:`NotificationRanker`: LightGBM, a binary ``LGBMClassifier`` on the click (default) or
``LGBMRanker(objective="lambdarank")`` grouped by session. The default was chosen by measured NDCG (``sunday eval
notify-sim``, 200k events, seeds 0 and 1): the classifier is level with lambdarank on the IPS-weighted click NDCG@10
(0.731 vs 0.731; 0.761 vs 0.758), slightly ahead on the hidden engagement NDCG@10 (0.992 vs 0.989) and fits in half
the time. ``fit`` returns self, ``predict`` scores, ``rank`` orders a raw request for one recipient with reasons
(TreeSHAP ``pred_contrib``). :func:`position_propensity` estimates the examination curve of the logged positions
from a position-aware classifier, for inverse-propensity-weighted click metrics (:func:`ips_relevance`,
``ndcg_at_k(pooled=True)``). Bad input raises :class:`NotificationInputError` naming the field
(``notifications``, ``type``, ``created_at``, ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from sunday.data.simulator.notifications import NOTIFICATION_TYPES, PRIORITY_LEVELS
from sunday.errors import SundayError, ValidationError

TYPE_CODES = {t: i for i, t in enumerate(NOTIFICATION_TYPES)}
TYPE_FEATURES = [f"type_{t}" for t in NOTIFICATION_TYPES]
SENDER = ["has_sender", "sender_same_team", "shared_tasks_log", "shared_tasks_recent", "sender_sent_recent",
          "sender_seen_log", "sender_ctr"]
ROLE = ["is_assignee", "is_reporter", "own_comments_log"]
IMPORTANCE = ["priority", "project_open_log", "project_high_share"]
TIME = ["has_due", "hours_to_due", "overdue", "task_open", "age_hours_log"]
ENGAGEMENT = ["user_seen_log", "user_ctr", "user_type_ctr", "user_type_seen_log", "session_size_log"]
FEATURES: list[str] = TYPE_FEATURES + SENDER + ROLE + IMPORTANCE + TIME + ENGAGEMENT
POSITION = "position"
REQUEST_COLUMNS = ("type", "sender_id", "task_id", "project_id", "created_at", "due_date")

DESCRIPTIONS: dict[str, str] = {
    **{f"type_{t}": f"a '{t}' notification" for t in NOTIFICATION_TYPES},
    "has_sender": "sent by a person (not a reminder)",
    "sender_same_team": "sender in your team",
    "shared_tasks_log": "tasks you worked on with the sender",
    "shared_tasks_recent": "recent work with the sender",
    "sender_sent_recent": "recent notifications from the sender",
    "sender_seen_log": "notifications you saw from the sender",
    "sender_ctr": "how often you open the sender's notifications",
    "is_assignee": "you are the assignee",
    "is_reporter": "you reported the task",
    "own_comments_log": "you commented on the task",
    "priority": "task priority",
    "project_open_log": "open tasks in the project",
    "project_high_share": "share of urgent open work in the project",
    "has_due": "the task has a due date",
    "hours_to_due": "time to the due date",
    "overdue": "the task is overdue",
    "task_open": "the task is still open",
    "age_hours_log": "how long ago it arrived",
    "user_seen_log": "notifications you saw",
    "user_ctr": "how often you open notifications",
    "user_type_ctr": "how often you open this kind of notification",
    "user_type_seen_log": "notifications of this kind you saw",
    "session_size_log": "notifications waiting in the inbox",
    POSITION: "position in the inbox",
}

_US = 1_000_000
_HOUR_S = 3600.0
_NEVER = np.iinfo(np.int64).max


class NotificationInputError(ValidationError, ValueError):
    """Bad notification input (empty list, unknown type, bad time, missing column); names the field."""

    status_code = 422

    def __init__(self, field: str, message: str, record: int | None = None, table: str = "notifications"):
        ValidationError.__init__(self, table=table, field=field, message=message, record=record)


@dataclass(frozen=True)
class FeatureConfig:
    """``decay_days``: time constant of the recency weights; ``prior_ctr`` / ``prior_strength``: the prior a
    recipient's click rate is smoothed toward (in pseudo-notifications); ``type_strength``: pseudo-notifications of
    the recipient's overall rate in their per-type and per-sender rates."""

    decay_days: float = 30.0
    prior_ctr: float = 0.25
    prior_strength: float = 10.0
    type_strength: float = 5.0

    def __post_init__(self) -> None:
        for name in ("decay_days", "prior_strength", "type_strength"):
            if not getattr(self, name) > 0:
                raise SundayError(f"FeatureConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0 < self.prior_ctr < 1:
            raise SundayError(f"FeatureConfig.prior_ctr must be in (0, 1), got {self.prior_ctr}")


# -- point-in-time index -------------------------------------------------------------------------------------------

def _seconds(values: Any) -> np.ndarray:
    """Timestamps (naive UTC; tz-aware converted) as int64 seconds; NaT -> NEVER."""
    s = pd.to_datetime(pd.Series(values), utc=True).dt.tz_localize(None)
    out = np.full(len(s), _NEVER, dtype=np.int64)
    ok = s.notna().to_numpy()
    out[ok] = s[ok].to_numpy("datetime64[s]").astype(np.int64)
    return out


class _Timeline:
    """Records ``(key, time, values...)`` sorted by key then time, for point-in-time sums and last values.

    ``count`` / ``sum`` / ``decayed`` / ``last`` answer, for query ``(key, t)``, over the key's records with time
    strictly before ``t`` (``inclusive``: at or before). One int64 composite ``rank(key) * span + time`` keeps the
    whole index one sorted array, so a batch of queries is two binary searches."""

    def __init__(self, keys: np.ndarray, times: np.ndarray, values: Mapping[str, np.ndarray] | None = None,
                 tau_s: float | None = None):
        keys = np.asarray(keys, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        ok = (keys >= 0) & (times != _NEVER)
        keys, times = keys[ok], times[ok]
        values = {k: np.asarray(v)[ok] for k, v in (values or {}).items()}
        o = np.lexsort((times, keys))
        self.keys, self.times = keys[o], times[o]
        self.values = {k: v[o] for k, v in values.items()}
        self.ukeys, self.lo = np.unique(self.keys, return_index=True)
        self.t0 = int(self.times.min()) - 1 if len(self.times) else 0
        self.span = int(self.times.max()) - self.t0 + 2 if len(self.times) else 2
        rank = np.searchsorted(self.ukeys, self.keys)
        self.comp = rank * self.span + (self.times - self.t0)
        self.cum = {k: np.concatenate([[0.0], np.cumsum(v.astype(np.float64))]) for k, v in self.values.items()}
        self.tau_s = tau_s
        if tau_s is not None:
            w = np.exp(np.minimum((self.times - self.t0) / tau_s, 700.0))
            self.cum["_decay"] = np.concatenate([[0.0], np.cumsum(w)])

    def _locate(self, qkeys: np.ndarray, qtimes: np.ndarray, inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
        qkeys = np.asarray(qkeys, dtype=np.int64)
        qtimes = np.asarray(qtimes, dtype=np.int64)
        if len(self.ukeys) == 0:
            z = np.zeros(len(qkeys), dtype=np.int64)
            return z, z
        r = np.minimum(np.searchsorted(self.ukeys, qkeys), len(self.ukeys) - 1)
        found = (self.ukeys[r] == qkeys) & (qkeys >= 0)
        lo = self.lo[r]
        tq = np.clip(qtimes - self.t0, 0, self.span - 1)
        hi = np.searchsorted(self.comp, r * self.span + tq, side="right" if inclusive else "left")
        return np.where(found, lo, 0), np.where(found, hi, 0)

    def count(self, qkeys, qtimes, inclusive: bool = False) -> np.ndarray:
        lo, hi = self._locate(qkeys, qtimes, inclusive)
        return (hi - lo).astype(np.float64)

    def sum(self, name: str, qkeys, qtimes, inclusive: bool = False) -> np.ndarray:
        lo, hi = self._locate(qkeys, qtimes, inclusive)
        c = self.cum[name]
        return c[hi] - c[lo]

    def decayed(self, qkeys, qtimes) -> np.ndarray:
        """sum over earlier records of exp(-(t - t_i) / tau)."""
        if self.tau_s is None:
            raise ValueError("this timeline was built without a decay time (tau_s)")
        s = self.sum("_decay", qkeys, qtimes)
        dt = (np.asarray(qtimes, dtype=np.float64) - self.t0) / self.tau_s
        return np.where(s > 0, s * np.exp(-np.minimum(dt, 700.0)), 0.0)

    def last(self, name: str, qkeys, qtimes, missing: float = np.nan) -> np.ndarray:
        lo, hi = self._locate(qkeys, qtimes, False)
        v = self.values[name]
        has = hi > lo
        return np.where(has, v[np.maximum(hi - 1, 0)] if len(v) else missing, missing)


def _frame(table: Any, name: str, columns: Iterable[str], optional: Iterable[str] = ()) -> pd.DataFrame:
    columns, optional = list(columns), list(optional)
    present = list(table.column_names) if hasattr(table, "column_names") else list(getattr(table, "columns", []))
    if not present and not isinstance(table, pd.DataFrame):
        raise SundayError(f"{name} must be a pyarrow Table or a pandas DataFrame, got {type(table).__name__}")
    missing = [c for c in columns if c not in present]
    if missing:
        raise SundayError(f"{name}: missing column(s) {missing}")
    cols = columns + [c for c in optional if c in present]
    df = table.select(cols).to_pandas() if hasattr(table, "select") and not isinstance(table, pd.DataFrame) \
        else table[cols].copy()
    for c in optional:
        if c not in df.columns:
            df[c] = None
    return df


class NotificationHistory:
    """The observable history a notification's features are computed from, indexed for point-in-time queries.

    ``events``: the ``task_events`` log; ``tasks``: ``task_id, project_id, priority, due_date``; ``users``:
    ``user_id, team_id``; ``log``: the notification log (``user_id, sender_id, type, created_at, opened_at,
    clicked``; rows never seen have null ``opened_at``). Later data may be appended by building a new history:
    nothing in it is learned."""

    def __init__(self, events: Any, tasks: Any, users: Any, log: Any = None, config: FeatureConfig | None = None):
        from sunday.models.personalization.interactions import build_interactions

        self.config = config or FeatureConfig()
        tau = self.config.decay_days * 86_400.0
        users = _frame(users, "users", ["user_id", "team_id"])
        self.user_index = pd.Index(users["user_id"].astype(str))
        if not self.user_index.is_unique:
            raise SundayError("users: user_id is not unique")
        self.n_users = max(1, len(self.user_index))
        self.team = pd.factorize(users["team_id"].fillna("").astype(str))[0]
        tasks = _frame(tasks, "tasks", ["task_id", "project_id", "priority", "due_date"])
        self.task_index = pd.Index(tasks["task_id"].astype(str))
        self.project_index = pd.Index(pd.unique(tasks["project_id"].dropna().astype(str)))
        self.task_project = self.project_index.get_indexer(tasks["project_id"].astype(str))
        self.task_priority = tasks["priority"].map(PRIORITY_LEVELS).to_numpy(np.float64)
        self.task_due = _seconds(tasks["due_date"])
        ev = _frame(events, "events", ["task_id", "event_type", "timestamp", "user_id", "actor_id", "to_status"],
                    optional=["workspace_id"])
        ev_task = self.task_index.get_indexer(ev["task_id"].astype(str))
        ev_t = _seconds(ev["timestamp"])
        ev_user = self._users(ev["user_id"])
        ev_actor = self._users(ev["actor_id"])
        et = ev["event_type"].to_numpy()
        nT = len(self.task_index)
        # reporter and first closing time of each task
        created = (et == "created") & (ev_task >= 0)
        self.task_reporter = np.full(nT, -1, dtype=np.int64)
        self.task_reporter[ev_task[created]] = ev_actor[created]
        self.task_created = np.full(nT, _NEVER, dtype=np.int64)
        np.minimum.at(self.task_created, ev_task[created], ev_t[created])
        closing = ((et == "completed") | ev["to_status"].isin(["done", "cancelled"]).to_numpy()) & (ev_task >= 0)
        self.task_close = np.full(nT, _NEVER, dtype=np.int64)
        np.minimum.at(self.task_close, ev_task[closing], ev_t[closing])
        # timelines over the events
        assign = np.isin(et, ["assigned", "reassigned"]) & (ev_task >= 0)
        self._assignee = _Timeline(ev_task[assign], ev_t[assign], {"user": ev_user[assign]})
        com = (et == "commented") & (ev_task >= 0) & (ev_actor >= 0)
        self._comments = _Timeline(ev_task[com] * self.n_users + ev_actor[com], ev_t[com])
        hi = np.nan_to_num(self.task_priority, nan=0.0) >= 2
        has_p = (self.task_project >= 0) & (self.task_created != _NEVER)
        self._proj_created = _Timeline(self.task_project[has_p], self.task_created[has_p], {"high": hi[has_p]})
        has_c = has_p & (self.task_close != _NEVER)
        self._proj_closed = _Timeline(self.task_project[has_c], self.task_close[has_c], {"high": hi[has_c]})
        # users who touched the same task (the project's interaction builder), both directions, at the later touch
        inter = build_interactions(ev.assign(workspace_id=ev["workspace_id"].fillna("")))
        it = self.task_index.get_indexer(inter["task_id"].astype(str))
        iu = self._users(inter["user_id"])
        touch = pd.DataFrame({"k": it, "u": iu, "t": _seconds(inter["first_ts"])})
        touch = touch[(touch["k"] >= 0) & (touch["u"] >= 0)]
        pairs = touch.merge(touch, on="k", suffixes=("_a", "_b"))
        pairs = pairs[pairs["u_a"] != pairs["u_b"]]
        self._shared = _Timeline(pairs["u_a"].to_numpy() * self.n_users + pairs["u_b"].to_numpy(),
                                 np.maximum(pairs["t_a"].to_numpy(), pairs["t_b"].to_numpy()), tau_s=tau)
        # the notification log: what was sent, what was seen and clicked (known at the session's opening)
        if log is None:
            log = pd.DataFrame({c: pd.Series(dtype=object) for c in
                                ("user_id", "sender_id", "type", "created_at", "opened_at", "clicked")})
        lg = _frame(log, "log", ["user_id", "sender_id", "type", "created_at", "opened_at", "clicked"])
        lr, ls = self._users(lg["user_id"]), self._users(lg["sender_id"])
        ltype = lg["type"].map(TYPE_CODES).fillna(-1).to_numpy(np.int64)
        lc = _seconds(lg["created_at"])
        lo = _seconds(lg["opened_at"])
        clicked = pd.to_numeric(lg["clicked"], errors="coerce").fillna(0).to_numpy(np.float64)
        sent = (lr >= 0) & (ls >= 0)
        self._sent = _Timeline(lr[sent] * self.n_users + ls[sent], lc[sent], tau_s=tau)
        seen = (lr >= 0) & (lo != _NEVER)
        self._seen_user = _Timeline(lr[seen], lo[seen], {"click": clicked[seen]})
        st = seen & (ltype >= 0)
        self._seen_type = _Timeline(lr[st] * len(NOTIFICATION_TYPES) + ltype[st], lo[st], {"click": clicked[st]})
        sp = seen & (ls >= 0)
        self._seen_pair = _Timeline(lr[sp] * self.n_users + ls[sp], lo[sp], {"click": clicked[sp]})

    @classmethod
    def from_tables(cls, tables: Any, log: Any = None, config: FeatureConfig | None = None) -> "NotificationHistory":
        """From a :class:`~sunday.data.simulator.SimTables` (or a mapping with ``events``, ``tasks``, ``users``)."""
        return cls(tables["events"], tables["tasks"], tables["users"], log, config)

    def _users(self, ids: Any) -> np.ndarray:
        s = pd.Series(ids)
        out = self.user_index.get_indexer(s.fillna("\0").astype(str))
        return out.astype(np.int64)

    def features(self, requests: pd.DataFrame) -> pd.DataFrame:
        """:data:`FEATURES` (plus ``position`` when the requests have it) for each request row.

        ``requests``: ``user_id`` (recipient), ``type``, ``sender_id`` (null for reminders), ``task_id`` and/or
        ``project_id``, ``created_at``, ``as_of`` (ranking time), optional ``due_date`` (overrides the task's),
        ``session_size`` (default: rows sharing ``user_id`` and ``as_of``) and ``position``."""
        cfg = self.config
        n = len(requests)
        req = requests.reset_index(drop=True)
        for c in ("user_id", "type", "created_at", "as_of"):
            if c not in req.columns:
                raise NotificationInputError(c, "is missing from the requests")
        get = lambda c: req[c] if c in req.columns else pd.Series([None] * n)  # noqa: E731
        typ = req["type"].map(TYPE_CODES)
        if typ.isna().any():
            i = int(np.flatnonzero(typ.isna().to_numpy())[0])
            raise NotificationInputError("type", f"unknown notification type {req['type'].iloc[i]!r}; known: "
                                         f"{', '.join(NOTIFICATION_TYPES)}", record=i)
        typ = typ.to_numpy(np.int64)
        r = self._users(req["user_id"])
        s = self._users(get("sender_id"))
        has_s = get("sender_id").notna().to_numpy()
        k = self.task_index.get_indexer(get("task_id").fillna("\0").astype(str))
        p_req = self.project_index.get_indexer(get("project_id").fillna("\0").astype(str))
        p = np.where(k >= 0, self.task_project[np.maximum(k, 0)], p_req)
        p = np.where((p < 0) & (p_req >= 0), p_req, p)
        t = _seconds(req["as_of"])
        created = _seconds(req["created_at"])
        out: dict[str, np.ndarray] = {}
        for i, name in enumerate(TYPE_FEATURES):
            out[name] = (typ == i).astype(np.float64)

        # sender relevance
        known_pair = (r >= 0) & (s >= 0)
        pair = np.where(known_pair, r * self.n_users + s, -1)
        out["has_sender"] = has_s.astype(np.float64)
        out["sender_same_team"] = np.where(known_pair, (self.team[np.maximum(r, 0)] == self.team[np.maximum(s, 0)]),
                                           np.nan).astype(np.float64)
        out["shared_tasks_log"] = np.log1p(self._shared.count(pair, t))
        out["shared_tasks_recent"] = self._shared.decayed(pair, t)
        out["sender_sent_recent"] = self._sent.decayed(pair, t)
        u_seen = self._seen_user.count(r, t)
        u_click = self._seen_user.sum("click", r, t)
        user_ctr = (u_click + cfg.prior_strength * cfg.prior_ctr) / (u_seen + cfg.prior_strength)
        p_seen = self._seen_pair.count(pair, t)
        p_click = self._seen_pair.sum("click", pair, t)
        out["sender_seen_log"] = np.log1p(p_seen)
        out["sender_ctr"] = np.where(has_s, (p_click + cfg.type_strength * user_ctr) / (p_seen + cfg.type_strength),
                                     np.nan)

        # the recipient's role on the task
        kk = np.maximum(k, 0)
        assignee = self._assignee.last("user", np.where(k >= 0, k, -1), t, missing=-1)
        out["is_assignee"] = np.where(k >= 0, (assignee == r) & (r >= 0), np.nan).astype(np.float64)
        out["is_reporter"] = np.where(k >= 0, (self.task_reporter[kk] == r) & (r >= 0)
                                      & (self.task_created[kk] < t), np.nan).astype(np.float64)
        ck = np.where((k >= 0) & (r >= 0), k * self.n_users + r, -1)
        out["own_comments_log"] = np.where(k >= 0, np.log1p(self._comments.count(ck, t)), np.nan)

        # importance
        out["priority"] = np.where(k >= 0, self.task_priority[kk], np.nan)
        pk = np.where(p >= 0, p, -1)
        n_open = self._proj_created.count(pk, t) - self._proj_closed.count(pk, t)
        n_high = self._proj_created.sum("high", pk, t) - self._proj_closed.sum("high", pk, t)
        out["project_open_log"] = np.where(p >= 0, np.log1p(np.maximum(n_open, 0)), np.nan)
        out["project_high_share"] = np.where((p >= 0) & (n_open > 0), n_high / np.maximum(n_open, 1), np.nan)

        # time sensitivity
        due = np.where(k >= 0, self.task_due[kk], _NEVER)
        if "due_date" in req.columns:
            given = _seconds(req["due_date"])
            due = np.where(given != _NEVER, given, due)
        has_due = due != _NEVER
        closed = np.where(k >= 0, self.task_close[kk] < t, False)
        is_open = np.where(k >= 0, ~closed, np.nan)
        hours = np.where(has_due, (due.astype(np.float64) - t) / _HOUR_S, np.nan)
        out["has_due"] = has_due.astype(np.float64)
        out["hours_to_due"] = np.clip(hours, -24.0 * 60, 24.0 * 60)
        out["overdue"] = np.where(has_due, (hours <= 0) & ~closed, 0.0).astype(np.float64)
        out["task_open"] = is_open.astype(np.float64)
        out["age_hours_log"] = np.log1p(np.maximum(t - created, 0) / _HOUR_S)

        # past engagement
        tk = np.where(r >= 0, r * len(NOTIFICATION_TYPES) + typ, -1)
        t_seen = self._seen_type.count(tk, t)
        t_click = self._seen_type.sum("click", tk, t)
        out["user_seen_log"] = np.log1p(u_seen)
        out["user_ctr"] = user_ctr
        out["user_type_ctr"] = (t_click + cfg.type_strength * user_ctr) / (t_seen + cfg.type_strength)
        out["user_type_seen_log"] = np.log1p(t_seen)
        if "session_size" in req.columns:
            size = pd.to_numeric(req["session_size"], errors="coerce").to_numpy(np.float64)
        else:
            size = req.groupby([req["user_id"].astype(str), t], sort=False)["type"].transform("size").to_numpy()
        out["session_size_log"] = np.log1p(size.astype(np.float64))
        frame = pd.DataFrame(out, columns=FEATURES)
        if POSITION in req.columns:
            frame[POSITION] = pd.to_numeric(req[POSITION], errors="coerce").to_numpy(np.float64)
        return frame


# -- requests ------------------------------------------------------------------------------------------------------

def _check_time(value: Any, field_name: str, i: int) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise NotificationInputError(field_name, f"is not a timestamp: {value!r}", record=i) from None
    if pd.isna(ts):
        raise NotificationInputError(field_name, "is required", record=i)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def request_frame(notifications: Any, recipient: str, as_of: Any = None) -> pd.DataFrame:
    """A checked request frame (:data:`REQUEST_COLUMNS` + ``user_id``, ``as_of``, ``session_size``) from raw
    notifications (a list of dicts or a DataFrame) for ``recipient``; ``as_of`` defaults to the newest
    ``created_at``. NotificationInputError naming the field on bad input."""
    if isinstance(notifications, pd.DataFrame):
        rows = notifications.to_dict("records")
    elif isinstance(notifications, Mapping) or isinstance(notifications, (str, bytes)) \
            or not isinstance(notifications, Iterable):
        raise NotificationInputError("notifications", "must be a list of notifications (objects with type, "
                                     "sender_id, task_id or project_id, created_at)")
    else:
        rows = list(notifications)
    if not rows:
        raise NotificationInputError("notifications", "is empty: give at least one notification to rank")
    if not isinstance(recipient, str) or not recipient:
        raise NotificationInputError("user_id", f"the recipient must be a non-empty user id, got {recipient!r}")
    clean = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise NotificationInputError("notifications", f"each notification must be an object, got "
                                         f"{type(row).__name__}", record=i)
        typ = row.get("type")
        if typ not in TYPE_CODES:
            raise NotificationInputError("type", f"unknown notification type {typ!r}; known: "
                                         f"{', '.join(NOTIFICATION_TYPES)}", record=i)
        task, project = row.get("task_id"), row.get("project_id")
        if not task and not project:
            raise NotificationInputError("task_id", "a notification needs a task_id or a project_id", record=i)
        due = row.get("due_date")
        clean.append({**{k: v for k, v in row.items() if k not in REQUEST_COLUMNS},
                      "type": typ, "sender_id": row.get("sender_id") or None, "task_id": task or None,
                      "project_id": project or None, "created_at": _check_time(row.get("created_at"), "created_at", i),
                      "due_date": None if due is None or (isinstance(due, float) and math.isnan(due))
                      else _check_time(due, "due_date", i)})
    frame = pd.DataFrame(clean)
    if as_of is None:
        as_of_ts = frame["created_at"].max()
    else:
        as_of_ts = _check_time(as_of, "as_of", 0)
    frame["user_id"] = recipient
    frame["as_of"] = as_of_ts
    frame["session_size"] = len(frame)
    frame["due_date"] = pd.to_datetime(frame["due_date"])
    return frame


def request_features(notifications: Any, recipient: str, history: NotificationHistory,
                     as_of: Any = None) -> pd.DataFrame:
    """The feature frame of a serving request: raw notifications of ``recipient`` ranked at ``as_of``."""
    return history.features(request_frame(notifications, recipient, as_of))


def log_features(history: NotificationHistory, log: Any) -> pd.DataFrame:
    """Training / evaluation frame: every *seen* notification of ``log`` with its features at its session's
    opening (``as_of = opened_at``), its logged ``position`` and ``clicked``; ids ``notification_id, session_id,
    user_id, type, opened_at``. Sorted by opening time, session, position."""
    lg = _frame(log, "log", ["notification_id", "user_id", "sender_id", "task_id", "project_id", "type",
                             "created_at", "session_id", "opened_at", "position", "clicked"])
    lg = lg[lg["session_id"].notna()].copy()
    lg["as_of"] = lg["opened_at"]
    lg["session_size"] = lg.groupby("session_id")["session_id"].transform("size")
    lg = lg.sort_values(["opened_at", "session_id", "position"], kind="stable").reset_index(drop=True)
    feats = history.features(lg)
    ids = lg[["notification_id", "session_id", "user_id", "type", "opened_at"]].reset_index(drop=True)
    feats["clicked"] = lg["clicked"].astype(np.int64).to_numpy()
    return pd.concat([ids, feats], axis=1)


# -- metrics -------------------------------------------------------------------------------------------------------

def ndcg_at_k(sessions: Any, scores: Any, relevance: Any, k: int, tiebreak: Any = None,
              pooled: bool = False) -> tuple[float, int]:
    """(NDCG@k, number of sessions) over the sessions with a positive total relevance. Within a session rows are
    ordered by ``scores`` descending, ties by ``tiebreak`` ascending (e.g. the logged position). Default: the mean
    of the sessions' NDCG. ``pooled``: sum of the sessions' DCG over the sum of their ideal DCG -- the form that
    stays unbiased with inverse-propensity-weighted clicks (a per-session ratio cancels the weight of a session's
    only click)."""
    f = pd.DataFrame({"s": pd.factorize(pd.Series(sessions))[0], "score": np.asarray(scores, np.float64),
                      "rel": np.asarray(relevance, np.float64),
                      "tb": np.arange(len(scores)) if tiebreak is None else np.asarray(tiebreak, np.float64)})
    f = f[f.groupby("s")["rel"].transform("sum") > 0]
    if f.empty:
        return float("nan"), 0
    disc = 1.0 / np.log2(np.arange(2, k + 2))

    def dcg(order_cols: list[str], ascending: list[bool]) -> pd.Series:
        g = f.sort_values(["s", *order_cols], ascending=[True, *ascending], kind="stable")
        rank = g.groupby("s").cumcount().to_numpy()
        top = rank < k
        return pd.Series(g["rel"].to_numpy()[top] * disc[rank[top]]).groupby(g["s"].to_numpy()[top]).sum()

    got = dcg(["score", "tb"], [False, True])
    ideal = dcg(["rel"], [False])
    got = got.reindex(ideal.index, fill_value=0.0)
    if pooled:
        return float(got.sum() / ideal.sum()), int(len(ideal))
    return float((got / ideal).mean()), int(len(ideal))


def position_propensity(model: "NotificationRanker", frame: pd.DataFrame, max_position: int = 20,
                        sample: int = 20_000, seed: int = 0) -> np.ndarray:
    """Estimated P(examine | position) / P(examine | position 1) for positions 1..``max_position`` (index 0 =
    position 1): the mean ratio of a position-aware click classifier's P(click) at position p to its P(click) at
    position 1, over (a sample of) ``frame``'s rows -- from observable clicks only. Clipped to [0.05, 1] and made
    non-increasing."""
    if model.config.objective != "binary" or not model.config.position_feature:
        raise SundayError("position_propensity needs a binary ranker trained with the position feature")
    rows = frame if len(frame) <= sample else frame.sample(sample, random_state=seed)
    base = model.predict(rows)
    out = np.ones(max_position)
    for p in range(2, max_position + 1):
        at = model.predict(rows.assign(**{POSITION: float(p)}), logged_position=True)
        out[p - 1] = float(np.mean(at / np.maximum(base, 1e-6)))
    return np.minimum.accumulate(np.clip(out, 0.05, 1.0))


def ips_relevance(clicked: Any, position: Any, propensity: np.ndarray) -> np.ndarray:
    """Clicks reweighted by 1 / propensity of their logged position (positions past the curve take its last
    value): an estimate of attractiveness free of the logged order's position bias."""
    pos = np.clip(np.asarray(position, dtype=np.int64), 1, len(propensity))
    return np.asarray(clicked, dtype=np.float64) / propensity[pos - 1]


# -- the ranker ----------------------------------------------------------------------------------------------------

OBJECTIVES = ("lambdarank", "binary")


@dataclass
class RankerConfig:
    objective: str = "binary"  # "binary": LGBMClassifier on the click; "lambdarank": LGBMRanker grouped by session
    position_feature: bool = True  # train with the logged position, score with position 1 (see the module doc)
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    seed: int = 0
    n_jobs: int = 1  # OpenMP threads (more spin badly on a shared 2-core machine)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SundayError(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.n_estimators < 1:
            raise SundayError(f"n_estimators must be at least 1, got {self.n_estimators}")

    def params(self) -> dict[str, Any]:
        p = asdict(self)
        for k in ("objective", "position_feature", "extra"):
            p.pop(k)
        p["random_state"] = p.pop("seed")
        return {**p, **self.extra}


@dataclass(frozen=True)
class RankContext:
    """Who the notifications are for, the stored history, and when they are ranked (default: newest arrival)."""

    recipient: str
    history: NotificationHistory
    as_of: Any = None

    @classmethod
    def of(cls, value: Any) -> "RankContext":
        if isinstance(value, RankContext):
            return value
        if isinstance(value, Mapping):
            if "recipient" not in value:
                raise NotificationInputError("recipient", "is missing from the user context", table="user_context")
            if not isinstance(value.get("history"), NotificationHistory):
                raise NotificationInputError("history", "must be a NotificationHistory", table="user_context")
            return cls(value["recipient"], value["history"], value.get("as_of"))
        raise NotificationInputError("user_context", f"must be a RankContext or a mapping, got "
                                     f"{type(value).__name__}", table="user_context")


class NotificationRanker:
    """scikit-learn-like: ``fit(X, y, session_ids)`` returns self; ``predict(X)`` scores (higher = show first)."""

    def __init__(self, config: RankerConfig | None = None):
        self.config = config or RankerConfig()
        self.booster_: Any = None  # set by load() (a fitted ranker uses model_.booster_)

    @property
    def feature_names(self) -> list[str]:
        return FEATURES + ([POSITION] if self.config.position_feature else [])

    def _matrix(self, X: pd.DataFrame, logged_position: bool = False) -> np.ndarray:
        missing = [c for c in FEATURES if c not in X.columns]
        if missing:
            raise NotificationInputError("features", f"missing column(s) {missing}; build them with "
                                         "NotificationHistory.features()", table="frame")
        m = X[FEATURES].to_numpy(np.float64)
        if self.config.position_feature:
            if logged_position:
                if POSITION not in X.columns:
                    raise NotificationInputError(POSITION, "is needed to predict at the logged position",
                                                 table="frame")
                pos = pd.to_numeric(X[POSITION], errors="coerce").to_numpy(np.float64)
            else:
                pos = np.ones(len(X))
            m = np.column_stack([m, pos])
        return m

    def fit(self, X: pd.DataFrame, y: Any, session_ids: Any = None) -> "NotificationRanker":
        import lightgbm as lgb

        y = np.asarray(y, dtype=np.float64)
        if len(y) != len(X):
            raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")
        if len(X) == 0:
            raise ValueError("cannot fit the ranker on no rows")
        M = self._matrix(X, logged_position=True)
        if self.config.objective == "lambdarank":
            if session_ids is None or len(session_ids) != len(X):
                raise ValueError("lambdarank needs session_ids, one per row")
            codes = pd.factorize(pd.Series(np.asarray(session_ids)))[0]
            o = np.argsort(codes, kind="stable")
            groups = np.bincount(codes)
            self.model_ = lgb.LGBMRanker(objective="lambdarank", verbose=-1, **self.config.params())
            self.model_.fit(M[o], y[o], group=groups)
        else:
            self.model_ = lgb.LGBMClassifier(objective="binary", verbose=-1, **self.config.params())
            self.model_.fit(M, y.astype(np.int64))
        self.feature_names_ = self.feature_names
        return self

    def _booster(self):
        if hasattr(self, "model_"):
            return self.model_.booster_
        if self.booster_ is None:
            raise SundayError("the notification ranker is not fitted: call fit() or load()")
        return self.booster_

    def predict(self, X: pd.DataFrame, logged_position: bool = False) -> np.ndarray:
        """Ranking scores (the binary objective: P(click)); with the position at the top for every row unless
        ``logged_position`` (then: the click at the position the log showed it)."""
        from sunday.models.assignment.lgbm import predict_booster

        return predict_booster(self._booster(), self._matrix(X, logged_position))

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """(n, n_features + 1) TreeSHAP contributions to the ranking score; the last column is the bias."""
        from sunday.models.assignment.lgbm import predict_booster

        return predict_booster(self._booster(), self._matrix(X), pred_contrib=True)

    def explain(self, X: pd.DataFrame, top: int = 3) -> list[list[dict[str, Any]]]:
        """Per row, the ``top`` features with the largest TreeSHAP contribution to its ranking score, signed
        (:func:`sunday.models.explain.top_contributions`: feature, readable name, value, contribution); the
        position, the same for every row at inference, is folded into the bias."""
        from sunday.models.explain import top_contributions

        contribs = self.contributions(X)
        shown = pd.DataFrame(self._matrix(X), columns=self.feature_names_)
        names = list(self.feature_names_)
        if POSITION in names:  # the same (top) position for every row at inference: part of the bias, not a reason
            j = names.index(POSITION)
            contribs[:, -1] += contribs[:, j]
            contribs = np.delete(contribs, j, axis=1)
            names.pop(j)
        rows = top_contributions(contribs, names, shown, top_k=top, labels=DESCRIPTIONS)
        return [r["contributions"] for r in rows]

    def rank(self, notifications: Any, user_context: Any, explain_top: int | None = 5) -> pd.DataFrame:
        """Raw notifications of one recipient, best first: the request's columns plus ``score``, ``rank`` (1 = top)
        and ``reasons``. ``user_context``: a :class:`RankContext` or ``{"recipient", "history", "as_of"}``.
        Reasons (TreeSHAP, ~1 ms a row) are computed for the ``explain_top`` best only (None: every row; the
        others get an empty list)."""
        ctx = RankContext.of(user_context)
        req = request_frame(notifications, ctx.recipient, ctx.as_of)
        feats = ctx.history.features(req)
        out = req.drop(columns=["session_size"]).copy()
        out["score"] = self.predict(feats)
        order = np.argsort(-out["score"].to_numpy(), kind="stable")
        out = out.iloc[order].reset_index(drop=True)
        feats = feats.iloc[order].reset_index(drop=True)
        n = len(out) if explain_top is None else max(0, min(int(explain_top), len(out)))
        reasons: list = self.explain(feats.iloc[:n]) if n else []
        out["reasons"] = reasons + [[] for _ in range(len(out) - n)]
        out["rank"] = np.arange(1, len(out) + 1)
        return out

    def feature_importance(self) -> dict[str, float]:
        gain = self._booster().feature_importance(importance_type="gain")
        return dict(sorted(zip(self.feature_names_, map(float, gain)), key=lambda kv: -kv[1]))

    # -- persistence
    def save(self, path: Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._booster().save_model(str(path / "booster.txt"))
        (path / "meta.json").write_text(json.dumps({"config": asdict(self.config), "features": self.feature_names_,
                                                    "saved_at": datetime.now(timezone.utc).isoformat()}, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> "NotificationRanker":
        import lightgbm as lgb

        path = Path(path)
        meta = json.loads((path / "meta.json").read_text())
        ranker = cls(RankerConfig(**meta["config"]))
        if meta["features"] != ranker.feature_names:
            raise SundayError(f"saved ranker at {path} has other features than this code: retrain it")
        ranker.booster_ = lgb.Booster(model_file=str(path / "booster.txt"))
        ranker.feature_names_ = meta["features"]
        return ranker


# -- MLflow pyfunc -------------------------------------------------------------------------------------------------

def _predict(model: NotificationRanker, model_input: Any, params: dict | None = None) -> pd.DataFrame:
    if not isinstance(model_input, pd.DataFrame):
        raise NotificationInputError("features", "input must be a DataFrame of notification features", table="frame")
    return pd.DataFrame({"score": model.predict(model_input)})


def _pyfunc_class():
    """The MLflow pyfunc wrapper (:func:`sunday.tracking.lazy_pyfunc`): ``predict(feature frame)`` -> DataFrame
    ``score`` (higher = show first). The frame holds the :data:`FEATURES` columns that
    :meth:`NotificationHistory.features` / :func:`request_features` compute (the history lives with the serving
    layer, not in the model); ``unwrap_python_model().model`` is the :class:`NotificationRanker` itself."""
    from sunday import tracking

    return tracking.lazy_pyfunc(__name__, "NotificationRankerPyfunc", NotificationRanker.load, _predict,
                                doc=_pyfunc_class.__doc__ or "")


def __getattr__(name: str) -> Any:  # ``NotificationRankerPyfunc`` on demand (the same class: pickled by reference)
    if name == "NotificationRankerPyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
