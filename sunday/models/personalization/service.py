"""The plain class behind the personalization and priority routes (the Serve ``Personalization`` deployment and
the plain FastAPI backend both wrap it; tests call it directly).

* :meth:`PersonalizationService.personalize_dashboard`: the ``dashboard_layout`` bandit's choice for the user's
  context (:mod:`~sunday.models.personalization.context`, from the online ``user_workload`` features), recorded as a
  decision, plus tasks and collaborators from the ``personalization_cf`` champion (cold start: its workspace
  popularity).
* :meth:`~PersonalizationService.feedback`: a reward in [0, 1] for a decision -> the bandit update, in the decision's
  own context; a decision's reward counts once (its id is the update's request id).
* :meth:`~PersonalizationService.rank_notifications`: the ``notification_ranker`` champion's order for one
  recipient's notifications, with reasons, and the ``notification_channel`` bandit's channel for the top one.
* :meth:`~PersonalizationService.score_priority`: the ``priority_scorer`` champion's suggested priority of existing
  tasks, with the XGBoost ``pred_contribs`` reasons.

History (the observable tables the features read: tasks, events, users, projects, the notification log) comes from
the simulation the server was started on (``sim``); models come from the MLflow registry (alias ``champion``). A
model that is not registered yet makes its route answer 503 naming the job that trains it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sunday.models.personalization.context import CONTEXT_FEATURES, user_contexts
from sunday.serving.errors import ServingError

CF_MODEL, RANKER_MODEL, PRIORITY_MODEL = "personalization_cf", "notification_ranker", "priority_scorer"
JOBS = {CF_MODEL: "train_jobs/personalization_cf.py", RANKER_MODEL: "train_jobs/notifications.py",
        PRIORITY_MODEL: "train_jobs/priority.py"}


class Unavailable(ServingError):
    status_code = 503


@dataclass
class Loaded:
    model: Any
    version: str | None
    alias: str | None = "champion"
    loaded_at: str | None = None


def load_champion(name: str, load: Callable[[Path], Any], alias: str = "champion") -> Loaded | None:
    """The registered model's ``alias`` version loaded with ``load(folder)``, or None when there is none."""
    from datetime import datetime, timezone

    from sunday import tracking

    found = tracking.load_alias(name, load, alias)
    if found is None:
        return None
    return Loaded(found[0], found[1], alias, datetime.now(timezone.utc).isoformat(timespec="seconds"))


