"""Pydantic request / response models of the serving API (``/api/v1/ml/...``): they are the OpenAPI schema at
``/docs``, and FastAPI answers a request that does not fit them with HTTP 422 naming the field."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DATE_MIN, DATE_MAX = datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2200, 1, 1, tzinfo=timezone.utc)


def _in_range(value: datetime) -> datetime:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    if not DATE_MIN <= aware <= DATE_MAX:
        raise ValueError(f"must lie between {DATE_MIN.date()} and {DATE_MAX.date()}")
    return value


#: a date the models can compute with (1970-2200; 422 otherwise)
Date = Annotated[datetime, AfterValidator(_in_range)]

Priority = Literal["low", "medium", "high", "critical"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TaskIn(Strict):
    task_id: str = Field("new-task", max_length=200)
    title: str = Field("", max_length=2_000)
    description: str = Field("", max_length=20_000)
    required_skills: list[str] = Field(default_factory=list, max_length=50)
    story_points: float | None = Field(None, ge=0, le=1_000)
    priority: Priority = "medium"
    due_date: Date | None = None
    dependency_count: int = Field(0, ge=0, le=1_000)


class Weights(Strict):
    score: float = Field(0.4, ge=0, le=100)
    completion: float = Field(0.3, ge=0, le=100)
    quality: float = Field(0.2, ge=0, le=100)
    balance: float = Field(0.1, ge=0, le=100)


class AssignRequest(Strict):
    task: TaskIn
    candidates: list[str] = Field(..., min_length=1, max_length=500, description="user ids of the workspace")
    weights: Weights | None = None
    top_k: int | None = Field(None, ge=1, le=500, description="alternatives to return (default: all)")
    explain: bool = Field(True, description="feature contributions for the best candidates")


class Reason(BaseModel):
    feature: str
    description: str
    value: float | None
    contribution: float


class Candidate(BaseModel):
    user_id: str
    score: float
    completion_probability: float
    expected_quality: float
    estimated_hours: float | None
    gini_after: float
    final_score: float
    reasons: list[Reason] = Field(default_factory=list)


class AssignResponse(BaseModel):
    recommended_user: str
    confidence: float = Field(..., description="the recommended user's share of the assignment score")
    alternatives: list[Candidate]
    model_name: str = "task_assignment"
    model_version: str | None
    weights: dict[str, float]
    latency_ms: float


class DayIn(Strict):
    """One day of the project's ``project_velocity`` series (counts and points: >= 0)."""

    event_timestamp: Date
    points_done: float = Field(0, ge=0)
    tasks_done: float = Field(0, ge=0)
    hours_logged: float = Field(0, ge=0)
    tasks_created: float = Field(0, ge=0)
    backlog_tasks: float = Field(0, ge=0)
    backlog_points: float = Field(0, ge=0)
    blocked_tasks: float = Field(0, ge=0)
    scope_changes: float = Field(0, ge=0)
    critical_bugs: float = Field(0, ge=0)
    team_changes: float = Field(0, ge=0)
    reassignments: float = Field(0, ge=0)


class TimelineRequest(Strict):
    project_id: str = Field(..., min_length=1, max_length=200)
    history: list[DayIn] | None = Field(None, max_length=2_000, description="daily project_velocity rows up to "
                                        "today; omitted: read from the feature store")
    start_date: Date | None = None
    planned_end: Date | None = None
    remaining_points: float | None = Field(None, ge=0)
    team_size: float | None = Field(None, ge=0, le=10_000)
    team_capacity_hours: float | None = Field(None, ge=0)
    mc_samples: int = Field(0, ge=0, le=200, description="MC-dropout passes (0: deterministic)")


class TimelineResponse(BaseModel):
    project_id: str
    as_of: str
    expected: str
    best: str
    worst: str
    p10_days: float
    p50_days: float
    p90_days: float
    planned_end: str
    delay_days: float
    risk: dict[str, float]
    risk_class: str
    drivers: dict[str, Any]
    warnings: list[str]
    uncertainty: dict[str, float] | None = None
    at_risk_tasks: list[dict[str, Any]] = Field(default_factory=list)
    model_name: str = "project_timeline"
    model_version: str | None
    latency_ms: float


EventType = Literal["created", "assigned", "status_changed", "commented", "completed", "reassigned",
                    "scope_changed", "time_logged"]


Status = Literal["todo", "in_progress", "in_review", "blocked", "done", "cancelled"]


class EventIn(Strict):
    event_id: str = Field(..., min_length=1, max_length=200)
    workspace_id: str = Field(..., min_length=1, max_length=200)
    project_id: str | None = Field(None, max_length=200)
    task_id: str = Field(..., min_length=1, max_length=200)
    event_type: EventType
    timestamp: Date
    user_id: str | None = Field(None, max_length=200)
    actor_id: str | None = Field(None, max_length=200)
    from_status: Status | None = None
    to_status: Status | None = None
    hours: float | None = Field(None, ge=0, le=1_000)
    story_points: float | None = Field(None, ge=0, le=1_000)
    text: str | None = Field(None, max_length=20_000)


