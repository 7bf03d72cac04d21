"""The feature groups: one Feast FeatureView each, one Parquet dataset each in the offline store.

This module is the contract between the Ray Data pipelines (which write the groups), the Feast repository (which
declares them), the streaming consumer (which pushes fresh rows) and validation (which checks them). Every group's
Parquet has its entity key column, ``event_timestamp`` (tz-aware UTC: the moment the values are true *as of*;
only events at or before it went into them) and the feature columns below, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

TIMESTAMP = "event_timestamp"
TS_TYPE = pa.timestamp("us", tz="UTC")

# dtype names used below -> Arrow types (Feast types are derived from these in sunday.features.repo)
DTYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "float_list": pa.list_(pa.float32()),
    "string_list": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str  # a key of DTYPES
    description: str
    min: float | None = None  # valid range, checked by validation
    max: float | None = None
    nullable: bool = False


@dataclass(frozen=True)
class FeatureGroup:
    name: str
    entity: str  # user | task | project | team
    join_key: str
    features: tuple[Feature, ...]
    ttl_days: int
    cadence: str  # when a row is written
    description: str

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def arrow_schema(self) -> pa.Schema:
        fields = [pa.field(self.join_key, pa.string(), nullable=False), pa.field(TIMESTAMP, TS_TYPE, nullable=False)]
        fields += [pa.field(f.name, DTYPES[f.dtype]) for f in self.features]
        return pa.schema(fields)


F = Feature

USER_WORKLOAD = FeatureGroup(
    name="user_workload", entity="user", join_key="user_id", ttl_days=30,
    cadence="end of every day on which the user had an event (assignment, status change, time log, ...)",
    description="how loaded a user is and how they have delivered so far",
    features=(
        F("open_task_count", "int", "tasks assigned to the user and not done/cancelled", 0),
        F("open_points", "float", "story points of those open tasks", 0),
        F("hours_logged_7d", "float", "hours logged in the 7 days up to the timestamp", 0),
        F("capacity_utilisation", "float", "hours_logged_7d / declared weekly capacity", 0),
        F("completed_count", "int", "tasks the user completed so far", 0),
        F("mean_completion_hours", "float", "mean hours from assignment to completion of completed tasks", 0,
          nullable=True),
        F("completion_rate", "float", "completed / assigned so far", 0, 1, nullable=True),
        F("on_time_rate", "float", "share of completed tasks with a due date done by it", 0, 1, nullable=True),
        F("review_cycles", "float", "mean number of in_review entries per completed task", 0, nullable=True),
        F("reassignment_count", "int", "reassignments away from the user so far", 0),
    ),
)

USER_SKILLS = FeatureGroup(
    name="user_skills", entity="user", join_key="user_id", ttl_days=365,
    cadence="end of every week in which the user completed a task",
    description="what a user has shown they can do: built only from tasks completed before the timestamp",
    features=(
        F("skill_embedding", "float_list", "mean all-MiniLM-L6-v2 embedding (384) of completed tasks' title+description"),
        F("skill_counts", "float_list", "completed-task counts per required skill, in the order of skill_vocab()"),
        F("skill_task_count", "int", "completed tasks the profile is built from", 0),
    ),
)

TASK_FEATURES = FeatureGroup(
    name="task_features", entity="task", join_key="task_id", ttl_days=365,
    cadence="at creation, then at every scope change",
    description="what a task asks for",
    features=(
        F("story_points", "float", "current estimate", 0, nullable=True),
        F("priority_score", "int", "low 0, medium 1, high 2, critical 3", 0, 3),
        F("required_skill_count", "int", "number of required skills", 0),
        F("required_skills", "string_list", "required skills"),
        F("dependency_count", "int", "tasks it depends on", 0),
        F("description_length", "int", "characters of title + description", 0),
        F("complexity", "float", "proxy: log1p(description_length) + skills + dependencies + log1p(points)", 0),
        F("days_to_due", "float", "days from the timestamp to the due date (negative: overdue)", nullable=True),
    ),
)

PROJECT_VELOCITY = FeatureGroup(
    name="project_velocity", entity="project", join_key="project_id", ttl_days=30,
    cadence="end of every day from the project's first event to its last",
    description="the project's daily time series",
    features=(
        F("points_done", "float", "story points completed that day", 0),
        F("tasks_done", "int", "tasks completed that day", 0),
        F("hours_logged", "float", "hours logged that day", 0),
        F("tasks_created", "int", "tasks created that day", 0),
        F("backlog_tasks", "int", "open tasks at day end", 0),
        F("backlog_points", "float", "open story points at day end", 0),
        F("blocked_tasks", "int", "open tasks waiting on an unfinished dependency at day end", 0),
        F("scope_changes", "int", "scope_changed events that day", 0),
        F("critical_bugs", "int", "open critical-priority tasks at day end", 0),
        F("team_changes", "int", "users first assigned in the project that day", 0),
        F("reassignments", "int", "reassigned events that day", 0),
    ),
)

TEAM_BALANCE = FeatureGroup(
    name="team_balance", entity="team", join_key="team_id", ttl_days=30,
    cadence="end of every day on which a team member had an event",
    description="how evenly a team's open work is spread",
    features=(
        F("open_points_gini", "float", "Gini of open story points over the team's members (0 even, 1 one person)", 0, 1),
        F("open_points_total", "float", "open story points of the team", 0),
        F("max_member_share", "float", "largest member's share of the open points", 0, 1),
        F("member_count", "int", "members of the team", 0),
    ),
)

GROUPS: dict[str, FeatureGroup] = {g.name: g for g in (USER_WORKLOAD, USER_SKILLS, TASK_FEATURES, PROJECT_VELOCITY,
                                                      TEAM_BALANCE)}

# which groups each model reads (one Feast FeatureService each)
SERVICES: dict[str, tuple[str, ...]] = {
    "assignment": ("user_workload", "user_skills", "task_features", "team_balance"),
    "timeline": ("project_velocity", "team_balance"),
    "effort": ("task_features",),
    "anomaly": ("project_velocity", "team_balance", "user_workload"),
    "personalization": ("user_workload",),
}


def skill_vocab() -> tuple[str, ...]:
    """The skill names, in the order ``skill_counts`` uses (the simulator's skill list)."""
    from sunday.data.simulator.config import SKILLS

    return tuple(SKILLS)
