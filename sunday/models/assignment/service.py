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


def task_embedder(settings, cache: str = "readwrite"):
    """``(titles, descriptions) -> (n, 384)`` MiniLM task vectors, the feature platform's way.

    ``cache``: ``"readwrite"`` goes through the platform's embedding cache and adds new texts to it (the demo,
    jobs); ``"readonly"`` (serving) reads the platform's cache once -- every task the platform has seen is
    already embedded there -- and encodes only unseen texts, kept in a bounded in-memory LRU (replicas never write
    to disk, memory never grows with traffic); ``"none"`` always encodes."""
    from sunday.features.embeddings import TextEmbedder

    embedder = TextEmbedder.for_settings(settings, progress=False)
    if cache == "readwrite":
        return embedder.task_vectors
    if cache not in ("readonly", "none"):
        raise ValueError(f"cache must be readwrite, readonly or none, got {cache!r}")
    return ServingTextEncoder(embedder if cache == "readonly" else None, embedder.text_mode)


class ServingTextEncoder:
    """Task vectors for serving: a read-only copy of the platform's embedding cache, then one encoder call per
    batch for the texts it lacks (LRU of ``max_new`` recent ones)."""

    def __init__(self, embedder: Any | None, mode: str, max_new: int = 20_000):
        from collections import OrderedDict

        from sunday.features.embeddings import DIM, EmbeddingLookup

        self.mode, self.max_new = mode, max_new
        self.known = embedder.lookup() if embedder is not None else EmbeddingLookup(np.zeros(0), np.zeros((0, DIM)))
        self.recent: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self.stats = {"cached": 0, "encoded": 0}

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        from sunday.features.embeddings import DIM, load_model, text_keys

        keys = text_keys(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        pos, found = self.known.find(keys)
        out[found] = self.known.vectors[pos[found]]
        todo: dict[int, list[int]] = {}
        for i in np.flatnonzero(~found):
            k = int(keys[i])
            if k in self.recent:
                out[i] = self.recent[k]
                self.recent.move_to_end(k)
            else:
                todo.setdefault(k, []).append(int(i))
        if todo:
            firsts = [idx[0] for idx in todo.values()]
            vecs = load_model().encode([texts[i] for i in firsts], batch_size=64, convert_to_numpy=True,
                                       show_progress_bar=False)
            for (k, idx), v in zip(todo.items(), vecs):
                out[idx] = v
                self.recent[k] = v
            while len(self.recent) > self.max_new:
                self.recent.popitem(last=False)
        self.stats["encoded"] += len(todo)
        self.stats["cached"] += len(texts) - sum(len(v) for v in todo.values())
        return out

    def __call__(self, titles: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
        from sunday.features.embeddings import combine, task_texts

        self._vectors(task_texts(titles, descriptions, self.mode))  # one encoder call for the whole batch
        return combine(self._vectors, titles, descriptions, self.mode)


@dataclass
class Prepared:
    """A validated request: the task's features (embedding added by :meth:`AssignmentService.embed_many`), its
    candidate ids, weights and how many alternatives to return."""

    task: dict[str, Any]
    candidate_ids: list[str]
    weights: RankWeights
    top_k: int | None = None


class AssignmentService:
    def __init__(self, ranker: AssignmentRanker, online: Any, embed: Any = None, version: str | None = None):
        """``online``: an :class:`sunday.features.online.OnlineFeatures` (anything with ``get_columns``);
        ``embed``: ``(titles, descriptions) -> vectors`` (:func:`task_embedder`), or None to leave ``embed_sim``
        out."""
        self.ranker = ranker
        self.online = online
        self.embed = embed
        self.version = version

    @classmethod
    def from_registry(cls, settings, name: str = "task_assignment", alias: str = "champion",
                      embeddings: bool = True, version: str | None = None, online: Any = None) -> "AssignmentService":
        """The registered model's ``alias`` version (or ``version``), features from ``online`` (default: the
        project's online store)."""
        import tempfile
        from pathlib import Path

        from sunday import tracking
        from sunday.errors import SundayError
        from sunday.features.online import OnlineFeatures

        tracking.configure(settings)
        if version is None:
            version = tracking.alias_version(name, alias)
            if version is None:
                raise SundayError(f"no '{alias}' version of model '{name}' (run: python train_jobs/assignment.py)")
        ranker = AssignmentRanker.load(tracking.download_version(name, str(version), Path(tempfile.mkdtemp())))
        embed = task_embedder(settings, cache="readonly") if embeddings else None
        return cls(ranker, online if online is not None else OnlineFeatures(settings), embed=embed,
                   version=str(version))

    # -- the steps of a request (the Serve deployment runs them across a batch) -------------------------------
    @staticmethod
    def prepare(task: Mapping[str, Any], candidate_ids: Sequence[str],
                weights: RankWeights | Mapping[str, float] | None = None, top_k: int | None = None) -> Prepared:
        """Validate one request (InvalidInput names the field); no model or store is touched."""
        request = TaskRequest.of(task)
        ids = check_candidates(candidate_ids)
        try:
            w = RankWeights.of(weights)
        except ValueError as exc:
            raise InvalidInput(f"weights: {exc}") from None
        if top_k is not None and int(top_k) < 1:
            raise InvalidInput(f"top_k must be >= 1, got {top_k}")
        feats = request.features()
        return Prepared(feats, ids, w, None if top_k is None else int(top_k))

    def embed_many(self, prepared: Sequence[Prepared]) -> None:
        """Add ``task_embedding`` to every prepared task in one encoder call."""
        if self.embed is None or not prepared:
            return
        vectors = self.embed([p.task["title"] for p in prepared], [p.task["description"] for p in prepared])
        for p, v in zip(prepared, vectors):
            p.task["task_embedding"] = np.asarray(v)

    @staticmethod
    def candidate_frame(candidate_ids: Sequence[str], columns: Mapping[str, list]) -> pd.DataFrame:
        """The candidates' online feature columns as a frame; UnknownUser for ids the store has never seen."""
        frame = pd.DataFrame(columns)
        known = frame["completed_count"].notna() | frame["skill_task_count"].notna() \
            | frame["open_task_count"].notna()
        if not known.all():
            missing = [u for u, k in zip(candidate_ids, known) if not k]
            raise UnknownUser(f"candidates: unknown user id(s) {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
        return frame

    def candidates(self, user_ids: Sequence[str]) -> pd.DataFrame:
        """Latest online features of each candidate; UnknownUser for ids the store has never seen."""
        ids = check_candidates(user_ids)
        return self.candidate_frame(ids, self.online.get_columns(list(USER_GROUPS), [{"user_id": u} for u in ids]))

    def score_many(self, prepared: Sequence[Prepared], frames: Sequence[pd.DataFrame]) -> list[dict]:
        """Rank every prepared request against its candidate frame in one model call; the response dicts."""
        from sunday.models.assignment.ranker import RankRequest

        ranked = self.ranker.rank_many([RankRequest(p.task, f, p.weights) for p, f in zip(prepared, frames)])
        return [self._answer(p, recs) for p, recs in zip(prepared, ranked)]

    def _answer(self, p: Prepared, recs: list) -> dict:
        shown = recs if p.top_k is None else recs[: p.top_k]
        best = recs[0]
        return {"recommended_user": best.user_id, "confidence": best.score,
                "alternatives": [r.to_dict() for r in shown], "model_version": self.version,
                "weights": p.weights.__dict__}

    # -- in process -------------------------------------------------------------------------------------------
    def recommend(self, task: Mapping[str, Any], candidate_ids: Sequence[str],
                  weights: RankWeights | Mapping[str, float] | None = None, top_k: int | None = None) -> dict:
        p = self.prepare(task, candidate_ids, weights, top_k)
        frame = self.candidates(p.candidate_ids)
        self.embed_many([p])
        return self.score_many([p], [frame])[0]


def check_candidates(user_ids: Sequence[str]) -> list[str]:
    if not isinstance(user_ids, (list, tuple)) or not user_ids:
        raise InvalidInput("candidates: give a non-empty list of user ids")
    if len(user_ids) > MAX_CANDIDATES:
        raise InvalidInput(f"candidates: at most {MAX_CANDIDATES} per request, got {len(user_ids)}")
    ids = [str(u) for u in user_ids]
    if any(not u.strip() for u in ids):
        raise InvalidInput("candidates: user ids must not be empty")
    if len(set(ids)) != len(ids):
        dup = next(u for u in ids if ids.count(u) > 1)
        raise InvalidInput(f"candidates: user_id {dup!r} appears more than once")
    return ids
