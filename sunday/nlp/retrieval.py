"""First-stage retrieval over meeting passages: BM25 (rank-bm25), dense MiniLM vectors in the vector store, a
hybrid of both (reciprocal rank fusion), and the ranking metrics.

Every retriever answers ``retrieve(query, k) -> list[(Passage, score)]``, best first. The retrievers are built
over the passages of one scope: QMSum's *locator* setting is one meeting (the meeting is the filter, as a
workspace is in the product); a corpus scope puts many meetings' passages in one retriever.

Tokenizer (BM25): lowercase, alphanumeric runs (``[a-z0-9]+``, apostrophes dropped: ``don't`` -> ``dont``), a
small English stopword list plus transcript fillers (``um``, ``uh``, ``yeah``, ...), and a light suffix stemmer
(plural ``-s``/``-es``/``-ies``, ``-ing``, ``-ed``, ``-ly``; never below 3 letters). Queries and passages go
through the same function.

Metrics take ranked *ids* (any hashable: passage ids, positions) and the set of relevant ids:

* ``recall_at_k`` = |relevant in the top k| / |relevant|;
* ``hit_at_k`` = 1 when any relevant id is in the top k;
* ``mrr`` = 1 / rank of the first relevant id (0 when none is ranked).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Hashable, Iterable, Sequence

import numpy as np

from sunday.nlp.passages import Passage

TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not of off on once only
or other our ours ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself yourselves s t d ll m re ve
um uh mm hmm mhm yeah okay ok oh ah like gonna kind sort really well right actually
""".split())
Scored = tuple[Passage, float]


def _stem(token: str) -> str:
    """A light suffix stripper (see the module docstring); numbers and short words are kept as they are."""
    if len(token) <= 3 or token.isdigit():
        return token
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("edly", ""), ("ed", ""), ("ly", ""),
                         ("es", ""), ("s", "")):
        if token.endswith(suffix) and len(token) - len(suffix) + len(repl) >= 3:
            if suffix == "s" and token.endswith(("ss", "us", "is")):
                return token
            return token[: len(token) - len(suffix)] + repl
    return token


def tokenize(text: str, stem: bool = True) -> list[str]:
    """BM25 tokens of ``text``: lowercase alphanumeric runs, stopwords dropped, lightly stemmed."""
    words = TOKEN.findall((text or "").lower().replace("'", ""))
    return [(_stem(w) if stem else w) for w in words if w not in STOPWORDS]


# -- metrics ------------------------------------------------------------------------------------------------------

