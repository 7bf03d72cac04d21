"""The Sunday ML Ray Serve application: a FastAPI ingress composed with model deployments.

    serve run serve_apps.app:build_app                   # embedded defaults (state folder .sunday)
    serve deploy serve_apps/serve_config.yaml            # on a running cluster
    sunday serve                                         # local Ray + this app, prints curl lines

Deployments (each a thin wrapper over a plain class in ``sunday/serving``):

* ``Ingress``: the FastAPI app of :mod:`sunday.serving.api` (keys, roles, workspace isolation, rate limit, audit
  log, metrics); its backend calls the deployments below through DeploymentHandles.
* ``Features``: the online store behind a short-TTL cache (:class:`~sunday.serving.feature_cache.CachedFeatures`).
* ``Assignment``: the ``task_assignment`` champion; requests are batched with ``@serve.batch`` (one encoder call,
  one online read and one LightGBM/network call per batch). ``user_config`` ``{"version": ...}`` /
  ``{"alias": ...}`` swaps the model in place (``reconfigure``: load beside, then switch); ``"rollout"`` loads a
  challenger beside it in shadow or canary with automatic rollback (:mod:`sunday.serving.rollout`;
  ``rollout_state()`` shows this replica's per-version stats, shadow agreement and rollback events).
* ``Timeline``: the ``project_timeline`` champion, batched likewise (optional: absent until one is registered).
* ``Events``: the streaming feature consumer (one replica: it keeps the recent event history). The task and comment
  events it processes are handed to ``Nlp`` to be indexed for search, and every event goes to the anomaly monitor
  (:func:`sunday.models.anomaly.monitor.serving_monitor`: the simulation's history replayed at start, alerts into
  the state folder's SQLite store, which the ingress reads for ``GET /api/v1/ml/anomalies/{project}``).
* ``Nlp``: search (vector store, MiniLM, the ``qmsum_reranker`` champion), meeting summaries and task drafts, with
  the LLM behind its guard (:class:`sunday.nlp.service.NlpService`). One replica with the embedded Qdrant (its
  folder is locked by one process); with ``SUNDAY_QDRANT_URL`` it autoscales. Its LLM is the embedded SmolLM2 in
  the replica, or the OpenAI-compatible server at ``SUNDAY_LLM_BASE_URL`` -- e.g. the ``LLMServer`` app of
  ``serve_apps/llm.py`` on the same cluster, so that one copy of the model serves every replica.
* ``Personalization``: :class:`sunday.models.personalization.service.PersonalizationService` -- the dashboard layout
  bandit and its feedback (state in SQLite under the state folder, shared by replicas), collaborative-filtering
  recommendations, notification ranking (+ channel bandit) and priority scores, from the ``personalization_cf`` /
  ``notification_ranker`` / ``priority_scorer`` champions (a route whose model is not registered answers 503).
  ``user_config`` ``{"champions": {model: version | alias}}`` swaps any of them in place (the pipeline sets it
  after a promotion).

Arguments (``serve run serve_apps.app:build_app key=value`` or ``args:`` in the config file): ``home`` (state
folder), ``sim`` (simulation whose directory of users / projects / tasks and feature store to use; default
``demo``), ``batching`` (true), ``max_batch_size`` (16), ``batch_wait_timeout_s`` (0: no waiting; a batch is what queued
while the previous batch ran), ``timeline`` (true),
``rate`` / ``burst`` (per-workspace token bucket, default 50 / 100), ``feature_ttl_s`` (2.0), ``nlp`` (true),
``anomaly`` (true: the anomaly monitor on the Events deployment), ``assignment_config`` / ``timeline_config`` (the
deployment's ``user_config``: ``alias`` / ``version`` and ``rollout``, a challenger in shadow or canary --
:mod:`sunday.serving.rollout`), ``assignment`` (true; false: no ``Assignment``
deployment, ``assign-task`` answers 503), ``personalization`` (true: the
``Personalization`` deployment -- dashboard bandit and recommendations, notification ranking, priority scores),
``max_replicas``
(caps every deployment's autoscaling; 1 on a 2-core machine, where a new replica's model loading only steals CPU).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from pydantic import BaseModel
from ray import serve
from ray.serve.handle import DeploymentHandle

log = logging.getLogger("ray.serve")


class AppArgs(BaseModel):
    home: str | None = None
    sim: str = "demo"
    batching: bool = True
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0  # 0: a batch is whatever queued while the previous one ran
    timeline: bool = True
    embeddings: bool = True
    rate: float = 50.0
    burst: float = 100.0
    feature_ttl_s: float = 2.0
    assignment_version: str | None = None
    timeline_version: str | None = None
    nlp: bool = True
    anomaly: bool = True
    personalization: bool = True
    assignment: bool = True  # false: no Assignment deployment (assign-task answers 503), e.g. before a model exists
    assignment_config: dict | None = None  # the Assignment deployment's user_config (alias / version / rollout);
    timeline_config: dict | None = None  # the Timeline's (a config file's deployments[].user_config wins)
    max_replicas: int | None = None  # caps every deployment's autoscaling (1 on a small machine: no upscaling)
    runtime_env: dict | None = None  # for every replica (e.g. env_vars SUNDAY_HOME / PYTHONPATH when Ray runs
    # already and was started elsewhere)


def _settings(home: str | None):
    from sunday.settings import get_settings

    return get_settings(home=home).ensure_dirs()


AUTOSCALING = {  # per deployment; ``max_replicas`` in the app args caps them all
    "Features": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 64},
    "Assignment": {"min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 16, "upscale_delay_s": 10,
                   "downscale_delay_s": 120},
    "Timeline": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8},
    "Ingress": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 64},
    "Nlp": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 4},  # 1 with the embedded Qdrant
    "Personalization": {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16},
}


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=200,
                  autoscaling_config=AUTOSCALING["Features"])
class Features:
    def __init__(self, home: str | None, ttl_s: float = 2.0):
        from sunday.features.online import OnlineFeatures
        from sunday.serving.feature_cache import CachedFeatures

        self.cache = CachedFeatures(OnlineFeatures(_settings(home)), ttl_s=ttl_s)

    def get_columns(self, groups: list[str], rows: list[dict]) -> dict[str, list]:
        return self.cache.get_columns(groups, rows)

    def check_health(self) -> None:
        pass


def _request_id() -> str | None:
    """The Serve request id of the call being handled (propagated from the proxy through handle calls)."""
    try:
        from ray.serve.context import _get_serve_request_context

        return _get_serve_request_context().request_id or None
    except Exception:  # noqa: BLE001 - outside a request
        return None


def _rollout_metrics():
    """Per-version rollout metrics of this replica (``sunday_rollout_*``, endpoint tag ``<model>:<role>``)."""
    from sunday.serving.metrics import ApiMetrics

    return ApiMetrics(prefix="sunday_rollout")


class _Batched:
    """``max_batch_size`` / ``batch_wait_timeout_s`` from the app args (``set_max_batch_size`` etc.)."""

    def _configure_batching(self, method, size: int, wait: float) -> None:
        method.set_max_batch_size(size)
        method.set_batch_wait_timeout_s(wait)


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64, graceful_shutdown_timeout_s=20,
                  health_check_period_s=10, autoscaling_config=AUTOSCALING["Assignment"])
class Assignment(_Batched):
    def __init__(self, home: str | None, features: DeploymentHandle, batching: bool = True,
                 max_batch_size: int = 16, batch_wait_timeout_s: float = 0.0, embeddings: bool = True,
                 version: str | None = None, feature_ttl_s: float = 2.0):
        from sunday.serving.feature_cache import CachedFeatures
        from sunday.serving.models import AssignmentModel
        from sunday.serving.rollout import ModelRollout, rollout_dir, same_top1

        settings = _settings(home)
        self.model = AssignmentModel(settings, version=version, embeddings=embeddings)
        self.model.warmup()
        self.rollout = ModelRollout(  # a challenger beside the champion (user_config "rollout")
            self.model, lambda alias, v: AssignmentModel(settings, alias, v, embeddings=embeddings),
            compare=same_top1, metrics=_rollout_metrics(), log_dir=rollout_dir(settings))
        self.features = features
        self.local = CachedFeatures(None, ttl_s=feature_ttl_s)  # in front of the Features deployment
        self.batching = batching
        self._configure_batching(self.recommend_batched, max_batch_size if batching else 1, batch_wait_timeout_s)

    async def reconfigure(self, user_config: dict) -> None:
        """``{"version": "3"}`` or ``{"alias": "champion"}``: load beside the serving model, then switch;
        ``"rollout": {...}`` (:class:`sunday.serving.rollout.RolloutConfig`) puts a challenger in shadow or canary."""
        await asyncio.to_thread(self.rollout.reconfigure, user_config)
        log.info("assignment model now %s", self.rollout.info())

    async def _score(self, items: list[dict]) -> list[dict]:
        from sunday.serving.rollout import assignment_key

        keys = [assignment_key(i, i.get("_request_id")) for i in items]
        return await self.rollout.score(items, keys, self._score_with)

    async def _score_with(self, model, items: list[dict]) -> list[dict]:
        from sunday.models.assignment.service import USER_GROUPS

        prepared, results = model.prepare_batch(items)
        ids = model.candidate_ids(prepared)
        cols = await self.local.aget_columns(list(USER_GROUPS), [{"user_id": u} for u in ids],
                                             self._fetch) if ids else {}
        return model.finish_batch(prepared, results, ids, cols, [bool(i.get("explain", True)) for i in items])

    async def _fetch(self, groups: list[str], rows: list[dict]) -> dict[str, list]:
        return await self.features.get_columns.remote(groups, rows)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def recommend_batched(self, items: list[dict]) -> list[dict]:
        return await self._score(items)

    async def recommend(self, item: dict) -> dict:
        item = {**item, "_request_id": _request_id()}  # the canary key when the task has no id
        if self.batching:
            return await self.recommend_batched(item)
        return (await self._score([item]))[0]

    def info(self) -> dict:
        return self.rollout.info()

    def rollout_state(self) -> dict:
        """This replica's rollout: mode, versions, per-version stats, shadow agreement, rollback events."""
        return self.rollout.state()

    def check_health(self) -> None:
        if not self.model.healthy():
            raise RuntimeError("no assignment model loaded")


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=32, graceful_shutdown_timeout_s=20,
                  autoscaling_config=AUTOSCALING["Timeline"])