class EventsRequest(Strict):
    events: list[EventIn] = Field(..., min_length=1, max_length=1_000)


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int
    pushed: dict[str, int]
    latency_ms: float


class ModelInfo(BaseModel):
    name: str
    version: str | None
    alias: str | None
    loaded_at: str | None


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class AuditRecord(BaseModel):
    model_config = ConfigDict(extra="allow")


class AuditResponse(BaseModel):
    records: list[dict[str, Any]]


class Problem(BaseModel):
    detail: str


# -- NLP -------------------------------------------------------------------------------------------------------------

Collection = Literal["tasks", "comments", "documents", "meeting_turns"]


class SearchRequest(Strict):
    query: str = Field(..., min_length=1, max_length=100_000, description="the question or keywords (the service "
                       "refuses more than 1,000 characters with 413)")
    collections: list[Collection] | None = Field(None, min_length=1, description="default: all four")
    project_ids: list[str] | None = Field(None, max_length=200, description="limit to these projects")
    user_id: str | None = Field(None, max_length=200, description="search as this user (adds the restricted "
                                "items shared with them)")
    include_restricted: bool = Field(False, description="admin keys only: every item of the workspace")
    top_k: int | None = Field(None, ge=1, le=50, description="hits after reranking (default 10)")
    answer: bool = Field(True, description="also answer from the best hits, citing them as [1], [2]")


class SearchHitOut(BaseModel):
    rank: int
    collection: str
    key: str
    title: str
    text: str
    dense_score: float
    rerank_score: float | None
    payload: dict[str, Any]


class SearchResponse(BaseModel):
    query: str
    hits: list[SearchHitOut]
    answer: str | None
    answer_source: str | None = Field(None, description="llm, or extractive when the LLM cited no source")
    citations: list[int]
    reranked: bool
    timings_ms: dict[str, float]
    notes: list[str]
    latency_ms: float


class DocumentRequest(Strict):
    doc_id: str = Field(..., min_length=1, max_length=200)
    title: str = Field("", max_length=500)
    text: str = Field(..., min_length=1, max_length=2_000_000, description="paragraphs separated by blank lines")
    project_id: str | None = Field(None, max_length=200)
    visibility: Literal["workspace", "restricted"] = "workspace"
    allowed_users: list[str] = Field(default_factory=list, max_length=1_000)


class DocumentResponse(BaseModel):
    doc_id: str
    passages: int
    latency_ms: float


class ProjectIn(Strict):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=2_000)
    tags: list[str] = Field(default_factory=list, max_length=30)
    recent_titles: list[str] = Field(default_factory=list, max_length=20)


class DraftRequest(Strict):
    brief: str = Field(..., min_length=1, max_length=100_000, description="a short description of the work "
                       "(the generator refuses long ones with 413)")
    project_id: str | None = Field(None, max_length=200, description="a project of the workspace: its recent tasks "
                                   "and estimates inform the draft")
    project: ProjectIn | None = None


class DraftResponse(BaseModel):
    title: str
    description: str
    acceptance_criteria: list[str]
    technical_requirements: list[str]
    story_points: float | None
    story_points_source: str
    tags: list[str]
    model: str
    repaired: bool
    repairs: list[str]
    attempts: int
    latency_ms: float


class TurnIn(Strict):
    speaker: str = Field("", max_length=200)
    content: str = Field(..., max_length=100_000)


class ParticipantIn(Strict):
    user_id: str = Field(..., min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)


class MeetingRequest(Strict):
    meeting_id: str = Field(..., min_length=1, max_length=200)
    title: str = Field("", max_length=500)
    date: Date | None = Field(None, description="the meeting day: due dates like 'by Friday' are relative to it")
    project_id: str | None = Field(None, max_length=200)
    participants: list[ParticipantIn] = Field(default_factory=list, max_length=200, description="users of the "
                                              "workspace; a speaker or a name in the text is matched to them")
    transcript: list[TurnIn] = Field(..., min_length=1, max_length=100_000, description="the turns (over 5,000 "
                                     "turns or 200,000 characters is refused with 413)")
    method: Literal["extractive", "llm", "hybrid"] = Field("extractive", description="the discussion summary: "
                                                           "extractive (default) or from the LLM")
    create_tasks: bool = Field(False, description="turn the action items into tasks of the workspace")
    index: bool = Field(True, description="index the transcript for search")


class MeetingResponse(BaseModel):
    meeting_id: str
    decisions: list[dict[str, Any]]
    action_items: list[dict[str, Any]]
    discussion_summary: str
    follow_up_needed: bool
    follow_up_reasons: list[str]
    notes: list[str]
    created_tasks: list[str]
    indexed_passages: int
    latency_ms: float