def recall_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """|relevant in the top ``k`` of ``ranked``| / |relevant| (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return len(rel.intersection(ranked[:k])) / len(rel)


def hit_at_k(ranked: Sequence[Hashable], relevant: Iterable[Hashable], k: int) -> float:
    """1.0 when one of the top ``k`` is relevant, else 0.0 (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return float(any(r in rel for r in ranked[:k]))


def mrr(ranked: Sequence[Hashable], relevant: Iterable[Hashable]) -> float:
    """1 / rank of the first relevant id in ``ranked`` (0.0 when none is ranked; NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    for i, r in enumerate(ranked):
        if r in rel:
            return 1.0 / (i + 1)
    return 0.0


def ranking_metrics(ranked: Sequence[Hashable], relevant: Iterable[Hashable], ks: Sequence[int] = (5, 10)
                    ) -> dict[str, float]:
    """``R@k`` and ``hit@k`` for each k, and ``MRR``."""
    rel = set(relevant)
    out = {f"R@{k}": recall_at_k(ranked, rel, k) for k in ks}
    out["MRR"] = mrr(ranked, rel)
    out.update({f"hit@{k}": hit_at_k(ranked, rel, k) for k in ks})
    return out


def passage_ids(ranked: Sequence[Scored]) -> list[str]:
    return [p.passage_id for p, _ in ranked]


def _check_k(k: int) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


# -- BM25 ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BM25Config:
    k1: float = 1.5
    b: float = 0.75
    stem: bool = True


class BM25Retriever:
    """BM25Okapi (rank-bm25) over ``passages`` (IDF from these passages only: a meeting, or a whole corpus)."""

    def __init__(self, passages: Sequence[Passage], config: BM25Config | None = None):
        from rank_bm25 import BM25Okapi

        if not passages:
            raise ValueError("passages must not be empty")
        self.passages = list(passages)
        self.config = config or BM25Config()
        docs = [tokenize(p.text, self.config.stem) or ["<empty>"] for p in self.passages]
        self.bm25 = BM25Okapi(docs, k1=self.config.k1, b=self.config.b)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every passage (in ``self.passages`` order)."""
        return np.asarray(self.bm25.get_scores(tokenize(query, self.config.stem)), dtype=np.float64)

    def retrieve(self, query: str, k: int = 50) -> list[Scored]:
        """The ``k`` best passages, best first (ties: earlier passage first)."""
        k = _check_k(k)
        s = self.scores(query)
        order = np.lexsort((np.arange(len(s)), -s))[:k]
        return [(self.passages[i], float(s[i])) for i in order]


# -- dense --------------------------------------------------------------------------------------------------------

def passage_payload(p: Passage, workspace_id: str, **extra: Any) -> dict[str, Any]:
    """The vector-store payload of a passage (enough to rebuild it: :func:`payload_passage`)."""
    return {"workspace_id": workspace_id, "doc_id": p.doc_id, "passage_id": p.passage_id, "index": p.index,
            "start_turn": p.start_turn, "end_turn": p.end_turn, "text": p.text, **extra}


def payload_passage(payload: dict[str, Any]) -> Passage:
    return Passage(str(payload["passage_id"]), str(payload["doc_id"]), int(payload["index"]),
                   int(payload["start_turn"]), int(payload["end_turn"]), str(payload["text"]))


class DenseRetriever:
    """MiniLM passage vectors in a :class:`~sunday.nlp.vectorstore.VectorStore` collection (``meeting_turns``),
    searched within one workspace (and optionally some documents: ``doc_ids``).

    ``embedder`` is a :class:`~sunday.features.embeddings.TextEmbedder` (its cache makes re-indexing cheap);
    ``store`` defaults to an in-memory store. Point keys are the passage ids, payloads :func:`passage_payload`.
    """

    def __init__(self, embedder, store=None, workspace_id: str = "default", collection: str = "meeting_turns"):
        from sunday.nlp.vectorstore import VectorStore

        if not isinstance(workspace_id, str) or not workspace_id:
            raise ValueError("workspace_id must be a non-empty string")
        self.embedder = embedder
        self.store = store if store is not None else VectorStore(location=":memory:")
        getattr(self.store, "client", None)  # open the client up front (a lazily opened one is opened once, here)
        self.workspace_id, self.collection = workspace_id, collection

    def index(self, passages: Sequence[Passage], **payload_extra: Any) -> int:
        """Embed and upsert ``passages`` (same passage id: replaced); returns how many."""
        if not passages:
            return 0
        vectors = self.embedder.embed([p.text for p in passages])
        payloads = [passage_payload(p, self.workspace_id, **payload_extra) for p in passages]
        return self.store.upsert(self.collection, [p.passage_id for p in passages], vectors, payloads)

    def retrieve(self, query: str, k: int = 50, doc_ids: Sequence[str] | None = None,
                 vector: np.ndarray | None = None, **access: Any) -> list[Scored]:
        """The ``k`` passages nearest to ``query`` (cosine), best first; ``doc_ids`` limits the documents
        (a meeting), ``access`` goes to :meth:`VectorStore.search` (``user_id``, ``project_ids``, ...)."""
        k = _check_k(k)
        if vector is None:
            vector = self.embedder.embed([query])[0]
        hits = self.store.search(self.collection, vector, workspace_id=self.workspace_id, limit=k,
                                 doc_ids=None if doc_ids is None else list(doc_ids), **access)
        return [(payload_passage(h.payload), h.score) for h in hits]


class MeetingDenseRetriever:
    """A dense retriever bound to one document (a meeting): ``retrieve(query, k)`` like :class:`BM25Retriever`."""

    def __init__(self, dense: DenseRetriever, doc_id: str):
        self.dense, self.doc_id = dense, doc_id

    def retrieve(self, query: str, k: int = 50, vector: np.ndarray | None = None) -> list[Scored]:
        return self.dense.retrieve(query, k, doc_ids=[self.doc_id], vector=vector)


# -- hybrid -------------------------------------------------------------------------------------------------------

def rrf_fuse(rankings: Sequence[Sequence[Scored]], k: int, c: float = 60.0) -> list[Scored]:
    """Reciprocal rank fusion: score = sum over rankings of 1 / (c + rank); best first, ``k`` at most."""
    _check_k(k)
    score: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for ranking in rankings:
        for rank, (p, _) in enumerate(ranking):
            score[p.passage_id] = score.get(p.passage_id, 0.0) + 1.0 / (c + rank + 1)
            first.setdefault(p.passage_id, p)
    order = sorted(score, key=lambda pid: (-score[pid], first[pid].doc_id, first[pid].index))
    return [(first[pid], score[pid]) for pid in order[:k]]


class HybridRetriever:
    """BM25 and dense rankings (``depth`` each) fused with :func:`rrf_fuse`."""

    def __init__(self, retrievers: Sequence[Any], depth: int = 100, c: float = 60.0):
        if not retrievers:
            raise ValueError("retrievers must not be empty")
        self.retrievers, self.depth, self.c = list(retrievers), depth, c

    def retrieve(self, query: str, k: int = 50) -> list[Scored]:
        return rrf_fuse([r.retrieve(query, max(k, self.depth)) for r in self.retrievers], k, self.c)


# -- query cases and their evaluation -----------------------------------------------------------------------------

@dataclass
class QueryCase:
    """One query with the passages it is searched in (its meeting) and the ids of the relevant ones."""

    query_id: str
    query: str
    meeting_id: str
    domain: str
    passages: list[Passage]
    relevant: set[str]


def query_cases(meetings: Sequence[Any], max_words: int = 100, kind: str = "specific") -> list[QueryCase]:
    """The ``kind`` queries of ``meetings`` (:class:`~sunday.nlp.passages.Meeting`) that have relevant spans,
    each with its meeting's passages (:func:`~sunday.nlp.passages.turn_passages`, ``max_words``)."""
    from sunday.nlp.passages import relevant_indices, turn_passages

    cases = []
    for m in meetings:
        passages = turn_passages(m.meeting_id, m.turns, max_words=max_words)
        for q in m.queries:
            if q.kind != kind or not q.spans or not q.query.strip():
                continue
            rel = {passages[i].passage_id for i in relevant_indices(passages, q.spans)}
            if rel:
                cases.append(QueryCase(q.query_id, q.query, m.meeting_id, m.domain, passages, rel))
    return cases


METHODS = ("bm25", "dense", "hybrid", "dense+rerank", "bm25+rerank", "hybrid+rerank")


def evaluate_cases(cases: Sequence[QueryCase], embedder, reranker=None, methods: Sequence[str] = METHODS,
                   depth: int = 50, top_k: int = 10, ks: Sequence[int] = (5, 10), scope: str = "meeting",
                   progress: bool = False, desc: str = "retrieval") -> list[dict[str, Any]]:
    """Per case and method: the :func:`ranking_metrics` of its ranking (one dict per case and method, with
    ``query_id``, ``domain``, ``method``).

    ``<first>+rerank``: the ``depth`` best passages of ``<first>`` reordered by ``reranker.score(query, texts)``;
    its top ``top_k`` come first, then the rest of the first-stage ranking (so MRR and R@k are measured over one
    full ranking). One reranker call per case scores the union of the first stages' candidates.
    ``scope="meeting"``: each query searches its own meeting (QMSum's locator setting); ``"corpus"``: all the
    cases' meetings in one index (one workspace), a hit counting only from the query's own meeting.
    """
    from tqdm import tqdm

    if scope not in ("meeting", "corpus"):
        raise ValueError(f"scope must be 'meeting' or 'corpus', got {scope!r}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {list(METHODS)}")
    if any(m.endswith("+rerank") for m in methods) and reranker is None:
        raise ValueError("methods with '+rerank' need a reranker")
    meetings: dict[str, list[Passage]] = {}
    for c in cases:
        meetings.setdefault(c.meeting_id, c.passages)
    dense = DenseRetriever(embedder, workspace_id="eval")
    dense.index([p for ps in meetings.values() for p in ps])
    corpus_bm25 = BM25Retriever([p for ps in meetings.values() for p in ps]) if scope == "corpus" else None
    bm25_of: dict[str, BM25Retriever] = {}
    first_needed = {m.split("+")[0] for m in methods}
    vectors = embedder.embed([c.query for c in cases]) if {"dense", "hybrid"} & first_needed else None
    out: list[dict[str, Any]] = []
    for i, c in enumerate(tqdm(cases, desc=desc, unit="query", disable=not progress)):
        if scope == "meeting":
            bm25 = bm25_of.get(c.meeting_id) or bm25_of.setdefault(c.meeting_id, BM25Retriever(c.passages))
            doc_ids = [c.meeting_id]
        else:
            bm25, doc_ids = corpus_bm25, None
        deep = max(depth, top_k, max(ks), 100)
        first: dict[str, list[Scored]] = {}
        if {"bm25", "hybrid"} & first_needed:
            first["bm25"] = bm25.retrieve(c.query, deep)
        if {"dense", "hybrid"} & first_needed:
            first["dense"] = dense.retrieve(c.query, deep, doc_ids=doc_ids, vector=vectors[i])
        if "hybrid" in first_needed:
            first["hybrid"] = rrf_fuse([first["bm25"], first["dense"]], deep)
        scores: dict[str, float] = {}
        if reranker is not None and any(m.endswith("+rerank") for m in methods):
            todo = {p.passage_id: p for m in methods if m.endswith("+rerank")
                    for p, _ in first[m.split("+")[0]][:depth]}
            ids = list(todo)
            scores = dict(zip(ids, (float(s) for s in reranker.score(c.query, [todo[t].text for t in ids]))))
        # a passage of another meeting never counts (corpus scope): relevance is by passage id, ids carry the meeting
        for method in methods:
            base = first[method.split("+")[0]]
            ranked = [p.passage_id for p, _ in base]
            if method.endswith("+rerank"):
                head = sorted(ranked[:depth], key=lambda pid: -scores[pid])
                ranked = head + ranked[depth:]
            row = {"query_id": c.query_id, "meeting_id": c.meeting_id, "domain": c.domain, "method": method,
                   "n_relevant": len(c.relevant), "n_passages": len(c.passages)}
            row.update(ranking_metrics(ranked, c.relevant, ks))
            out.append(row)
    return out


def mean_metrics(rows: Sequence[dict[str, Any]], keys: Sequence[str] = ("R@5", "R@10", "MRR")) -> dict[str, float]:
    """The mean of ``keys`` over ``rows`` (NaN-free rows only), with ``n``."""
    out: dict[str, float] = {}
    for k in keys:
        v = [r[k] for r in rows if r.get(k) is not None and r[k] == r[k]]
        out[k] = float(np.mean(v)) if v else float("nan")
    out["n"] = len(rows)
    return out
