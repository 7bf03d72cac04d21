"""The outcome of validating one feature batch: failures, warnings, drift table; JSON and a one-line summary."""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, TypedDict

BATCH = "(batch)"  # the column name of issues about the whole batch


class Issue(TypedDict):
    column: str
    check: str  # missing | extra | type | null | null_rate | range | finite | list_length | list_nulls |
    #             duplicate | timezone | future | empty | drift | reference
    detail: str


def issue(column: str, check: str, detail: str) -> Issue:
    return Issue(column=column, check=check, detail=detail)


@dataclass(frozen=True)
class DriftRow:
    column: str
    psi: float | None
    ks_stat: float | None
    ks_p: float | None
    drifted: bool
    reference_rows: int  # non-null values compared
    current_rows: int


def new_batch_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class ValidationReport:
    group: str
    rows: int
    failures: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    drift: list[DriftRow] = field(default_factory=list)
    reference_rows: int | None = None  # None: no reference, drift not checked
    html_path: str | None = None
    html_skipped: str | None = None  # why no HTML report was written (None when written or not wanted)
    quarantine_path: str | None = None
    batch_id: str = field(default_factory=new_batch_id)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failing_columns(self) -> list[str]:
        return list(dict.fromkeys(f["column"] for f in self.failures))

    @property
    def drifted_columns(self) -> list[str]:
        return [d.column for d in self.drift if d.drifted]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["drift"] = [{k: _finite(v) for k, v in asdict(r).items()} for r in self.drift]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        head = f"{self.group}: {self.rows} rows"
        if self.ok:
            text = f"{head} accepted"
        else:
            checks: dict[str, list[str]] = {}
            for f in self.failures:
                checks.setdefault(f["column"], []).append(f["check"])
            cols = ", ".join(f"{c} ({'/'.join(dict.fromkeys(v))})" for c, v in checks.items())
            text = f"{head} rejected; failing columns: {cols}"
        text += f"; {len(self.warnings)} warning(s)"
        if self.reference_rows is None:
            text += "; no reference, drift not checked"
        else:
            text += f"; drifted: {', '.join(self.drifted_columns) or 'none'}"
        return text


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v
