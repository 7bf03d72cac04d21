"""The streaming consumer (sunday.features.streaming): events in, fresh online rows out, with the batch definitions.

* an ``assigned`` event raises the user's online ``open_task_count`` by one (and ``open_points`` by the task's
  points); a ``created`` event puts the task's ``task_features`` online;
* rows computed from the consumer's lazily loaded, filtered history equal the same computation over the whole
  event log (from a simulation in memory or written to disk);
* a bad event raises a SundayError naming the field and pushes nothing; a repeated event is ignored;
* end to end: simulation -> feature pipeline -> Feast apply + materialize -> training set == online -> stream.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sunday.data.simulator import SimConfig, simulate, simulate_tables  # noqa: E402
from sunday.errors import SundayError, ValidationError  # noqa: E402
from sunday.features import repo  # noqa: E402
from sunday.features.compute import task_features_asof, user_workload_asof  # noqa: E402
from sunday.features.groups import GROUPS  # noqa: E402
from sunday.features.streaming import StreamingConsumer, validate_event  # noqa: E402

SMALL = SimConfig(n_events=6_000, seed=5)  # one workspace


@pytest.fixture(scope="module")
def sim():
    return simulate_tables(SMALL)


@pytest.fixture(scope="module")
def frames(sim):
    o = sim.observable
    return {n: o[n].to_pandas() for n in ("events", "tasks", "users")}


@pytest.fixture(params=[True, False], ids=["direct-push", "store.push"])
def consumer(request, settings, sim, monkeypatch):
    """A consumer over the in-memory simulation; pushes through the provider directly (OnlineFeatures' default)
    or through Feast's ``store.push(<group>_push, ..., to=PushMode.ONLINE)``."""
    from sunday.features.online import OnlineFeatures

    monkeypatch.setenv(repo.OFFLINE_ENV, "file")
    repo.apply(settings)  # no offline data yet: empty placeholders; pushes need only the registry
    return StreamingConsumer(settings, sim, online=OnlineFeatures(settings, fast=request.param))


def _busy_user(frames) -> str:
    ev = frames["events"]
    return ev.loc[ev["event_type"] == "assigned", "user_id"].value_counts().index[0]


def _after_end(frames, hours: float = 24) -> pd.Timestamp:
    return frames["events"]["timestamp"].max() + pd.Timedelta(hours=hours)


def _event(frames, **kw) -> dict:
    ev = frames["events"].iloc[0]
    base = {"workspace_id": ev["workspace_id"], "project_id": ev["project_id"], "actor_id": None, "user_id": None,
            "from_status": None, "to_status": None, "hours": None, "story_points": None, "text": None}
    base.update(kw)
    return base


def _log_plus(ev: pd.DataFrame, *extra: dict) -> pd.DataFrame:
    """The event log with extra event dicts appended (in the log's dtypes)."""
    add = pd.DataFrame([{**e, "timestamp": pd.Timestamp(e["timestamp"])} for e in extra]).reindex(columns=ev.columns)
    return pd.concat([ev, add.astype(ev.dtypes.to_dict())], ignore_index=True)


def _online(consumer, user: str) -> dict:
    return consumer.online.get("user_workload", {"user_id": user})


def test_an_assignment_raises_open_task_count_by_one(consumer, frames):
    user = _busy_user(frames)
    t1 = _after_end(frames)
    expected = user_workload_asof(frames["events"], frames["tasks"], frames["users"], user, t1)

    # a new task created in the stream: its task_features go online, no user is touched
    created = _event(frames, event_id="s-1", task_id="stream-task-1", event_type="created", timestamp=t1,
                     actor_id=user, story_points=5.0)
    done = consumer.process(created)
    assert done.pushed == {"task_features": ["stream-task-1"]}
    task = consumer.online.get("task_features", {"task_id": "stream-task-1"})
    assert task["story_points"] == 5.0 and task["required_skills"] == [] and task["priority_score"] == 0

    # a time log on one of the user's open tasks: the user's row, as of the event, goes online
    ev = frames["events"]
    open_task = ev.loc[(ev["user_id"] == user) & (ev["event_type"] == "assigned"), "task_id"].iloc[-1]
    log = _event(frames, event_id="s-2", task_id=open_task, event_type="time_logged",
                 timestamp=t1 + pd.Timedelta(minutes=5), user_id=user, actor_id=user, hours=1.5)
    assert consumer.process(log).pushed == {"user_workload": [user]}
    before = _online(consumer, user)
    assert before["open_task_count"] == expected["open_task_count"]
    assert before["open_points"] == pytest.approx(expected["open_points"])
    assert before["completed_count"] == expected["completed_count"]

    # the assignment: one more open task, 5 more open points
    assign = _event(frames, event_id="s-3", task_id="stream-task-1", event_type="assigned",
                    timestamp=t1 + pd.Timedelta(hours=1), user_id=user, actor_id=user)
    done = consumer.process(assign)
    assert done.pushed == {"user_workload": [user]}
    after = _online(consumer, user)
    assert after["open_task_count"] == before["open_task_count"] + 1
    assert after["open_points"] == pytest.approx(before["open_points"] + 5.0)
    assert after["completed_count"] == before["completed_count"]

    # a reassignment updates both the new and the previous holder
    other = next(u for u in frames["users"]["user_id"] if u != user)
    other_before = user_workload_asof(frames["events"], frames["tasks"], frames["users"], other, t1)
    move = _event(frames, event_id="s-4", task_id="stream-task-1", event_type="reassigned",
                  timestamp=t1 + pd.Timedelta(hours=2), user_id=other, actor_id=user)
    assert sorted(consumer.process(move).pushed["user_workload"]) == sorted([user, other])
    assert _online(consumer, user)["open_task_count"] == before["open_task_count"]
    assert _online(consumer, user)["reassignment_count"] == before["reassignment_count"] + 1
    assert _online(consumer, other)["open_task_count"] == other_before["open_task_count"] + 1

    # completion closes it for the holder
    complete = _event(frames, event_id="s-5", task_id="stream-task-1", event_type="completed",
                      timestamp=t1 + pd.Timedelta(hours=3), user_id=other, actor_id=other)
    consumer.process(complete)
    got = _online(consumer, other)
    assert got["open_task_count"] == other_before["open_task_count"]
    assert got["completed_count"] == other_before["completed_count"] + 1


def test_rows_from_the_filtered_history_equal_the_whole_log(consumer, frames):
    """Replaying events of the log: the consumer loads only what each user / task needs, yet gets the values
    computed over the whole log (the batch definitions)."""
    ev = frames["events"]
    rng = np.random.default_rng(0)
    picks = ev[ev["event_type"].isin(("assigned", "reassigned", "completed", "status_changed", "time_logged",
                                      "scope_changed", "created"))]
    picks = picks.iloc[np.sort(rng.choice(len(picks), size=25, replace=False))]
    for _, row in picks.iterrows():
        event = {k: (None if (not isinstance(v, (list, np.ndarray)) and pd.isna(v)) else v)
                 for k, v in row.to_dict().items()}
        done = consumer.process(event)
        as_of = pd.Timestamp(row["timestamp"]).tz_localize("UTC")
        for got in done.rows.get("user_workload", []):
            want = user_workload_asof(ev, frames["tasks"], frames["users"], got["user_id"], as_of)
            assert got == want, (row["event_id"], got["user_id"])
        for got in done.rows.get("task_features", []):
            task = frames["tasks"][frames["tasks"]["task_id"] == row["task_id"]].iloc[0]
            assert got == task_features_asof(task, ev, as_of)
    # only the touched users' and tasks' events were loaded
    assert 0 < len(consumer.history) < len(ev)


def test_a_written_simulation_is_read_lazily_and_gives_the_same_rows(settings, frames, monkeypatch):
    monkeypatch.setenv(repo.OFFLINE_ENV, "file")
    repo.apply(settings)
    written = simulate(SMALL, settings.home / "sim", engine="local", progress=False)
    user = _busy_user(frames)
    t1 = _after_end(frames)
    ev = frames["events"]
    task = ev.loc[(ev["user_id"] == user) & (ev["event_type"] == "assigned"), "task_id"].iloc[0]
    log = _event(frames, event_id="w-1", task_id=task, event_type="time_logged", timestamp=t1, user_id=user,
                 hours=2.0)
    from_disk = StreamingConsumer(settings, written.path.parent)  # the folder of versions works too
    got = from_disk.process(log).rows["user_workload"][0]
    want = user_workload_asof(_log_plus(ev, log), frames["tasks"], frames["users"], user, t1)
    assert got == want
    without = user_workload_asof(ev, frames["tasks"], frames["users"], user, t1)
    assert got["hours_logged_7d"] == pytest.approx(without["hours_logged_7d"] + 2.0)


def test_bad_events_name_the_field_and_push_nothing(consumer, frames):
    user = _busy_user(frames)
    t1 = _after_end(frames)
    ev = frames["events"]
    task = ev.loc[(ev["user_id"] == user) & (ev["event_type"] == "assigned"), "task_id"].iloc[-1]
    good = _event(frames, event_id="ok-1", task_id=task, event_type="time_logged", timestamp=t1, user_id=user,
                  hours=1.0)
    consumer.process(good)
    online_before = _online(consumer, user)
    history_before = len(consumer.history)
    later = t1 + pd.Timedelta(hours=1)
    cases = {
        "task_id": {**good, "event_id": "bad-1", "task_id": None},
        "event_type": {**good, "event_id": "bad-2", "event_type": "exploded"},
        "user_id": {**good, "event_id": "bad-3", "event_type": "assigned", "user_id": None, "hours": None},
        "hours": {**good, "event_id": "bad-4", "hours": -3.0},
        "timestamp": {**good, "event_id": "bad-5", "timestamp": "not a time"},
        "mood": {**good, "event_id": "bad-6", "mood": "happy"},
        "to_status": {**good, "event_id": "bad-7", "event_type": "status_changed", "to_status": "on_fire"},
        "story_points": {**good, "event_id": "bad-8", "story_points": "lots"},
    }
    for field, bad in cases.items():
        bad = {**bad, "timestamp": bad["timestamp"] if field == "timestamp" else later}
        with pytest.raises(SundayError) as err:
            consumer.process(bad)
        assert isinstance(err.value, ValidationError) and err.value.field == field, (field, str(err.value))
        assert f"'{field}'" in str(err.value)
    assert _online(consumer, user) == online_before
    assert len(consumer.history) == history_before
    with pytest.raises(SundayError, match="mapping"):
        consumer.process(["not", "a", "dict"])


def test_a_failed_recomputation_forgets_the_event_and_pushes_nothing(consumer, frames, monkeypatch):
    import sunday.features.compute as compute

    user = _busy_user(frames)
    t1 = _after_end(frames)
    ev = frames["events"]
    task = ev.loc[(ev["user_id"] == user) & (ev["event_type"] == "assigned"), "task_id"].iloc[-1]
    ok = _event(frames, event_id="f-1", task_id=task, event_type="time_logged", timestamp=t1, user_id=user, hours=1.0)
    consumer.process(ok)
    before = _online(consumer, user)

    def broken(*a, **k):
        raise RuntimeError("feature code failed")

    monkeypatch.setattr(compute, "user_workload_asof", broken)
    failing = {**ok, "event_id": "f-2", "timestamp": t1 + pd.Timedelta(hours=1), "hours": 4.0}
    with pytest.raises(RuntimeError, match="feature code failed"):
        consumer.process(failing)
    assert "f-2" not in set(consumer.history["event_id"])
    assert _online(consumer, user) == before
    monkeypatch.undo()
    assert not consumer.process(failing).duplicate  # not remembered as processed: it goes through now
    assert _online(consumer, user)["hours_logged_7d"] == pytest.approx(before["hours_logged_7d"] + 4.0)


def test_repeated_events_are_ignored_and_run_counts(consumer, frames):
    user = _busy_user(frames)
    t1 = _after_end(frames)
    ev = frames["events"]
    task = ev.loc[(ev["user_id"] == user) & (ev["event_type"] == "assigned"), "task_id"].iloc[-1]
    events = [
        _event(frames, event_id="r-1", task_id=task, event_type="time_logged", timestamp=t1, user_id=user, hours=1.0),
        _event(frames, event_id="r-1", task_id=task, event_type="time_logged", timestamp=t1, user_id=user, hours=1.0),
        _event(frames, event_id="r-2", task_id=task, event_type="time_logged", timestamp=t1, user_id=user, hours=-1),
        _event(frames, event_id="r-3", task_id=task, event_type="time_logged",
               timestamp=(t1 + pd.Timedelta(hours=1)).isoformat(), user_id=user, hours=2.0),  # ISO string: fine
    ]
    with pytest.raises(ValidationError, match="hours"):
        consumer.run(events)  # stops at the bad one (the first two went through)
    stats = consumer.run(events, on_error="skip")
    assert stats.events == 3 and stats.duplicates == 2 and stats.rejected == 1
    assert stats.rows_pushed == {"user_workload": 1} and "hours" in stats.errors[0]
    want = user_workload_asof(_log_plus(ev, events[0], events[3]), frames["tasks"], frames["users"], user,
                              t1 + pd.Timedelta(hours=1))
    assert _online(consumer, user)["hours_logged_7d"] == pytest.approx(want["hours_logged_7d"])


def test_validate_event_normalises_timestamps():
    e = validate_event({"event_id": "e", "workspace_id": "w", "task_id": "t", "event_type": "created",
                        "timestamp": pd.Timestamp("2024-03-01 12:00", tz="Europe/Paris")})
    assert e["timestamp"] == pd.Timestamp("2024-03-01 11:00").to_pydatetime()


# -- end to end: the pipeline's offline features, Feast, training set, online, stream ---------------------------------

def test_pipeline_to_online_to_stream(settings, monkeypatch):
    from sunday.features.online import OnlineFeatures
    from sunday.features.pipeline import build_features, offline_path, read_group
    from sunday.features.training import training_set

    monkeypatch.setenv(repo.OFFLINE_ENV, "file")
    written = simulate(SimConfig(n_events=3_000, seed=8), settings.home / "sim", engine="local", progress=False)
    build_features(settings, written.path, engine="local", progress=False)
    store = repo.apply(settings, {g: offline_path(settings, g) for g in GROUPS})
    repo.materialize(settings, store=store)
    batch = read_group(settings, "user_workload").to_pandas()

    # training set over labels at assignment times: point-in-time rows of the batch table
    events = pd.concat([t.to_pandas() for t in [simulate_tables(SimConfig(n_events=3_000, seed=8)).events]])
    labels = events.loc[events["event_type"] == "assigned", ["user_id", "timestamp"]].rename(
        columns={"timestamp": "event_timestamp"}).head(200).reset_index(drop=True)
    labels["y"] = np.arange(len(labels))
    ts = training_set(labels, "personalization", settings)
    assert len(ts) == len(labels) and list(ts["y"]) == list(labels["y"])
    for i in range(0, len(ts), 17):
        row = ts.iloc[i]
        past = batch[(batch["user_id"] == row["user_id"]) & (batch["event_timestamp"] <= row["event_timestamp"])]
        past = past[past["event_timestamp"] >= row["event_timestamp"] - pd.Timedelta(days=30)]
        if past.empty:
            assert pd.isna(row["open_task_count"])
        else:
            assert row["open_task_count"] == past.iloc[-1]["open_task_count"]
            assert row["event_timestamp"] >= past.iloc[-1]["event_timestamp"]

    # online after materialize == training set just after the last batch row
    user = batch["user_id"].value_counts().index[0]
    last = batch[batch["user_id"] == user]["event_timestamp"].max()
    offline = training_set(pd.DataFrame({"user_id": [user], "event_timestamp": [last + pd.Timedelta(seconds=1)]}),
                           "personalization", settings).iloc[0]
    online = OnlineFeatures(settings, store=store)
    now = online.get("personalization", {"user_id": user})
    for f in GROUPS["user_workload"].feature_names:
        a, b = now[f], offline[f]
        assert (a is None and pd.isna(b)) or a == pytest.approx(b), f

    # the stream moves it on from there
    consumer = StreamingConsumer(settings, written.path, online=online)
    t1 = events["timestamp"].max() + pd.Timedelta(days=1)
    ws = events["workspace_id"].iloc[0]
    consumer.process({"event_id": "e2e-1", "workspace_id": ws, "task_id": "e2e-task", "event_type": "created",
                      "timestamp": t1, "story_points": 2.0})
    consumer.process({"event_id": "e2e-2", "workspace_id": ws, "task_id": "e2e-task", "event_type": "assigned",
                      "timestamp": t1 + pd.Timedelta(minutes=1), "user_id": user})
    assert online.get("personalization", {"user_id": user})["open_task_count"] == now["open_task_count"] + 1
    assert online.get("effort", {"task_id": "e2e-task"})["story_points"] == 2.0
