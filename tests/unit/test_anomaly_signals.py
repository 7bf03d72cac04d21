"""Daily workspace signals for anomaly detection (sunday.models.anomaly.signals and .tracker).

* the incremental path (SignalTracker, one event at a time) gives exactly the batch builder's rows;
* the daily flows, the backlog and the team balance are the feature platform's own (project_velocity,
  team_balance) on the days those have rows;
* hand-computed values on a tiny event log: velocity, hours, stuck task, reassignment churn, assignment share,
  which days are watched, a long silence skipped, a late event;
* bad input raises an error naming the field.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sunday.data.simulator import SimConfig, simulate_tables
from sunday.errors import SundayError, ValidationError
from sunday.models.anomaly.signals import PROJECT_COLUMNS, TEAM_COLUMNS, SignalConfig, daily_signals
from sunday.models.anomaly.tracker import SignalTracker, stream_signals

SMALL = SimConfig(n_events=12_000, seed=7, events_per_workspace=6_000)  # 2 workspaces
T0 = datetime(2024, 3, 4, 9, 0)  # a Monday


@pytest.fixture(scope="module")
def sim():
    s = simulate_tables(SMALL)
    return s.events.to_pandas(), s["users"].to_pandas()


@pytest.fixture(scope="module")
def both(sim):
    events, users = sim
    return daily_signals(events, users), stream_signals(events, users)


def _same_frames(a: pd.DataFrame, b: pd.DataFrame, float_cols: tuple[str, ...] = ()) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    for c in a.columns:
        x, y = a[c], b[c]
        if c == "day":
            assert (x.astype("datetime64[ns]") == y.astype("datetime64[ns]")).all(), c
        elif c in float_cols:
            np.testing.assert_allclose(x.to_numpy(np.float64), y.to_numpy(np.float64), rtol=1e-12, atol=1e-12,
                                       err_msg=c)
        elif x.dtype == object or y.dtype == object:
            assert [None if v is None or v != v else v for v in x] == [None if v is None or v != v else v
                                                                       for v in y], c
        else:
            assert (x.to_numpy() == y.to_numpy()).all(), c


def test_incremental_rows_equal_the_batch_builder(both):
    batch, stream = both
    assert list(batch.projects.columns) == list(PROJECT_COLUMNS) and list(batch.teams.columns) == list(TEAM_COLUMNS)
    assert batch.projects["workspace_id"].nunique() == 2 and len(batch.projects) > 1000 and len(batch.teams) > 300
    _same_frames(batch.projects, stream.projects)
    _same_frames(batch.teams, stream.teams, float_cols=("open_points_gini",))
    # the signals carry something
    p = batch.projects
    assert p["velocity"].max() > 5 and p["stuck_days"].max() > 10 and p["task_reassignments"].max() >= 1
    assert p["hours_7d"].max() > 10 and batch.teams["assigned_share"].between(0, 1).all()


def test_flows_and_balance_are_the_feature_platforms(sim, both):
    from sunday.features.compute import project, team, workload
    from sunday.features.compute.common import Timeline, prepare_events
    from sunday.schema import get_spec

    events, users = sim
    _, stream = both
    ws = sorted(events["workspace_id"].unique())[0]
    ev = prepare_events(events[events["workspace_id"] == ws])
    u = users[users["workspace_id"] == ws]
    vocab = workload.user_index(ev, u)
    tl = Timeline(ev, vocab)
    no_tasks = get_spec("tasks").schema.empty_table().to_pandas()
    pv = project.compute(tl, no_tasks).to_pandas()
    pv["day"] = pv["event_timestamp"].dt.tz_convert(None).dt.floor("D").astype("datetime64[ns]")
    mine = stream.projects[stream.projects["workspace_id"] == ws].assign(
        day=lambda d: d["day"].astype("datetime64[ns]"))
    m = pv.merge(mine, on=["project_id", "day"], suffixes=("_fp", ""))
    assert len(m) > 0.9 * len(mine)  # the watched days are (almost all) platform days
    for c in ("tasks_done", "tasks_created", "reassignments", "backlog_tasks", "points_done", "hours_logged"):
        np.testing.assert_allclose(m[c + "_fp"].to_numpy(np.float64), m[c].to_numpy(np.float64), err_msg=c)
    cum = workload.cumulative(workload.user_deltas(tl, no_tasks))
    tb = team.compute(cum, workload.active_days(tl), u, vocab).to_pandas()
    tb["day"] = tb["event_timestamp"].dt.tz_convert(None).dt.floor("D").astype("datetime64[ns]")
    mt = stream.teams[stream.teams["workspace_id"] == ws].assign(day=lambda d: d["day"].astype("datetime64[ns]"))
    m = tb.merge(mt, on=["team_id", "day"], suffixes=("_fp", ""))
    assert len(m) > 0.5 * len(tb)
    for c in ("open_points_gini", "max_member_share", "open_points_total", "member_count"):
        np.testing.assert_allclose(m[c + "_fp"].to_numpy(np.float64), m[c].to_numpy(np.float64), rtol=1e-12,
                                   err_msg=c)


# -- a tiny hand-made log -------------------------------------------------------------------------------------------

def _ev(i: int, task: str, etype: str, at: datetime, user: str | None = None, **kw) -> dict:
    return {"event_id": f"e{i:04d}", "workspace_id": "w", "project_id": kw.pop("project", "p1"), "task_id": task,
            "event_type": etype, "timestamp": at, "user_id": user, **kw}


def _rows(tracker: SignalTracker, events: list[dict], until=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    proj, teams = [], []
    for e in events:
        for r in tracker.observe(e):
            proj += r.projects
            teams += r.teams
    for r in tracker.flush(until):
        proj += r.projects
        teams += r.teams
    return pd.DataFrame(proj, columns=list(PROJECT_COLUMNS)), pd.DataFrame(teams, columns=list(TEAM_COLUMNS))


def _day(n: int) -> pd.Timestamp:
    return pd.Timestamp(T0.date()) + pd.Timedelta(days=n)


def test_hand_computed_signals():
    d = lambda n, h=0: T0 + timedelta(days=n, hours=h)  # noqa: E731
    log = [
        _ev(1, "t1", "created", d(0), story_points=3.0), _ev(2, "t2", "created", d(0), story_points=5.0),
        _ev(3, "t3", "created", d(0), story_points=2.0),
        _ev(4, "t1", "assigned", d(0, 1), "a"), _ev(5, "t2", "assigned", d(0, 1), "a"),
        _ev(6, "t3", "assigned", d(0, 1), "b"),
        _ev(7, "t1", "status_changed", d(0, 2), "a", to_status="in_progress"),
        _ev(8, "t2", "status_changed", d(1), "a", to_status="in_progress"),
        _ev(9, "t2", "time_logged", d(1, 1), "a", hours=4.0),
        _ev(10, "t1", "completed", d(2), "a"),
        _ev(11, "t3", "reassigned", d(3), "a"), _ev(12, "t3", "reassigned", d(4), "b"),
        _ev(13, "t3", "reassigned", d(5), "a"),
        _ev(14, "t3", "commented", d(12)),
    ]
    tracker = SignalTracker("w", {"a": "team1", "b": "team1", "c": "team1"})
    proj, teams = _rows(tracker, log)
    p = proj.set_index("day")
    assert list(p.index) == [_day(i) for i in range(13)]  # every day from the first event to the last
    assert p.loc[_day(2), "tasks_done"] == 1 and p.loc[_day(2), "velocity"] == 1
    assert p.loc[_day(8), "velocity"] == 1 and p.loc[_day(9), "velocity"] == 0  # 7-day window
    assert p.loc[_day(1), "hours_7d"] == 4.0 and p.loc[_day(7), "hours_7d"] == 4.0
    assert p.loc[_day(8), "hours_7d"] == 0
    assert p.loc[_day(0), "tasks_created"] == 3 and p.loc[_day(1), "tasks_created"] == 0
    assert p.loc[_day(0), "backlog_tasks"] == 3 and p.loc[_day(2), "backlog_tasks"] == 2
    # stuck: t2 started on day 1, last event at day 1 10:00; idle at the end of day 10 (23:59:59.999999) =
    # 9 days 14 h (t1 is done, t3 never started)
    assert p.loc[_day(10), "stuck_task"] == "t2"
    assert p.loc[_day(10), "stuck_days"] == pytest.approx(9 + 14 / 24, abs=1e-9)
    # churn: t3 reassigned on days 3, 4, 5 -> 3 within 7 days until day 9, then fewer
    assert p.loc[_day(5), "task_reassignments"] == 3 and p.loc[_day(5), "churn_task"] == "t3"
    assert p.loc[_day(9), "task_reassignments"] == 3 and p.loc[_day(10), "task_reassignments"] == 2
    assert p.loc[_day(12), "task_reassignments"] == 0 and p.loc[_day(12), "churn_task"] is None
    t = teams.set_index("day")
    # assignments in 14 days: a got t1, t2, t3 (day 3), t3 (day 5); b got t3 twice (days 0, 4)
    assert t.loc[_day(5), "assigned_14d"] == 6 and t.loc[_day(5), "assigned_top"] == "a"
    assert t.loc[_day(5), "assigned_share"] == pytest.approx(4 / 6)
    # open points on day 5: a holds t2 (5) and t3 (2), b none, c none
    assert t.loc[_day(5), "max_member_share"] == 1.0 and t.loc[_day(5), "top_member"] == "a"
    assert t.loc[_day(5), "open_points_total"] == 7.0 and t.loc[_day(5), "member_count"] == 3
    assert t.loc[_day(5), "open_points_gini"] == pytest.approx(1.0)
    # the batch builder on the same log gives the same rows
    users = pd.DataFrame({"user_id": ["a", "b", "c"], "team_id": ["team1"] * 3, "workspace_id": ["w"] * 3})
    batch = daily_signals(pd.DataFrame(log), users)
    _same_frames(batch.projects, proj.astype(batch.projects.dtypes.to_dict()))
    _same_frames(batch.teams, teams.astype(batch.teams.dtypes.to_dict()), float_cols=("open_points_gini",))


def test_watched_days_gaps_and_late_events():
    d = lambda n, h=0: T0 + timedelta(days=n, hours=h)  # noqa: E731
    cfg = SignalConfig(active_days=3, dormant_days=5, max_gap_days=10)
    log = [_ev(1, "t1", "created", d(0)), _ev(2, "t1", "completed", d(0, 1), "a"),
           _ev(3, "t2", "created", d(1), project="p2"),
           _ev(4, "t3", "created", d(8), project="p3"),
           _ev(5, "t4", "created", d(30), project="p4")]
    proj, _ = _rows(SignalTracker("w", {}, cfg), log)
    days = {p: g["day"].tolist() for p, g in proj.groupby("project_id")}
    # p1: no open task -> watched while its last event is at most 3 days old; p2 keeps an open task -> 5 days
    assert days["p1"] == [_day(i) for i in range(4)]
    assert days["p2"] == [_day(i) for i in range(1, 7)]
    assert days["p3"] == [_day(8)] and days["p4"] == [_day(30)]
    # the quiet days before day 8 are filled (day 7 has no watched project); the 21-day silence (> max_gap_days)
    # before day 30 is skipped
    assert sorted(set(proj["day"])) == [_day(i) for i in range(7)] + [_day(8), _day(30)]
    batch = daily_signals(pd.DataFrame(log), config=cfg)
    assert batch.projects[["project_id", "day"]].values.tolist() == \
        proj.sort_values(["project_id", "day"])[["project_id", "day"]].values.tolist()
    # a late event (of a day already closed) changes the state and counts in the next day closed
    tracker = SignalTracker("w")
    tracker.observe(_ev(1, "t1", "created", d(0)))
    tracker.observe(_ev(2, "t2", "created", d(1)))
    closed = tracker.observe(_ev(3, "t3", "created", d(0, 5)))
    assert closed == []
    rows = tracker.flush()
    assert rows[0].projects[0]["tasks_created"] == 2 and rows[0].projects[0]["backlog_tasks"] == 3
    assert tracker.flush() == []  # flushing twice closes nothing twice


def test_bad_input_names_the_field():
    tracker = SignalTracker("w")
    with pytest.raises(ValidationError, match="timestamp"):
        tracker.observe({"event_id": "e", "task_id": "t", "event_type": "created"})
    with pytest.raises(ValidationError, match="timestamp"):
        tracker.observe({"event_id": "e", "task_id": "t", "event_type": "created", "timestamp": "not a date"})
    with pytest.raises(ValidationError, match="task_id"):
        tracker.observe({"event_id": "e", "event_type": "created", "timestamp": T0})
    with pytest.raises(ValidationError, match="workspace_id"):
        tracker.observe({"event_id": "e", "workspace_id": "other", "task_id": "t", "event_type": "created",
                         "timestamp": T0})
    with pytest.raises(SundayError, match="mapping"):
        tracker.observe(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(SundayError, match="SignalConfig.window_days"):
        SignalConfig(window_days=0)
    with pytest.raises(SundayError, match="dormant_days"):
        SignalConfig(active_days=30, dormant_days=10)
    with pytest.raises(ValidationError, match="event_type"):
        daily_signals(pd.DataFrame({"event_id": ["e"], "workspace_id": ["w"], "task_id": ["t"],
                                    "timestamp": [T0]}))


def test_tracker_memory_is_bounded():
    """Closed tasks are forgotten beyond max_closed_tasks; a long stream of short tasks keeps the state flat."""
    cfg = SignalConfig(max_closed_tasks=20)
    tracker = SignalTracker("w", {"a": "t"}, cfg)
    sizes = []
    i = 0
    for day in range(400):
        for k in range(3):
            at = T0 + timedelta(days=day, hours=k)
            task = f"t{day}-{k}"
            for etype in ("created", "assigned", "completed"):
                i += 1
                tracker.observe(_ev(i, task, etype, at, "a"))
        if day in (100, 399):
            sizes.append(tracker.state_size())
    assert len(tracker.closed) <= 20 and len(tracker.tasks) == 0
    assert sizes[1] <= sizes[0] + 5
