"""The NLP layer as one plain object for the serving app (in process, or inside the Serve ``Nlp`` deployment).

    nlp = NlpService.for_settings(settings)                 # vector store, encoder, reranker, guarded LLM
    nlp.search({"query": "...", "workspace_id": "w1"})      # dict in, dict out: what the endpoints send and return

It owns the vector store (the embedded Qdrant folder is locked by one process: this one), the MiniLM encoder, the
reranker (the registered ``qmsum_reranker`` champion when there is one; dense order otherwise, said in the result)
and the LLM behind its guard (token budget per workspace, per-request cap, prompt cache).
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from sunday.nlp.indexing import SearchIndexer, default_encoder
from sunday.nlp.search import SearchConfig, SemanticSearch
from sunday.nlp.vectorstore import VectorStore

log = logging.getLogger(__name__)


def load_default_reranker(settings) -> Any | None:
    """The registered reranker champion, or None (logged) when none is registered yet."""
    from sunday.errors import SundayError

    try:
        from sunday.nlp.reranker import load_reranker

        return load_reranker(settings, alias="champion")
    except SundayError as exc:
        log.warning("no reranker: %s", exc)
        return None


class NlpService:
    def __init__(self, settings, store: VectorStore, encode: Callable, reranker: Any | None = None,
                 llm: Any | None = None, assign: Callable[..., str | None] | None = None,
                 effort: Any | None = None, search_config: SearchConfig | None = None, sim_path=None):
        self.settings, self.store, self.encode = settings, store, encode
        self.reranker, self.llm, self.assign, self.effort = reranker, llm, assign, effort
        self.indexer = SearchIndexer(store, encode)
        self.searcher = SemanticSearch(store, encode, reranker, llm, search_config)
        self.sim_path = sim_path
        self._tasks = None  # the simulation's tasks table (project context for drafts), read once
        self._lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings, *, reranker: Any | None | str = "champion", llm: Any | None | str = "default",
                     store: VectorStore | None = None, **kwargs) -> "NlpService":
        from sunday.nlp.guard import GuardedLLM

        if reranker == "champion":
            reranker = load_default_reranker(settings)
        if llm == "default":
            llm = GuardedLLM.for_settings(settings)
        elif llm is not None and not isinstance(llm, GuardedLLM):
            llm = GuardedLLM.for_settings(settings, llm=llm)
        return cls(settings, store or VectorStore.for_settings(settings), default_encoder(), reranker, llm, **kwargs)

    def info(self) -> dict:
        return {"vector_store": self.store.where, "reranker": getattr(self.reranker, "name", None)
                if self.reranker is not None else None,
                "llm": getattr(self.llm, "model", None)}

    # -- search ------------------------------------------------------------------------------------------------
    def search(self, item: dict) -> dict:
        res = self.searcher.search(item["query"], item["workspace_id"], user_id=item.get("user_id"),
                                   include_restricted=bool(item.get("include_restricted")),
                                   project_ids=item.get("project_ids"), collections=item.get("collections"),
                                   top_k=item.get("top_k"), answer=item.get("answer", True))
        out = res.to_dict()
        if not res.reranked:
            out["notes"].append("no reranker is registered (python train_jobs/reranker.py): dense order")
        return out

    def index_document(self, item: dict) -> dict:
        access = {"visibility": item.get("visibility", "workspace"), "allowed_users": item.get("allowed_users"),
                  "project_id": item.get("project_id")}
        n = self.indexer.index_document(item["doc_id"], item["workspace_id"], item["text"],
                                        title=item.get("title") or "", access=access)
        return {"doc_id": item["doc_id"], "passages": n}

    def index_tasks(self, rows: list[dict]) -> int:
        return self.indexer.index_tasks(rows)

    def on_event(self, event: dict, task_row: dict) -> int:
        return self.indexer.on_event(event, task_row)

    # -- task drafts -------------------------------------------------------------------------------------------
    def project_context(self, project_id: str | None, given: dict | None = None):
        """The prompt's project context: what the request says, plus the project's recent titles and estimated
        tasks from the workspace's task table (the per-project story-point model trains on those)."""
        from sunday.nlp.taskgen import LabelledTask, ProjectContext

        given = dict(given or {})
        recent, labelled = list(given.get("recent_titles") or []), []
        if project_id is not None and self.sim_path is not None:
            tasks = self._project_tasks(project_id)
            if len(tasks):
                recent = recent or tasks["title"].tail(5).tolist()
                est = tasks[tasks["story_points"].notna()]
                labelled = [LabelledTask(t, d or "", float(p)) for t, d, p in
                            zip(est["title"], est["description"], est["story_points"])]
        return ProjectContext(name=given.get("name") or project_id or "project",
                              description=given.get("description") or "", tags=list(given.get("tags") or []),
                              recent_titles=recent, labelled_tasks=labelled)

    def _project_tasks(self, project_id: str):
        with self._lock:
            if self._tasks is None:
                from sunday.data.simulator.writer import read_simulation

                t = read_simulation(self.sim_path)["tasks"].select(
                    ["project_id", "title", "description", "story_points", "created_at"]).to_pandas()
                self._tasks = {k: g.sort_values("created_at") for k, g in t.groupby("project_id", sort=False)}
            import pandas as pd

            return self._tasks.get(project_id, pd.DataFrame())

    def draft_task(self, item: dict) -> dict:
        from sunday.nlp.errors import ModelMissing
        from sunday.nlp.taskgen import TaskDraftGenerator

        if self.llm is None:
            raise ModelMissing("no LLM backend is configured for task drafts")
        project = self.project_context(item.get("project_id"), item.get("project"))
        draft = TaskDraftGenerator(self.llm, self.effort).generate(item["brief"], project, item["workspace_id"])
        return draft.model_dump()

    # -- meetings ----------------------------------------------------------------------------------------------
    def summarize_meeting(self, item: dict) -> dict:
        """``summarize_meeting`` of the transcript (extractive summary unless ``method`` says otherwise: it scores
        higher than the embedded LLM on QMSum), and the meeting's passages indexed for search. Assignees are the
        named ones here; the serving API adds the assignment model's picks and turns the items into tasks."""
        from sunday.nlp.actions import MeetingMeta
        from sunday.nlp.meetings import SummaryConfig, parse_transcript, summarize_meeting

        ws = item["workspace_id"]
        meta = MeetingMeta.model_validate({k: item.get(k) for k in ("meeting_id", "date", "project_id",
                                                                      "participants")} | {"workspace_id": ws})
        method = item.get("method") or "extractive"
        llm = self.llm.for_workspace(ws) if (self.llm is not None and method != "extractive") else None
        summary = summarize_meeting(item["transcript"], meta, llm=llm, config=SummaryConfig(method=method))
        indexed = 0
        if item.get("index", True):
            turns = parse_transcript(item["transcript"])
            indexed = self.indexer.index_meeting(meta.meeting_id, ws, turns, title=item.get("title") or "",
                                                 access={"project_id": meta.project_id})
        return {"summary": summary.model_dump(mode="json"), "indexed_passages": indexed}
