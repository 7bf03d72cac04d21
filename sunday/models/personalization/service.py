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
:meth:`~PersonalizationService.reconfigure` swaps models in place (``{"champions": {model: version | alias}}``:
the Serve deployment's ``user_config``, which the pipeline sets after a promotion): the new version loads beside
the old one, then one assignment switches them, so requests in flight finish on the old one.
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


ATTRS = {CF_MODEL: "cf", RANKER_MODEL: "ranker", PRIORITY_MODEL: "priority"}  # model -> service attribute


def loaders() -> dict[str, Callable[[Path], Any]]:
    """``{registered model: load(folder)}`` of the models the service serves."""
    from sunday.models.personalization.cf import CFRecommender
    from sunday.models.personalization.notifications import NotificationRanker
    from sunday.models.priority.scorer import PriorityScorer

    return {CF_MODEL: CFRecommender.load, RANKER_MODEL: NotificationRanker.load, PRIORITY_MODEL: PriorityScorer.load}


def load_champion(name: str, load: Callable[[Path], Any], alias: str = "champion",
                  version: str | None = None) -> Loaded | None:
    """The registered model's ``alias`` version (or ``version``) loaded with ``load(folder)``, or None when
    nothing is registered under the alias (an unknown ``version`` is a :class:`SundayError` naming it)."""
    import tempfile
    from datetime import datetime, timezone

    from sunday import tracking

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if version is None:
        found = tracking.load_alias(name, load, alias)
        return None if found is None else Loaded(found[0], found[1], alias, now)
    from mlflow.exceptions import MlflowException

    from sunday.errors import SundayError

    with tempfile.TemporaryDirectory(prefix=f"sunday-{name}-") as tmp:
        try:
            folder = tracking.download_version(name, str(version), Path(tmp))
        except MlflowException as exc:
            raise SundayError(f"champions.{name}: version {version!r} of {name} cannot be loaded "
                              f"({str(exc).splitlines()[0][:200]})") from None
        return Loaded(load(folder), str(version), None, now)


class PersonalizationService:
    def __init__(self, bandits, decisions, features=None, tables=None, cf: Loaded | None = None,
                 ranker: Loaded | None = None, priority: Loaded | None = None, notification_log=None,
                 sim_seed: int | None = None):
        self.bandits, self.decisions, self.features, self.tables = bandits, decisions, features, tables
        self.cf, self.ranker, self.priority = cf, ranker, priority
        # the simulated notification log the ranker's history reads; with ``sim_seed`` and no log it is simulated on
        # first use (the same log train_jobs/notifications.py uses)
        self.notification_log, self.sim_seed = notification_log, sim_seed
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
            load = loaders()
            cf, ranker, priority = (load_champion(n, load[n]) for n in (CF_MODEL, RANKER_MODEL, PRIORITY_MODEL))
        service = cls(BanditStore.for_settings(settings), DecisionLog.for_settings(settings), features, tables, cf,
                      ranker, priority, sim_seed=seed if tables is not None else None)
        if ranker is not None:
            service._notification_log()  # simulated at start rather than on the first request
        return service

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

    def _notification_log(self):
        with self._lock:
            if self.notification_log is None and self.tables is not None and self.sim_seed is not None:
                from sunday.data.simulator.notifications import simulate_notifications

                self.notification_log = simulate_notifications(self.tables, seed=self.sim_seed)[0]
            return self.notification_log

    def reconfigure(self, user_config: dict | None) -> list[dict]:
        """Swap models in place: ``{"champions": {model: version | alias}}`` (a version number pins it, another
        string follows that alias). Every new model loads first; then each is switched by one assignment (a request
        in flight finishes on the model it started with). A model already at the asked version is not reloaded.
        Unknown keys, models or versions are a :class:`SundayError` naming them, and nothing is switched."""
        from collections.abc import Mapping

        from sunday.errors import SundayError

        cfg = dict(user_config or {})
        unknown = sorted(set(cfg) - {"champions"})
        if unknown:
            raise SundayError(f"Personalization user_config: unknown key(s) {unknown}; known: champions")
        champions = cfg.get("champions") or {}
        if not isinstance(champions, Mapping):
            raise SundayError(f"champions: must map a model name to a version or alias, got {champions!r}")
        bad = sorted(set(champions) - set(ATTRS))
        if bad:
            raise SundayError(f"champions: unknown model(s) {bad}; known: {', '.join(ATTRS)}")
        load = loaders()
        new: dict[str, Loaded] = {}
        for name, ref in champions.items():
            ref = str(ref).strip()
            if not ref:
                raise SundayError(f"champions.{name}: an empty version / alias")
            current = getattr(self, ATTRS[name])
            if ref.isdigit():
                if current is not None and current.version == ref:
                    continue
                new[name] = load_champion(name, load[name], version=ref)
            else:
                loaded = load_champion(name, load[name], alias=ref)
                if loaded is None:
                    raise SundayError(f"champions.{name}: no {ref!r} version of {name} is registered")
                new[name] = loaded
        with self._lock:
            for name, loaded in new.items():
                if name == PRIORITY_MODEL and (self.priority is None or self.priority.model.config.horizon_hours
                                               != loaded.model.config.horizon_hours):
                    self._priority_rows = None  # features at another horizon
                setattr(self, ATTRS[name], loaded)
        if RANKER_MODEL in new:
            self._notification_log()
        return self.info()

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
        log = self._notification_log()
        with self._lock:
            if self._history is None:
                from sunday.models.personalization.notifications import NotificationHistory

                self._history = NotificationHistory.from_tables(self.tables, log)
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
        reasons = loaded.model.explain(X) if item.get("explain", True) else None
        out = priority_answers(loaded.model.score(X), _current_priority(self.tables, ids), reasons)
        return {"scores": out, "model_version": loaded.version}


def priority_answers(scores, current: dict[str, str], reasons: list | None = None) -> list[dict]:
    """The ``scores`` items of a score-priority answer from :meth:`PriorityScorer.score`'s frame (also what the
    pipeline's training reference is built from, so that it matches the logged answers)."""
    out = []
    for i, row in enumerate(scores.to_dict("records")):
        why = reasons[i] if reasons is not None else {}
        out.append({"task_id": row["task_id"], "priority": row["priority"], "score": float(row["priority_score"]),
                    "probabilities": {p: float(row[f"p_{p}"]) for p in ("low", "medium", "high", "critical")},
                    "current_priority": current.get(row["task_id"]),
                    "reasons": why.get("contributions", []) if isinstance(why, dict) else []})
    return out


def _current_priority(tables, ids: list[str]) -> dict[str, str]:
    import pyarrow.compute as pc

    t = tables["tasks"]
    sub = t.filter(pc.is_in(t["task_id"], value_set=__import__("pyarrow").array(ids)))
    return dict(zip(sub["task_id"].to_pylist(), sub["priority"].to_pylist()))