class Timeline(_Batched):
    def __init__(self, home: str | None, batching: bool = True, max_batch_size: int = 16,
                 batch_wait_timeout_s: float = 0.0, version: str | None = None):
        from sunday.errors import SundayError
        from sunday.serving.models import TimelineModel

        self.settings, self.version, self.model, self.missing = _settings(home), version, None, None
        self.rollout = None
        try:
            self._use(TimelineModel(self.settings, version=version))
        except SundayError as exc:  # no champion yet: answer 503 with the reason until one is deployed
            self.missing = str(exc)
        self.batching = batching
        self._configure_batching(self.predict_batched, max_batch_size if batching else 1, batch_wait_timeout_s)

    def _use(self, model) -> None:
        from sunday.serving.models import TimelineModel
        from sunday.serving.rollout import ModelRollout, rollout_dir, same_risk_class

        settings = self.settings
        self.model = model
        self.rollout = ModelRollout(model, lambda alias, v: TimelineModel(settings, alias, v),
                                    compare=same_risk_class, metrics=_rollout_metrics(),
                                    log_dir=rollout_dir(settings))

    async def reconfigure(self, user_config: dict) -> None:
        """``{alias|version}`` swaps the champion; ``"rollout": {...}`` puts a challenger in shadow or canary."""
        from sunday.serving.models import TimelineModel

        if self.model is None:
            cfg = dict(user_config or {})
            model = await asyncio.to_thread(TimelineModel, self.settings, cfg.get("alias", "champion"),
                                            cfg.get("version"))
            self._use(model)
            self.missing = None
        await asyncio.to_thread(self.rollout.reconfigure, user_config)

    @staticmethod
    async def _predict_with(model, items: list[dict]) -> list[dict]:
        return model.predict_batch(items)

    async def _predict(self, items: list[dict]) -> list[dict]:
        keys = [i.get("project_id") or i.get("_request_id") for i in items]
        return await self.rollout.score(items, keys, self._predict_with)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.0)
    async def predict_batched(self, items: list[dict]) -> list[dict]:
        return await self._predict(items)

    async def predict(self, item: dict) -> dict:
        if self.model is None:
            return {"error": f"no timeline model: {self.missing}", "status": 503}
        item = {**item, "_request_id": _request_id()}
        if self.batching:
            return await self.predict_batched(item)
        return (await self._predict([item]))[0]

    def info(self) -> dict:
        if self.model is None:
            return {"name": "project_timeline", "version": None, "alias": None, "loaded_at": None}
        return self.rollout.info()

    def rollout_state(self) -> dict:
        if self.rollout is None:
            return {"model": "project_timeline", "mode": "off", "champion_version": None, "events": []}
        return self.rollout.state()


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, num_replicas=1, max_ongoing_requests=16)
class Events:
    def __init__(self, home: str | None, sim: str, index: bool = False, anomaly: bool = True):
        from sunday.features.platform import simulation_path
        from sunday.features.streaming import StreamingConsumer

        settings = _settings(home)
        sim_path = simulation_path(settings, sim)
        self.to_index: list[tuple[dict, dict]] = []  # (event, task row) for the Nlp deployment's indexer
        listeners: list = [lambda ev, row: self.to_index.append((ev, row))] if index else []
        if anomaly:  # one replica: the monitor's day-by-day state lives here
            from sunday.models.anomaly.monitor import serving_monitor

            listeners.append(serving_monitor(settings, sim_path))
        self.consumer = StreamingConsumer(settings, sim_path, listeners=listeners)

    def ingest(self, events: list[dict]) -> dict:
        from sunday.serving.api import ApiError, ingest_events

        self.to_index = []
        try:
            out = ingest_events(self.consumer, events)
        except ApiError as exc:
            return {"error": str(exc), "status": exc.status_code}
        out["_index"] = [(_jsonable(ev), _jsonable(row)) for ev, row in self.to_index
                         if ev.get("event_type") in ("created", "scope_changed", "commented")]
        return out


