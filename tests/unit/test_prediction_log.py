"""The prediction log: append / read by model, version and time window, the rows each monitored endpoint's answer
becomes, the buffered writer (errors and a full queue counted, never raised), several threads and processes
appending to one file, and the serving hook that never fails a request."""

from __future__ import annotations

import multiprocessing as mp
import threading

import pytest

from sunday.monitoring.predictions import PredictionLog, PredictionRow, prediction_rows

ASSIGN_BODY = {"task": {"title": "t", "story_points": 3, "priority": "high", "required_skills": ["python", "sql"]},
               "candidates": ["u1", "u2", "u3"]}
ASSIGN_RESULT = {"recommended_user": "u2", "confidence": 0.5, "model_version": "7",
                 "alternatives": [{"user_id": "u2", "score": 0.9, "completion_probability": 0.8,
                                   "expected_quality": 0.7, "estimated_hours": 4.0, "gini_after": 0.2,
                                   "final_score": 0.75, "reasons": []},
                                  {"user_id": "u1", "score": 0.4, "completion_probability": 0.6,
                                   "expected_quality": 0.5, "estimated_hours": None, "gini_after": 0.25,
                                   "final_score": 0.45}]}


def row(model="m", version="1", ts=100.0, x=1.0, label="a"):
    return PredictionRow(model, version, "score-priority", {"x": x, "label": label}, {"pred_score": x / 10}, ts)


def test_append_read_window_version(tmp_path):
    log = PredictionLog(tmp_path / "p.db")
    assert log.read("m").empty and list(log.read("m").columns)[:2] == ["id", "ts"]
    assert log.append([row(ts=100 + i, x=i, version="1" if i < 5 else "2") for i in range(10)]) == 10
    log.append([row(model="other", ts=105)])
    df = log.read("m")
    assert len(df) == 10 and df["x"].tolist() == list(range(10)) and df["pred_score"].iloc[3] == pytest.approx(0.3)
    assert set(df.columns) >= {"id", "ts", "model", "version", "endpoint", "x", "label", "pred_score"}
    assert log.read("m", since=103, until=106)["x"].tolist() == [3, 4, 5]  # since <= ts < until
    assert log.read("m", version="2")["x"].tolist() == [5, 6, 7, 8, 9]
    assert log.read("m", limit=3)["x"].tolist() == [0, 1, 2]
    assert log.read("m", limit=3, oldest_first=False)["x"].tolist() == [7, 8, 9]  # latest 3, in time order
    assert log.count() == 11 and log.count("m") == 10 and log.models() == {"m": 10, "other": 1}
    assert log.versions("m") == ["1", "2"]
    assert log.prune(older_than_s=10, now=115) == 5 and log.count("m") == 5
    log.close()
    again = PredictionLog(tmp_path / "p.db")  # durable: a new process-level handle reads the same rows
    assert again.count("m") == 5
    again.close()


def test_rows_of_each_endpoint():
    rows = prediction_rows("assign-task", "task_assignment", "7", ASSIGN_BODY, ASSIGN_RESULT, "rid")
    assert len(rows) == 2 and rows[0].model == "task_assignment" and rows[0].request_id == "rid"
    assert rows[0].features == {"task_story_points": 3.0, "task_priority": "high", "task_n_skills": 2,
                                "n_candidates": 3, "rank": 1, "user_id": "u2"}
    assert rows[0].prediction["pred_score"] == 0.9 and rows[0].prediction["pred_confidence"] == 0.5
    assert rows[1].prediction["pred_estimated_hours"] is None and rows[1].features["rank"] == 2
    tl = prediction_rows("predict-timeline", None, "3", {"remaining_points": 40, "mc_samples": 0},
                         {"p10_days": 5, "p50_days": 9.5, "p90_days": 20, "delay_days": 2, "risk_class": "late",
                          "risk": {"on_time": 0.2, "late": 0.8}})
    assert len(tl) == 1 and tl[0].model == "project_timeline"
    assert tl[0].prediction["pred_p50_days"] == 9.5 and tl[0].prediction["pred_risk_late"] == 0.8
    pr = prediction_rows("score-priority", "priority_scorer", "1", {}, {"scores": [
        {"task_id": "t1", "priority": "high", "score": 0.7, "probabilities": {"low": 0.1, "high": 0.9},
         "current_priority": "low"}]})
    assert pr[0].prediction == {"pred_priority": "high", "pred_score": 0.7, "pred_prob_low": 0.1,
                                "pred_prob_high": 0.9} and pr[0].features == {"current_priority": "low"}
    nt = prediction_rows("rank-notifications", "notification_ranker", "1", {}, {"channel": "email",
                         "notifications": [{"type": "mention", "rank": 1, "score": 0.9},
                                           {"type": "digest", "rank": 2, "score": 0.1}]})
    assert [r.features["type"] for r in nt] == ["mention", "digest"]
    assert [r.prediction["pred_channel"] for r in nt] == ["email", None]
    assert prediction_rows("search", "qmsum_reranker", "1", {}, {"results": []}) == []


