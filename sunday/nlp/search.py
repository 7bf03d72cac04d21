"""Semantic search over a workspace: dense retrieval in the vector store, cross-encoder reranking, and an answer
from the LLM backend that cites its sources as ``[1]``, ``[2]``.

    searcher = SemanticSearch(store, encode, reranker, llm)          # llm: a GuardedLLM (budget, cache, caps)
    result = searcher.search("who is fixing the login timeout?", workspace_id="ws-1", user_id="u-7")

1. The query (at most ``max_query_chars``; longer ones are refused with :class:`InputTooLarge`) is embedded with
   MiniLM and each collection is searched for its ``candidates`` (50) nearest points that the caller may see
   (workspace, visibility, project filters: :meth:`VectorStore.access_filter`).
2. The merged candidates are reranked by the cross-encoder (when one is loaded) and the best ``top_k`` (10) kept.
3. The first ``answer_sources`` hits are numbered and given to the LLM, which must answer from them and cite them.
   An answer is kept only when it cites at least one of the given sources; citations of sources that were not
   given are removed. Otherwise (a small model often does not cite) the answer is extractive: the sentence of each
   of the best three sources closest to the query (sources much less similar than the first are left out), each
   with its citation, and ``answer_source`` says so.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from sunday.errors import ValidationError
from sunday.nlp.errors import InputTooLarge
from sunday.nlp.vectorstore import COLLECTIONS, Hit, VectorStore

Encode = Callable[[Sequence[str]], np.ndarray]
CITATION = re.compile(r"\[(\d{1,2})\]")
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
SYSTEM = ("You answer questions about a team's work using only the numbered sources. Cite every fact with the "
          "source number in square brackets, like [1]. If the sources do not answer the question, say so.")


@dataclass(frozen=True)
class SearchConfig:
    candidates: int = 50  # per collection, from the vector store
    top_k: int = 10  # kept after reranking
    answer_sources: int = 5  # hits the answer may cite
    source_chars: int = 600  # of each source's text in the prompt
    max_query_chars: int = 1_000
    answer_tokens: int = 160
    collections: tuple[str, ...] = COLLECTIONS


@dataclass
class SearchHit:
    rank: int
    collection: str
    key: str
    title: str
    text: str
    dense_score: float
    rerank_score: float | None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult:
    query: str
    hits: list[SearchHit]
    answer: str | None
    answer_source: str | None  # "llm" | "extractive" | None (no answer asked for or nothing found)
    citations: list[int]  # the source numbers the answer cites (1-based positions in ``hits``)
    reranked: bool
    timings_ms: dict[str, float]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rerank_scores(reranker: Any, query: str, texts: list[str]) -> np.ndarray:
    """Cross-encoder scores of (query, text) pairs, higher is more relevant."""
    return np.asarray(reranker.score(query, texts), dtype=np.float64)


def _sentences(text: str) -> list[str]:
    out = []
    for line in SENTENCE.split(text):
        line = line.strip()
        if len(line.split()) >= 3:
            out.append(line)
    return out or [text.strip()]


def cited(answer: str, n_sources: int) -> tuple[str, list[int]]:
    """The answer with citations of unknown sources removed, and the sources it cites (in order, unique)."""
    keep: list[int] = []

    def fix(m: re.Match) -> str:
        i = int(m.group(1))
        if 1 <= i <= n_sources:
            if i not in keep:
                keep.append(i)
            return m.group(0)
        return ""

    text = CITATION.sub(fix, answer)
    return re.sub(r"[ \t]{2,}", " ", text).strip(), keep


class SemanticSearch:
    def __init__(self, store: VectorStore, encode: Encode, reranker: Any | None = None, llm: Any | None = None,
                 config: SearchConfig | None = None):
        self.store, self.encode, self.reranker, self.llm = store, encode, reranker, llm
        self.config = config or SearchConfig()

    def _check(self, query: str, collections: Sequence[str]) -> str:
        if not isinstance(query, str) or not query.strip():
            raise ValidationError("search", "query", "must be a non-empty string")
        if len(query) > self.config.max_query_chars:
            raise InputTooLarge("query", len(query), self.config.max_query_chars)
        unknown = [c for c in collections if c not in COLLECTIONS]
        if unknown or not collections:
            raise ValidationError("search", "collections", f"must be a non-empty subset of {list(COLLECTIONS)}")
        return query.strip()

    def retrieve(self, query: str, workspace_id: str, *, user_id: str | None = None,
                 include_restricted: bool = False, project_ids: Sequence[str] | None = None,
                 collections: Sequence[str] | None = None) -> list[tuple[str, Hit]]:
        """Dense candidates from every collection, best first."""
        vector = self.encode([query])[0]
        found: list[tuple[str, Hit]] = []
        for c in collections or self.config.collections:
            found += [(c, h) for h in self.store.search(
                c, vector, workspace_id=workspace_id, limit=self.config.candidates, user_id=user_id,
                include_restricted=include_restricted, project_ids=project_ids)]
        found.sort(key=lambda ch: -ch[1].score)
        return found[:self.config.candidates]

    def search(self, query: str, workspace_id: str, *, user_id: str | None = None, include_restricted: bool = False,
               project_ids: Sequence[str] | None = None, collections: Sequence[str] | None = None,
               top_k: int | None = None, answer: bool = True) -> SearchResult:
        collections = tuple(collections or self.config.collections)
        query = self._check(query, collections)
        top_k = top_k or self.config.top_k
        if not 1 <= top_k <= self.config.candidates:
            raise ValidationError("search", "top_k", f"must be between 1 and {self.config.candidates}")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        found = self.retrieve(query, workspace_id, user_id=user_id, include_restricted=include_restricted,
                              project_ids=project_ids, collections=collections)
        timings["retrieve"] = (time.perf_counter() - t0) * 1e3
        texts = [str(h.payload.get("text") or "") for _, h in found]
        scores: np.ndarray | None = None
        if self.reranker is not None and found:
            t1 = time.perf_counter()
            scores = rerank_scores(self.reranker, query, texts)
            timings["rerank"] = (time.perf_counter() - t1) * 1e3
            order = np.argsort(-scores, kind="stable")
        else:
            order = np.arange(len(found))
        hits = [SearchHit(rank=r + 1, collection=found[i][0], key=found[i][1].key,
                          title=str(found[i][1].payload.get("title") or ""), text=texts[i],
                          dense_score=found[i][1].score,
                          rerank_score=None if scores is None else float(scores[i]),
                          payload={k: v for k, v in found[i][1].payload.items() if k not in ("text", "key")})
                for r, i in enumerate(order[:top_k])]
        result = SearchResult(query, hits, None, None, [], scores is not None, timings)
        if answer and hits:
            t2 = time.perf_counter()
            self._answer(result, workspace_id)
            timings["answer"] = (time.perf_counter() - t2) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return result

    # -- the answer --------------------------------------------------------------------------------------------
    def prompt(self, query: str, hits: Sequence[SearchHit]) -> list[dict]:
        n = min(len(hits), self.config.answer_sources)
        sources = "\n\n".join(f"[{i + 1}] {h.title}\n{h.text[:self.config.source_chars]}"
                              for i, h in enumerate(hits[:n]))
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {query}\nAnswer with citations:"}]

    def _answer(self, result: SearchResult, workspace_id: str) -> None:
        n = min(len(result.hits), self.config.answer_sources)
        if self.llm is not None:
            completion = self.llm.chat(self.prompt(result.query, result.hits), workspace_id=workspace_id,
                                       max_tokens=self.config.answer_tokens, temperature=0.0)
            text, refs = cited(completion.text, n)
            if refs and len(text) > 10:
                result.answer, result.answer_source, result.citations = text, "llm", refs
                return
            result.notes.append("the LLM's answer cited none of the sources; the answer is extractive")
        result.answer, result.citations = self.extractive(result.query, result.hits[:min(n, 3)])
        result.answer_source = "extractive"

    def extractive(self, query: str, hits: Sequence[SearchHit], keep: float = 0.7) -> tuple[str, list[int]]:
        """The sentence of each hit closest to the query, each followed by its citation; a hit whose best sentence
        is less than ``keep`` times as similar as the first hit's is left out. A task's sentence carries its title."""
        qv = self.encode([query])[0]
        qv = qv / (np.linalg.norm(qv) + 1e-9)
        picked: list[tuple[int, str, float]] = []
        for i, h in enumerate(hits):
            sents = _sentences(h.text)
            sv = self.encode(sents)
            sims = sv @ qv / (np.linalg.norm(sv, axis=1) + 1e-9)
            best = int(np.argmax(sims))
            sent = sents[best].rstrip()
            if h.collection == "tasks" and h.title and h.title not in sent:
                sent = f"{h.title}: {sent}"
            picked.append((i + 1, sent, float(sims[best])))
        top = picked[0][2] if picked else 0.0
        picked = [p for j, p in enumerate(picked) if j == 0 or p[2] >= keep * top]
        merged: dict[str, list[int]] = {}  # the same sentence in several sources: one sentence, all citations
        for i, sent, _ in picked:
            merged.setdefault(sent, []).append(i)
        text = " ".join(sent + " " + "".join(f"[{i}]" for i in refs) for sent, refs in merged.items())
        return text, [i for i, _, _ in picked]