async def _call_service(service, method: str, item: dict) -> dict:
    """``service.<method>(item)`` off the event loop; its input errors come back as ``{"error", "status"}``."""
    from sunday.errors import SundayError
    from sunday.serving.errors import ServingError

    try:
        return await asyncio.to_thread(getattr(service, method), item)
    except ServingError as exc:
        return {"error": str(exc), "status": exc.status_code}
    except SundayError as exc:
        return {"error": str(exc), "status": 422}


def _jsonable(d: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()
            if isinstance(v, (str, int, float, bool, type(None))) or hasattr(v, "isoformat")}


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, num_replicas=1, max_ongoing_requests=16,
                  graceful_shutdown_timeout_s=30)
class Nlp:
    """Search, documents, meeting summaries and task drafts (:class:`sunday.nlp.service.NlpService`)."""

    def __init__(self, home: str | None, sim: str):
        from sunday.features.platform import simulation_path
        from sunday.nlp.service import NlpService

        settings = _settings(home)
        self.service = NlpService.for_settings(settings, sim_path=simulation_path(settings, sim))
        self.service.encode(["warm up"])

    async def call(self, method: str, item: dict) -> dict:
        return await _call_service(self.service, method, item)

    async def on_events(self, pairs: list) -> int:
        return sum([await asyncio.to_thread(self.service.on_event, ev, row) for ev, row in pairs])

    def info(self) -> dict:
        return {"name": "nlp", "version": None, "alias": None, "loaded_at": None, **self.service.info()}


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=64, graceful_shutdown_timeout_s=20,
                  autoscaling_config=AUTOSCALING["Personalization"])
