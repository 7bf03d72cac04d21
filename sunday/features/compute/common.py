"""Shared building blocks of the feature computations: event preparation, the per-task state timeline, time
stamps, fixed-point sums and Arrow output.

Everything works on int64 microseconds since the epoch (UTC) and on integer codes; sums of hours and story points
are kept in fixed point (``SCALE`` units per hour / point) so that a value computed from a whole event log and the
same value recomputed from a filtered subset (the streaming path) are bit-for-bit equal, whatever the order of
summation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.groups import GROUPS, TIMESTAMP

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
SCALE = 1_000_000  # fixed point: micro-hours, micro-points
CLOSED = ("done", "cancelled")
ASSIGN_TYPES = ("assigned", "reassigned")
STATUS_CODES = {s: i for i, s in enumerate(("todo", "in_progress", "in_review", "blocked", "done", "cancelled"))}
DONE, CANCELLED = STATUS_CODES["done"], STATUS_CODES["cancelled"]
PRIORITY_SCORE = {"low": 0, "medium": 1, "high": 2, "critical": 3}
EVENT_COLUMNS = ("event_id", "task_id", "project_id", "event_type", "user_id", "to_status", "hours", "story_points")


# -- time -------------------------------------------------------------------------------------------------------

def to_us(values) -> np.ndarray:
    """Timestamps (naive = UTC, or tz-aware) -> int64 microseconds since the epoch; NaT -> INT64 min."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True).dt.tz_localize(None)
    return s.astype("datetime64[us]").to_numpy().view(np.int64)


def scalar_us(ts) -> int:
    t = pd.Timestamp(ts)
    if t.tzinfo is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    return int(t.value) // 1000  # Timestamp.value is in ns whatever the unit


def day_end(us: np.ndarray) -> np.ndarray:
    """End of the UTC day (23:59:59.999999) holding each timestamp."""
    return (np.floor_divide(us, US_PER_DAY) + 1) * US_PER_DAY - 1


def week_end(us: np.ndarray) -> np.ndarray:
    """End of the ISO week (Sunday 23:59:59.999999 UTC) holding each timestamp."""
    day = np.floor_divide(us, US_PER_DAY)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    return (day + 7 - weekday) * US_PER_DAY - 1