class PersonalizationService:
    def __init__(self, bandits, decisions, features=None, tables=None, cf: Loaded | None = None,
                 ranker: Loaded | None = None, priority: Loaded | None = None, notification_log=None):
        self.bandits, self.decisions, self.features, self.tables = bandits, decisions, features, tables
        self.cf, self.ranker, self.priority = cf, ranker, priority
        self.notification_log = notification_log
        self._history = None
        self._priority_rows = None  # priority features of every task of the history, by task id (built once)
        self._lock = threading.Lock()
        self.bandits.ensure()

    @classmethod
    def for_settings(cls, settings, sim_path: Path | None = None, features=None, models: bool = True
                     ) -> "PersonalizationService":
        """The service on the state folder's bandits / decisions, the simulation's tables and the champions."""
        from sunday.models.personalization.bandit_store import BanditStore
        from sunday.models.personalization.decisions import DecisionLog

        tables, seed = None, 0
        if sim_path is not None and Path(sim_path).exists():
            import json

            from sunday.data.simulator.writer import read_simulation
            from sunday.features.compute.frame import resolve_simulation

            version = resolve_simulation(Path(sim_path))
            tables = read_simulation(version)
            seed = int(json.loads((version / "manifest.json").read_text())["config"].get("seed", 0))
        cf = ranker = priority = None
        if models:
            from sunday import tracking

            tracking.configure(settings)
            from sunday.models.personalization.cf import CFRecommender
            from sunday.models.personalization.notifications import NotificationRanker
            from sunday.models.priority.scorer import PriorityScorer

            cf = load_champion(CF_MODEL, CFRecommender.load)
            ranker = load_champion(RANKER_MODEL, NotificationRanker.load)
            priority = load_champion(PRIORITY_MODEL, PriorityScorer.load)
        log = None
        if tables is not None and ranker is not None:
            from sunday.data.simulator.notifications import simulate_notifications

            log = simulate_notifications(tables, seed=seed)[0]  # the same log train_jobs/notifications.py uses
        return cls(BanditStore.for_settings(settings), DecisionLog.for_settings(settings), features, tables, cf,
                   ranker, priority, log)

    # -- helpers --------------------------------------------------------------------------------------------------
    def _need(self, loaded: Loaded | None, name: str) -> Loaded:
        if loaded is None:
            raise Unavailable(f"no {name} model is registered: train one with python {JOBS[name]}")
        return loaded

    def _context(self, user_id: str) -> np.ndarray:
        return user_contexts(self.features, [user_id])[0]

    def info(self) -> list[dict]:
        return [{"name": n, "version": m.version, "alias": m.alias, "loaded_at": m.loaded_at} for n, m in
                ((CF_MODEL, self.cf), (RANKER_MODEL, self.ranker), (PRIORITY_MODEL, self.priority)) if m is not None]

    # -- routes ---------------------------------------------------------------------------------------------------
    def personalize_dashboard(self, item: dict) -> dict:
        ws, user, k = item["workspace_id"], item["user_id"], int(item.get("top_k", 5))
        x = self._context(user)
        layout = self.bandits.select("dashboard_layout", x)
        decision = self.decisions.record("dashboard_layout", ws, user, layout, x)
        tasks: list = []
        people: list = []
        source, version = "none", None
        if self.cf is not None:
            model = self.cf.model
            cold = model.is_cold(user)
            tasks = model.recommend(user, k=k, workspace_id=ws)
            people = model.similar_users(user, k=k) if not cold or user in model.user_index_ else []
            source, version = ("popularity" if cold else "model"), self.cf.version
        return {"user_id": user, "layout": layout, "decision_id": decision,
                "context": {n: float(v) for n, v in zip(CONTEXT_FEATURES, x)},
                "tasks": [{"id": t, "score": float(s)} for t, s in tasks],
                "collaborators": [{"id": u, "score": float(s)} for u, s in people],
                "recommender": source, "model_version": version}

    def feedback(self, item: dict) -> dict:
        d = self.decisions.get(item["decision_id"], item["workspace_id"])
        arm = item.get("arm")
        if arm is not None:
            from sunday.models.personalization.bandit import BanditInputError

            arms = self.bandits.config(d.bandit).arms
            if arm not in arms:
                raise BanditInputError("arm", f"is {arm!r}, not one of the arms {list(arms)}")
            if arm != d.arm:
                raise BanditInputError("arm", f"is {arm!r}, but decision {d.decision_id} chose {d.arm!r}")
        accepted = self.bandits.update(d.bandit, d.context, d.arm, item["reward"], request_id=d.decision_id)
        return {"decision_id": d.decision_id, "bandit": d.bandit, "arm": d.arm, "reward": float(item["reward"]),
                "accepted": bool(accepted)}

    def _notification_history(self):
        with self._lock:
            if self._history is None:
                from sunday.models.personalization.notifications import NotificationHistory

                self._history = NotificationHistory.from_tables(self.tables, self.notification_log)
            return self._history

    def rank_notifications(self, item: dict) -> dict:
        loaded = self._need(self.ranker, RANKER_MODEL)
        if self.tables is None:
            raise Unavailable("no interaction history is loaded in this server (start it on a simulation)")
        from sunday.models.personalization.notifications import RankContext

        user = item["user_id"]
        notes = [{**n, "_index": i} for i, n in enumerate(item["notifications"])]
        ranked = loaded.model.rank(notes, RankContext(user, self._notification_history()),
                                   explain_top=int(item.get("explain_top", 5)))
        out = []
        for row in ranked.to_dict("records"):
            out.append({"index": int(row.get("_index", -1)), "notification_id": row.get("notification_id"),
                        "type": row["type"], "rank": int(row["rank"]), "score": float(row["score"]),
                        "reasons": row["reasons"]})
        channel = decision = None
        if item.get("choose_channel", True):
            x = self._context(user)
            channel = self.bandits.select("notification_channel", x)
            decision = self.decisions.record("notification_channel", item["workspace_id"], user, channel, x)
        return {"user_id": user, "notifications": out, "channel": channel, "decision_id": decision,
                "model_version": loaded.version}

    def _priority_features(self, ids: list[str]):
        """Feature rows of ``ids`` (each task at creation + the model's horizon: fixed once that moment has passed,
        so the history's rows are computed once and looked up)."""
        from sunday.models.priority.features import priority_features

        with self._lock:
            if self._priority_rows is None:
                horizon = self.priority.model.config.horizon_hours
                X = priority_features(self.tables, horizon_hours=horizon)
                self._priority_rows = X.set_index("task_id", drop=False)
            rows = self._priority_rows
        missing = [t for t in ids if t not in rows.index]
        if missing:
            from sunday.serving.errors import NotFound

            raise NotFound(f"task_ids: {missing[:5]} have no history in this server")
        return rows.loc[ids].reset_index(drop=True)

    def score_priority(self, item: dict) -> dict:
        loaded = self._need(self.priority, PRIORITY_MODEL)
        if self.tables is None:
            raise Unavailable("no task history is loaded in this server (start it on a simulation)")
        ids = list(dict.fromkeys(item["task_ids"]))
        X = self._priority_features(ids)
        scores = loaded.model.score(X)
        reasons = loaded.model.explain(X) if item.get("explain", True) else [{} for _ in ids]
        current = _current_priority(self.tables, ids)
        out = []
        for i, row in enumerate(scores.to_dict("records")):
            out.append({"task_id": row["task_id"], "priority": row["priority"],
                        "score": float(row["priority_score"]),
                        "probabilities": {p: float(row[f"p_{p}"]) for p in ("low", "medium", "high", "critical")},
                        "current_priority": current.get(row["task_id"]),
                        "reasons": reasons[i].get("contributions", []) if isinstance(reasons[i], dict) else []})
        return {"scores": out, "model_version": loaded.version}


def _current_priority(tables, ids: list[str]) -> dict[str, str]:
    import pyarrow.compute as pc

    t = tables["tasks"]
    sub = t.filter(pc.is_in(t["task_id"], value_set=__import__("pyarrow").array(ids)))
    return dict(zip(sub["task_id"].to_pylist(), sub["priority"].to_pylist()))
