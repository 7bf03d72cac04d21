"""Meeting summaries (issue 7, item 5): query-focused summaries of a transcript and the whole-meeting summary.

    summary = summarize("What did the Marketing expert think of the price?", meeting)       # extractive
    summary = summarize(query, turns, llm=make_llm(), config=SummaryConfig(method="hybrid"))
    result = summarize_meeting(transcript, {"meeting_id": "m1", "date": "2024-03-04", ...})  # MeetingSummary

Two steps, as the QMSum "locator + summarizer" pipelines:

1. **Locate** (:class:`DenseLocator`): the transcript is cut into passages of ~``passage_words`` words
   (:func:`~sunday.nlp.passages.turn_passages`). A *specific* query keeps the ``top_k`` passages most similar to
   the query (MiniLM cosine; passages with a speaker the query names get ``speaker_boost``; an optional
   cross-encoder reranker rescoring the dense shortlist), in transcript order. A *general* query ("Summarize the
   whole meeting") keeps ``general_k`` passages by maximal marginal relevance to the meeting's centroid, so they
   cover the meeting rather than repeat its main topic.
2. **Summarize** the located text with one of (``SummaryConfig.method``):

   * ``extractive``: the located turns cut into sentences, tidied (fillers and stutters dropped, backchannels
     and sentences under ``min_sentence_words`` dropped), picked by MMR on similarity to the query (and to the
     located text's centroid) until ``specific_words`` / ``general_words`` words, put back in transcript order;
     ``attribution="said"`` (default) writes each as "The Project Manager said that ...", and ``lead="query"``
     (default) opens a specific summary with the query restated ("The group discussed X.");
   * ``llm``: the LLM writes a third-person summary of the located text (cut to ``llm_context_words``);
   * ``hybrid``: the LLM writes it from the extractive sentences (each with its speaker), a shorter prompt.

   An LLM answer that is empty falls back to the extractive summary (``QuerySummary.fallback``).

Size limits (:class:`SizeLimits`): a transcript over ``max_transcript_chars`` characters or ``max_turns`` turns,
or a query over ``max_query_chars``, is refused with :class:`~sunday.nlp.errors.InputTooLarge` naming the field.
Prompts stay bounded whatever the transcript length (only located text goes to the LLM); the action-item
extraction of :func:`summarize_meeting` sends long transcripts to the LLM in chunks of turns.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sunday.nlp.errors import InputTooLarge
from sunday.nlp.passages import Meeting, Passage, Turn, clean_text, turn_passages

if TYPE_CHECKING:  # pragma: no cover
    from sunday.nlp.actions import MeetingSummary
    from sunday.nlp.llm import LLM

METHODS = ("extractive", "llm", "hybrid")
GENERAL_QUERY = "Summarize the whole meeting."
_GENERAL = re.compile(r"^\s*(please\s+)?(summari[sz]e|sum up|give (me )?a summary of)\s+(the\s+)?(whole|entire|full)?"
                      r"\s*(meeting|discussion|transcript)\s*[.?!]*\s*$", re.I)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=\S)")
_FILLER = re.compile(r"\b(?:u+h+m*|u+m+|e+r+m+|hmm+|mm+(?:-hmm)?|uh-huh|mm-hmm)\b[,.]?\s*", re.I)
_STUTTER = re.compile(r"\b(\w+(?:'\w+)?)(?:[\s,]+\1\b)+", re.I)
_LEAD = re.compile(r"^(?:(?:so|well|okay|ok|yeah|yes|yep|right|and|but|oh|like|now|alright|all right|you know|"
                   r"i mean|actually|anyway)\b[,.]?\s+)+", re.I)
_SPACE_PUNCT = re.compile(r"\s+([,.?!;:])")
_PUNCT_RUN = re.compile(r"([,.?!;:])(?:\s*[,.;:])+")
_ROLE_WORDS = {"project manager", "marketing", "user interface", "industrial designer"}


# -- configuration -----------------------------------------------------------------------------------------------
class SummaryConfig(BaseModel):
    """How :func:`summarize` locates and summarizes. The defaults are the configuration chosen on a sample of
    QMSum *train* meetings (see :mod:`sunday.evaluation.qmsum_summary`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["extractive", "llm", "hybrid"] = "extractive"
    passage_words: int = Field(100, ge=20, le=400)
    top_k: int = Field(6, ge=1, le=50)  # passages located for a specific query
    general_k: int = Field(12, ge=1, le=100)  # passages located for a general query
    mmr_lambda: float = Field(0.7, ge=0.0, le=1.0)  # relevance vs novelty in MMR (passages and sentences)
    query_weight: float = Field(0.6, ge=0.0, le=1.0)  # sentence score: query similarity vs located centroid
    speaker_boost: float = Field(0.15, ge=0.0, le=1.0)  # added when the text's speaker is named in the query
    specific_words: int = Field(60, ge=10, le=1000)  # extractive length budget (train answers: median ~62)
    general_words: int = Field(110, ge=10, le=2000)  # (train general answers: median ~110)
    min_sentence_words: int = Field(5, ge=1, le=50)
    attribution: Literal["none", "said"] = "said"
    lead: Literal["none", "query"] = "query"  # "query": open with the query restated ("The group discussed X.")
    llm_context_words: int = Field(450, ge=50, le=4000)  # located text given to the LLM (~1.3 tokens a word)
    max_new_tokens: int = Field(100, ge=8, le=1024)

    def digest(self) -> str:
        """A short hash of the configuration (cache keys)."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]


class SizeLimits(BaseModel):
    """Input size limits; over one -> :class:`~sunday.nlp.errors.InputTooLarge` naming the field."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_transcript_chars: int = Field(200_000, ge=1)
    max_turns: int = Field(5_000, ge=1)
    max_query_chars: int = Field(2_000, ge=1)
    llm_chunk_words: int = Field(1_500, ge=50)  # transcript words per LLM extraction request


# -- transcript input --------------------------------------------------------------------------------------------
_LINE = re.compile(r"^\s*([^:\n]{1,80}?)\s*:\s+(.*\S)\s*$")


def parse_transcript(transcript: Any, limits: SizeLimits | None = None, field_name: str = "transcript"
                     ) -> list[Turn]:
    """Turns from a list of ``{speaker, content}`` mappings (``text`` accepted for ``content``), of
    :class:`~sunday.nlp.passages.Turn`, or a string of ``Speaker: text`` lines (a line without a speaker continues
    the previous turn). Size limits are checked before any parsing work; a malformed item raises ValueError
    naming it (``transcript[3].content``)."""
    limits = limits or SizeLimits()
    if isinstance(transcript, str):
        if len(transcript) > limits.max_transcript_chars:
            raise InputTooLarge(field_name, len(transcript), limits.max_transcript_chars)
        turns: list[Turn] = []
        for line in transcript.splitlines():
            if not line.strip():
                continue
            m = _LINE.match(line)
            if m:
                turns.append(Turn(m.group(1).strip(), m.group(2).strip()))
            elif turns:
                turns[-1] = Turn(turns[-1].speaker, f"{turns[-1].content} {line.strip()}")
            else:
                turns.append(Turn("", line.strip()))
        if len(turns) > limits.max_turns:
            raise InputTooLarge(field_name, len(turns), limits.max_turns, "turns")
        return turns
    if isinstance(transcript, Meeting):
        transcript = transcript.turns
    if not isinstance(transcript, Sequence):
        raise ValueError(f"{field_name} must be a list of {{speaker, content}} turns or 'Speaker: text' lines, "
                         f"got {type(transcript).__name__}")
    if len(transcript) > limits.max_turns:
        raise InputTooLarge(field_name, len(transcript), limits.max_turns, "turns")
    turns, chars = [], 0
    for i, t in enumerate(transcript):
        if isinstance(t, Turn):
            speaker, content = t.speaker, t.content
        elif isinstance(t, Mapping):
            speaker = t.get("speaker", "")
            content = t.get("content", t.get("text"))
            if content is None:
                raise ValueError(f"{field_name}[{i}].content is missing")
        else:
            raise ValueError(f"{field_name}[{i}] must be a {{speaker, content}} mapping, got {type(t).__name__}")
        if not isinstance(speaker, str) and speaker is not None:
            raise ValueError(f"{field_name}[{i}].speaker must be a string")
        if not isinstance(content, str):
            raise ValueError(f"{field_name}[{i}].content must be a string")
        chars += len(content) + len(speaker or "")
        if chars > limits.max_transcript_chars:
            total = chars + sum(len(_content(x)) for x in transcript[i + 1:])
            raise InputTooLarge(field_name, total, limits.max_transcript_chars)
        turns.append(Turn(speaker or "", content))
    return turns


def _content(t: Any) -> str:
    if isinstance(t, Turn):
        return t.content + t.speaker
    if isinstance(t, Mapping):
        return str(t.get("content", t.get("text")) or "") + str(t.get("speaker") or "")
    return ""


def check_query(query: str, limits: SizeLimits | None = None) -> str:
    limits = limits or SizeLimits()
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")
    if len(query) > limits.max_query_chars:
        raise InputTooLarge("query", len(query), limits.max_query_chars)
    return query.strip()


def is_general(query: str) -> bool:
    """True for whole-meeting queries ("Summarize the whole meeting.")."""
    return bool(_GENERAL.match(query))


# -- sentences ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sentence:
    turn: int  # index of its turn in the transcript
    speaker: str
    text: str  # tidied

    @property
    def words(self) -> int:
        return len(self.text.split())


def tidy(text: str) -> str:
    """A transcript sentence without fillers (um, uh, mm-hmm), stutters ("I I think"), leading discourse markers
    ("so", "well", "yeah", "you know"), with normal spacing, a capital first letter and final punctuation."""
    t = clean_text(text)
    t = _FILLER.sub("", t)
    t = _STUTTER.sub(r"\1", t)
    t = _SPACE_PUNCT.sub(r"\1", t)
    t = _PUNCT_RUN.sub(r"\1", t)
    t = _LEAD.sub("", t.strip(" ,.;:-")).strip(" ,;:-")
    t = re.sub(r"\s+", " ", t).strip()
    if not t:
        return ""
    t = t[0].upper() + t[1:]
    if t[-1] not in ".?!":
        t += "."
    return t


def turn_sentences(turns: Sequence[Turn], indices: Sequence[int] | None = None, min_words: int = 5
                   ) -> list[Sentence]:
    """Tidied sentences of the turns at ``indices`` (all turns when None), those under ``min_words`` words
    (backchannels, "Okay.", "Yeah, right.") dropped, in transcript order."""
    out: list[Sentence] = []
    for i in (range(len(turns)) if indices is None else indices):
        turn = turns[i]
        for raw in _SENT_SPLIT.split(clean_text(turn.content)):
            s = tidy(raw)
            if len(s.split()) >= min_words and sum(ch.isalpha() for ch in s) >= 3 * min_words:
                out.append(Sentence(i, turn.speaker, s))
    return out


# -- speakers named in a query -----------------------------------------------------------------------------------
_HONORIFIC = re.compile(r"^(?:the\s+)?(?:right\s+)?(?:hon\.?|mr\.?|mrs\.?|ms\.?|dr\.?|honourable)\s+", re.I)


def _core(label: str) -> str:
    core = re.sub(r"\s*\(.*?\)\s*", " ", label).strip()
    while True:
        new = _HONORIFIC.sub("", core).strip()
        if new == core:
            return core
        core = new


def speaker_aliases(label: str) -> set[str]:
    """Ways a query may name the speaker ``label``: the label, its core name without honorifics and the
    parenthetical, the surname, a role in parentheses ("Prime Minister"), and for ICSI labels ("Grad F",
    "Professor C") the letter and the role."""
    out = {label.strip(), _core(label)}
    words = _core(label).split()
    if len(words) >= 2 and len(words[-1]) > 3:
        out.add(words[-1])
    for inner in re.findall(r"\((.*?)\)", label):
        if "," not in inner and len(inner) > 3:
            out.add(inner.strip())
    m = re.fullmatch(r"([A-Za-z]+)\s+([A-Z])", label.strip())
    if m:
        out.update({m.group(2), m.group(1)})
    return {a for a in out if a}


def named_speakers(query: str, speakers: Sequence[str]) -> set[str]:
    """The speaker labels ``query`` names (every label sharing a core name with a named one counts, so
    "Right Hon. Justin Trudeau (Prime Minister)" and "Right Hon. Justin Trudeau" go together)."""
    hits: set[str] = set()
    for label in speakers:
        for alias in speaker_aliases(label):
            if len(alias) == 1:
                if re.search(rf"(?<!^)(?<![\w'])\b{re.escape(alias)}\b(?!['\w])", query):
                    hits.add(label)
            elif re.search(rf"\b{re.escape(alias)}\b", query, re.I):
                hits.add(label)
    cores = {_core(h).lower() for h in hits}
    return {s for s in speakers if _core(s).lower() in cores} | hits


def display_speaker(label: str) -> str:
    """How a summary names a speaker: "the Project Manager", "Professor C", "Justin Trudeau"."""
    core = _core(label) or label
    if core.lower() in _ROLE_WORDS:
        return f"the {core}"
    if core.lower() == "chair" or label.lower().startswith("the chair"):
        return "the Chair"
    return core


# -- locating ----------------------------------------------------------------------------------------------------
def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-9)


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Indices picked by maximal marginal relevance (``lam`` * relevance - (1 - ``lam``) * max similarity to the
    ones already picked), at most ``k``."""
    n = len(relevance)
    if n == 0 or k <= 0:
        return []
    chosen: list[int] = []
    sims = vectors @ vectors.T if n else np.zeros((0, 0))
    best_red = np.zeros(n, dtype=np.float32)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        score = lam * relevance - (1 - lam) * best_red
        score[~free] = -np.inf
        j = int(np.argmax(score))
        chosen.append(j)
        free[j] = False
        best_red = np.maximum(best_red, sims[j])
    return chosen


class MiniLMEncoder:
    """all-MiniLM-L6-v2 (:func:`~sunday.features.embeddings.load_model`) with no persistent cache."""

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        from sunday.features.embeddings import load_model

        return load_model().encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                   show_progress_bar=False)


class DenseLocator:
    """Finds the passages of a transcript that a query is about, with MiniLM similarity.

    ``embedder``: anything with ``embed(list[str]) -> (n, d) array`` (default: a
    :class:`~sunday.features.embeddings.TextEmbedder`, in-memory cache unless ``cache_dir``). ``reranker``
    (optional): anything with ``score(query, texts) -> list[float]`` (a cross-encoder), applied to the dense
    shortlist of ``rerank_pool`` x ``top_k`` passages of a specific query."""

    def __init__(self, embedder: Any = None, reranker: Any = None, cache_dir=None, rerank_pool: int = 3,
                 memo_size: int = 200_000):
        if embedder is None:
            if cache_dir is not None:
                from sunday.features.embeddings import TextEmbedder

                embedder = TextEmbedder(cache_dir)
            else:
                embedder = MiniLMEncoder()
        self.embedder, self.reranker, self.rerank_pool = embedder, reranker, rerank_pool
        self.memo: dict[str, np.ndarray] = {}
        self.memo_size = memo_size

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings (an in-process memo in front of the embedder)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if missing:
            if len(self.memo) + len(missing) > self.memo_size:
                self.memo.clear()
            self.memo.update(zip(missing, _unit(self.embedder.embed(missing))))
        return np.stack([self.memo[t] for t in texts])


    def locate(self, query: str, turns: Sequence[Turn], config: SummaryConfig, doc_id: str = "meeting",
               general: bool | None = None) -> list[Passage]:
        """The located passages, in transcript order."""
        passages = turn_passages(doc_id, turns, config.passage_words)
        if not passages:
            return []
        general = is_general(query) if general is None else general
        pv = self.vectors([p.text for p in passages])
        if general:
            centroid = _unit(pv.mean(axis=0))
            picked = mmr(pv @ centroid, pv, config.general_k, config.mmr_lambda)
            return [passages[i] for i in sorted(picked)]
        qv = self.vectors([query])[0]
        score = pv @ qv
        named = named_speakers(query, list(dict.fromkeys(t.speaker for t in turns if t.speaker)))
        if named and config.speaker_boost:
            share = np.array([_named_share(p, turns, named) for p in passages], dtype=np.float32)
            score = score + config.speaker_boost * share
        order = list(np.argsort(-score, kind="stable"))
        if self.reranker is not None:
            pool = order[:config.top_k * self.rerank_pool]
            rs = np.asarray(self.reranker.score(query, [passages[i].text for i in pool]), dtype=np.float32)
            order = [pool[i] for i in np.argsort(-rs, kind="stable")]
        return [passages[i] for i in sorted(order[:config.top_k])]


def _named_share(p: Passage, turns: Sequence[Turn], named: set[str]) -> float:
    idx = range(p.start_turn, p.end_turn + 1)
    words = [(len(turns[i].content.split()), turns[i].speaker in named) for i in idx]
    total = sum(w for w, _ in words)
    return sum(w for w, n in words if n) / total if total else 0.0


def passages_turns(passages: Sequence[Passage]) -> list[int]:
    return sorted({i for p in passages for i in range(p.start_turn, p.end_turn + 1)})


def span_turns(spans: Sequence[tuple[int, int]], n_turns: int) -> list[int]:
    """Turn indices inside ``spans`` (QMSum relevant spans; the oracle locator)."""
    return sorted({i for a, b in spans for i in range(max(a, 0), min(b, n_turns - 1) + 1)})


# -- summarizing -------------------------------------------------------------------------------------------------
class QuerySummary(BaseModel):
    """A query-focused summary: the text, the located turn indices, the method and what it cost."""

    query: str
    general: bool
    method: str
    summary: str
    turns: list[int] = Field(default_factory=list)  # located turns
    evidence: list[int] = Field(default_factory=list)  # turns of the picked sentences
    fallback: bool = False  # an LLM method answered with the extractive summary
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


def select_sentences(query: str, sentences: Sequence[Sentence], vectors: np.ndarray, locator: DenseLocator,
                     config: SummaryConfig, general: bool, named: set[str]) -> list[Sentence]:
    """MMR over the candidate sentences until the word budget, back in transcript order."""
    if not sentences:
        return []
    centroid = _unit(vectors.mean(axis=0))
    if general:
        rel = vectors @ centroid
    else:
        qv = locator.vectors([query])[0]
        rel = config.query_weight * (vectors @ qv) + (1 - config.query_weight) * (vectors @ centroid)
        if named and config.speaker_boost:
            rel = rel + config.speaker_boost * np.array([s.speaker in named for s in sentences], dtype=np.float32)
    budget = config.general_words if general else config.specific_words
    order = mmr(rel.astype(np.float32), vectors, len(sentences), config.mmr_lambda)
    picked, words = [], 0
    for j in order:
        if words >= budget:
            break
        picked.append(j)
        words += sentences[j].words
    return [sentences[j] for j in sorted(picked, key=lambda j: (sentences[j].turn, j))]


def render_extractive(sentences: Sequence[Sentence], attribution: str = "none") -> str:
    if attribution == "said":
        out = []
        for s in sentences:
            who = display_speaker(s.speaker) if s.speaker else "Someone"
            body = s.text[0].lower() + s.text[1:] if not s.text.startswith("I ") else s.text
            out.append(f"{who[0].upper() + who[1:]} said that {body}")
        return " ".join(out)
    return " ".join(s.text for s in sentences)


_PAST = {"think": "thought", "say": "said", "propose": "proposed", "suggest": "suggested", "recommend":
         "recommended", "discuss": "discussed", "mention": "mentioned", "argue": "argued", "present": "presented",
         "report": "reported", "explain": "explained", "decide": "decided", "agree": "agreed", "talk": "talked",
         "introduce": "introduced", "state": "stated", "believe": "believed", "feel": "felt", "ask": "asked"}
_Q_DISCUSSION = re.compile(r"^(?:please\s+)?summari[sz]e\s+(?:the\s+)?(?:discussion|talk|debate|conversation)s?\s+"
                           r"(?:about|on|of|regarding|around)\s+(.+?)[.?!]*$", re.I)
_Q_WHO = re.compile(rf"^(?:what|how)\s+did\s+(.+?)\s+({'|'.join(_PAST)})\s+(?:about|of|on|regarding|when|towards?|"
                    rf"with)?\s*(.+?)[.?!]*$", re.I)


def query_lead(query: str) -> str:
    """The query restated as an opening sentence, for the common QMSum forms ("Summarize the discussion about X"
    -> "The group discussed X."; "What did C think about X?" -> "C thought about X."); "" otherwise."""
    q = query.strip()
    m = _Q_DISCUSSION.match(q)
    if m:
        return f"The group discussed {m.group(1)}."
    m = _Q_WHO.match(q)
    if m:
        who = m.group(1)
        who = who[0].upper() + who[1:]
        verb = m.group(2).lower()
        joint = "about " if verb in ("think", "say", "talk", "feel", "ask", "believe", "argue", "agree") else ""
        return f"{who} {_PAST[verb]} {joint}{m.group(3)}."
    return ""


SYSTEM_PROMPT = ("You write short, factual meeting summaries in the third person, like minutes: "
                 "'The group discussed ...', 'The Project Manager suggested ...'. Use only the transcript.")


def llm_messages(query: str, context: str, general: bool) -> list[dict]:
    task = ("Summarize the whole meeting in 3 to 5 sentences." if general
            else f"{query.strip()}\nAnswer in 2 or 3 sentences.")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Transcript:\n{context}\n\n{task}"}]


def _clip_words(lines: Sequence[str], max_words: int) -> str:
    out, n = [], 0
    for line in lines:
        w = line.split()
        if n + len(w) > max_words:
            if max_words - n >= 8:
                out.append(" ".join(w[:max_words - n]))
            break
        out.append(line)
        n += len(w)
    return "\n".join(out)


def clean_generation(text: str) -> str:
    """The LLM's answer as one paragraph: headings ("Summary:"), list markers and a cut-off last sentence
    removed."""
    t = re.sub(r"^\s*(?:\*\*)?(?:summary|answer)(?:\*\*)?\s*:\s*", "", text.strip(), flags=re.I)
    t = re.sub(r"^\s*(?:[-*\u2022]|\d+[.)])\s+", "", t, flags=re.M)
    t = re.sub(r"\s+", " ", t.replace("**", "")).strip()
    if t and t[-1] not in ".!?":
        cut = max(t.rfind(". "), t.rfind("! "), t.rfind("? "))
        t = t[:cut + 1] if cut > len(t) // 3 else t + "."
    return t


@dataclass
class _Prepared:
    """What the LLM step needs: the messages, plus the extractive fallback."""

    result: QuerySummary
    messages: list[dict] | None = None
    t0: float = field(default_factory=time.perf_counter)


def prepare(query: str, meeting: Any, config: SummaryConfig, locator: DenseLocator | None = None,
            limits: SizeLimits | None = None, oracle_spans: Sequence[tuple[int, int]] | None = None,
            general: bool | None = None) -> _Prepared:
    """Locate and extract (and build the LLM prompt for the LLM methods); :func:`summarize` and the batched
    evaluation share it."""
    t0 = time.perf_counter()
    query = check_query(query, limits)
    turns = parse_transcript(meeting, limits)
    general = is_general(query) if general is None else general
    locator = locator or DenseLocator()
    doc_id = getattr(meeting, "meeting_id", "meeting")
    if oracle_spans:
        located = span_turns(oracle_spans, len(turns))
    else:
        located = passages_turns(locator.locate(query, turns, config, doc_id, general))
    sentences = turn_sentences(turns, located, config.min_sentence_words)
    named = set() if general else named_speakers(query, list(dict.fromkeys(t.speaker for t in turns)))
    picked = select_sentences(query, sentences, locator.vectors([s.text for s in sentences]), locator, config,
                              general, named) if sentences else []
    extractive = render_extractive(picked, config.attribution)
    if config.lead == "query" and not general:
        extractive = " ".join(x for x in (query_lead(query), extractive) if x)
    result = QuerySummary(query=query, general=general, method=config.method, summary=extractive,
                          turns=located, evidence=sorted({s.turn for s in picked}))
    messages = None
    if config.method == "llm":
        lines = []
        for i in located:
            body = " ".join(s for s in (tidy(x) for x in _SENT_SPLIT.split(clean_text(turns[i].content)))
                            if len(s.split()) >= 3)
            if body:
                lines.append(f"{display_speaker(turns[i].speaker)}: {body}")
        context = _clip_words(lines, config.llm_context_words)
        messages = llm_messages(query, context, general)
    elif config.method == "hybrid":
        lines = [f"{display_speaker(s.speaker)}: {s.text}" for s in picked]
        messages = llm_messages(query, _clip_words(lines, config.llm_context_words), general)
    if messages is not None and not picked and not located:
        messages = None  # nothing to summarize
    return _Prepared(result, messages, t0)


def finish(prep: _Prepared, completion: Any | None) -> QuerySummary:
    """The prepared result with the LLM's answer (or the extractive fallback when the answer is empty)."""
    r = prep.result
    if prep.messages is not None:
        text = clean_generation(completion.text) if completion is not None else ""
        if len(text.split()) >= 4:
            r.summary = text
        else:
            r.fallback = True
        if completion is not None:
            r.prompt_tokens, r.completion_tokens = completion.prompt_tokens, completion.completion_tokens
    r.seconds = round(time.perf_counter() - prep.t0, 3)
    return r


