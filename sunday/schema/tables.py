"""The workspace data model as pyarrow schemas.

Timestamps are naive UTC microseconds (``timestamp[us]``). Identifiers are strings, unique within their table.
Dataset-specific tables (sprint snapshots, delay-risk snapshots, meeting queries, ...) live in
:mod:`sunday.schema.benchmark_tables` and register themselves the same way.
"""

from __future__ import annotations

import pyarrow as pa

from sunday.schema.spec import Check, TableSpec, register

TS = pa.timestamp("us")
STR = pa.string()
F64 = pa.float64()
I64 = pa.int64()

PRIORITIES = ("low", "medium", "high", "critical")
TASK_STATUSES = ("todo", "in_progress", "in_review", "blocked", "done", "cancelled")
EVENT_TYPES = (
    "created", "assigned", "status_changed", "commented", "completed", "reassigned", "scope_changed", "time_logged",
)

WORKSPACES = register(TableSpec(
    name="workspaces",
    schema=pa.schema([("workspace_id", STR), ("name", STR), ("source", STR), ("created_at", TS)]),
    key="workspace_id", required=("workspace_id", "name"),
    checks=(Check("workspace_id", nonempty=True),),
    description="a tenant: an organisation's space, or one imported project",
))

USERS = register(TableSpec(
    name="users",
    schema=pa.schema([
        ("user_id", STR), ("workspace_id", STR), ("name", STR), ("team_id", STR),
        ("skills", pa.list_(STR)), ("weekly_capacity_hours", F64), ("timezone", STR),
    ]),
    key="user_id", required=("user_id", "workspace_id"),
    checks=(Check("user_id", nonempty=True), Check("weekly_capacity_hours", min=0, max=168)),
    description="a person who can be assigned work (declared skills, weekly capacity, time zone)",
))

TEAMS = register(TableSpec(
    name="teams",
    schema=pa.schema([("team_id", STR), ("workspace_id", STR), ("name", STR)]),
    key="team_id", required=("team_id", "workspace_id"),
))

PROJECTS = register(TableSpec(
    name="projects",
    schema=pa.schema([
        ("project_id", STR), ("workspace_id", STR), ("team_id", STR), ("name", STR),
        ("start_date", TS), ("planned_end", TS),
    ]),
    key="project_id", required=("project_id", "workspace_id"),
))

TASKS = register(TableSpec(
    name="tasks",
    schema=pa.schema([
        ("task_id", STR), ("workspace_id", STR), ("project_id", STR), ("title", STR), ("description", STR),
        ("required_skills", pa.list_(STR)), ("story_points", F64), ("priority", STR), ("status", STR),
        ("assignee_id", STR), ("created_at", TS), ("due_date", TS), ("dependencies", pa.list_(STR)),
        ("split", STR), ("source_key", STR), ("source_order", I64),
    ]),
    key="task_id", required=("task_id", "workspace_id"),
    checks=(
        Check("task_id", nonempty=True),
        Check("story_points", min=0),
        Check("priority", allowed=PRIORITIES),
        Check("status", allowed=TASK_STATUSES),
        Check("split", allowed=("train", "val", "test")),
    ),
    description="a unit of work; split/source_key/source_order keep provenance of imported records",
))

TASK_EVENTS = register(TableSpec(
    name="task_events",
    schema=pa.schema([
        ("event_id", STR), ("workspace_id", STR), ("project_id", STR), ("task_id", STR),
        ("event_type", STR), ("timestamp", TS), ("user_id", STR), ("actor_id", STR),
        ("from_status", STR), ("to_status", STR), ("hours", F64), ("story_points", F64), ("text", STR),
    ]),
    key="event_id", required=("event_id", "workspace_id", "task_id", "event_type", "timestamp"),
    checks=(
        Check("event_type", allowed=EVENT_TYPES),
        Check("from_status", allowed=TASK_STATUSES),
        Check("to_status", allowed=TASK_STATUSES),
        Check("hours", min=0),
        Check("story_points", min=0),
    ),
    description="the observable event log: created, assigned, status changes, comments, completion, "
                "reassignment, scope change, time logged",
))

SPRINTS = register(TableSpec(
    name="sprints",
    schema=pa.schema([
        ("sprint_id", STR), ("workspace_id", STR), ("project_id", STR), ("name", STR),
        ("start_date", TS), ("end_date", TS), ("planned_days", F64), ("committed_points", F64),
        ("delivered_points", F64),
    ]),
    key="sprint_id", required=("sprint_id", "workspace_id"),
    checks=(Check("planned_days", min=0), Check("committed_points", min=0)),
))

MEETINGS = register(TableSpec(
    name="meetings",
    schema=pa.schema([
        ("meeting_id", STR), ("workspace_id", STR), ("project_id", STR), ("title", STR), ("started_at", TS),
        ("split", STR), ("domain", STR),
    ]),
    key="meeting_id", required=("meeting_id", "workspace_id"),
    checks=(Check("split", allowed=("train", "val", "test")),),
))

MEETING_TURNS = register(TableSpec(
    name="meeting_turns",
    schema=pa.schema([("meeting_id", STR), ("turn_index", I64), ("speaker", STR), ("content", STR)]),
    required=("meeting_id", "turn_index", "content"),
    checks=(Check("turn_index", min=0),),
    description="speaker turns in order",
))

METRIC_SERIES = register(TableSpec(
    name="metric_series",
    schema=pa.schema([("series_id", STR), ("workspace_id", STR), ("timestamp", TS), ("value", F64)]),
    required=("series_id", "timestamp", "value"),
    description="one point of a named metric series (project velocity, a NAB series, ...)",
))

ANOMALY_WINDOWS = register(TableSpec(
    name="anomaly_windows",
    schema=pa.schema([("series_id", STR), ("workspace_id", STR), ("start", TS), ("end", TS), ("kind", STR)]),
    required=("series_id", "start", "end"),
    description="a labelled anomaly window on a metric series",
))

NOTIFICATION_IMPRESSIONS = register(TableSpec(
    name="notification_impressions",
    schema=pa.schema([
        ("impression_id", STR), ("workspace_id", STR), ("user_id", STR), ("timestamp", TS), ("item_id", I64),
        ("position", I64), ("clicked", I64), ("propensity", F64), ("policy", STR), ("campaign", STR),
        ("context", pa.list_(STR)), ("affinity", pa.list_(F64)),
    ]),
    key="impression_id", required=("impression_id", "workspace_id", "item_id", "clicked"),
    checks=(Check("clicked", min=0, max=1), Check("propensity", min=0, max=1), Check("position", min=0)),
    description="a shown item (notification, recommendation) with the logging policy's propensity",
))

# dataset-specific tables register themselves on import
from sunday.schema import benchmark_tables  # noqa: E402,F401
