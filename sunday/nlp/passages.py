"""Meeting transcripts -> retrieval passages, and QMSum meetings as plain objects.

A passage is a run of consecutive turns (``start_turn``..``end_turn``, inclusive) of about ``max_words`` words,
each turn written ``Speaker: content`` with the transcript markers (``{disfmarker}``, ``{vocalsound}``, ...) removed.
A turn longer than ``max_words`` is cut into pieces that all carry its index. A passage is *relevant* to a query
when its turn range overlaps one of the query's relevant spans (QMSum ``relevant_text_span``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

MARKER = re.compile(r"\{[a-z]+\}")
SPACES = re.compile(r"\s+")
SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,?!;:'])")
DEFAULT_MAX_WORDS = 100


@dataclass(frozen=True)
class Turn:
    speaker: str
    content: str


@dataclass(frozen=True)
class Passage:
    passage_id: str  # "<doc_id>:<index>"
    doc_id: str  # the meeting (or document) the passage belongs to
    index: int
    start_turn: int  # first turn, inclusive
    end_turn: int  # last turn, inclusive
    text: str

    def overlaps(self, spans: Iterable[tuple[int, int]]) -> bool:
        return any(self.start_turn <= end and start <= self.end_turn for start, end in spans)


@dataclass(frozen=True)
class Query:
    query_id: str
    kind: str  # "general" | "specific"
    query: str
    answer: str
    spans: tuple[tuple[int, int], ...] = ()


@dataclass
class Meeting:
    meeting_id: str
    split: str
    domain: str
    turns: list[Turn]
    queries: list[Query] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns if t.speaker))


def clean_text(text: str) -> str:
    """Transcript text without markers and with normal spacing (``okay .`` -> ``okay.``)."""
    text = MARKER.sub(" ", text or "")
    text = SPACES.sub(" ", text).strip()
    return SPACE_BEFORE_PUNCT.sub(r"\1", text)


def turn_text(turn: Turn) -> str:
    content = clean_text(turn.content)
    return f"{turn.speaker}: {content}" if turn.speaker else content


def _pieces(words: list[str], max_words: int) -> list[list[str]]:
    return [words[i:i + max_words] for i in range(0, len(words), max_words)] or [[]]


def turn_passages(doc_id: str, turns: Sequence[Turn], max_words: int = DEFAULT_MAX_WORDS) -> list[Passage]:
    """Consecutive turns grouped into passages of at most ``max_words`` words (turns with no words are skipped)."""
    if max_words < 10:
        raise ValueError(f"max_words must be at least 10, got {max_words}")
    out: list[Passage] = []
    buf: list[str] = []
    first = last = -1
    size = 0

    def flush() -> None:
        nonlocal buf, first, size
        if buf:
            out.append(Passage(f"{doc_id}:{len(out)}", doc_id, len(out), first, last, "\n".join(buf)))
        buf, first, size = [], -1, 0

    for i, turn in enumerate(turns):
        content = clean_text(turn.content)
        words = content.split()
        if not words or not any(ch.isalnum() for ch in content):
            continue
        prefix = f"{turn.speaker}: " if turn.speaker else ""
        for piece in _pieces(words, max_words):
            if size and size + len(piece) > max_words:
                flush()
            if first < 0:
                first = i
            last = i
            buf.append(prefix + " ".join(piece))
            size += len(piece)
    flush()
    return out


def relevant_indices(passages: Sequence[Passage], spans: Iterable[tuple[int, int]]) -> set[int]:
    """Positions in ``passages`` whose turns overlap one of ``spans``."""
    spans = list(spans)
    return {i for i, p in enumerate(passages) if p.overlaps(spans)}


def span_text(turns: Sequence[Turn], spans: Iterable[tuple[int, int]]) -> str:
    """The cleaned text of the turns inside ``spans`` (one turn a line)."""
    lines = []
    for start, end in spans:
        for turn in turns[max(start, 0):end + 1]:
            if clean_text(turn.content):
                lines.append(turn_text(turn))
    return "\n".join(lines)


def load_qmsum(data_dir: Path, split: str) -> list[Meeting]:
    """The meetings of one QMSum split (``<data_dir>/qmsum/data/ALL/<split>/*.json``, or ``data_dir`` pointing at
    the qmsum folder itself), read and checked with the importer's functions."""
    from sunday.data.importers.qmsum import _spans, domain_of, read_meeting, split_dirs
    from sunday.errors import DatasetMissingError

    root = Path(data_dir)
    if not (root / "data" / "ALL").is_dir() and (root / "qmsum").is_dir():
        root = root / "qmsum"
    dirs = split_dirs(root)
    if split not in dirs:
        raise DatasetMissingError(f"QMSum split '{split}' not found under {root / 'data' / 'ALL'}; "
                                  f"present: {sorted(dirs)}")
    meetings = []
    for path in sorted(dirs[split].glob("*.json")):
        data = read_meeting(path)
        turns = [Turn(str(t.get("speaker") or ""), str(t.get("content") or "")) for t in data["meeting_transcripts"]]
        queries = []
        for kind in ("general", "specific"):
            for i, q in enumerate(data[f"{kind}_query_list"]):
                where = f"{path}: {kind}_query_list[{i}]"
                raw = q.get("relevant_text_span") if isinstance(q, dict) else None
                spans = tuple((s["start"], s["end"]) for s in _spans(raw, where)) if raw is not None else ()
                queries.append(Query(f"{path.stem}:{kind}:{i}", kind, str(q.get("query", "")),
                                     str(q.get("answer", "")), spans))
        meetings.append(Meeting(path.stem, split, domain_of(path.stem), turns, queries))
    if not meetings:
        raise DatasetMissingError(f"QMSum split folder {dirs[split]} holds no *.json meetings")
    return meetings