def test_submit_writes_in_background_and_counts_errors(tmp_path):
    log = PredictionLog(tmp_path / "p.db", flush_s=0.05)
    for i in range(20):
        assert log.submit("assign-task", "task_assignment", "7", ASSIGN_BODY, ASSIGN_RESULT, f"r{i}")
    log.submit("assign-task", "task_assignment", "7", ASSIGN_BODY, {"alternatives": ["not a dict"]})  # malformed
    assert log.flush(10)
    assert log.count("task_assignment") == 40 and log.written == 40
    assert log.errors == 1 and "AttributeError" in log.last_error
    assert log.read("task_assignment")["request_id"].nunique() == 20
    log.close()


def test_full_queue_drops_and_failing_writes_are_swallowed(tmp_path, monkeypatch):
    log = PredictionLog(tmp_path / "p.db", max_queue=1)
    monkeypatch.setattr(log, "_ensure_writer", lambda: None)  # nothing drains the queue
    assert log.submit("assign-task", None, "1", ASSIGN_BODY, ASSIGN_RESULT)
    assert not log.submit("assign-task", None, "1", ASSIGN_BODY, ASSIGN_RESULT)
    assert log.dropped == 1
    broken = PredictionLog(tmp_path / "p2.db", flush_s=0.05)

    def fail(rows):
        raise OSError("disk full")

    monkeypatch.setattr(broken, "append", fail)
    broken.submit("assign-task", None, "1", ASSIGN_BODY, ASSIGN_RESULT)
    assert broken.flush(10) and broken.errors == 1 and "disk full" in broken.last_error


def _append_many(path, tag, n):
    log = PredictionLog(path)
    for i in range(n):
        log.append([row(model=tag, ts=float(i), x=float(i))])
    log.close()


def test_concurrent_threads_and_processes(tmp_path):
    path = tmp_path / "p.db"
    # fork before this process opens the file (SQLite connections must not cross a fork; Serve replicas are
    # separate processes anyway)
    procs = [mp.get_context("fork").Process(target=_append_many, args=(path, f"p{k}", 50)) for k in range(2)]
    for p in procs:
        p.start()
    log = PredictionLog(path)
    threads = [threading.Thread(target=lambda k=k: [log.append([row(model=f"t{k}", x=i)]) for i in range(50)])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.models() == {"t0": 50, "t1": 50, "t2": 50, "t3": 50, "p0": 50, "p1": 50}
    ids = log.read("p1")["id"]
    assert ids.is_unique and log.read("p1")["x"].tolist() == [float(i) for i in range(50)]
    log.close()


class _Ctx:
    def __init__(self, plog):
        self.extra = {"predictions": plog}


def test_serving_hook_never_raises():
    from sunday.serving.api import log_prediction

    class Failing:
        def submit(self, *a, **k):
            raise RuntimeError("log down")

    class Recording:
        def __init__(self):
            self.calls = []

        def submit(self, *a):
            self.calls.append(a)

    ctx = _Ctx(Failing())
    log_prediction(ctx, "assign-task", "task_assignment", "7", ASSIGN_BODY, ASSIGN_RESULT, "r1")
    log_prediction(ctx, "score-priority", "priority_scorer", "1", {}, {"scores": []}, "r2")
    assert ctx.extra["prediction_log_errors"] == 2
    rec = Recording()
    ctx = _Ctx(rec)
    log_prediction(ctx, "search", "qmsum_reranker", "1", {}, {}, "r3")  # not monitored
    log_prediction(ctx, "assign-task", "task_assignment", "7", ASSIGN_BODY, ASSIGN_RESULT, "r4")
    assert [c[0] for c in rec.calls] == ["assign-task"] and rec.calls[0][-1] == "r4"
    empty = _Ctx(None)
    log_prediction(empty, "assign-task", "task_assignment", "7", ASSIGN_BODY, ASSIGN_RESULT, "r5")  # no log: no-op
