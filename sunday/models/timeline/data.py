"""Training snapshots for the project timeline forecaster, built from a simulated workspace.

For every eligible project and every *cut day* before its planned end, a snapshot holds what a tracker shows at the
end of that day -- the daily ``project_velocity`` series up to the cut (computed by
:func:`sunday.features.compute.project.compute`, point in time: a row stamped T only reads events <= T) and static
features from the observable ``projects`` / ``users`` tables -- and, as the **label only**, the number of days from
the cut to the project's true completion (the latest ``true_completion`` of its non-cancelled tasks in the hidden
``truth/task_truth`` table). The truth never reaches a feature column; :data:`FEATURE_SOURCES` documents where every
feature comes from.

Risk classes come from the true delay (completion - planned end, days): ``on_track`` <= 0, ``minor_delay`` (0, 7),
``major_delay`` [7, 21), ``at_risk`` >= 21.

Split: :func:`split_projects` assigns whole projects to train / test, so no project is in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.features.groups import PROJECT_VELOCITY

US_PER_DAY = 86_400_000_000
#: the daily series channels, in order (the ``project_velocity`` feature group's columns)
SERIES_COLUMNS: tuple[str, ...] = tuple(f.name for f in PROJECT_VELOCITY.features)
#: stocks (day-end levels, forward-filled over gaps); the other channels are flows (0 on a missing day)
STOCK_COLUMNS = ("backlog_tasks", "backlog_points", "blocked_tasks", "critical_bugs")
WINDOW = 56  # days of history the sequence model sees (left-padded with zeros + mask when shorter)
MIN_HISTORY = 7  # days of history before the first cut
RISK_CLASSES = ("on_track", "minor_delay", "major_delay", "at_risk")
RISK_EDGES = (0.0, 7.0, 21.0)  # delay (days) boundaries between the classes above
LATE_DAYS = 7.0  # early warning: a project that ends this many days late or more ...
WARN_LEAD_DAYS = 7  # ... should be flagged at the cut this many days before its planned end

STATIC_COLUMNS: tuple[str, ...] = (
    "days_since_start", "days_to_planned_end", "planned_duration", "elapsed_fraction", "history_days",
    "tasks_created_total", "tasks_done_total", "points_done_total", "backlog_tasks", "backlog_points",
    "done_rate_14d", "done_rate_28d", "created_rate_14d", "points_rate_28d", "burndown_days", "burndown_slack",
    "blocked_tasks", "critical_bugs", "team_size", "team_capacity_hours",
)
#: where each feature comes from (all observable; the truth tables only give the label)
FEATURE_SOURCES = {
    **{c: "project_velocity (events <= cut)" for c in SERIES_COLUMNS},
    **{c: "project_velocity (events <= cut)" for c in STATIC_COLUMNS},
    "days_since_start": "projects.start_date", "days_to_planned_end": "projects.planned_end",
    "planned_duration": "projects.start_date/planned_end", "elapsed_fraction": "projects.start_date/planned_end",
    "burndown_slack": "project_velocity + projects.planned_end",
    "team_size": "users.team_id", "team_capacity_hours": "users.weekly_capacity_hours",
}


def risk_class(delay_days) -> np.ndarray:
    """Delay in days -> class index into :data:`RISK_CLASSES`."""
    d = np.asarray(delay_days, dtype=np.float64)
    return np.where(d <= RISK_EDGES[0], 0, np.where(d < RISK_EDGES[1], 1, np.where(d < RISK_EDGES[2], 2, 3)))


@dataclass
class Snapshots:
    """``series`` (n, WINDOW, len(SERIES_COLUMNS)) raw daily values, zero-padded on the left; ``length`` (n,) real
    days in the window; ``static`` (n, len(STATIC_COLUMNS)); ``meta`` one row per snapshot (project_id,
    workspace_id, cut (day-end timestamp), start_date, planned_end, target_days, delay_days, risk)."""

    series: np.ndarray
    length: np.ndarray
    static: np.ndarray
    meta: pd.DataFrame
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def target(self) -> np.ndarray:
        return self.meta["target_days"].to_numpy(np.float64)

    @property
    def risk(self) -> np.ndarray:
        return self.meta["risk"].to_numpy(np.int64)

    def take(self, idx) -> "Snapshots":
        idx = np.asarray(idx)
        return Snapshots(self.series[idx], self.length[idx], self.static[idx],
                         self.meta.iloc[idx].reset_index(drop=True), dict(self.extra))

    @staticmethod
    def concat(parts: list["Snapshots"]) -> "Snapshots":
        parts = [p for p in parts if len(p)]
        if not parts:
            return empty_snapshots()
        return Snapshots(np.concatenate([p.series for p in parts]), np.concatenate([p.length for p in parts]),
                         np.concatenate([p.static for p in parts]),
                         pd.concat([p.meta for p in parts], ignore_index=True))


def empty_snapshots() -> Snapshots:
    return Snapshots(np.zeros((0, WINDOW, len(SERIES_COLUMNS)), np.float32), np.zeros(0, np.int64),
                     np.zeros((0, len(STATIC_COLUMNS)), np.float32),
                     pd.DataFrame(columns=["project_id", "workspace_id", "cut", "start_date", "planned_end",
                                           "target_days", "delay_days", "risk"]))


# -- one project's history -> features --------------------------------------------------------------------------

def clean_history(history: pd.DataFrame, fill_gaps: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Validate a daily series (``event_timestamp`` + :data:`SERIES_COLUMNS`) and make it gap-free.

    Raises :class:`SundayError` for an empty series, missing columns, duplicated days, NaN / infinite or negative
    values. A gap (missing days) is filled -- flows 0, stocks carried forward -- and reported in the returned
    warnings (``fill_gaps=False`` raises instead)."""
    if history is None or len(history) == 0:
        raise SundayError("the project has no history: at least one day of project_velocity is needed")
    missing = [c for c in ("event_timestamp", *SERIES_COLUMNS) if c not in history.columns]
    if missing:
        raise SundayError(f"project history lacks column(s) {missing}")
    h = history[["event_timestamp", *SERIES_COLUMNS]].copy()
    ts = pd.to_datetime(h["event_timestamp"], utc=True)
    if ts.isna().any():
        raise SundayError("project history has a missing event_timestamp")
    h["day"] = ts.dt.tz_localize(None).dt.floor("D")
    if h["day"].duplicated().any():
        raise SundayError(f"project history has duplicated day(s): {h.loc[h['day'].duplicated(), 'day'].iloc[0].date()}")
    vals = h[list(SERIES_COLUMNS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    if not np.isfinite(vals).all():
        raise SundayError("project history has missing / non-numeric / infinite values")
    if (vals < 0).any():
        col = SERIES_COLUMNS[int(np.argwhere(vals < 0)[0, 1])]
        raise SundayError(f"project history has a negative value in {col!r}: counts and estimates must be >= 0")
    h[list(SERIES_COLUMNS)] = vals
    h = h.sort_values("day").set_index("day")
    full = pd.date_range(h.index[0], h.index[-1], freq="D")
    warnings: list[str] = []
    if len(full) != len(h):
        n_gap = len(full) - len(h)
        if not fill_gaps:
            raise SundayError(f"project history has {n_gap} missing day(s) between {full[0].date()} and "
                              f"{full[-1].date()}")
        h = h.reindex(full)
        stocks = list(STOCK_COLUMNS)
        flows = [c for c in SERIES_COLUMNS if c not in STOCK_COLUMNS]
        h[stocks] = h[stocks].ffill()
        h[flows] = h[flows].fillna(0.0)
        warnings.append(f"{n_gap} missing day(s) in the history were filled (flows = 0, stocks carried forward)")
    h.index.name = "day"
    return h.drop(columns=["event_timestamp"]), warnings


def _rate(x: np.ndarray, days: int) -> float:
    tail = x[-days:]
    return float(tail.mean()) if len(tail) else 0.0


def project_features(hist: pd.DataFrame, cut_day: pd.Timestamp, start_date: pd.Timestamp,
                     planned_end: pd.Timestamp, team_size: float, team_capacity: float
                     ) -> tuple[np.ndarray, int, np.ndarray]:
    """(series window (WINDOW, F), real length, static vector) for a clean history whose last day is ``cut_day``."""
    vals = hist[list(SERIES_COLUMNS)].to_numpy(np.float64)
    n = len(vals)
    L = min(n, WINDOW)
    window = np.zeros((WINDOW, len(SERIES_COLUMNS)), np.float32)
    window[WINDOW - L:] = vals[-L:]
    col = {c: vals[:, i] for i, c in enumerate(SERIES_COLUMNS)}
    cut_end = cut_day + pd.Timedelta(days=1)  # the series row is stamped at the end of the cut day
    since = (cut_end - start_date) / pd.Timedelta(days=1)
    to_end = (planned_end - cut_end) / pd.Timedelta(days=1)
    duration = max((planned_end - start_date) / pd.Timedelta(days=1), 1.0)
    backlog = col["backlog_tasks"][-1]
    rate28 = _rate(col["tasks_done"], 28)
    burndown = min(backlog / max(rate28, 1e-3), 365.0)
    static = np.array([
        since, to_end, duration, since / duration, n,
        col["tasks_created"].sum(), col["tasks_done"].sum(), col["points_done"].sum(), backlog,
        col["backlog_points"][-1], _rate(col["tasks_done"], 14), rate28, _rate(col["tasks_created"], 14),
        _rate(col["points_done"], 28), burndown, burndown - to_end, col["blocked_tasks"][-1],
        col["critical_bugs"][-1], team_size, team_capacity,
    ], dtype=np.float32)
    return window, L, static


# -- simulated workspaces -> snapshots --------------------------------------------------------------------------

def project_completion(task_truth: pd.DataFrame) -> pd.Series:
    """project_id -> true completion (latest true_completion of its non-cancelled tasks; NaT when unknown).
    Hidden truth: used for labels only."""
    tt = task_truth[~task_truth["cancelled"].astype(bool)]
    done = pd.to_datetime(tt["true_completion"])
    out = done.groupby(tt["project_id"]).max()
    # a project with any non-cancelled task without a completion time has no known completion
    unknown = done.isna().groupby(tt["project_id"]).any()
    out[unknown.reindex(out.index).fillna(False).to_numpy()] = pd.NaT
    return out


def velocity_series(frames) -> pd.DataFrame:
    """``project_velocity`` of one workspace (the feature pipeline's own computation)."""
    from sunday.features.compute import project, workload
    from sunday.features.compute.common import Timeline, prepare_events

    ev = prepare_events(frames.events)
    vocab = workload.user_index(ev, frames.users)
    return project.compute(Timeline(ev, vocab), frames.tasks).to_pandas()


def team_stats(users: pd.DataFrame) -> pd.DataFrame:
    return users.groupby("team_id").agg(team_size=("user_id", "size"),
                                        team_capacity_hours=("weekly_capacity_hours", "sum"))


def build_snapshots(tables, cut_every: int = 7, min_history: int = MIN_HISTORY,
                    end_margin_days: int = 14, workspace_ids: list[str] | None = None) -> Snapshots:
    """Snapshots of every eligible project of a ``simulate_tables`` result (:class:`SimTables`).

    Eligible: the planned end at least ``end_margin_days`` before the observation end (the last event), a known
    true completion after the first cut. Cuts: every ``cut_every`` days from ``min_history`` days after the
    project's first event, plus the cut exactly :data:`WARN_LEAD_DAYS` days before the planned end (the
    early-warning cut), all strictly before the planned end and before the completion."""
    from sunday.features.compute import frames_from_tables

    obs = getattr(tables, "observable", tables)
    if workspace_ids is None:
        workspace_ids = [str(w) for w in obs["workspaces"].column("workspace_id").to_pylist()]
    completion = project_completion(tables["truth/task_truth"].to_pandas())  # label only
    parts = []
    for ws in workspace_ids:
        frames = frames_from_tables(tables, ws)
        if frames.events.empty:
            continue
        obs_end = pd.Timestamp(frames.events["timestamp"].max()).floor("D")
        pv = velocity_series(frames)
        pv["day"] = pd.to_datetime(pv["event_timestamp"], utc=True).dt.tz_localize(None).dt.floor("D")
        teams = team_stats(frames.users)
        projects = frames.projects.set_index("project_id")
        series, lengths, statics, meta = [], [], [], []
        for pid, hist in pv.groupby("project_id", sort=True):
            if pid not in projects.index or pid not in completion.index or pd.isna(completion[pid]):
                continue
            p = projects.loc[pid]
            start, planned = pd.Timestamp(p["start_date"]), pd.Timestamp(p["planned_end"])
            if planned.floor("D") > obs_end - pd.Timedelta(days=end_margin_days):
                continue
            done = pd.Timestamp(completion[pid])
            h, _ = clean_history(hist.drop(columns=["day"]))
            first = h.index[0]
            last_cut = min(planned.floor("D") - pd.Timedelta(days=1), h.index[-1])
            cuts = list(pd.date_range(first + pd.Timedelta(days=min_history), last_cut, freq=f"{cut_every}D"))
            warn = planned.floor("D") - pd.Timedelta(days=WARN_LEAD_DAYS)
            if warn >= first + pd.Timedelta(days=min_history) and warn <= h.index[-1]:
                cuts.append(warn)
            ts = teams.loc[p["team_id"]] if p["team_id"] in teams.index else None
            size = float(ts["team_size"]) if ts is not None else 0.0
            cap = float(ts["team_capacity_hours"]) if ts is not None else 0.0
            for cut in sorted(set(cuts)):
                cut_end = cut + pd.Timedelta(days=1)
                target = (done - cut_end) / pd.Timedelta(days=1)
                if target <= 0:
                    continue
                w, L, s = project_features(h.loc[:cut], cut, start, planned, size, cap)
                series.append(w)
                lengths.append(L)
                statics.append(s)
                delay = (done - planned) / pd.Timedelta(days=1)
                meta.append({"project_id": pid, "workspace_id": ws, "cut": cut_end, "start_date": start,
                             "planned_end": planned, "target_days": float(target), "delay_days": float(delay),
                             "risk": int(risk_class(delay)), "warn_cut": bool(cut == warn)})
        if meta:
            parts.append(Snapshots(np.stack(series), np.array(lengths, np.int64), np.stack(statics),
                                   pd.DataFrame(meta)))
    return Snapshots.concat(parts)


def split_projects(snap: Snapshots, test_fraction: float = 0.3, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) with whole projects on one side only."""
    if not 0 < test_fraction < 1:
        raise SundayError(f"test_fraction must be in (0, 1), got {test_fraction}")
    projects = np.array(sorted(snap.meta["project_id"].unique()))
    rng = np.random.default_rng(seed)
    test_p = set(rng.choice(projects, max(1, int(round(test_fraction * len(projects)))), replace=False))
    is_test = snap.meta["project_id"].isin(test_p).to_numpy()
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)
