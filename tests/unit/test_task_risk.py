"""At-risk tasks (sunday.models.timeline.task_risk): point-in-time features, no hidden truth, labels, the ranked
list, bad input, persistence and the timeline service's optional at_risk_tasks.

Small: one ~25k-event simulated workspace and a cheap model configuration.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytest

from sunday.errors import SundayError
from sunday.models.delay.risk import CLASS_NAMES, DelayRiskConfig, class_thresholds, risk_classes
from sunday.models.timeline.task_risk import (
    FEATURE_SOURCES, FEATURES, ID_COLUMNS, OPEN_STATUSES, TaskDelayRisk, at_risk_tasks, delay_labels,
    prepare_workspace, task_risk_features, task_snapshots,
)

AS_OF = pd.Timestamp("2024-07-10 13:30:00")
CHEAP = DelayRiskConfig(n_estimators=40, rf_trees=40, inner_folds=2)


@pytest.fixture(scope="module")
def sim():
    from sunday.data.simulator import SimConfig, simulate_tables

    return simulate_tables(SimConfig(n_events=25_000, seed=3))


@pytest.fixture(scope="module")
def frames(sim):
    from sunday.features.compute import frames_from_tables

    return frames_from_tables(sim)


@pytest.fixture(scope="module")
def model(sim):
    return TaskDelayRisk(CHEAP).fit(sim)


@pytest.fixture(scope="module")
def feats(frames):
    return task_risk_features(frames, frames.workspace_id, AS_OF)


def _mapping(frames, tasks=None, events=None):
    return {"tasks": frames.tasks if tasks is None else tasks, "events": frames.events if events is None else events,
            "users": frames.users}


# -- features -----------------------------------------------------------------------------------------------------

def test_feature_rows(frames, feats):
    t = frames.tasks
    expected = t[t["due_date"].notna() & (t["created_at"] <= AS_OF)]["task_id"]
    assert sorted(feats["task_id"]) == sorted(expected)
    assert list(feats.columns[:len(ID_COLUMNS)]) == list(ID_COLUMNS)
    assert set(FEATURES) <= set(feats.columns)
    assert (feats["as_of"] == AS_OF).all()
    due = (feats["due_date"] - AS_OF) / pd.Timedelta(days=1)
    np.testing.assert_allclose(feats["days_to_due"], due)
    assert (feats["days_to_due"] < 0).any() and (feats["days_to_due"] > 0).any()  # overdue is negative
    assert feats["status"].isin(OPEN_STATUSES).any() and (feats["status"] == "done").any()
    assert (feats["age_days"] >= 0).all()
    # the assignee columns exist only for assigned tasks
    assert feats.loc[feats["assigned"] == 0, "assignee_open_tasks"].isna().all()
    assert (feats.loc[feats["assigned"] == 1, "assignee_open_tasks"] >= 0).all()
    share = feats["project_late_share"].dropna()
    assert ((share >= 0) & (share <= 1)).all() and len(share)


def test_point_in_time_later_events_change_nothing(frames, feats):
    ev = frames.events
    at = AS_OF
    # 1) the log cut at as_of (and only the tasks created by then) gives the same rows
    cut = _mapping(frames, frames.tasks[frames.tasks["created_at"] <= at], ev[ev["timestamp"] <= at])
    pd.testing.assert_frame_equal(task_risk_features(cut, None, at), feats)
    # 2) appending events after as_of (completions, reassignments, comments, scope changes of the open tasks, and a
    #    new task created later) changes nothing either
    open_ids = feats.loc[feats["status"].isin(OPEN_STATUSES), "task_id"].tolist()[:40]
    assert open_ids
    proto = ev.iloc[0]
    rows = []
    for i, tid in enumerate(open_ids):
        for j, (etype, extra) in enumerate((("reassigned", {"user_id": frames.users["user_id"].iloc[0]}),
                                            ("commented", {}), ("scope_changed", {"story_points": 13.0}),
                                            ("completed", {"to_status": "done"}))):
            r = proto.to_dict()
            r.update({"event_id": f"zz-{i}-{j}", "task_id": tid, "event_type": etype,
                      "timestamp": at + pd.Timedelta(minutes=1 + j), "user_id": None, "to_status": None,
                      "story_points": np.nan, **extra})
            rows.append(r)
    new_task = frames.tasks.iloc[[0]].copy()
    new_task["task_id"], new_task["created_at"] = "late-task", at + pd.Timedelta(days=1)
    new_task["due_date"] = at + pd.Timedelta(days=3)
    later = pd.concat([ev, pd.DataFrame(rows)], ignore_index=True)
    more = _mapping(frames, pd.concat([frames.tasks, new_task], ignore_index=True), later)
    pd.testing.assert_frame_equal(task_risk_features(more, None, at), feats)
    # ... while the same events before as_of do change the rows (the test can fail)
    earlier = later.copy()
    earlier.loc[earlier["event_id"].str.startswith("zz-"), "timestamp"] -= pd.Timedelta(hours=1)
    changed = task_risk_features(_mapping(frames, events=earlier), None, at)
    assert not changed.equals(feats)


def test_no_truth_and_no_end_of_log_columns(sim, frames, feats):
    from sunday.data.simulator.writer import SimTables

    class Forbidden(Mapping):
        def __getitem__(self, key):
            raise AssertionError(f"truth table {key!r} read")

        def __iter__(self):
            raise AssertionError("truth tables listed")

        def __len__(self):
            raise AssertionError("truth tables counted")

    guarded = SimTables(observable=sim.observable, truth=Forbidden())
    pd.testing.assert_frame_equal(task_risk_features(guarded, None, AS_OF), feats)
    truth_cols = set()
    for t in sim.truth.values():
        truth_cols |= set(t.column_names)
    leaky = (truth_cols - {"task_id", "workspace_id", "project_id", "user_id"}) & set(feats.columns)
    assert not leaky, leaky
    assert all("truth" not in src for src in FEATURE_SOURCES.values())
    assert set(FEATURES) <= set(FEATURE_SOURCES)
    # the tasks table's status / assignee / points are end-of-log values: scrambling them changes nothing
    t = frames.tasks.copy()
    t["status"], t["assignee_id"], t["story_points"] = "done", None, 99.0
    pd.testing.assert_frame_equal(task_risk_features(_mapping(frames, tasks=t), None, AS_OF), feats)


# -- labels ---------------------------------------------------------------------------------------------------------

def _tiny():
    d = pd.Timestamp("2024-01-01")
    tasks = pd.DataFrame({
        "task_id": ["a", "b", "c", "d", "e", "f"], "workspace_id": "w", "project_id": "p",
        "priority": "medium", "created_at": [d] * 6,
        "due_date": [d + pd.Timedelta(days=5)] * 5 + [pd.NaT],
    })
    ev = []

    def add(tid, etype, day, **kw):
        ev.append({"event_id": f"e{len(ev):03d}", "workspace_id": "w", "project_id": "p", "task_id": tid,
                   "event_type": etype, "timestamp": d + pd.Timedelta(days=day), "user_id": None, "to_status": None,
                   "story_points": np.nan, "hours": np.nan, **kw})

    for tid in "abcdef":
        add(tid, "created", 0, story_points=2.0)
    add("a", "completed", 4)  # on time
    add("b", "completed", 6)  # 1 day late
    add("c", "completed", 8)  # 3 days late
    add("c", "completed", 9)  # a second completion: the first counts
    add("d", "status_changed", 3, to_status="cancelled")  # cancelled: no label
    # e: still open (no label); f: no due date (no label)
    add("f", "completed", 2)
    return tasks, pd.DataFrame(ev)


def test_delay_labels():
    tasks, ev = _tiny()
    lab = delay_labels({"tasks": tasks, "events": ev})
    assert lab["task_id"].tolist() == ["a", "b", "c"]
    np.testing.assert_allclose(lab["delay_days"], [0.0, 1.0, 3.0])
    th = class_thresholds(lab["delay_days"])
    assert lab.attrs["thresholds"] == th
    np.testing.assert_array_equal(lab["y"], risk_classes(lab["delay_days"], th))
    lab2 = delay_labels({"tasks": tasks, "events": ev}, thresholds=(0.5, 2.0))
    assert lab2["y"].tolist() == [0, 2, 3] and lab2["class_name"].tolist() == ["non-delay", "medium", "major"]
    # only completions visible by `until`
    early = delay_labels({"tasks": tasks, "events": ev}, thresholds=(0.5, 2.0), until="2024-01-07")
    assert early["task_id"].tolist() == ["a", "b"]


def test_snapshots_only_open_before_due(sim):
    s = task_snapshots(sim, cut_every_days=7)
    assert len(s) > 200
    assert (s["days_to_due"] > 0).all() and s["status"].isin(OPEN_STATUSES).all()
    assert (s["created_at"] <= s["as_of"]).all()
    done = s["completed_at"].notna()
    assert (s.loc[done, "completed_at"] > s.loc[done, "as_of"]).all()  # the label lies in the future of the row
    assert s["delay_days"].notna().mean() > 0.8


# -- model, ranked list -----------------------------------------------------------------------------------------

def test_at_risk_tasks(model, feats):
    out = at_risk_tasks(model, feats, top=8)
    n_open = int(feats["status"].isin(OPEN_STATUSES).sum())
    assert len(out) == min(8, n_open) and n_open > 0
    keys = {"task_id", "project_id", "p_delayed", "risk_class", "at_risk", "overdue", "due_date", "days_to_due",
            "status", "reasons"}
    for r in out:
        assert set(r) == keys
        assert 0.0 <= r["p_delayed"] <= 1.0 and r["risk_class"] in CLASS_NAMES
        assert r["status"] in OPEN_STATUSES and pd.notna(pd.Timestamp(r["due_date"]))
        assert 1 <= len(r["reasons"]) <= 3
        assert all(x["feature"] in FEATURES for x in r["reasons"])
        if r["overdue"]:
            assert r["p_delayed"] == 1.0 and r["days_to_due"] < 0 and r["risk_class"] != "non-delay"
            assert r["reasons"][0]["kind"] == "overdue"
    p = [r["p_delayed"] for r in out]
    assert p == sorted(p, reverse=True)
    # without the overdue tasks: model probabilities, ranked, reasons from LightGBM contributions
    fresh = at_risk_tasks(model, feats, top=None, include_overdue=False)
    opened = feats[feats["status"].isin(OPEN_STATUSES) & (feats["days_to_due"] >= 0)]
    assert len(fresh) == len(opened)
    pf = np.array([r["p_delayed"] for r in fresh])
    assert (np.diff(pf) <= 1e-12).all()
    expected = model.p_delayed(opened.set_index("task_id").loc[[r["task_id"] for r in fresh]].reset_index())
    np.testing.assert_allclose(pf, expected)
    assert all(x["kind"] == "lgbm_contrib" and x["effect"] > 0 for r in fresh for x in r["reasons"])
    assert at_risk_tasks(model, feats[feats["status"] == "done"]) == []


def test_bad_input(model, feats, frames):
    with pytest.raises(SundayError, match="assignee_open_tasks"):
        at_risk_tasks(model, feats.drop(columns=["assignee_open_tasks"]))
    with pytest.raises(SundayError, match="due_date"):
        at_risk_tasks(model, feats.drop(columns=["due_date"]))
    nan_due = feats.copy()
    nan_due.loc[nan_due.index[0], "due_date"] = pd.NaT
    with pytest.raises(SundayError, match="due_date"):
        at_risk_tasks(model, nan_due)
    with pytest.raises(SundayError, match="due_date"):
        task_risk_features(_mapping(frames, tasks=frames.tasks.drop(columns=["due_date"])), None, AS_OF)
    with pytest.raises(SundayError, match="timestamp"):
        task_risk_features(_mapping(frames, events=frames.events.drop(columns=["timestamp"])), None, AS_OF)
    with pytest.raises(SundayError, match="DataFrame"):
        at_risk_tasks(model, feats.to_dict())


def test_save_load(model, feats, tmp_path):
    model.save(tmp_path / "m")
    again = TaskDelayRisk.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(feats), model.predict_proba(feats))
    assert again.thresholds_ == model.thresholds_ and again.threshold_ == model.threshold_


def test_prepared_workspace_reused(frames, feats):
    log = prepare_workspace(frames)
    pd.testing.assert_frame_equal(task_risk_features(log, None, AS_OF), feats)


# -- the timeline service -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def forecaster():
    from sunday.models.timeline.forecaster import TimelineConfig, TimelineForecaster
    from tests.unit.test_timeline import synthetic_snapshots

    snap = synthetic_snapshots(40, seed=1)
    return TimelineForecaster(TimelineConfig(hidden=8, static_hidden=8, epochs=1, batch_size=20,
                                             calibration_fraction=0.25)).fit(snap)


def test_predict_timeline_at_risk_tasks(forecaster, model, feats):
    from sunday.models.timeline.service import predict_timeline
    from tests.unit.test_timeline import linear_history

    pid = feats.loc[feats["status"].isin(OPEN_STATUSES), "project_id"].iloc[0]
    project = {"project_id": pid, "history": linear_history(30, 150, 2.0), "start_date": "2024-01-01",
               "planned_end": "2024-03-01", "team_size": 5, "team_capacity_hours": 180}
    out = predict_timeline(forecaster, project)
    assert out["at_risk_tasks"] == []
    out = predict_timeline(forecaster, project, tasks=feats, task_model=model)
    assert out["at_risk_tasks"] and all(r["project_id"] == pid for r in out["at_risk_tasks"])
    assert out["at_risk_tasks"] == at_risk_tasks(model, feats[feats["project_id"] == pid])
    with pytest.raises(SundayError, match="task_model"):
        predict_timeline(forecaster, project, tasks=feats)
    with pytest.raises(SundayError, match="due_date"):
        predict_timeline(forecaster, project, tasks=feats.assign(due_date=pd.NaT), task_model=model)
    with pytest.raises(SundayError, match="priority"):
        predict_timeline(forecaster, project, tasks=feats.drop(columns=["priority"]), task_model=model)