class Personalization:
    """Dashboard layout (bandit) + recommendations, bandit feedback, notification ranking, priority scores
    (:class:`sunday.models.personalization.service.PersonalizationService`; bandit state in SQLite, shared by
    replicas)."""

    def __init__(self, home: str | None, sim: str, feature_ttl_s: float = 2.0):
        from sunday.features.online import OnlineFeatures
        from sunday.features.platform import simulation_path
        from sunday.models.personalization.service import PersonalizationService
        from sunday.serving.feature_cache import CachedFeatures

        settings = _settings(home)
        self.service = PersonalizationService.for_settings(
            settings, simulation_path(settings, sim), features=CachedFeatures(OnlineFeatures(settings),
                                                                              ttl_s=feature_ttl_s))

    async def reconfigure(self, user_config: dict) -> None:
        """``{"champions": {model: version | alias}}``: the pipeline's promotions, swapped in place."""
        await asyncio.to_thread(self.service.reconfigure, user_config)

    async def call(self, method: str, item: dict) -> dict:
        return await _call_service(self.service, method, item)

    def info(self) -> list[dict]:
        return self.service.info()


class ServeBackend:
    """The ingress's backend: DeploymentHandle calls (errors come back as ``{"error", "status"}`` dicts)."""

    def __init__(self, assignment: DeploymentHandle | None, timeline: DeploymentHandle | None,
                 events: DeploymentHandle,
                 nlp: DeploymentHandle | None = None, alerts=None, personal: DeploymentHandle | None = None):
        self.assignment, self.timeline_handle, self.events, self.nlp = assignment, timeline, events, nlp
        self.personal = personal
        self.alerts = alerts  # the anomaly monitor's AlertStore (SQLite, WAL: read here, written by Events)

    async def assign(self, item: dict) -> dict:
        if self.assignment is None:
            return {"error": "the Assignment deployment is not part of this app (assignment=false)", "status": 503}
        return await self.assignment.recommend.remote(item)

    async def timeline(self, item: dict) -> dict:
        if self.timeline_handle is None:
            return {"error": "no timeline model is deployed (train one: python train_jobs/timeline.py)",
                    "status": 503}
        return await self.timeline_handle.predict.remote(item)

    async def ingest(self, events: list[dict]) -> dict:
        out = await self.events.ingest.remote(events)
        pairs = out.pop("_index", None)
        if pairs and self.nlp is not None:
            await self.nlp.on_events.remote(pairs)
        return out

    async def _nlp(self, method: str, item: dict) -> dict:
        if self.nlp is None:
            return {"error": "the NLP deployment is not part of this app (nlp=false)", "status": 503}
        return await self.nlp.call.remote(method, item)

    async def search(self, item: dict) -> dict:
        return await self._nlp("search", item)

    async def index_document(self, item: dict) -> dict:
        return await self._nlp("index_document", item)

    async def draft_task(self, item: dict) -> dict:
        return await self._nlp("draft_task", item)

    async def summarize_meeting(self, item: dict) -> dict:
        return await self._nlp("summarize_meeting", item)

    async def anomalies(self, item: dict) -> dict:
        from sunday.serving.api import read_anomalies

        return await read_anomalies(self.alerts, item)

    async def personalization(self, method: str, item: dict) -> dict:
        if self.personal is None:
            return {"error": "the Personalization deployment is not part of this app (personalization=false)",
                    "status": 503}
        return await self.personal.call.remote(method, item)

    async def rollout(self) -> dict:
        """The rollout state of each model deployment's replica that answers (for an admin route)."""
        out = {}
        if self.assignment is not None:
            out["task_assignment"] = await self.assignment.rollout_state.remote()
        if self.timeline_handle is not None:
            out["project_timeline"] = await self.timeline_handle.rollout_state.remote()
        return out

    async def models(self) -> list[dict]:
        handles = [h for h in (self.assignment, self.timeline_handle) if h is not None]
        out = list(await asyncio.gather(*[h.info.remote() for h in handles]))
        return out + (await self.personal.info.remote() if self.personal is not None else [])


