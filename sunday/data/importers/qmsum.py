"""QMSum: query-based meeting summarisation -> meetings, meeting_turns, meeting_queries, meeting_topics.

One JSON per meeting under ``data/ALL/<split>/``; the splits are whichever of train/val/test are present.
``relevant_text_span`` values are pairs of strings (``[["19", "89"]]``); they become ``{start, end}`` ints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from sunday.data.importers.base import Importer, register
from sunday.errors import DatasetMissingError, MalformedInputError

WORKSPACE = "qmsum"
SPLITS = ("train", "val", "test")
KEYS = ("meeting_transcripts", "topic_list", "general_query_list", "specific_query_list")
SPANS = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64())]))
TOPIC_FIELDS = [("topic_id", pa.string()), ("meeting_id", pa.string()), ("topic_index", pa.int64()),
                ("topic", pa.string()), ("spans", SPANS)]
QUERY_FIELDS = [("query_id", pa.string()), ("meeting_id", pa.string()), ("query_type", pa.string()),
                ("query_index", pa.int64()), ("query", pa.string()), ("answer", pa.string()), ("spans", SPANS)]
PRODUCT_PREFIXES = ("ES", "IS", "TS")  # AMI scenario meetings
ACADEMIC_PREFIXES = ("B",)  # ICSI meetings (Bdb, Bed, Bmr, Bro, Buw)


def domain_of(meeting_id: str) -> str:
    """product (AMI), academic (ICSI) or committee (parliamentary committees: covid_*, education_*, ...)."""
    if meeting_id.startswith(PRODUCT_PREFIXES):
        return "product"
    if meeting_id.startswith(ACADEMIC_PREFIXES):
        return "academic"
    return "committee"


def split_dirs(source_dir: Path) -> dict[str, Path]:
    """split -> folder, for the splits present under data/ALL/."""
    root = Path(source_dir) / "data" / "ALL"
    if not root.is_dir():
        raise DatasetMissingError(f"QMSum meetings folder not found: {root} is missing")
    found = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if not found:
        raise DatasetMissingError(f"QMSum folder {root} has none of the split folders {list(SPLITS)}")
    return found


def read_meeting(path: Path) -> dict[str, Any]:
    """One meeting JSON, checked for the four lists QMSum always carries."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise MalformedInputError(f"{path}: not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"{path}: not UTF-8 text: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key in KEYS:
        if not isinstance(data.get(key), list):
            raise MalformedInputError(f"{path}: '{key}' is missing or not a list")
    return data


def _spans(raw: Any, where: str) -> list[dict[str, int]]:
    if not isinstance(raw, list):
        raise MalformedInputError(f"{where}: relevant_text_span is not a list: {raw!r}")
    out = []
    for pair in raw:
        try:
            start, end = (int(v) for v in pair)
        except (TypeError, ValueError):
            raise MalformedInputError(f"{where}: relevant_text_span entry is not a [start, end] pair of integers: "
                                      f"{pair!r}") from None
        out.append({"start": start, "end": end})
    return out


def _field(item: Any, key: str, where: str) -> str:
    value = item.get(key) if isinstance(item, dict) else None
    if not isinstance(value, str):
        raise MalformedInputError(f"{where}: '{key}' is missing or not a string")
    return value


def _meeting_rows(meeting_id: str, data: dict[str, Any], path: Path, rows: dict[str, list]) -> int:
    """Append this meeting's rows to ``rows``; return how many spans fall outside the transcript."""
    turns = data["meeting_transcripts"]
    for i, turn in enumerate(turns):
        where = f"{path}: meeting_transcripts[{i}]"
        speaker = turn.get("speaker") if isinstance(turn, dict) else None
        rows["meeting_turns"].append((meeting_id, i, speaker, _field(turn, "content", where)))
    bad_spans = 0
    for i, topic in enumerate(data["topic_list"]):
        where = f"{path}: topic_list[{i}]"
        spans = _spans(topic.get("relevant_text_span", []) if isinstance(topic, dict) else None, where)
        bad_spans += sum(not 0 <= s["start"] <= s["end"] < len(turns) for s in spans)
        rows["meeting_topics"].append((f"{meeting_id}:{i}", meeting_id, i, _field(topic, "topic", where), spans))
    for kind in ("general", "specific"):
        for i, q in enumerate(data[f"{kind}_query_list"]):
            where = f"{path}: {kind}_query_list[{i}]"
            spans = None
            if isinstance(q, dict) and "relevant_text_span" in q:
                spans = _spans(q["relevant_text_span"], where)
                bad_spans += sum(not 0 <= s["start"] <= s["end"] < len(turns) for s in spans)
            rows["meeting_queries"].append((f"{meeting_id}:{kind}:{i}", meeting_id, kind, i,
                                            _field(q, "query", where), _field(q, "answer", where), spans))
    return bad_spans


def _table(rows: list[tuple], fields: list[tuple[str, pa.DataType]]) -> pa.Table:
    columns = list(zip(*rows)) if rows else [()] * len(fields)
    return pa.table({name: pa.array(list(col), type=t) for (name, t), col in zip(fields, columns)})


@register
class QmsumImporter(Importer):
    name = "qmsum"
    folder = "qmsum"
    description = "QMSum: meeting transcripts (AMI product, ICSI academic, committee) with queries and answers"

    def load(self, source: Path) -> dict[str, Any]:
        rows: dict[str, list] = {"meetings": [], "meeting_turns": [], "meeting_topics": [], "meeting_queries": []}
        bad_spans = 0
        seen: dict[str, Path] = {}
        splits = split_dirs(source)
        for split, folder in splits.items():
            for path in sorted(folder.glob("*.json")):
                meeting_id = path.stem
                if meeting_id in seen:
                    raise MalformedInputError(f"meeting id '{meeting_id}' appears twice: {seen[meeting_id]} and {path}")
                seen[meeting_id] = path
                bad_spans += _meeting_rows(meeting_id, read_meeting(path), path, rows)
                rows["meetings"].append((meeting_id, WORKSPACE, split, domain_of(meeting_id)))
        if not seen:
            folders = ", ".join(str(p) for p in splits.values())
            raise DatasetMissingError(f"QMSum split folders hold no *.json meetings: {folders}")

        meetings = pd.DataFrame(rows["meetings"], columns=["meeting_id", "workspace_id", "split", "domain"])
        turns = pd.DataFrame(rows["meeting_turns"], columns=["meeting_id", "turn_index", "speaker", "content"])
        topics = _table(rows["meeting_topics"], TOPIC_FIELDS)
        queries = _table(rows["meeting_queries"], QUERY_FIELDS)

        split_of = meetings.set_index("meeting_id")["split"]
        q = pd.DataFrame({"split": split_of.reindex(queries.column("meeting_id").to_pylist()).to_numpy(),
                          "kind": queries.column("query_type").to_pylist()})
        counts = q.value_counts().to_dict()
        notes = [f"{split}: {n} meetings, {counts.get((split, 'general'), 0)} general + "
                 f"{counts.get((split, 'specific'), 0)} specific queries"
                 for split, n in meetings["split"].value_counts(sort=False).items()]
        if bad_spans:
            notes.append(f"{bad_spans} relevant_text_span ranges are reversed or fall outside their transcript")
        return {
            "workspaces": pd.DataFrame([{"workspace_id": WORKSPACE, "name": "QMSum meetings", "source": "qmsum"}]),
            "meetings": meetings,
            "meeting_turns": turns,
            "meeting_queries": queries,
            "meeting_topics": topics,
            "_notes": notes,
        }
