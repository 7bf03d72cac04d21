"""The assignment service: a task payload + candidate user ids -> ranked recommendations, features from the
online store. The Serve deployment (``serve_apps/``) is a thin wrapper over this class.

The task's features are computed from the payload the way the feature platform computes ``task_features``
(``complexity`` = log1p(characters of title + description) + required skills + dependencies + log1p(points));
each candidate's ``user_workload`` and ``user_skills`` come from the online store (their latest values). A
candidate the online store has never seen is an error (an unknown user), not a silently empty profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sunday.models.assignment.ranker import AssignmentRanker, InvalidInput, RankWeights

PRIORITY_SCORE = {"low": 0, "medium": 1, "high": 2, "critical": 3}
USER_GROUPS = ("user_workload", "user_skills")
MAX_CANDIDATES = 500


class UnknownUser(InvalidInput):
    """A candidate id the online store holds no features for."""


@dataclass
class TaskRequest:
    title: str
    description: str = ""
    required_skills: tuple[str, ...] = ()
    story_points: float | None = None
    priority: str = "medium"
    due_date: datetime | None = None
    dependency_count: int = 0
    task_id: str = "new-task"

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> "TaskRequest":
        if not isinstance(payload, Mapping):
            raise InvalidInput("task must be an object with 'title', 'description', ...")
        title = str(payload.get("title") or "").strip()
        description = str(payload.get("description") or "").strip()
        if not title and not description:
            raise InvalidInput("task: field 'title' or 'description' must hold text")
        priority = str(payload.get("priority") or "medium").lower()
        if priority not in PRIORITY_SCORE:
            raise InvalidInput(f"task: field 'priority' must be one of {', '.join(PRIORITY_SCORE)}, got {priority!r}")
        points = payload.get("story_points")
        if points is not None:
            try:
                points = float(points)
            except (TypeError, ValueError):
                raise InvalidInput(f"task: field 'story_points' must be a number, got {points!r}") from None
            if not np.isfinite(points) or points < 0:
                raise InvalidInput(f"task: field 'story_points' must be >= 0, got {points}")
        skills = payload.get("required_skills") or ()
        if isinstance(skills, str) or not all(isinstance(s, str) for s in skills):
            raise InvalidInput("task: field 'required_skills' must be a list of skill names")
        due = payload.get("due_date")
        if due is not None and not isinstance(due, datetime):
            try:
                due = pd.Timestamp(due).to_pydatetime()
            except (ValueError, TypeError):
                raise InvalidInput(f"task: field 'due_date' is not a date: {due!r}") from None
        return cls(title=title, description=description, required_skills=tuple(skills), story_points=points,
                   priority=priority, due_date=due, dependency_count=int(payload.get("dependency_count") or 0),
                   task_id=str(payload.get("task_id") or "new-task"))

    def features(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(timezone.utc)
        text_len = len(self.title) + len(self.description)
        due = self.due_date
        if due is not None and due.tzinfo is None:
            due = due.replace(tzinfo=timezone.utc)
        return {
            "task_id": self.task_id, "title": self.title, "description": self.description,
            "required_skills": list(self.required_skills), "story_points": self.story_points,
            "priority_score": PRIORITY_SCORE[self.priority], "required_skill_count": len(self.required_skills),
            "dependency_count": self.dependency_count, "description_length": text_len,
            "complexity": float(np.log1p(text_len) + len(self.required_skills) + self.dependency_count
                                + np.log1p(self.story_points or 0.0)),
            "days_to_due": None if due is None else (due - now).total_seconds() / 86400.0,
        }


def task_embedder(settings):
    """``[title, description] -> (1, 384)`` MiniLM task vectors, the feature platform's way (its cache)."""
    from sunday.features.embeddings import TextEmbedder

    embedder = TextEmbedder.for_settings(settings)
    return lambda texts: embedder.task_vectors(texts[:1], texts[1:])


class AssignmentService:
    def __init__(self, ranker: AssignmentRanker, online: Any, embed: Any = None, version: str | None = None):
        """``online``: an :class:`sunday.features.online.OnlineFeatures`; ``embed``: texts -> vectors (MiniLM) for
        the task embedding, or None to leave ``embed_sim`` out."""
        self.ranker = ranker
        self.online = online
        self.embed = embed
        self.version = version

    @classmethod
    def from_registry(cls, settings, name: str = "task_assignment", alias: str = "champion",
                      embeddings: bool = True) -> "AssignmentService":
        import tempfile
        from pathlib import Path

        from sunday import tracking
        from sunday.features.online import OnlineFeatures

        tracking.configure(settings)
        version = tracking.alias_version(name, alias)
        if version is None:
            from sunday.errors import SundayError

            raise SundayError(f"no '{alias}' version of model '{name}' (run: python train_jobs/assignment.py)")
        ranker = AssignmentRanker.load(tracking.download_version(name, version, Path(tempfile.mkdtemp())))
        embed = task_embedder(settings) if embeddings else None
        return cls(ranker, OnlineFeatures(settings), embed=embed, version=version)

    def candidates(self, user_ids: Sequence[str]) -> pd.DataFrame:
        """Latest online features of each candidate; UnknownUser for ids the store has never seen."""
        if not isinstance(user_ids, (list, tuple)) or not user_ids:
            raise InvalidInput("candidates: give a non-empty list of user ids")
        if len(user_ids) > MAX_CANDIDATES:
            raise InvalidInput(f"candidates: at most {MAX_CANDIDATES} per request, got {len(user_ids)}")
        ids = [str(u) for u in user_ids]
        if any(not u.strip() for u in ids):
            raise InvalidInput("candidates: user ids must not be empty")
        cols = self.online.get_columns(list(USER_GROUPS), [{"user_id": u} for u in ids])
        frame = pd.DataFrame(cols)
        known = frame["completed_count"].notna() | frame["skill_task_count"].notna() \
            | frame["open_task_count"].notna()
        if not known.all():
            missing = [u for u, k in zip(ids, known) if not k]
            raise UnknownUser(f"candidates: unknown user id(s) {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        return frame

    def recommend(self, task: Mapping[str, Any], candidate_ids: Sequence[str],
                  weights: RankWeights | Mapping[str, float] | None = None, top_k: int | None = None) -> dict:
        request = TaskRequest.of(task)
        feats = request.features()
        if self.embed is not None:
            feats["task_embedding"] = np.asarray(self.embed([request.title, request.description])[0])
        frame = self.candidates(candidate_ids)
        recs = self.ranker.rank(feats, frame, weights=weights)
        shown = recs if top_k is None else recs[: max(1, int(top_k))]
        best = recs[0]
        return {"recommended_user": best.user_id, "confidence": best.score,
                "alternatives": [r.to_dict() for r in shown], "model_version": self.version,
                "weights": RankWeights.of(weights).__dict__}