# -- anomalies -------------------------------------------------------------------------------------------------------

class AnomalyOut(BaseModel):
    alert_id: str
    entity_type: Literal["project", "team"] = Field(description="a project's own signal, or its team's")
    entity_id: str
    project_id: str | None
    team_id: str | None
    signal: str = Field(description="velocity, tasks_created, stuck_days, task_reassignments or assigned_share")
    kind: str = Field(description="what it points at: velocity_drop, creation_spike, stuck_task, "
                                  "reassignment_churn or workload_concentration")
    start: date = Field(description="first unusual day (UTC)")
    end: date = Field(description="last unusual day so far")
    open: bool = Field(description="still unusual on the last day the monitor closed")
    score: float = Field(description="peak combined detector score in [0, 1]")
    value: float = Field(description="the signal's value at the peak")
    baseline: float = Field(description="its usual value then (median of the previous 4 weeks)")
    detectors: list[str] = Field(description="detectors that found the alert's days rare")
    subject: str | None = Field(description="the task or team member the alert is about, when there is one")
    reason: str


class AnomaliesResponse(BaseModel):
    project_id: str
    team_id: str | None = Field(description="the project's team (its alerts are included)")
    alerts: list[AnomalyOut]
    count: int
    latency_ms: float


# -- personalization and priority --------------------------------------------------------------------------------

class Scored(BaseModel):
    id: str
    score: float


class DashboardRequest(Strict):
    user_id: str = Field(..., min_length=1, max_length=200)
    top_k: int = Field(5, ge=1, le=50, description="recommended tasks and collaborators to return")


class DashboardResponse(BaseModel):
    user_id: str
    layout: str = Field(description="the dashboard layout variant the bandit chose for this user now")
    decision_id: str = Field(description="send the reward for this choice to /personalization/feedback")
    context: dict[str, float] = Field(description="the context the bandit saw (from the user's online features)")
    tasks: list[Scored] = Field(description="tasks the user is likely to work on next (collaborative filtering)")
    collaborators: list[Scored] = Field(description="colleagues the user is likely to work with")
    recommender: str = Field(description="'model' (the personalization_cf champion), 'popularity' (cold start: "
                                         "the workspace's most active tasks) or 'none' (no interaction history)")
    model_version: str | None = None
    latency_ms: float


class FeedbackRequest(Strict):
    decision_id: str = Field(..., min_length=1, max_length=200)
    reward: float = Field(..., ge=0, le=1, description="engagement with the choice, in [0, 1]")
    arm: str | None = Field(None, max_length=200, description="the arm the reward is for (checked against the "
                                                               "decision when given)")


class FeedbackResponse(BaseModel):
    decision_id: str
    bandit: str
    arm: str
    reward: float
    accepted: bool = Field(description="false when this decision's reward was already recorded (counted once)")
    latency_ms: float


class NotificationIn(Strict):
    notification_id: str | None = Field(None, max_length=200)
    type: str = Field(..., max_length=50, description="assigned, reassigned, mention, comment, status_changed, "
                                                      "completed or due_soon")
    sender_id: str | None = Field(None, max_length=200)
    task_id: str | None = Field(None, max_length=200)
    project_id: str | None = Field(None, max_length=200)
    created_at: Date
    due_date: Date | None = None


class RankNotificationsRequest(Strict):
    user_id: str = Field(..., min_length=1, max_length=200, description="the recipient")
    notifications: list[NotificationIn] = Field(..., min_length=1, max_length=500)
    choose_channel: bool = Field(True, description="also pick the delivery channel of the top notification")
    explain_top: int = Field(5, ge=0, le=500, description="reasons for this many of the best (about 1 ms each)")


class RankedNotification(BaseModel):
    index: int = Field(description="position of the notification in the request")
    notification_id: str | None
    type: str
    rank: int = Field(description="1 = show first")
    score: float
    reasons: list[dict[str, Any]]


class RankNotificationsResponse(BaseModel):
    user_id: str
    notifications: list[RankedNotification]
    channel: str | None = Field(None, description="delivery channel for the top notification (bandit)")
    decision_id: str | None = None
    model_version: str | None = None
    latency_ms: float


class ScorePriorityRequest(Strict):
    task_ids: list[str] = Field(..., min_length=1, max_length=500, description="tasks of the caller's workspace")
    explain: bool = True


class PriorityOut(BaseModel):
    task_id: str
    priority: Priority = Field(description="the suggested priority class")
    score: float = Field(description="expected urgency in [0, 1] (probability-weighted class value / 3)")
    probabilities: dict[str, float]
    current_priority: str | None = Field(None, description="the priority the task has now")
    reasons: list[dict[str, Any]] = Field(default_factory=list)


class ScorePriorityResponse(BaseModel):
    scores: list[PriorityOut]
    model_version: str | None = None
    latency_ms: float
