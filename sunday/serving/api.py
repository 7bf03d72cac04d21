"""The serving API: one FastAPI app, ``/api/v1/ml/...``, used two ways.

* Ray Serve (``serve_apps/app.py``): the ingress deployment wraps this app with ``@serve.ingress`` and its
  :class:`Backend` calls the model deployments through DeploymentHandles (``@serve.batch`` inside them).
* Plain FastAPI + uvicorn in one process (:class:`LocalBackend`): the usual alternative, kept as the latency
  baseline of ``benchmarks/serve_latency.py`` and for tests without a cluster.

Every route but ``/health`` needs ``Authorization: Bearer sk_...`` (HTTP 401 without a valid key). The key's role
must reach the route's (viewer < member < admin, else 403); requests name only entities of the key's workspace
(else 403; unknown ids 404); each workspace has a token bucket (429 with ``Retry-After``). A body that does not
fit the schema is 422 naming the field. Every prediction (and event ingest) is appended to the audit log --
committed before the response leaves, so a replica that dies loses no acknowledged record -- and counted in the
request metrics (:mod:`sunday.serving.metrics`).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Awaitable, Callable, Protocol

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sunday.errors import SundayError
from sunday.serving import schemas as S
from sunday.serving.errors import ServingError, Unauthorized
from sunday.serving.keys import Principal, Role, require

PREFIX = "/api/v1/ml"
ERRORS = {code: {"model": S.Problem} for code in (401, 403, 404, 429)}  # documented error answers
NLP_ERRORS = {**ERRORS, **{code: {"model": S.Problem} for code in (413, 503)}}  # + input too large, no model


class ApiError(ServingError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status_code = status


class Backend(Protocol):
    async def assign(self, item: dict) -> dict: ...
    async def timeline(self, item: dict) -> dict: ...
    async def ingest(self, events: list[dict]) -> dict: ...
    async def search(self, item: dict) -> dict: ...
    async def index_document(self, item: dict) -> dict: ...
    async def draft_task(self, item: dict) -> dict: ...
    async def summarize_meeting(self, item: dict) -> dict: ...
    async def anomalies(self, item: dict) -> dict: ...
    async def personalization(self, method: str, item: dict) -> dict: ...
    async def rollout(self) -> dict: ...
    async def models(self) -> list[dict]: ...


@dataclass
class Context:
    backend: Backend
    keys: Any  # KeyStore
    limiter: Any  # TokenBucket
    audit: Any  # AuditLog
    directory: Any  # WorkspaceDirectory
    catalog: Any = None  # ProjectCatalog (timeline inputs by project id)
    metrics: Any = None  # ApiMetrics
    extra: dict = field(default_factory=dict)


_CURRENT: dict[str, Context] = {}


def set_context(ctx: Context) -> None:
    """The process's live context (a Serve ingress replica sets it in ``__init__``)."""
    _CURRENT["ctx"] = ctx


def current_context() -> Context:
    try:
        return _CURRENT["ctx"]
    except KeyError:
        raise ApiError(503, "the API is starting: no context yet") from None


def unwrap(result: dict) -> dict:
    """A backend result, or the ApiError it carries (``{"error": ..., "status": ...}``)."""
    if isinstance(result, dict) and "error" in result and "status" in result:
        raise ApiError(int(result["status"]), str(result["error"]))
    return result