def _api():
    from sunday.serving.api import build_api, current_context

    return build_api(current_context)


@serve.deployment(ray_actor_options={"num_cpus": 0.2}, max_ongoing_requests=200, graceful_shutdown_timeout_s=20,
                  autoscaling_config=AUTOSCALING["Ingress"])
@serve.ingress(_api)
class Ingress:
    def __init__(self, home: str | None, sim: str, assignment: DeploymentHandle | None,
                 timeline: DeploymentHandle | None,
                 events: DeploymentHandle, rate: float = 50.0, burst: float = 100.0,
                 nlp: DeploymentHandle | None = None, anomaly: bool = True,
                 personal: DeploymentHandle | None = None):
        from sunday.features.platform import simulation_path
        from sunday.monitoring.predictions import default_prediction_log
        from sunday.serving.api import Context, set_context
        from sunday.serving.audit import default_audit_log
        from sunday.serving.directory import ProjectCatalog, WorkspaceDirectory
        from sunday.serving.keys import default_keystore
        from sunday.serving.metrics import ApiMetrics
        from sunday.serving.ratelimit import RateLimit, RateLimitConfig, make_rate_limiter

        settings = _settings(home)
        sim_path = simulation_path(settings, sim)
        alerts = None
        if anomaly:
            from sunday.models.anomaly.alerts import AlertStore

            alerts = AlertStore.for_settings(settings)
        set_context(Context(
            backend=ServeBackend(assignment, timeline, events, nlp, alerts, personal), keys=default_keystore(settings),
            limiter=make_rate_limiter(settings, RateLimitConfig(default=RateLimit(rate, burst))),
            audit=default_audit_log(settings), directory=WorkspaceDirectory.from_simulation(sim_path),
            catalog=ProjectCatalog(settings, sim_path), metrics=ApiMetrics(),
            extra={"predictions": default_prediction_log(settings)}))  # feeds the drift monitor

    def check_health(self) -> None:
        from sunday.serving.api import current_context

        current_context()


