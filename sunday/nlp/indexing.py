"""Putting workspace content into the vector store: tasks, comments, documents and meeting turns.

Each record becomes one or more points whose payload carries ``workspace_id``, the access fields
(``visibility``, ``allowed_users``, ``project_id``), the text that the reranker and the answer read (``text``), a
``title`` to show, and where it came from (``source_id``; for passages ``doc_id`` and the turn range).

* tasks: one point per task (the task vector of the feature platform: mean of title and description embeddings);
* comments: one point per comment (``commented`` events with text);
* documents and meetings: passages of about 100 words (:func:`sunday.nlp.passages.turn_passages`), each a point.

:meth:`SearchIndexer.on_event` is the streaming consumer's listener: a ``created`` or ``scope_changed`` task event
upserts the task's vector (its text from the tasks table, or for a task created in the stream the event's ``text``:
first line the title, the rest the description), a ``commented`` event with text its comment's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from sunday.errors import ValidationError
from sunday.nlp.passages import DEFAULT_MAX_WORDS, Turn, clean_text, turn_passages
from sunday.nlp.vectorstore import VectorStore

Encode = Callable[[Sequence[str]], np.ndarray]
TaskVectors = Callable[[Sequence[str], Sequence[str]], np.ndarray]
ACCESS = ("visibility", "allowed_users")


def default_encoder(settings=None) -> Encode:
    """MiniLM sentence embeddings (the model shared with the feature platform), batched. With ``settings``, through
    the platform's persistent embedding cache (jobs: texts that repeat are encoded once); without, plain encoding
    (serving replicas never write the cache)."""
    from sunday.features.embeddings import load_model

    if settings is not None:
        from sunday.features.embeddings import TextEmbedder

        return TextEmbedder.for_settings(settings).embed

    def encode(texts: Sequence[str]) -> np.ndarray:
        if not texts:
            from sunday.features.embeddings import DIM

            return np.zeros((0, DIM), dtype=np.float32)
        return np.asarray(load_model().encode(list(texts), batch_size=64, convert_to_numpy=True,
                                              show_progress_bar=False), dtype=np.float32)

    return encode


def _access(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ACCESS if row.get(k) is not None}
    if row.get("project_id") is not None:
        out["project_id"] = str(row["project_id"])
    return out


def _need(row: Mapping[str, Any], field: str, table: str, i: int) -> str:
    value = row.get(field)
    if value is None or (isinstance(value, float) and value != value) or str(value) == "":
        raise ValidationError(table, field, "is required", record=i)
    return str(value)


@dataclass
class SearchIndexer:
    store: VectorStore
    encode: Encode
    task_vectors: TaskVectors | None = None  # (titles, descriptions) -> vectors; default: encode(title + text)
    max_words: int = DEFAULT_MAX_WORDS

    @classmethod
    def for_settings(cls, settings, store: VectorStore | None = None, cache: str = "readwrite") -> "SearchIndexer":
        from sunday.models.assignment.service import task_embedder

        return cls(store or VectorStore.for_settings(settings),
                   default_encoder(settings if cache == "readwrite" else None), task_embedder(settings, cache))

    # -- records ---------------------------------------------------------------------------------------------
    def index_tasks(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert task points (``task_id``, ``workspace_id``, ``title``, ``description``; optional ``project_id``,
        ``visibility``, ``allowed_users``). A task with neither title nor description is skipped."""
        rows = [dict(r) for r in rows]
        keep = []
        for i, r in enumerate(rows):
            _need(r, "task_id", "tasks", i), _need(r, "workspace_id", "tasks", i)
            r["title"], r["description"] = clean_text(str(r.get("title") or "")), str(r.get("description") or "")
            if r["title"] or r["description"].strip():
                keep.append(r)
        if not keep:
            return 0
        titles, descs = [r["title"] for r in keep], [r["description"] for r in keep]
        vectors = (self.task_vectors(titles, descs) if self.task_vectors is not None
                   else self.encode([f"{t}\n{d}".strip() for t, d in zip(titles, descs)]))
        payloads = [{"workspace_id": str(r["workspace_id"]), "kind": "task", "source_id": str(r["task_id"]),
                     "title": r["title"], "text": f"{r['title']}\n{r['description']}".strip(), **_access(r)}
                    for r in keep]
        return self.store.upsert("tasks", [str(r["task_id"]) for r in keep], vectors, payloads)

    def index_comments(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert comment points (``comment_id`` or ``event_id``, ``workspace_id``, ``task_id``, ``text``)."""
        rows = [dict(r) for r in rows if str(r.get("text") or "").strip()]
        if not rows:
            return 0
        keys = []
        for i, r in enumerate(rows):
            _need(r, "workspace_id", "comments", i), _need(r, "task_id", "comments", i)
            keys.append(str(r.get("comment_id") or _need(r, "event_id", "comments", i)))
        texts = [str(r["text"]).strip() for r in rows]
        payloads = [{"workspace_id": str(r["workspace_id"]), "kind": "comment", "source_id": str(r["task_id"]),
                     "title": f"comment on {r['task_id']}", "text": t, "author_id": r.get("user_id"), **_access(r)}
                    for r, t in zip(rows, texts)]
        return self.store.upsert("comments", keys, self.encode(texts), payloads)

    def index_passages(self, collection: str, doc_id: str, workspace_id: str, turns: Sequence[Turn], *,
                       title: str = "", kind: str = "document", access: Mapping[str, Any] | None = None) -> int:
        """Cut ``turns`` into passages and upsert them (key ``<doc_id>:<i>``); returns the number of passages."""
        passages = turn_passages(doc_id, turns, self.max_words)
        if not passages:
            return 0
        payloads = [{"workspace_id": workspace_id, "kind": kind, "source_id": doc_id, "doc_id": doc_id,
                     "title": title or doc_id, "text": p.text, "start_turn": p.start_turn, "end_turn": p.end_turn,
                     **_access(access or {})} for p in passages]
        return self.store.upsert(collection, [p.passage_id for p in passages],
                                 self.encode([p.text for p in passages]), payloads)

    def index_document(self, doc_id: str, workspace_id: str, text: str, *, title: str = "",
                       access: Mapping[str, Any] | None = None) -> int:
        """A document (paragraphs separated by blank lines) as passages in ``documents``."""
        paragraphs = [p.strip() for p in str(text).split("\n\n") if p.strip()]
        return self.index_passages("documents", doc_id, workspace_id, [Turn("", p) for p in paragraphs],
                                   title=title, kind="document", access=access)

    def index_meeting(self, meeting_id: str, workspace_id: str, turns: Sequence[Turn], *, title: str = "",
                      access: Mapping[str, Any] | None = None) -> int:
        """A meeting transcript as passages in ``meeting_turns``."""
        return self.index_passages("meeting_turns", meeting_id, workspace_id, turns, title=title, kind="meeting",
                                   access=access)

    # -- the streaming consumer's listener -------------------------------------------------------------------
    def on_event(self, event: Mapping[str, Any], task_row: Mapping[str, Any]) -> int:
        """Index what a processed task event changes; returns the number of points upserted."""
        kind = event.get("event_type")
        if kind in ("created", "scope_changed"):
            row = {**dict(task_row), "workspace_id": event["workspace_id"], "task_id": event["task_id"]}
            text = str(event.get("text") or "").strip()
            if text and not (row.get("title") or row.get("description")):  # a task created in the stream
                title, _, rest = text.partition("\n")
                row["title"], row["description"] = title.strip(), rest.strip()
            if event.get("project_id") is not None:
                row["project_id"] = event["project_id"]
            return self.index_tasks([row])
        if kind == "commented" and str(event.get("text") or "").strip():
            return self.index_comments([{**dict(event), "project_id": event.get("project_id")
                                         or task_row.get("project_id")}])
        return 0


def index_simulation(indexer: SearchIndexer, sim_path, comments: bool = True, progress: bool = False) -> dict:
    """Index a written simulation's tasks (and comment events with text) into the vector store; returns counts.

    Task vectors come through the feature platform's embedding cache (``task_vectors``), and comments repeat
    their texts, so only unseen texts are encoded."""
    from tqdm import tqdm

    from sunday.data.simulator.writer import read_simulation

    tables = read_simulation(sim_path)
    tasks = tables["tasks"].select(["task_id", "workspace_id", "project_id", "title", "description"]).to_pylist()
    counts = {"tasks": 0, "comments": 0}
    step = 5_000
    for lo in tqdm(range(0, len(tasks), step), desc="index tasks", unit="batch", disable=not progress):
        counts["tasks"] += indexer.index_tasks(tasks[lo:lo + step])
    if comments:
        import pyarrow.compute as pc

        ev = tables.events
        ev = ev.filter(pc.equal(ev["event_type"], "commented"))
        rows = ev.select(["event_id", "workspace_id", "project_id", "task_id", "user_id", "text"]).to_pylist()
        for lo in tqdm(range(0, len(rows), step), desc="index comments", unit="batch", disable=not progress):
            counts["comments"] += indexer.index_comments(rows[lo:lo + step])
    return counts
