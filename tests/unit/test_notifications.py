"""Simulated notifications and the notification ranker (sunday.data.simulator.notifications,
sunday.models.personalization.notifications).

* the simulator is deterministic per seed, per-workspace streams, and leaves the simulation untouched;
* the observable table never holds a truth column; sessions show what arrived since the last visit, newest first;
* features are point in time: later clicks, later events and later notifications never change a session's features;
* the ranker beats the logged (newest-first) order on a small simulation, on the hidden engagement and on the
  IPS-weighted clicks, by margins measured over seeds 0-5 (>= 0.06 and >= 0.05);
* NDCG by hand, the point-in-time index, save / load, ``rank`` with reasons, and bad input naming the field.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401
import pytest

from sunday.data.simulator import SimConfig, simulate_tables
from sunday.data.simulator.notifications import NOTIFICATION_TYPES, TRUTH_ONLY, TRUTH_SCHEMA, simulate_notifications
from sunday.errors import SundayError, ValidationError
from sunday.models.personalization.notifications import (
    FEATURES, NotificationHistory, NotificationInputError, NotificationRanker, RankContext, RankerConfig,
    _Timeline, ips_relevance, log_features, ndcg_at_k, position_propensity, request_frame,
)

SMALL = SimConfig(n_events=12_000, seed=7, events_per_workspace=6_000)  # 2 workspaces


@pytest.fixture(scope="module")
def small():
    tables = simulate_tables(SMALL)
    obs, truth = simulate_notifications(tables, SMALL.seed)
    return tables, obs, truth


@pytest.fixture(scope="module")
def history(small):
    tables, obs, _ = small
    return NotificationHistory.from_tables(tables, obs)


@pytest.fixture(scope="module")
def frame(small, history):
    return log_features(history, small[1])


# -- the simulator --------------------------------------------------------------------------------------------------

def test_deterministic_per_seed_and_simulation_untouched(small):
    tables, obs, truth = small
    again = simulate_tables(SMALL)
    for name in [*tables.observable, *(f"truth/{n}" for n in tables.truth)]:
        assert tables[name].equals(again[name]), name  # deriving notifications changed nothing
    obs2, truth2 = simulate_notifications(again, SMALL.seed)
    assert obs.equals(obs2) and truth.equals(truth2)
    other, _ = simulate_notifications(again, SMALL.seed + 1)
    assert not other.column("clicked").equals(obs.column("clicked"))
    assert obs.num_rows > 5_000 and obs.column("workspace_id").unique().to_pylist() == ["w000000", "w000001"]
    # a log with nothing to notify about (only task creations): empty tables, same schema
    quiet = {**again.observable, "events": again.events.filter(pa.compute.equal(again.events["event_type"],
                                                                                "created"))}
    none, none_truth = simulate_notifications(quiet, SMALL.seed)
    assert none.num_rows == 0 and none.schema.equals(obs.schema) and none_truth.schema.equals(truth.schema)


def test_observable_has_no_truth_and_sessions_are_newest_first(small):
    _, obs, truth = small
    assert not set(TRUTH_ONLY) & set(obs.column_names)
    assert truth.schema.equals(TRUTH_SCHEMA)
    assert {"p_attract", "p_click", "taste", "tie"} <= set(TRUTH_ONLY)
    df = obs.to_pandas()
    assert set(df["type"]) == set(NOTIFICATION_TYPES)
    assert (df["sender_id"].isna() == (df["type"] == "due_soon")).all()  # reminders only have no sender
    assert (df["sender_id"] != df["user_id"]).all()  # nobody is notified of their own action
    seen = df[df["session_id"].notna()]
    assert len(seen) > 0.95 * len(df)
    assert (seen["opened_at"] > seen["created_at"]).all()
    assert (seen.groupby("session_id")["user_id"].nunique() == 1).all()
    s = seen.sort_values(["session_id", "position"])
    assert (s.groupby("session_id")["position"].transform(lambda p: (p.to_numpy() == np.arange(1, len(p) + 1)).all())
            ).all()
    dt = s.groupby("session_id")["created_at"].diff().dropna()
    assert (dt <= pd.Timedelta(0)).all()  # newest first
    # a notification is seen at the recipient's first visit after it arrived: nothing older than the previous visit
    opens = seen.groupby(["user_id", "session_id"])["opened_at"].first().reset_index().sort_values(["user_id",
                                                                                                    "opened_at"])
    opens["prev"] = opens.groupby("user_id")["opened_at"].shift()
    m = seen.merge(opens[["session_id", "prev"]], on="session_id")
    assert (m["prev"].isna() | (m["created_at"] >= m["prev"])).all()
    # clicks fall with the position (position bias) and differ by type
    ctr = seen.groupby(seen["position"].clip(upper=4))["clicked"].mean()
    assert ctr.iloc[0] > ctr.iloc[-1] + 0.1
    by_type = seen.groupby("type")["clicked"].mean()
    assert by_type["mention"] > by_type["status_changed"] + 0.1


# -- point in time --------------------------------------------------------------------------------------------------

def test_features_are_point_in_time(small, frame):
    tables, obs, _ = small
    log = obs.to_pandas()
    cut = log["opened_at"].dropna().quantile(0.5)
    # the world as known at `cut`: later events and notifications gone, later sessions unseen, and, for good
    # measure, the clicks of the session opened at `cut` and of every later one flipped in the full log
    events = tables.events.to_pandas()
    early = events[events["timestamp"] < cut]
    past = log[log["created_at"] < cut].copy()
    later = past["opened_at"] >= cut
    past.loc[later, ["session_id", "opened_at", "position", "clicked"]] = None
    flipped = log.copy()
    f = flipped["opened_at"] >= cut
    flipped.loc[f, "clicked"] = 1 - flipped.loc[f, "clicked"]
    requests = log[log["opened_at"] <= cut]
    assert requests["session_id"].nunique() > 100
    for hist in (NotificationHistory(early, tables["tasks"], tables["users"], past),
                 NotificationHistory(tables.events, tables["tasks"], tables["users"], flipped)):
        got = log_features(hist, requests)
        want = frame[frame["opened_at"] <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(got[FEATURES], want[FEATURES])
    assert frame.loc[frame["opened_at"] > cut, "user_seen_log"].mean() > want["user_seen_log"].mean()


def test_timeline_counts_strictly_before():
    tl = _Timeline(np.array([5, 5, 5, 9]), np.array([10, 20, 20, 15]), {"v": np.array([1.0, 2.0, 3.0, 4.0])},
                   tau_s=10.0)
    keys, times = np.array([5, 5, 5, 9, 7, -1]), np.array([20, 21, 5, 100, 50, 50])
    assert tl.count(keys, times).tolist() == [1, 3, 0, 1, 0, 0]
    assert tl.count(keys, times, inclusive=True).tolist() == [3, 3, 0, 1, 0, 0]
    assert tl.sum("v", keys, times).tolist() == [1, 6, 0, 4, 0, 0]
    assert np.allclose(tl.decayed(np.array([5]), np.array([30])), np.exp(-2.0) + 2 * np.exp(-1.0))
    assert tl.last("v", keys, times, missing=-1).tolist() == [1, 3, -1, 4, -1, -1]


def test_ndcg_by_hand():
    # session a: clicks at rows 2 and 3; scores put row 3 first, row 1 second, row 2 third
    sessions = ["a", "a", "a", "b", "b", "c"]
    scores = [0.5, 0.1, 0.9, 0.2, 0.2, 0.3]
    rel = [0, 1, 1, 0, 1, 0]  # session c has no click: left out
    dcg_a = 1 / np.log2(2) + 1 / np.log2(4)
    idcg_a = 1 / np.log2(2) + 1 / np.log2(3)
    ndcg_b = 1 / np.log2(3)  # tie broken by the tiebreak (row order): the clicked row second
    got, n = ndcg_at_k(sessions, scores, rel, 10, tiebreak=[1, 2, 3, 1, 2, 1])
    assert n == 2 and got == pytest.approx((dcg_a / idcg_a + ndcg_b) / 2)
    assert ndcg_at_k(sessions, scores, rel, 1)[0] == pytest.approx(0.5)
    pooled, _ = ndcg_at_k(sessions, scores, rel, 10, tiebreak=[1, 2, 3, 1, 2, 1], pooled=True)
    assert pooled == pytest.approx((dcg_a + ndcg_b) / (idcg_a + 1))
    assert ips_relevance([1, 1, 0], [1, 3, 2], np.array([1.0, 0.5, 0.25])).tolist() == [1.0, 4.0, 0.0]


# -- the ranker -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained():
    from sunday.evaluation.notify_sim import fit_ranker, load_notify_data, score_row, time_split

    data = load_notify_data(events=30_000, seed=0)
    train, test, _ = time_split(data.frame, 0.7)
    model = fit_ranker(train, RankerConfig(n_estimators=100))
    prop = position_propensity(model, train)
    return data, model, prop, score_row("ranker", test, model.predict(test), prop), \
        score_row("logged", test, -test["position"].to_numpy(np.float64), prop)


def test_ranker_beats_logged_order(trained):
    _, _, prop, ranker, logged = trained
    # measured over seeds 0-5 at this size: +0.062..+0.097 (true), +0.053..+0.079 (IPS)
    assert ranker["ndcg@10_true"] > logged["ndcg@10_true"] + 0.03
    assert ranker["ndcg@5_true"] > logged["ndcg@5_true"] + 0.04
    assert ranker["ndcg@10_ips"] > logged["ndcg@10_ips"] + 0.025
    assert ranker["auc"] > 0.65 and ranker["sessions"] > 1000
    # the estimated examination curve falls like the hidden one (position ** -0.7: 0.62 at 2, 0.32 at 5)
    assert 0.5 < prop[1] < 0.75 and 0.25 < prop[4] < 0.45 and (np.diff(prop) <= 0).all()


def test_rank_request_save_load(trained, tmp_path):
    data, model, _, _, _ = trained
    log = data.log.to_pandas()
    history = NotificationHistory.from_tables(data.tables, data.log)
    user = log["user_id"].value_counts().index[0]
    task = log.loc[log["user_id"] == user, "task_id"].iloc[-1]
    other = log.loc[log["user_id"] != user, "sender_id"].dropna().iloc[0]
    now = pd.Timestamp(log["created_at"].max())
    raw = [
        {"type": "status_changed", "sender_id": other, "task_id": task, "created_at": now},
        {"type": "mention", "sender_id": other, "task_id": task, "created_at": now - timedelta(hours=3)},
        {"type": "due_soon", "task_id": task, "created_at": now - timedelta(hours=1),
         "due_date": now + timedelta(hours=20)},
        {"type": "comment", "sender_id": other, "project_id": log["project_id"].iloc[0],
         "created_at": (now - timedelta(hours=5)).isoformat()},
    ]
    out = model.rank(raw, {"recipient": user, "history": history, "as_of": now + timedelta(minutes=5)})
    assert out["rank"].tolist() == [1, 2, 3, 4] and out["score"].is_monotonic_decreasing
    assert all(isinstance(r, list) for r in out["reasons"]) and any(out["reasons"])
    feats = history.features(request_frame(raw, user, now + timedelta(minutes=5)))
    assert feats.loc[2, "hours_to_due"] == pytest.approx(20 - 5 / 60)  # the request's due date wins
    assert np.isnan(feats.loc[3, "priority"])  # no task: no priority, the project still counts
    assert feats.loc[3, "project_open_log"] >= 0
    same = model.rank(raw, RankContext(user, history, now + timedelta(minutes=5)))
    assert same["score"].tolist() == out["score"].tolist()
    loaded = NotificationRanker.load(model.save(tmp_path / "m"))
    assert np.allclose(loaded.predict(feats), model.predict(feats))
    assert np.allclose(loaded.predict(feats), model.predict(feats.assign(position=7)))  # scored at the top


def test_bad_input_names_the_field(trained):
    data, model, _, _, _ = trained
    history = NotificationHistory.from_tables(data.tables, data.log)
    ctx = {"recipient": "w000000-u0001", "history": history}
    ok = {"type": "assigned", "sender_id": "w000000-u0002", "task_id": "w000000-k000001",
          "created_at": datetime(2024, 5, 2, 9)}
    cases = [
        ([], "notifications"),
        ({"type": "assigned"}, "notifications"),
        ([{**ok, "type": "like"}], "type"),
        ([ok, {**ok, "type": None}], "type"),
        ([{**ok, "created_at": "yesterday-ish"}], "created_at"),
        ([{k: v for k, v in ok.items() if k != "created_at"}], "created_at"),
        ([{**ok, "task_id": None}], "task_id"),
        ([{**ok, "due_date": "soon"}], "due_date"),
        (["assigned"], "notifications"),
    ]
    for raw, name in cases:
        with pytest.raises(NotificationInputError, match=f"'{name}'") as err:
            model.rank(raw, ctx)
        assert isinstance(err.value, ValidationError) and err.value.field == name
    with pytest.raises(NotificationInputError, match="'recipient'"):
        model.rank([ok], {"history": history})
    with pytest.raises(NotificationInputError, match="'type'"):
        history.features(pd.DataFrame({"user_id": ["u"], "type": ["x"], "created_at": [datetime(2024, 1, 1)],
                                       "as_of": [datetime(2024, 1, 2)]}))
    with pytest.raises(SundayError, match="objective"):
        RankerConfig(objective="pointwise")
    with pytest.raises(SundayError, match="seed"):
        simulate_notifications(data.tables, -1)
    with pytest.raises(NotificationInputError, match="'features'"):
        model.predict(pd.DataFrame({"type_assigned": [1.0]}))
    assert pa.types.is_int8(data.log.schema.field("clicked").type)


# -- the evaluation and the job -------------------------------------------------------------------------------------

def test_notify_sim_evaluation_and_job(settings, tmp_path, capsys, monkeypatch):
    import importlib.util
    import json
    import sys
    from pathlib import Path

    from sunday.evaluation.base import get_evaluation

    result = get_evaluation("notify-sim").run(tmp_path, events=12_000, seed=3, n_estimators=30)
    rows = {r["method"]: r for r in result.rows}
    assert {"ranker", "ranker-lambdarank", "logged-order", "random", "type-prior", "assignment-first",
            "oracle"} <= set(rows)
    assert rows["oracle"]["ndcg@10_true"] == pytest.approx(1.0)
    assert rows["ranker"]["ndcg@10_true"] > rows["logged-order"]["ndcg@10_true"]
    assert all(0 <= r["ndcg@10"] <= 1 for r in rows.values())
    spec = importlib.util.spec_from_file_location(
        "notifications_job", Path(__file__).resolve().parents[2] / "train_jobs" / "notifications.py")
    job = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, job)  # its dataclasses look their module up
    spec.loader.exec_module(job)
    out = tmp_path / "job.json"  # the fresh state folder has no simulation 'demo': the job simulates in memory
    assert job.main(["--events", "12000", "--n-estimators", "30", "--no-register", "--json", str(out)]) == 0
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["ndcg_10_ips"] > metrics["logged_order_ndcg_10_ips"]
    assert "not registered" in capsys.readouterr().out
    assert job.main(["--train-share", "1.5", "--no-register"]) == 2