def summarize(query: str, meeting: Any, llm: "LLM | None" = None, locator: DenseLocator | None = None,
              config: SummaryConfig | None = None, limits: SizeLimits | None = None,
              oracle_spans: Sequence[tuple[int, int]] | None = None) -> QuerySummary:
    """A query-focused summary of ``meeting`` (a :class:`~sunday.nlp.passages.Meeting`, a list of turns or
    ``Speaker: text`` lines). LLM methods need ``llm`` (e.g. :func:`~sunday.nlp.llm.make_llm`); ``oracle_spans``
    replaces the locator by given turn spans (the upper-bound line of the evaluation)."""
    config = config or SummaryConfig()
    if config.method != "extractive" and llm is None:
        raise ValueError(f"method '{config.method}' needs an llm (sunday.nlp.llm.make_llm())")
    prep = prepare(query, meeting, config, locator, limits, oracle_spans)
    completion = None
    if prep.messages is not None:
        completion = llm.chat(prep.messages, max_tokens=config.max_new_tokens, temperature=0.0)
    return finish(prep, completion)


def summarize_many(items: Sequence[tuple[str, Any, Sequence[tuple[int, int]] | None]], llm: "LLM | None",
                   config: SummaryConfig, locator: DenseLocator | None = None, batch_size: int = 4
                   ) -> list[QuerySummary]:
    """:func:`summarize` over ``(query, meeting, oracle_spans)`` items, LLM prompts generated in batches with
    ``llm.chat_many`` when the backend has it (the embedded one: 2-3x the throughput on 2 cores)."""
    locator = locator or DenseLocator()
    preps = [prepare(q, m, config, locator, oracle_spans=s) for q, m, s in items]
    todo = [i for i, p in enumerate(preps) if p.messages is not None]
    completions: dict[int, Any] = {}
    if todo and llm is None:
        raise ValueError(f"method '{config.method}' needs an llm")
    many = getattr(llm, "chat_many", None)
    for lo in range(0, len(todo), batch_size if many else 1):
        idx = todo[lo:lo + (batch_size if many else 1)]
        if many:
            outs = many([preps[i].messages for i in idx], max_tokens=config.max_new_tokens, temperature=0.0)
        else:
            outs = [llm.chat(preps[idx[0]].messages, max_tokens=config.max_new_tokens, temperature=0.0)]
        completions.update(zip(idx, outs))
    out = []
    for i, p in enumerate(preps):
        r = finish(p, completions.get(i))
        out.append(r)
    return out