def build_app(args: dict | None = None):
    """The application (``serve run serve_apps.app:build_app``; ``args`` as in the module docstring)."""
    a = AppArgs(**(args or {}))
    home = a.home or os.environ.get("SUNDAY_HOME")
    settings = _settings(home)
    home = str(settings.home)  # absolute, for replicas started elsewhere
    def capped(d):
        opts: dict[str, Any] = {}
        if a.runtime_env:
            opts["ray_actor_options"] = {**(d.ray_actor_options or {}), "runtime_env": a.runtime_env}
        if a.max_replicas is not None and d.name in AUTOSCALING:
            cfg = dict(AUTOSCALING[d.name], max_replicas=max(1, a.max_replicas))
            cfg["min_replicas"] = min(cfg["min_replicas"], cfg["max_replicas"])
            opts["autoscaling_config"] = cfg
        return d.options(**opts) if opts else d

    features = capped(Features).bind(home, a.feature_ttl_s)
    assignment_d = capped(Assignment)
    if a.assignment_config is not None:
        assignment_d = assignment_d.options(user_config=a.assignment_config)
    timeline_d = capped(Timeline)
    if a.timeline_config is not None:
        timeline_d = timeline_d.options(user_config=a.timeline_config)
    assignment = (assignment_d.bind(home, features, a.batching, a.max_batch_size, a.batch_wait_timeout_s,
                                    a.embeddings, a.assignment_version, a.feature_ttl_s) if a.assignment else None)
    timeline = (timeline_d.bind(home, a.batching, a.max_batch_size, a.batch_wait_timeout_s,
                                      a.timeline_version) if a.timeline else None)
    events = capped(Events).bind(home, a.sim, a.nlp, a.anomaly)
    nlp = None
    if a.nlp:
        nlp_d = capped(Nlp)
        if settings.qdrant_url:  # a Qdrant server: the deployment may scale out
            nlp_d = nlp_d.options(num_replicas=None if a.max_replicas != 1 else 1,
                                  autoscaling_config=None if a.max_replicas == 1 else AUTOSCALING["Nlp"])
        nlp = nlp_d.bind(home, a.sim)
    personal = capped(Personalization).bind(home, a.sim, a.feature_ttl_s) if a.personalization else None
    return capped(Ingress).bind(home, a.sim, assignment, timeline, events, a.rate, a.burst, nlp, a.anomaly,
                                personal)