def build_api(context: Callable[[], Context], title: str = "Sunday ML") -> FastAPI:
    """The app; ``context()`` gives the live :class:`Context` (set once the process has built it)."""
    app = FastAPI(title=title, version="1", description="Machine-learning API of the Sunday work-management "
                  "platform: task assignment, project timelines, event ingest, anomaly alerts. Bearer API keys per "
                  "workspace.")
    bearer = HTTPBearer(auto_error=False, description="API key: sunday keys create --workspace W --role member")

    @app.exception_handler(ServingError)
    async def _serving_error(_request: Request, exc: ServingError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=exc.headers())

    @app.exception_handler(SundayError)
    async def _sunday_error(_request: Request, exc: SundayError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def principal(role: Role) -> Callable[..., Awaitable[Principal]]:
        async def dep(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> Principal:
            ctx = context()
            if credentials is None:
                raise Unauthorized("missing Authorization header (expected 'Bearer sk_...')")
            p = ctx.keys.verify(credentials.credentials)
            if p is None:
                raise Unauthorized("invalid, revoked or expired API key")
            require(p, role)
            ctx.limiter.check(p.workspace_id)
            request.state.principal = p
            return p

        return dep

    async def audited(endpoint: str, p: Principal, body: Any, call: Callable[[], Awaitable[dict]],
                      model_name: str | None = None, request_id: str | None = None) -> tuple[dict, str]:
        ctx = context()
        request_id = request_id or uuid.uuid4().hex
        t0 = time.perf_counter()
        status, version, result = 200, None, None
        try:
            result = unwrap(await call())
            version = result.get("model_version")
            return result, request_id
        except ServingError as exc:
            status = exc.status_code
            raise
        except SundayError:
            status = 422
            raise
        except Exception:
            status = 500
            raise
        finally:
            ms = (time.perf_counter() - t0) * 1e3
            if result is not None:
                result["latency_ms"] = ms
            await asyncio.to_thread(ctx.audit.record, endpoint=endpoint, status=status, principal=p, request=body,
                                    model_name=model_name, model_version=version, latency_ms=ms,
                                    request_id=request_id)
            if ctx.metrics is not None:
                ctx.metrics.observe(endpoint, status, ms, version)
            if status == 200 and result is not None:
                log_prediction(ctx, endpoint, model_name, version, body, result, request_id)

    @app.get(f"{PREFIX}/health", tags=["ops"])
    async def health() -> dict:
        """Liveness and the loaded model versions (no key needed)."""
        return {"status": "ok", "models": await context().backend.models()}

    @app.post(f"{PREFIX}/assign-task", response_model=S.AssignResponse, tags=["assignment"],
              responses=ERRORS)
    async def assign_task(body: S.AssignRequest, request: Request, response: Response,
                          p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """Rank the candidates for a task: recommended user, alternatives with completion probability,
        expected quality, hours, team Gini after, reasons; the model version that answered."""
        context().directory.check("user", body.candidates, p.workspace_id)
        item = {"task": body.task.model_dump(), "candidates": body.candidates, "top_k": body.top_k,
                "weights": None if body.weights is None else body.weights.model_dump(), "explain": body.explain}
        result, rid = await audited("assign-task", p, body.model_dump(mode="json"),
                                    lambda: context().backend.assign(item), "task_assignment", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/predict-timeline", response_model=S.TimelineResponse, tags=["timeline"],
              responses=ERRORS)
    async def predict_timeline(body: S.TimelineRequest, request: Request, response: Response,
                               p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """Expected / best / worst completion dates (p50 / p10 / p90), risk class probabilities, drivers."""
        ctx = context()
        ctx.directory.check("project", [body.project_id], p.workspace_id)
        known = ctx.catalog is not None and ctx.catalog.has(body.project_id)
        item = {"project_id": body.project_id}
        if known:  # dates and team from the tables; history (and tasks) from the feature store unless sent
            item = await asyncio.to_thread(ctx.catalog.project, body.project_id, body.history is None)
        if body.history is not None:
            import pandas as pd

            item["history"] = pd.DataFrame([d.model_dump() for d in body.history])
        elif not known:
            raise ApiError(422, "history: the project is not in the feature store; send its daily history")
        for k in ("start_date", "planned_end", "remaining_points", "team_size", "team_capacity_hours"):
            v = getattr(body, k)
            if v is not None:
                item[k] = v
        if item.get("planned_end") is None:
            raise ApiError(422, "planned_end: required when the project is not in the feature store")
        item["mc_samples"] = body.mc_samples
        result, rid = await audited("predict-timeline", p, body.model_dump(mode="json", exclude={"history"}),
                                    lambda: ctx.backend.timeline(item), "project_timeline", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/events", response_model=S.EventsResponse, tags=["features"],
              responses=ERRORS)
    async def events(body: S.EventsRequest, request: Request, response: Response,
                     p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """Ingest task events into the streaming feature consumer (fresh online features for the models)."""
        ctx = context()
        d = ctx.directory
        rows, created = [], set()
        for i, e in enumerate(body.events):
            if e.workspace_id != p.workspace_id:
                raise ApiError(403, f"events[{i}].workspace_id: key may not write workspace '{e.workspace_id}'")
            if e.project_id is not None:
                d.check("project", [e.project_id], p.workspace_id)
            if e.user_id is not None:
                d.check("user", [e.user_id], p.workspace_id)
            if e.event_type == "created":
                if d.workspace_of("task", e.task_id) not in (None, p.workspace_id):
                    raise ApiError(403, f"events[{i}].task_id: task belongs to another workspace")
                created.add(e.task_id)
            elif e.task_id not in created:
                d.check("task", [e.task_id], p.workspace_id)
            rows.append(e.model_dump())
        result, rid = await audited("events", p, {"events": len(rows)}, lambda: ctx.backend.ingest(rows),
                                    request_id=request_id(request))
        for task_id in created:
            d.add("task", task_id, p.workspace_id)
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/search", response_model=S.SearchResponse, tags=["nlp"], responses=NLP_ERRORS)
    async def search(body: S.SearchRequest, request: Request, response: Response,
                     p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """Semantic search over the workspace's tasks, comments, documents and meetings: dense retrieval, a
        cross-encoder rerank of the top 50, and an answer that cites its sources as [1], [2]."""
        ctx = context()
        if body.user_id is not None:
            ctx.directory.check("user", [body.user_id], p.workspace_id)
        if body.include_restricted:
            require(p, Role.ADMIN)
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("search", p, body.model_dump(mode="json"), lambda: ctx.backend.search(item),
                                    "qmsum_reranker", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/documents", response_model=S.DocumentResponse, tags=["nlp"], responses=ERRORS)
    async def documents(body: S.DocumentRequest, request: Request, response: Response,
                        p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """Index a document (replacing an earlier one with the same id) for search."""
        ctx = context()
        if body.project_id is not None:
            ctx.directory.check("project", [body.project_id], p.workspace_id)
        if body.allowed_users:
            ctx.directory.check("user", body.allowed_users, p.workspace_id)
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("documents", p, body.model_dump(mode="json", exclude={"text"}),
                                    lambda: ctx.backend.index_document(item), request_id=request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/draft-task", response_model=S.DraftResponse, tags=["nlp"],
              responses={**NLP_ERRORS, 422: {"model": S.Problem}})
    async def draft_task(body: S.DraftRequest, request: Request, response: Response,
                         p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """A task draft from a short brief: title, description, 3-5 acceptance criteria, technical requirements,
        story points (the project's effort model when it has estimated tasks) and tags, validated; an LLM answer
        that cannot be repaired is refused with 422 and the reason."""
        ctx = context()
        if body.project_id is not None:
            ctx.directory.check("project", [body.project_id], p.workspace_id)
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("draft-task", p, body.model_dump(mode="json"),
                                    lambda: ctx.backend.draft_task(item), "llm", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/summarize-meeting", response_model=S.MeetingResponse, tags=["nlp"], responses=NLP_ERRORS)
    async def summarize_meeting(body: S.MeetingRequest, request: Request, response: Response,
                                p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """Key decisions, action items (assignee when named, else the assignment model's pick among the
        participants; due date from the text), a discussion summary and whether follow-up is needed. With
        ``create_tasks`` the action items become tasks of the workspace (sending the same meeting again creates
        no duplicates)."""
        ctx = context()
        d = ctx.directory
        if body.project_id is not None:
            d.check("project", [body.project_id], p.workspace_id)
        users = [x.user_id for x in body.participants]
        if users:
            d.check("user", users, p.workspace_id)
        item = {**body.model_dump(mode="json"), "workspace_id": p.workspace_id}

        async def run() -> dict:
            out = unwrap(await ctx.backend.summarize_meeting(item))
            summary = out["summary"]
            await _predict_assignees(ctx.backend, summary, users)
            created: list[str] = []
            if body.create_tasks and summary["action_items"]:
                created = await _create_tasks(ctx, summary, item)
            return {**{k: summary[k] for k in ("meeting_id", "decisions", "action_items", "discussion_summary",
                                               "follow_up_needed", "follow_up_reasons", "notes")},
                    "created_tasks": created, "indexed_passages": out["indexed_passages"]}

        result, rid = await audited("summarize-meeting", p, body.model_dump(mode="json", exclude={"transcript"}),
                                    run, "meeting_summary", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.get(f"{PREFIX}/anomalies/{{project_id}}", response_model=S.AnomaliesResponse, tags=["anomaly"],
             responses={**ERRORS, 422: {"model": S.Problem}, 503: {"model": S.Problem}})
    async def anomalies(project_id: str, request: Request, response: Response,
                        since: date | None = Query(None, description="alerts still unusual on or after this day"),
                        until: date | None = Query(None, description="alerts that began on or before this day"),
                        limit: int = Query(100, ge=1, le=1000, description="most recent first"),
                        p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """The project's anomaly alerts and its team's (velocity drop, creation spike, stuck task, reassignment
        churn, workload concentration), newest first, each with its reason, from the streaming monitor's store."""
        ctx = context()
        ctx.directory.check("project", [project_id], p.workspace_id)
        if since is not None and until is not None and since > until:
            raise ApiError(422, f"since: {since} is after until ({until})")
        item = {"workspace_id": p.workspace_id, "project_id": project_id, "limit": limit,
                "since": None if since is None else since.isoformat(),
                "until": None if until is None else until.isoformat()}
        result, rid = await audited("anomalies", p, item, lambda: ctx.backend.anomalies(item), "anomaly_monitor",
                                    request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/personalize-dashboard", response_model=S.DashboardResponse, tags=["personalization"],
              responses={**ERRORS, 422: {"model": S.Problem}})
    async def personalize_dashboard(body: S.DashboardRequest, request: Request, response: Response,
                                    p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """The user's dashboard layout (contextual Thompson-sampling bandit; send its reward to
        ``/personalization/feedback`` with the ``decision_id``), tasks they are likely to work on next and likely
        collaborators (collaborative filtering)."""
        ctx = context()
        ctx.directory.check("user", [body.user_id], p.workspace_id)
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("personalize-dashboard", p, body.model_dump(mode="json"),
                                    lambda: ctx.backend.personalization("personalize_dashboard", item),
                                    "personalization_cf", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/personalization/feedback", response_model=S.FeedbackResponse, tags=["personalization"],
              responses={**ERRORS, 422: {"model": S.Problem}})
    async def personalization_feedback(body: S.FeedbackRequest, request: Request, response: Response,
                                       p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """The reward in [0, 1] of a bandit decision (a dashboard layout or a notification channel); it updates
        the bandit in the context the decision was made in, once per decision."""
        ctx = context()
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("personalization-feedback", p, body.model_dump(mode="json"),
                                    lambda: ctx.backend.personalization("feedback", item), "bandit",
                                    request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/rank-notifications", response_model=S.RankNotificationsResponse, tags=["personalization"],
              responses={**ERRORS, 422: {"model": S.Problem}, 503: {"model": S.Problem}})
    async def rank_notifications(body: S.RankNotificationsRequest, request: Request, response: Response,
                                 p: Principal = Depends(principal(Role.MEMBER))) -> dict:
        """One recipient's notifications ordered by predicted engagement (type, sender relevance, project
        importance, time sensitivity, past engagement), with reasons, and the channel for the top one."""
        ctx = context()
        d = ctx.directory
        d.check("user", [body.user_id], p.workspace_id)
        for i, n in enumerate(body.notifications):
            for kind, value in (("user", n.sender_id), ("task", n.task_id), ("project", n.project_id)):
                if value is not None and d.workspace_of(kind, value) not in (None, p.workspace_id):
                    raise ApiError(403, f"notifications[{i}]: {kind} {value!r} belongs to another workspace")
        item = {"user_id": body.user_id, "workspace_id": p.workspace_id, "choose_channel": body.choose_channel,
                "explain_top": body.explain_top,
                "notifications": [n.model_dump() for n in body.notifications]}
        result, rid = await audited("rank-notifications", p, {"user_id": body.user_id,
                                                              "notifications": len(body.notifications)},
                                    lambda: ctx.backend.personalization("rank_notifications", item),
                                    "notification_ranker", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.post(f"{PREFIX}/score-priority", response_model=S.ScorePriorityResponse, tags=["priority"],
              responses={**ERRORS, 422: {"model": S.Problem}, 503: {"model": S.Problem}})
    async def score_priority(body: S.ScorePriorityRequest, request: Request, response: Response,
                             p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """Suggested priority of tasks (XGBoost on what was observable a day after creation), with the class
        probabilities and the features that pushed the suggestion (``pred_contribs``)."""
        ctx = context()
        ctx.directory.check("task", body.task_ids, p.workspace_id)
        item = {**body.model_dump(), "workspace_id": p.workspace_id}
        result, rid = await audited("score-priority", p, body.model_dump(mode="json"),
                                    lambda: ctx.backend.personalization("score_priority", item),
                                    "priority_scorer", request_id(request))
        set_request_id(request, response, rid)
        return result

    @app.get(f"{PREFIX}/models", response_model=S.ModelsResponse, tags=["ops"])
    async def models(p: Principal = Depends(principal(Role.VIEWER))) -> dict:
        """The model versions serving now."""
        return {"models": await context().backend.models()}

    @app.get(f"{PREFIX}/admin/rollout", tags=["admin"])
    async def rollout(p: Principal = Depends(principal(Role.ADMIN))) -> dict:
        """Canary / shadow state per model deployment: mode, share, per-version request counts, error rates and
        p99, rollback events (admin keys only; empty in the plain app, which has no rollout)."""
        return await context().backend.rollout()

    @app.get(f"{PREFIX}/admin/audit", response_model=S.AuditResponse, tags=["admin"])
    async def audit(limit: int = 50, p: Principal = Depends(principal(Role.ADMIN))) -> dict:
        """The latest audit records of the caller's workspace (admin keys only)."""
        if not 1 <= limit <= 1000:
            raise ApiError(422, "limit: must be between 1 and 1000")
        recs = await asyncio.to_thread(context().audit.read, p.workspace_id, None, limit)
        return {"records": [_jsonable(r.to_dict()) for r in recs]}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        m = context().metrics
        text = m.exposition() if m is not None else None
        if text is None:
            return Response("metrics are exported on Ray's Prometheus endpoint\n", media_type="text/plain")
        return Response(text, media_type="text/plain; version=0.0.4")

    return app


MONITORED_ENDPOINTS = frozenset({"assign-task", "predict-timeline", "score-priority", "rank-notifications"})


def log_prediction(ctx: Context, endpoint: str, model_name: str | None, version: str | None, body: Any,
                   result: dict, request_id: str | None) -> None:
    """Hand a successful prediction to the drift monitor's log (``ctx.extra["predictions"]``, a
    :class:`sunday.monitoring.predictions.PredictionLog`): ``submit`` only queues it (a background thread parses and
    writes), so this adds no I/O to the request; any error is counted in ``ctx.extra["prediction_log_errors"]`` and
    swallowed -- monitoring never fails a prediction."""
    plog = ctx.extra.get("predictions") if ctx.extra else None
    if plog is None or endpoint not in MONITORED_ENDPOINTS:
        return
    try:
        plog.submit(endpoint, model_name, version, body, result, request_id)
    except Exception:
        ctx.extra["prediction_log_errors"] = ctx.extra.get("prediction_log_errors", 0) + 1


async def _predict_assignees(backend, summary: dict, candidates: list[str]) -> None:
    """Fill the unassigned action items with the assignment model's pick among the participants (in place)."""
    if not candidates:
        return
    for a in summary["action_items"]:
        if a.get("assignee"):
            continue
        task = {"title": a.get("title") or a["text"], "description": a["text"]}
        try:
            r = unwrap(await backend.assign({"task": task, "candidates": candidates, "top_k": 1, "explain": False,
                                             "weights": None}))
        except ServingError as exc:
            summary["notes"].append(f"no assignee predicted for {a['title']!r}: {exc}")
            continue
        a["assignee"], a["assignee_source"] = r["recommended_user"], "predicted"


async def _create_tasks(ctx: Context, summary: dict, item: dict) -> list[str]:
    """The action items as ``created`` (+ ``assigned``) events through the streaming consumer; their task ids."""
    from sunday.nlp.actions import MeetingSummary, action_item_events

    events = action_item_events(MeetingSummary.model_validate(summary), item)
    unwrap(await ctx.backend.ingest(events))
    ids = list(dict.fromkeys(e["task_id"] for e in events))
    for task_id in ids:
        ctx.directory.add("task", task_id, item["workspace_id"])
    return ids


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(request: Request) -> str | None:
    """The caller's (or Serve's proxy's) ``X-Request-ID`` when well formed: the audit record carries it."""
    rid = request.headers.get("x-request-id")
    return rid if rid and _REQUEST_ID.match(rid) else None


def set_request_id(request: Request, response: Response, rid: str) -> None:
    if request_id(request) != rid:  # Serve's proxy echoes the incoming id itself
        response.headers["X-Request-ID"] = rid


def _jsonable(d: dict) -> dict:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in d.items()}


# -- in process: the plain FastAPI backend ------------------------------------------------------------------------

class LocalBackend:
    """All models in this process (no Ray): the plain FastAPI + uvicorn alternative. Model calls run in the
    thread pool, the way a FastAPI app serves a synchronous model."""

    def __init__(self, assignment=None, features=None, timeline=None, consumer=None, nlp=None, alerts=None,
                 personal=None):
        self.assignment, self.features, self.timeline_model, self.consumer = assignment, features, timeline, consumer
        self.nlp = nlp
        self.alerts = alerts  # AlertStore of the anomaly monitor
        self.personal = personal  # PersonalizationService

    def _nlp(self):
        if self.nlp is None:
            raise ApiError(503, "the NLP service is not loaded in this server")
        return self.nlp

    async def search(self, item: dict) -> dict:
        return await asyncio.to_thread(self._nlp().search, item)

    async def index_document(self, item: dict) -> dict:
        return await asyncio.to_thread(self._nlp().index_document, item)

    async def draft_task(self, item: dict) -> dict:
        return await asyncio.to_thread(self._nlp().draft_task, item)

    async def summarize_meeting(self, item: dict) -> dict:
        return await asyncio.to_thread(self._nlp().summarize_meeting, item)

    async def assign(self, item: dict) -> dict:
        if self.assignment is None:
            raise ApiError(503, "no assignment model is loaded")
        return (await asyncio.to_thread(self.assignment.recommend_batch, [item], self.features))[0]

    async def timeline(self, item: dict) -> dict:
        if self.timeline_model is None:
            raise ApiError(503, "no timeline model is loaded (train one: python train_jobs/timeline.py)")
        return (await asyncio.to_thread(self.timeline_model.predict_batch, [item]))[0]

    async def ingest(self, events: list[dict]) -> dict:
        if self.consumer is None:
            raise ApiError(503, "no streaming consumer in this server")
        return await asyncio.to_thread(ingest_events, self.consumer, events)

    async def anomalies(self, item: dict) -> dict:
        return await read_anomalies(self.alerts, item)

    async def personalization(self, method: str, item: dict) -> dict:
        if self.personal is None:
            raise ApiError(503, "the personalization service is not loaded in this server")
        return await asyncio.to_thread(getattr(self.personal, method), item)

    async def rollout(self) -> dict:
        return {}  # canary / shadow rollout is a Serve deployment feature (serve_apps/app.py)

    async def models(self) -> list[dict]:
        out = [m.info() for m in (self.assignment, self.timeline_model) if m is not None]
        return out + (self.personal.info() if self.personal is not None else [])


async def read_anomalies(store, item: dict) -> dict:
    """A project's alerts and its team's from an :class:`~sunday.models.anomaly.alerts.AlertStore` (``item``:
    workspace_id, project_id, since, until, limit), as the anomalies route answers them."""
    if store is None:
        raise ApiError(503, "no anomaly monitor in this server")

    def read() -> dict:
        ws, project = item["workspace_id"], item["project_id"]
        team = store.team_of(ws, project)
        alerts = store.query(ws, project_id=project, team_id=team, since=item.get("since"),
                             until=item.get("until"), limit=int(item.get("limit", 100)))
        return {"project_id": project, "team_id": team, "alerts": [a.to_dict() for a in alerts],
                "count": len(alerts)}

    return await asyncio.to_thread(read)


def ingest_events(consumer, events: list[dict]) -> dict:
    """Run events through a :class:`StreamingConsumer`; counts per pushed feature group."""
    from sunday.features.streaming import validate_event

    events = [{k: v for k, v in e.items() if v is not None} for e in events]
    for i, e in enumerate(events):  # all checked before any is applied
        try:
            validate_event(e)
        except SundayError as exc:
            raise ApiError(422, f"events[{i}]: {exc}") from None
    pushed: dict[str, int] = {}
    accepted = duplicates = 0
    for e in events:
        done = consumer.process(e)
        if getattr(done, "duplicate", False):
            duplicates += 1
            continue
        accepted += 1
        for group, ids in done.pushed.items():
            pushed[group] = pushed.get(group, 0) + len(ids)
    return {"accepted": accepted, "duplicates": duplicates, "pushed": pushed}
