"""Feature computations: the contract's schemas, point-in-time correctness (batch rows == one-entity recomputation
from the events at or before the row, later events change nothing), hand-computed values on a tiny event log,
skill profiles from past completions only, no hidden truth, and the Ray Data build == the single-process build."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sunday.data.simulator import SimConfig, simulate, simulate_tables  # noqa: E402
from sunday.data.simulator.workspace import TRUTH_SCHEMAS  # noqa: E402
from sunday.errors import SundayError  # noqa: E402
from sunday.features.compute import (  # noqa: E402
    WorkspaceFrames, compute_workspace, frames_from_tables, load_workspace, task_features_asof, user_skills_asof,
    user_workload_asof,
)
from sunday.features.compute.common import day_end, week_end  # noqa: E402
from sunday.features.embeddings import TextEmbedder  # noqa: E402
from sunday.features.groups import GROUPS, skill_vocab  # noqa: E402

SMALL = SimConfig(n_events=6_000, seed=5)  # one workspace
UTC = "UTC"


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    """The real MiniLM, with a cache shared by the tests of this module."""
    return TextEmbedder(tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="module")
def frames():
    return frames_from_tables(simulate_tables(SMALL))


@pytest.fixture(scope="module")
def tables(frames, embedder):
    return compute_workspace(frames, embedder)


def _row(table: pa.Table, key: str, value: str, ts) -> dict:
    df = table.to_pandas()
    hit = df[(df[table.schema.names[0]] == value) & (df["event_timestamp"] == ts)]
    assert len(hit) == 1, (key, value, ts)
    return hit.iloc[0].to_dict()


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, (list, np.ndarray)):
        return list(a) == list(b)
    return a == b


def _with_events(frames: WorkspaceFrames, extra: list[dict]) -> WorkspaceFrames:
    ev = pd.concat([frames.events, pd.DataFrame(extra)], ignore_index=True)
    return WorkspaceFrames(frames.workspace_id, frames.workspaces, frames.teams, frames.users, frames.projects,
                           frames.tasks, ev)


# -- the contract -------------------------------------------------------------------------------------------------

def test_every_group_has_exactly_the_contract_schema(tables):
    assert list(tables) == list(GROUPS)
    for name, table in tables.items():
        assert table.schema.equals(GROUPS[name].arrow_schema()), name
        assert table.num_rows > 0, name
        assert str(table.schema.field("event_timestamp").type.tz) == UTC
        key = table.schema.names[0]
        df = table.select([key, "event_timestamp"]).to_pandas()
        assert not df.duplicated().any(), f"{name}: duplicate (entity, timestamp)"
        assert table.column(key).null_count == 0


def test_values_stay_in_the_documented_ranges(tables):
    for name, table in tables.items():
        for f in GROUPS[name].features:
            col = table.column(f.name)
            if not f.nullable:
                assert col.null_count == 0, f"{name}.{f.name} has nulls"
            if f.dtype in ("int", "float"):
                v = col.to_numpy(zero_copy_only=False).astype(float)
                v = v[~np.isnan(v)]
                if f.min is not None:
                    assert (v >= f.min - 1e-12).all(), f"{name}.{f.name} below {f.min}"
                if f.max is not None:
                    assert (v <= f.max + 1e-12).all(), f"{name}.{f.name} above {f.max}"
    skills = tables["user_skills"]
    assert {len(x) for x in skills.column("skill_embedding").to_pylist()} == {384}
    assert {len(x) for x in skills.column("skill_counts").to_pylist()} == {len(skill_vocab())}


def test_daily_and_weekly_rows_are_stamped_at_the_end_of_the_period(tables):
    for name in ("user_workload", "project_velocity", "team_balance"):
        us = tables[name].column("event_timestamp").cast(pa.int64()).to_numpy()
        assert (day_end(us) == us).all(), name
    us = tables["user_skills"].column("event_timestamp").cast(pa.int64()).to_numpy()
    assert (week_end(us) == us).all()
    assert (pd.to_datetime(us, unit="us").dayofweek == 6).all()  # Sunday


def test_no_hidden_truth_reaches_the_features(tables, settings):
    keys = {"user_id", "workspace_id", "team_id", "project_id", "task_id"}
    truth_columns = {c for s in TRUTH_SCHEMAS.values() for c in s.names} - keys
    for name, table in tables.items():
        assert not truth_columns & set(table.column_names), name
    # and the loader never opens truth/: a simulation without it loads the same
    import shutil

    result = simulate(SimConfig(n_events=3_000, seed=2), settings.home / "sim", engine="local", progress=False)
    shutil.rmtree(result.path / "truth")
    frames = load_workspace(result.path, "w000000")
    mem = frames_from_tables(simulate_tables(SimConfig(n_events=3_000, seed=2)))
    assert len(frames.events) == len(mem.events) and len(frames.tasks) == len(mem.tasks)


# -- point in time ------------------------------------------------------------------------------------------------

def test_workload_rows_equal_recomputation_from_past_events(frames, tables):
    df = tables["user_workload"].to_pandas()
    rows = df.sample(40, random_state=0)
    ev = frames.events
    for _, r in rows.iterrows():
        past = ev[ev["timestamp"] <= r["event_timestamp"].tz_localize(None)]
        got = user_workload_asof(past, frames.tasks, frames.users, r["user_id"], r["event_timestamp"])
        also = user_workload_asof(ev, frames.tasks, frames.users, r["user_id"], r["event_timestamp"])
        assert got == also
        for f in GROUPS["user_workload"].feature_names:
            assert _same(r[f], got[f]), (r["user_id"], r["event_timestamp"], f, r[f], got[f])


def test_task_rows_equal_recomputation_from_past_events(frames, tables):
    df = tables["task_features"].to_pandas()
    rows = pd.concat([df.sample(25, random_state=1), df[df.duplicated("task_id", keep=False)].head(10)])
    tasks = frames.tasks.set_index("task_id", drop=False)
    for _, r in rows.iterrows():
        ev = frames.events[frames.events["task_id"] == r["task_id"]]
        past = ev[ev["timestamp"] <= r["event_timestamp"].tz_localize(None)]
        got = task_features_asof(tasks.loc[r["task_id"]], past, r["event_timestamp"])
        for f in GROUPS["task_features"].feature_names:
            assert _same(r[f], got[f]), (r["task_id"], f, r[f], got[f])


def test_later_events_change_no_row_at_or_before_the_cut(frames, tables, embedder):
    """Truncation: the log cut at T gives exactly the rows stamped <= T of the full log."""
    ts = frames.events["timestamp"]
    cut = pd.Timestamp(ts.min() + (ts.max() - ts.min()) * 0.55).normalize() + pd.Timedelta(days=1, microseconds=-1)
    short = WorkspaceFrames(frames.workspace_id, frames.workspaces, frames.teams, frames.users, frames.projects,
                            frames.tasks, frames.events[ts <= cut])
    truncated = compute_workspace(short, embedder)
    cut_utc = cut.tz_localize(UTC)
    for name, full in tables.items():
        a = full.to_pandas()
        a = a[a["event_timestamp"] <= cut_utc].reset_index(drop=True)
        b = truncated[name].to_pandas()
        b = b[b["event_timestamp"] <= cut_utc].reset_index(drop=True)
        assert len(a) > 0, name
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)


def test_a_future_event_does_not_change_the_row_at_t(frames, tables, embedder):
    df = tables["user_workload"].to_pandas()
    r = df[(df["open_task_count"] > 0) & (df["completed_count"] > 2)].iloc[len(df) // 10]
    user, t = r["user_id"], r["event_timestamp"]
    after = t.tz_localize(None) + pd.Timedelta(microseconds=1)
    ev = frames.events
    held = ev[(ev["user_id"] == user) & (ev["timestamp"] <= t.tz_localize(None))]["task_id"].iloc[-1]
    other = frames.users.loc[frames.users["user_id"] != user, "user_id"].iloc[0]
    base = dict(workspace_id=frames.workspace_id, project_id=ev["project_id"].iloc[0], actor_id=user,
                from_status=None, to_status=None, hours=np.nan, story_points=np.nan, text=None)
    extra = [
        dict(base, event_id="zz-1", task_id=held, event_type="time_logged", timestamp=after, user_id=user, hours=99.0),
        dict(base, event_id="zz-2", task_id=held, event_type="reassigned", timestamp=after, user_id=other),
        dict(base, event_id="zz-3", task_id=held, event_type="completed", timestamp=after, user_id=user),
    ]
    mutated = compute_workspace(_with_events(frames, extra), embedder)
    before = _row(tables["user_workload"], "user_id", user, t)
    same = _row(mutated["user_workload"], "user_id", user, t)
    assert all(_same(before[f], same[f]) for f in GROUPS["user_workload"].feature_names)
    for name in GROUPS:
        a, b = tables[name].to_pandas(), mutated[name].to_pandas()
        pd.testing.assert_frame_equal(a[a["event_timestamp"] <= t].reset_index(drop=True),
                                      b[b["event_timestamp"] <= t].reset_index(drop=True), obj=name)
    # the streaming recomputation agrees, and the next day shows the new events
    got = user_workload_asof(_with_events(frames, extra).events, frames.tasks, frames.users, user, t)
    assert all(_same(before[f], got[f]) for f in GROUPS["user_workload"].feature_names)
    nxt = _row(mutated["user_workload"], "user_id", user, t + pd.Timedelta(days=1))
    assert nxt["hours_logged_7d"] >= 99.0 and nxt["reassignment_count"] == before["reassignment_count"] + 1


# -- hand-computed expectations ---------------------------------------------------------------------------------

def _tiny() -> WorkspaceFrames:
    """3 users in one team, 5 tasks, one project (see each test for the story)."""
    T = pd.Timestamp
    ws, p = "w", "p1"
    users = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "workspace_id": ws, "name": ["A", "B", "C"],
                          "team_id": "t1", "skills": [["backend"], ["qa"], ["docs"]],
                          "weekly_capacity_hours": [40.0, 20.0, 10.0], "timezone": "UTC"})
    tasks = pd.DataFrame({
        "task_id": ["k1", "k2", "k3", "k4", "k5"], "workspace_id": ws, "project_id": p,
        "title": ["Fix API endpoint", "Add dark mode theme", "Write runbook", "Update README", "Patch CSP headers"],
        "description": ["The API endpoint fails.", "Build the theme.", "Document on-call.", "Refresh it.",
                        "Tighten the headers."],
        "required_skills": [["backend"], ["frontend", "design"], ["docs"], ["docs"], ["security"]],
        "story_points": [3.0, 5.0, 8.0, 1.0, 13.0], "priority": ["high", "low", "medium", "low", "critical"],
        "status": ["done", "done", "todo", "cancelled", "todo"], "assignee_id": ["u1", "u2", "u1", "u3", "u2"],
        "created_at": [T("2024-01-01 09:00"), T("2024-01-01 09:30"), T("2024-01-01 10:00"), T("2024-01-02 10:00"),
                       T("2024-01-03 08:00")],
        "due_date": [T("2024-01-03 17:00"), T("2024-01-03 17:00"), pd.NaT, pd.NaT, pd.NaT],
        "dependencies": [[], [], [], [], ["k3"]], "split": None, "source_key": None, "source_order": range(5)})
    rows = [  # (task, type, time, user, from, to, hours, points)
        ("k1", "created", "2024-01-01 09:00", None, None, None, None, 3.0),
        ("k2", "created", "2024-01-01 09:30", None, None, None, None, 5.0),
        ("k1", "assigned", "2024-01-01 10:00", "u1", None, None, None, None),
        ("k3", "created", "2024-01-01 10:00", None, None, None, None, 2.0),
        ("k2", "assigned", "2024-01-01 10:30", "u1", None, None, None, None),
        ("k1", "status_changed", "2024-01-01 11:00", "u1", "todo", "in_progress", None, None),
        ("k3", "assigned", "2024-01-01 11:00", "u1", None, None, None, None),
        ("k1", "time_logged", "2024-01-01 12:00", "u1", None, None, 4.0, None),
        ("k2", "reassigned", "2024-01-02 08:00", "u2", None, None, None, None),
        ("k1", "status_changed", "2024-01-02 09:00", "u1", "in_progress", "in_review", None, None),
        ("k3", "scope_changed", "2024-01-02 09:00", "u1", None, None, None, 8.0),
        ("k2", "status_changed", "2024-01-02 10:00", "u2", "todo", "in_progress", None, None),
        ("k4", "created", "2024-01-02 10:00", None, None, None, None, 1.0),
        ("k4", "assigned", "2024-01-02 11:00", "u3", None, None, None, None),
        ("k2", "time_logged", "2024-01-02 12:00", "u2", None, None, 2.5, None),
        ("k1", "status_changed", "2024-01-02 15:00", "u1", "in_review", "done", None, None),
        ("k1", "completed", "2024-01-02 15:00", "u1", None, None, None, None),
        ("k5", "created", "2024-01-03 08:00", None, None, None, None, 13.0),
        ("k2", "status_changed", "2024-01-03 09:00", "u2", "in_progress", "in_review", None, None),
        ("k4", "status_changed", "2024-01-03 09:00", "u3", "todo", "cancelled", None, None),
        ("k5", "assigned", "2024-01-03 09:00", "u2", None, None, None, None),
        ("k2", "status_changed", "2024-01-03 10:00", "u2", "in_review", "in_progress", None, None),
        ("k2", "status_changed", "2024-01-03 12:00", "u2", "in_progress", "in_review", None, None),
        ("k2", "status_changed", "2024-01-04 10:00", "u2", "in_review", "done", None, None),
        ("k2", "completed", "2024-01-04 10:00", "u2", None, None, None, None),
        ("k3", "time_logged", "2024-01-08 09:00", "u1", None, None, 1.5, None),
    ]
    events = pd.DataFrame([{
        "event_id": f"e{i:03d}", "workspace_id": ws, "project_id": p, "task_id": k, "event_type": et,
        "timestamp": T(ts), "user_id": u, "actor_id": u, "from_status": fs, "to_status": to,
        "hours": np.nan if h is None else h, "story_points": np.nan if sp is None else sp, "text": None,
    } for i, (k, et, ts, u, fs, to, h, sp) in enumerate(rows)])
    empty = pd.DataFrame()
    return WorkspaceFrames(ws, empty, pd.DataFrame({"team_id": ["t1"]}), users, empty, tasks, events)


def _end(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz=UTC) + pd.Timedelta(days=1, microseconds=-1)


@pytest.fixture(scope="module")
def tiny(embedder):
    frames = _tiny()
    return frames, compute_workspace(frames, embedder)


def test_tiny_log_user_workload_by_hand(tiny):
    frames, t = tiny
    wl = t["user_workload"].to_pandas()
    assert wl.loc[wl.user_id == "u1", "event_timestamp"].tolist() == [_end("2024-01-01"), _end("2024-01-02"),
                                                                     _end("2024-01-08")]
    r = _row(t["user_workload"], "user_id", "u1", _end("2024-01-01"))
    assert (r["open_task_count"], r["open_points"], r["hours_logged_7d"]) == (3, 10.0, 4.0)
    assert r["capacity_utilisation"] == pytest.approx(0.1)
    assert r["completed_count"] == 0 and r["completion_rate"] == 0.0
    assert math.isnan(r["mean_completion_hours"]) and math.isnan(r["on_time_rate"])
    r = _row(t["user_workload"], "user_id", "u1", _end("2024-01-02"))
    # k1 done, k2 reassigned away, k3 re-estimated to 8 points
    assert (r["open_task_count"], r["open_points"], r["hours_logged_7d"]) == (1, 8.0, 4.0)
    assert (r["completed_count"], r["reassignment_count"]) == (1, 1)
    assert r["mean_completion_hours"] == pytest.approx(29.0)  # assigned 01-01 10:00, done 01-02 15:00
    assert r["completion_rate"] == pytest.approx(1 / 3) and r["on_time_rate"] == 1.0 and r["review_cycles"] == 1.0
    r = _row(t["user_workload"], "user_id", "u1", _end("2024-01-08"))
    assert r["hours_logged_7d"] == 1.5 and r["capacity_utilisation"] == pytest.approx(1.5 / 40)  # 01-01 log left
    r = _row(t["user_workload"], "user_id", "u2", _end("2024-01-04"))
    assert (r["open_task_count"], r["open_points"], r["hours_logged_7d"]) == (1, 13.0, 2.5)
    assert r["capacity_utilisation"] == pytest.approx(0.125)
    assert r["mean_completion_hours"] == pytest.approx(50.0)  # from the reassignment to u2, 01-02 08:00
    assert r["completion_rate"] == 0.5 and r["on_time_rate"] == 0.0 and r["review_cycles"] == 2.0
    r = _row(t["user_workload"], "user_id", "u3", _end("2024-01-03"))
    assert (r["open_task_count"], r["open_points"], r["completion_rate"]) == (0, 0.0, 0.0)
    # the streaming path gives the same at any time, e.g. mid-day
    got = user_workload_asof(frames.events, frames.tasks, frames.users, "u1", pd.Timestamp("2024-01-02 08:30"))
    assert (got["open_task_count"], got["open_points"], got["reassignment_count"]) == (2, 5.0, 1)


def test_tiny_log_team_gini_by_hand(tiny):
    _, t = tiny
    r = _row(t["team_balance"], "team_id", "t1", _end("2024-01-04"))
    # open points: u1 8 (k3), u2 13 (k5), u3 0; Gini = mean |xi - xj| / (2 mean) = 52 / 9 / (2 * 7) = 26 / 63,
    # normalised by n / (n - 1) = 3 / 2
    assert r["open_points_gini"] == pytest.approx(26 / 63 * 3 / 2)
    assert r["open_points_total"] == 21.0 and r["max_member_share"] == pytest.approx(13 / 21)
    assert r["member_count"] == 3
    r = _row(t["team_balance"], "team_id", "t1", _end("2024-01-01"))
    assert (r["open_points_gini"], r["max_member_share"], r["open_points_total"]) == (1.0, 1.0, 10.0)
    days = t["team_balance"].column("event_timestamp").to_pylist()
    assert days == [_end(d) for d in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-08")]


def test_tiny_log_project_velocity_by_hand(tiny):
    _, t = tiny
    pv = t["project_velocity"].to_pandas().set_index("event_timestamp")
    assert list(pv.index) == [_end(f"2024-01-0{d}") for d in range(1, 9)]  # every day, first to last event
    d1, d2, d3, d4, d6, d8 = (pv.loc[_end(f"2024-01-0{d}")] for d in (1, 2, 3, 4, 6, 8))
    assert (d1.tasks_created, d1.backlog_tasks, d1.backlog_points, d1.hours_logged, d1.team_changes) == (3, 3, 10, 4, 1)
    assert (d2.tasks_done, d2.points_done, d2.backlog_tasks, d2.backlog_points) == (1, 3.0, 3, 14.0)
    assert (d2.scope_changes, d2.reassignments, d2.team_changes) == (1, 1, 2)
    assert (d3.backlog_tasks, d3.backlog_points, d3.critical_bugs, d3.blocked_tasks) == (3, 26.0, 1, 1)
    assert (d4.points_done, d4.backlog_tasks, d4.backlog_points, d4.blocked_tasks) == (5.0, 2, 21.0, 1)
    assert (d6.tasks_done, d6.hours_logged, d6.backlog_tasks) == (0, 0.0, 2)  # a quiet day carries the stocks
    assert d8.hours_logged == 1.5


def test_tiny_log_task_features_by_hand(tiny):
    frames, t = tiny
    tf = t["task_features"].to_pandas()
    k3 = tf[tf.task_id == "k3"]
    assert k3["story_points"].tolist() == [2.0, 8.0]  # at creation, then at the scope change
    assert k3["event_timestamp"].tolist() == [pd.Timestamp("2024-01-01 10:00", tz=UTC),
                                             pd.Timestamp("2024-01-02 09:00", tz=UTC)]
    k1 = tf[tf.task_id == "k1"].iloc[0]
    n = len("Fix API endpoint") + len("The API endpoint fails.")
    assert (k1.priority_score, k1.required_skill_count, k1.dependency_count, k1.description_length) == (2, 1, 0, n)
    assert k1.complexity == pytest.approx(math.log1p(n) + 1 + 0 + math.log1p(3.0))
    assert k1.days_to_due == pytest.approx((pd.Timestamp("2024-01-03 17:00") - pd.Timestamp("2024-01-01 09:00"))
                                           / pd.Timedelta(days=1))
    k5 = tf[tf.task_id == "k5"].iloc[0]
    assert (k5.priority_score, k5.dependency_count) == (3, 1) and math.isnan(k5.days_to_due)
    got = task_features_asof(frames.tasks.iloc[2], frames.events, pd.Timestamp("2024-01-01 20:00", tz=UTC))
    assert got["story_points"] == 2.0  # the scope change of 01-02 is in the future


def test_tiny_log_skill_profile_uses_only_completed_tasks(tiny, embedder):
    frames, t = tiny
    sk = t["user_skills"].to_pandas()
    assert sorted(sk.user_id) == ["u1", "u2"]  # u3 completed nothing
    r = sk[sk.user_id == "u1"].iloc[0]
    assert r.event_timestamp == _end("2024-01-07")  # Sunday of the week of 01-02
    vocab = skill_vocab()
    assert r.skill_task_count == 1 and list(r.skill_counts) == [1.0 if s == "backend" else 0.0 for s in vocab]
    np.testing.assert_allclose(r.skill_embedding, embedder.task_vectors(["Fix API endpoint"],
                                                                        ["The API endpoint fails."])[0], rtol=1e-6)


# -- skills ---------------------------------------------------------------------------------------------------------

def test_a_task_completed_after_t_changes_no_skill_profile_at_t(frames, tables, embedder):
    sk = tables["user_skills"].to_pandas()
    r = sk.iloc[len(sk) // 2]
    user, t = r["user_id"], r["event_timestamp"]
    # the batch row is the profile of exactly the user's completions at or before T
    ev = frames.events
    done = ev[(ev.event_type == "completed") & (ev.user_id == user) & (ev.timestamp <= t.tz_localize(None))]
    assert r["skill_task_count"] == done["task_id"].nunique()
    got = user_skills_asof(ev, frames.tasks, user, t, embedder)
    np.testing.assert_array_equal(np.asarray(got["skill_embedding"], np.float32), r["skill_embedding"])
    assert list(got["skill_counts"]) == list(r["skill_counts"]) and got["skill_task_count"] == r["skill_task_count"]
    # a task of a brand new kind, completed by the user one microsecond after T
    late = t.tz_localize(None) + pd.Timedelta(microseconds=1)
    task = frames.tasks.iloc[[0]].assign(task_id="late-1", title="Tune the classifier threshold",
                                         description="Retrain the model.", required_skills=[["ml"]])
    base = dict(workspace_id=frames.workspace_id, project_id=task["project_id"].iloc[0], task_id="late-1",
                actor_id=user, from_status=None, to_status=None, hours=np.nan, story_points=np.nan, text=None)
    extra = [dict(base, event_id="zz-1", event_type="assigned", timestamp=late, user_id=user),
             dict(base, event_id="zz-2", event_type="completed", timestamp=late, user_id=user)]
    mutated = _with_events(frames, extra)
    mutated.tasks = pd.concat([frames.tasks, task], ignore_index=True)
    after = compute_workspace(mutated, embedder)["user_skills"].to_pandas()
    same = after[(after.user_id == user) & (after.event_timestamp == t)].iloc[0]
    np.testing.assert_array_equal(same["skill_embedding"], r["skill_embedding"])
    assert list(same["skill_counts"]) == list(r["skill_counts"])
    # ... and shows up in the week it was completed in
    nxt = after[(after.user_id == user) & (after.event_timestamp > t)].iloc[0]
    orig = sk[(sk.user_id == user) & (sk.event_timestamp == nxt["event_timestamp"])]
    assert nxt["skill_task_count"] == (orig["skill_task_count"].iloc[0] if len(orig) else r["skill_task_count"]) + 1
    assert nxt["skill_counts"][list(skill_vocab()).index("ml")] >= 1


# -- the pipeline -----------------------------------------------------------------------------------------------------

def test_ray_engine_builds_the_same_tables_as_local(ray_session, settings):
    from sunday.features.pipeline import build_features, offline_path, read_group

    with pytest.raises(SundayError, match="no features built yet"):
        offline_path(settings, "user_workload")
    sim = simulate(SimConfig(n_events=6_000, seed=3, events_per_workspace=2_000), settings.home / "sim",
                   engine="local", progress=False)
    local = build_features(settings, sim.path, engine="local", progress=False)
    assert local.n_workspaces == 3 and local.rows["user_workload"] > 0
    assert local.embedding["embedded"] > 0
    want = {g: read_group(settings, g) for g in GROUPS}
    ray_build = build_features(settings, sim.path, engine="ray", progress=False)
    assert ray_build.embedding["embedded"] == 0  # every text came from the cache
    assert ray_build.rows == local.rows and ray_build.path != local.path
    for g in GROUPS:
        got = read_group(settings, g)
        assert got.schema.equals(GROUPS[g].arrow_schema())
        keys = [(got.schema.names[0], "ascending"), ("event_timestamp", "ascending")]
        assert got.sort_by(keys).equals(want[g].sort_by(keys)), g
    assert offline_path(settings, "team_balance") == ray_build.path / "team_balance"


def test_a_failing_validation_keeps_the_last_good_version(settings):
    from sunday.features.pipeline import build_features, offline_path

    sim = simulate(SimConfig(n_events=2_000, seed=4), settings.home / "sim", engine="local", progress=False)
    good = build_features(settings, sim.path, engine="local", progress=False)
    seen = []

    def reject(group, table):
        seen.append((group, table.num_rows))
        if group == "project_velocity":
            raise ValueError("drift")

    with pytest.raises(ValueError, match="drift"):
        build_features(settings, sim.path, engine="local", progress=False, validate=reject)
    assert [g for g, _ in seen] == ["user_workload", "user_skills", "task_features", "project_velocity"]
    assert dict(seen)["user_workload"] == good.rows["user_workload"]
    assert offline_path(settings, "user_workload").parent == good.path
    assert not [p for p in good.path.parent.iterdir() if p.name.startswith(".staging")]