# -- whole meeting -----------------------------------------------------------------------------------------------
def summarize_meeting(transcript: Any, meta: Any, llm: "LLM | None" = None,
                      assign: Callable[[str], str | None] | None = None, config: SummaryConfig | None = None,
                      limits: SizeLimits | None = None, locator: DenseLocator | None = None) -> "MeetingSummary":
    """Decisions, action items (assignee named, else predicted by ``assign(item_text) -> user_id | None``; due
    date parsed relative to the meeting date), the discussion summary and whether follow-up is needed.

    ``transcript``: ``{speaker, content}`` turns or ``Speaker: text`` lines. ``meta``: a mapping (or
    :class:`~sunday.nlp.actions.MeetingMeta`) with ``meeting_id``, ``date``, ``workspace_id``, ``project_id``,
    ``participants`` (user ids, or ``{user_id, name}``). With an ``llm`` the discussion summary uses
    ``config.method`` (extractive without one); a capable remote LLM also extracts items as JSON, which is
    validated and merged (malformed output is ignored with a note)."""
    from sunday.nlp.actions import MeetingMeta, MeetingSummary, detect_items, follow_up, llm_extract, merge_items

    limits = limits or SizeLimits()
    meta = meta if isinstance(meta, MeetingMeta) else MeetingMeta.model_validate(dict(meta or {}))
    turns = parse_transcript(transcript, limits)
    config = config or SummaryConfig()
    if llm is None and config.method != "extractive":
        config = config.model_copy(update={"method": "extractive"})
    notes: list[str] = []
    decisions, items = detect_items(turns, meta, assign=assign, notes=notes)
    if llm is not None and _capable(llm):
        extra_d, extra_i = llm_extract(turns, meta, llm, limits.llm_chunk_words, assign=assign, notes=notes)
        decisions, items = merge_items(decisions, extra_d), merge_items(items, extra_i)
    discussion = ""
    if turns:
        discussion = summarize(GENERAL_QUERY, turns, llm=llm, locator=locator, config=config, limits=limits).summary
    needed, reasons = follow_up(turns, items)
    return MeetingSummary(meeting_id=meta.meeting_id, date=meta.date, decisions=decisions, action_items=items,
                          discussion_summary=discussion, follow_up_needed=needed, follow_up_reasons=reasons,
                          notes=notes)