def fixed(values) -> np.ndarray:
    """Floats -> int64 fixed point (SCALE per unit); null -> 0."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.round(v * SCALE).astype(np.int64)


# -- events -----------------------------------------------------------------------------------------------------

def prepare_events(events: pd.DataFrame) -> pd.DataFrame:
    """Events in the ``task_events`` schema -> the columns the computations use, plus ``ts`` (int64 us), sorted by
    (timestamp, event_id) with ``seq`` the position in that order (the tie-break everywhere)."""
    if "ts" in events.columns and "seq" in events.columns and events.attrs.get("prepared"):
        return events
    ev = pd.DataFrame({c: events[c].to_numpy() if c in events.columns else None for c in EVENT_COLUMNS})
    ev["ts"] = to_us(events["timestamp"].reset_index(drop=True))
    ev["hours"] = pd.to_numeric(ev["hours"], errors="coerce").astype(np.float64)
    ev["story_points"] = pd.to_numeric(ev["story_points"], errors="coerce").astype(np.float64)
    ev = ev.sort_values(["ts", "event_id"], kind="stable").reset_index(drop=True)
    ev["seq"] = np.arange(len(ev), dtype=np.int64)
    ev.attrs["prepared"] = True
    return ev


def codes(values: pd.Series | np.ndarray, vocab: pd.Index) -> np.ndarray:
    """Position of each value in ``vocab`` (-1 for null / unknown)."""
    return vocab.get_indexer(pd.Index(values)).astype(np.int64)


def group_starts(keys: np.ndarray) -> np.ndarray:
    """For rows sorted by ``keys``: the index of the first row of each row's group."""
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.ones(n, dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def last_valid(valid: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Index of the last row at or before each row (same group) where ``valid``; -1 where none (a forward fill)."""
    idx = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1)) if len(valid) else np.zeros(0, np.int64)
    return np.where(idx >= start, idx, -1)


def group_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Running sum within groups of consecutive rows (``start`` from :func:`group_starts`).

    Integers: one global cumsum minus the sum before each group (exact). Floats: a cumsum per group, so a group's
    sums never depend on the rows before it (a global cumsum minus an offset would carry their rounding)."""
    if len(values) == 0:
        return np.cumsum(values, axis=0)
    if np.issubdtype(values.dtype, np.integer) or values.dtype == bool:
        c = np.cumsum(values, axis=0)
        before = np.concatenate([np.zeros((1,) + c.shape[1:], dtype=c.dtype), c[:-1]])
        return c - before[start]
    out = np.empty_like(values)
    firsts = np.flatnonzero(start == np.arange(len(start)))
    for a, b in zip(firsts, np.append(firsts[1:], len(values))):
        np.cumsum(values[a:b], axis=0, out=out[a:b])
    return out


class Timeline:
    """Every event of every task, sorted by (task, ts, seq), with the task's state before and after it.

    State: the assignee (latest ``assigned`` / ``reassigned`` user), the status (latest ``status_changed``
    target; ``completed`` also means done; ``todo`` until the first change), whether the task is open (it exists
    -- from its first event -- and is not done/cancelled), its story points (latest non-null points of
    ``created`` / ``scope_changed``, in fixed point, 0 when unknown), the time of its latest assignment and its
    number of ``in_review`` entries so far. Only the task's own earlier events go into a row's state.
    """

    def __init__(self, ev: pd.DataFrame, users: pd.Index):
        ev = ev.sort_values(["task_id", "ts", "seq"], kind="stable")
        self.index = ev.index.to_numpy()
        self.n = n = len(ev)
        self.task_id = ev["task_id"].to_numpy()
        self.project_id = ev["project_id"].to_numpy()
        self.ts = ev["ts"].to_numpy()
        self.seq = ev["seq"].to_numpy()
        etype = ev["event_type"].to_numpy()
        self.etype = etype
        self.user = codes(ev["user_id"], users)
        self.hours = ev["hours"].to_numpy()
        self.points_raw = ev["story_points"].to_numpy()
        start = group_starts(self.task_id)
        self.start = start
        self.first = start == np.arange(n)

        is_assign = np.isin(etype, ASSIGN_TYPES)
        i = last_valid(is_assign & (self.user >= 0), start)
        self.assignee_after = np.where(i >= 0, self.user[np.maximum(i, 0)], -1)
        self.assign_ts_after = np.where(i >= 0, self.ts[np.maximum(i, 0)], np.iinfo(np.int64).min)

        status_code = pd.Series(ev["to_status"].to_numpy()).map(STATUS_CODES).fillna(-1).to_numpy(np.int64)
        status_code = np.where(etype == "completed", DONE, np.where(etype == "status_changed", status_code, -1))
        i = last_valid(status_code >= 0, start)
        self.status_after = np.where(i >= 0, status_code[np.maximum(i, 0)], STATUS_CODES["todo"])
        self.open_after = (self.status_after != DONE) & (self.status_after != CANCELLED)

        has_points = np.isin(etype, ("created", "scope_changed")) & ~np.isnan(self.points_raw)
        i = last_valid(has_points, start)
        self.points_after_f = np.where(i >= 0, self.points_raw[np.maximum(i, 0)], np.nan)
        self.points_after = fixed(self.points_after_f)

        review = (etype == "status_changed") & (ev["to_status"].to_numpy() == "in_review")
        self.reviews_after = group_cumsum(review.astype(np.int64), start)

        def before(a, empty):
            b = np.empty_like(a)
            if n:
                b[1:] = a[:-1]
                b[self.first] = empty
            return b

        self.assignee_before = before(self.assignee_after, -1)
        self.open_before = before(self.open_after, False)
        self.points_before = before(self.points_after, 0)
        # what the task adds to its holder's open load, before and after the event
        self.load_before = np.where(self.open_before, self.points_before, 0)
        self.load_after = np.where(self.open_after, self.points_after, 0)


# -- output -----------------------------------------------------------------------------------------------------

def float_lists(matrix: np.ndarray) -> pa.Array:
    """(n, k) float matrix -> list<float32> array."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    n, k = matrix.shape if matrix.ndim == 2 else (0, 0)
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1), type=pa.float32()))


def to_arrow(group: str, columns: dict[str, object]) -> pa.Table:
    """Columns (numpy / pandas / Arrow) -> a table in exactly the group's schema, sorted by (key, timestamp).

    Float NaN becomes null (only nullable features produce NaN); the timestamp is int64 us -> tz-aware UTC."""
    schema = GROUPS[group].arrow_schema()
    arrays = []
    for field in schema:
        v = columns[field.name]
        if isinstance(v, (pa.Array, pa.ChunkedArray)):
            arrays.append(v.cast(field.type) if v.type != field.type else v)
            continue
        v = np.asarray(v)
        if field.name == TIMESTAMP:
            arrays.append(pa.array(v.astype(np.int64), type=field.type))
        elif pa.types.is_floating(field.type):
            v = v.astype(np.float64)
            arrays.append(pa.array(v, type=field.type, mask=np.isnan(v)))
        elif pa.types.is_integer(field.type):
            arrays.append(pa.array(v.astype(np.int64), type=field.type))
        else:
            arrays.append(pa.array(v, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    if table.num_rows:
        table = table.sort_by([(schema.names[0], "ascending"), (TIMESTAMP, "ascending")])
    return table


def empty(group: str) -> pa.Table:
    return GROUPS[group].arrow_schema().empty_table()
