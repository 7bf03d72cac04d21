"""The prediction log: what the serving API answered, one row per scored item, for the drift monitor.

Storage: SQLite (WAL, ``synchronous=NORMAL``) at ``<home>/monitoring/predictions/predictions.db``
(:func:`default_prediction_log`); every Serve replica and the plain app append to the same file (a local disk), the
monitoring job reads it. Append-only by convention (the job never updates rows; :meth:`PredictionLog.prune` drops
rows older than a retention period in one statement).

One row per *scored item* so that the rows of one model are directly comparable with its training reference:

===================  ======================================================================================
endpoint             rows (``features`` / ``prediction`` columns; predictions are prefixed ``pred_``)
===================  ======================================================================================
assign-task          one per returned candidate: task story points, priority, skill count, candidate count,
                     rank, the candidate's user id (to join feature rows; not compared) / score, completion
                     probability, expected quality, hours, Gini after, final score, the request's confidence
predict-timeline     one per request: remaining points, team size and capacity, MC samples /
                     p10 / p50 / p90 days, delay days, risk class and its probabilities
score-priority       one per task: current priority / suggested class, urgency score, class probabilities
rank-notifications   one per notification: type, notification count / score, the chosen channel
===================  ======================================================================================

The serving hook (:func:`sunday.serving.api.build_api`'s ``audited``) calls :meth:`PredictionLog.submit` with the
raw request summary and answer: it only puts them on a bounded queue (no I/O, no parsing on the event loop); a
daemon thread turns them into rows and appends them in batches. A full queue drops the record and counts it
(``dropped``); a failing write is counted (``errors``) and never reaches the request.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from sunday.serving.keys import _SqliteOwner, with_retry

log = logging.getLogger(__name__)

# endpoint -> registered model whose predictions it logs
LOGGED_ENDPOINTS = {"assign-task": "task_assignment", "predict-timeline": "project_timeline",
                    "score-priority": "priority_scorer", "rank-notifications": "notification_ranker"}
META_COLUMNS = ("id", "ts", "model", "version", "endpoint", "request_id")


@dataclass
class PredictionRow:
    model: str
    version: str | None
    endpoint: str
    features: dict[str, Any]
    prediction: dict[str, Any]
    ts: float = field(default_factory=time.time)
    request_id: str | None = None


# -- what each endpoint's answer becomes ---------------------------------------------------------------------------

def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None if v is None else float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _assign_rows(body: dict, result: dict) -> list[tuple[dict, dict]]:
    task = body.get("task") or {}
    base = {"task_story_points": _num(task.get("story_points")), "task_priority": task.get("priority"),
            "task_n_skills": len(task.get("required_skills") or []),
            "n_candidates": len(body.get("candidates") or [])}
    conf = _num(result.get("confidence"))
    out = []
    for rank, c in enumerate(result.get("alternatives") or [], start=1):
        pred = {f"pred_{k}": _num(c.get(k)) for k in ("score", "completion_probability", "expected_quality",
                                                       "estimated_hours", "gini_after", "final_score")}
        out.append(({**base, "rank": rank, "user_id": c.get("user_id")}, {**pred, "pred_confidence": conf}))
    return out


def _timeline_rows(body: dict, result: dict) -> list[tuple[dict, dict]]:
    feats = {k: _num(body.get(k)) for k in ("remaining_points", "team_size", "team_capacity_hours", "mc_samples")}
    pred = {f"pred_{k}": _num(result.get(k)) for k in ("p10_days", "p50_days", "p90_days", "delay_days")}
    pred["pred_risk_class"] = result.get("risk_class")
    for k, v in (result.get("risk") or {}).items():
        pred[f"pred_risk_{k}"] = _num(v)
    return [(feats, pred)]


def _priority_rows(body: dict, result: dict) -> list[tuple[dict, dict]]:
    out = []
    for s in result.get("scores") or []:
        pred = {"pred_priority": s.get("priority"), "pred_score": _num(s.get("score"))}
        for k, v in (s.get("probabilities") or {}).items():
            pred[f"pred_prob_{k}"] = _num(v)
        out.append(({"current_priority": s.get("current_priority")}, pred))
    return out


def _notification_rows(body: dict, result: dict) -> list[tuple[dict, dict]]:
    items = result.get("notifications") or []
    channel = result.get("channel")
    return [({"type": n.get("type"), "n_notifications": len(items)},
             {"pred_score": _num(n.get("score")), "pred_channel": channel if n.get("rank") == 1 else None})
            for n in items]


EXTRACTORS: dict[str, Callable[[dict, dict], list[tuple[dict, dict]]]] = {
    "assign-task": _assign_rows, "predict-timeline": _timeline_rows, "score-priority": _priority_rows,
    "rank-notifications": _notification_rows}


def prediction_rows(endpoint: str, model: str | None, version: str | None, body: Any, result: dict,
                    request_id: str | None = None, ts: float | None = None) -> list[PredictionRow]:
    """The log rows of one answered request (``[]`` for an endpoint that is not monitored)."""
    extract = EXTRACTORS.get(endpoint)
    if extract is None:
        return []
    model = model or LOGGED_ENDPOINTS[endpoint]
    ts = time.time() if ts is None else ts
    return [PredictionRow(model, version, endpoint, f, p, ts, request_id)
            for f, p in extract(body if isinstance(body, dict) else {}, result)]


# -- the log -------------------------------------------------------------------------------------------------------

class PredictionLog(_SqliteOwner):
    """Append-only prediction rows in SQLite; a buffered background writer for the serving path."""

    _synchronous = "NORMAL"  # WAL + NORMAL: a crash may lose the last commits, never corrupt; monitoring data

    def __init__(self, path: Path | str, *, max_queue: int = 10_000, batch: int = 500, flush_s: float = 0.5):
        super().__init__(path)
        self.max_queue, self.batch, self.flush_s = int(max_queue), int(batch), float(flush_s)
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()
        self.errors = 0  # failed background writes (records lost)
        self.dropped = 0  # records refused because the queue was full
        self.written = 0  # rows appended by the background writer
        self.last_error: str | None = None

    def _schema(self) -> list[str]:
        return ["CREATE TABLE IF NOT EXISTS predictions (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, "
                "model TEXT NOT NULL, version TEXT, endpoint TEXT NOT NULL, request_id TEXT, features TEXT NOT NULL, "
                "prediction TEXT NOT NULL)",
                "CREATE INDEX IF NOT EXISTS predictions_model_ts ON predictions (model, ts)"]

    # -- synchronous API (the job, tests) --
    def append(self, rows: Iterable[PredictionRow]) -> int:
        """Append rows in one transaction; returns how many."""
        data = [(float(r.ts), r.model, None if r.version is None else str(r.version), r.endpoint, r.request_id,
                 json.dumps(r.features, default=str), json.dumps(r.prediction, default=str)) for r in rows]
        if not data:
            return 0

        def write() -> None:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO predictions (ts, model, version, endpoint, request_id, features, "
                                 "prediction) VALUES (?, ?, ?, ?, ?, ?, ?)", data)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        with self._lock:
            with_retry(write)
        return len(data)

    def read(self, model: str, since: float | None = None, until: float | None = None, version: str | None = None,
             limit: int | None = None, oldest_first: bool = True) -> pd.DataFrame:
        """Rows of ``model`` with ``since <= ts < until`` (unix seconds), flattened: the meta columns, then every
        feature and prediction key as a column (missing keys are NaN)."""
        sql = "SELECT id, ts, model, version, endpoint, request_id, features, prediction FROM predictions " \
              "WHERE model = ?"
        args: list[Any] = [model]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(float(since))
        if until is not None:
            sql += " AND ts < ?"
            args.append(float(until))
        if version is not None:
            sql += " AND version = ?"
            args.append(str(version))
        sql += " ORDER BY id " + ("ASC" if oldest_first else "DESC")
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self._lock:
            rows = with_retry(lambda: self._connection().execute(sql, args).fetchall())
        records = []
        for rid, ts, m, v, ep, req, f, p in rows:
            records.append({"id": rid, "ts": ts, "model": m, "version": v, "endpoint": ep, "request_id": req,
                            **json.loads(f), **json.loads(p)})
        df = pd.DataFrame.from_records(records, columns=None if records else list(META_COLUMNS))
        if not oldest_first and not df.empty:
            df = df.iloc[::-1].reset_index(drop=True)
        return df

    def count(self, model: str | None = None) -> int:
        sql, args = ("SELECT COUNT(*) FROM predictions", []) if model is None else \
            ("SELECT COUNT(*) FROM predictions WHERE model = ?", [model])
        with self._lock:
            return int(with_retry(lambda: self._connection().execute(sql, args).fetchone()[0]))

    def models(self) -> dict[str, int]:
        with self._lock:
            rows = with_retry(lambda: self._connection().execute(
                "SELECT model, COUNT(*) FROM predictions GROUP BY model").fetchall())
        return {m: int(n) for m, n in rows}

    def versions(self, model: str) -> list[str]:
        """The versions of ``model`` in the log, the most recently logged last."""
        with self._lock:
            rows = with_retry(lambda: self._connection().execute(
                "SELECT version, MAX(id) AS last FROM predictions WHERE model = ? AND version IS NOT NULL "
                "GROUP BY version ORDER BY last", [model]).fetchall())
        return [r[0] for r in rows]

    def prune(self, older_than_s: float, now: float | None = None) -> int:
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._lock:
            return int(with_retry(lambda: self._connection().execute(
                "DELETE FROM predictions WHERE ts < ?", [cutoff]).rowcount))

    # -- the serving path: never blocks, never raises into the request --
    def submit(self, endpoint: str, model: str | None, version: str | None, body: Any, result: dict,
               request_id: str | None = None) -> bool:
        """Queue one answered request for the background writer; False (and ``dropped`` += 1) when full."""
        self._ensure_writer()
        try:
            self._queue.put_nowait((endpoint, model, version, body, result, request_id, time.time()))
            return True
        except queue.Full:
            self.dropped += 1
            return False

    def _ensure_writer(self) -> None:
        if self._writer is not None and self._writer.is_alive():
            return
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._run, name="prediction-log", daemon=True)
                self._writer.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.flush_s)
            except queue.Empty:
                continue
            items = [first]
            while len(items) < self.batch:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rows: list[PredictionRow] = []
            for endpoint, model, version, body, result, rid, ts in items:
                try:
                    rows.extend(prediction_rows(endpoint, model, version, body, result, rid, ts))
                except Exception as exc:  # a malformed answer: count it, keep the others
                    self._fail(exc)
            try:
                self.written += self.append(rows)
            except Exception as exc:
                self._fail(exc)
            for _ in items:
                self._queue.task_done()

    def _fail(self, exc: Exception) -> None:
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.errors in (1, 10, 100) or self.errors % 1000 == 0:
            log.warning("prediction log: %d failed write(s), last: %s", self.errors, self.last_error)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is written (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def stats(self) -> dict[str, Any]:
        return {"written": self.written, "errors": self.errors, "dropped": self.dropped,
                "queued": self._queue.qsize(), "last_error": self.last_error}


def prediction_log_path(settings) -> Path:
    return Path(settings.home) / "monitoring" / "predictions" / "predictions.db"


def default_prediction_log(settings, **kwargs: Any) -> PredictionLog:
    """The state folder's prediction log (the file is created on first use)."""
    return PredictionLog(prediction_log_path(settings), **kwargs)


def rows_frame(rows: Iterable[PredictionRow]) -> pd.DataFrame:
    """Prediction rows as the log reads them back (features and predictions as columns, no meta columns): e.g. a
    training reference built through the serving path's own extractors (:func:`prediction_rows`)."""
    return pd.DataFrame.from_records([{**r.features, **r.prediction} for r in rows])


def frame_columns(frame: pd.DataFrame) -> list[str]:
    """The data columns of a log frame (without the meta columns)."""
    return [c for c in frame.columns if c not in META_COLUMNS]


__all__ = ["PredictionLog", "PredictionRow", "prediction_rows", "default_prediction_log", "prediction_log_path",
           "LOGGED_ENDPOINTS", "META_COLUMNS", "EXTRACTORS", "frame_columns", "rows_frame"]