def _capable(llm: Any) -> bool:
    """Whether ``llm`` is worth asking for JSON extraction: any remote backend (the embedded 135M model is not)."""
    from sunday.nlp.llm import EMBEDDED_ALIASES, EMBEDDED_MODEL, EmbeddedLLM

    for _ in range(4):  # through wrappers (GuardedLLM.llm, ...)
        if isinstance(llm, EmbeddedLLM) or getattr(llm, "model", None) in (EMBEDDED_MODEL, *EMBEDDED_ALIASES):
            return False
        inner = getattr(llm, "llm", None) or getattr(llm, "inner", None)
        if inner is None:
            break
        llm = inner
    return True


def chunk_turns(turns: Sequence[Turn], max_words: int) -> list[tuple[int, str]]:
    """``(first turn index, "Speaker: text" lines)`` chunks of at most ~``max_words`` words on turn boundaries
    (each line prefixed with its turn index as ``[i]``)."""
    chunks: list[tuple[int, str]] = []
    buf: list[str] = []
    first, n = 0, 0
    for i, t in enumerate(turns):
        text = clean_text(t.content)
        if not text:
            continue
        line = f"[{i}] {t.speaker}: {text}" if t.speaker else f"[{i}] {text}"
        w = len(line.split())
        if buf and n + w > max_words:
            chunks.append((first, "\n".join(buf)))
            buf, n = [], 0
        if not buf:
            first = i
        buf.append(" ".join(line.split()[:max_words]))
        n += min(w, max_words)
    if buf:
        chunks.append((first, "\n".join(buf)))
    return chunks


def dumps_summary(summary: QuerySummary) -> str:
    return json.dumps(summary.model_dump(), sort_keys=True)
