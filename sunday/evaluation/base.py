"""The evaluation frame: every real-data evaluation registers here and runs as ``sunday eval NAME``.

An evaluation reads its dataset folder under the data dir (``SUNDAY_DATA_DIR`` or ``--data-dir``), discovers the
projects/series present there (so other projects in the same format work unchanged), and returns an
:class:`EvalResult`: a table of measured rows, the published anchors to print beside them, and notes.
"""

from __future__ import annotations

import json
import math
import platform
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sunday.errors import UnknownNameError

_EVALS: dict[str, "Evaluation"] = {}


@dataclass
class Anchor:
    """A published figure to print beside ours: ``row`` matches a result row's key, ``metric`` a column."""

    row: str
    metric: str
    value: float
    source: str


@dataclass
class EvalResult:
    name: str
    key: str  # the column that names a row (project, series, ...)
    rows: list[dict[str, Any]]
    anchors: list[Anchor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            for c in r:
                if c not in cols:
                    cols.append(c)
        return cols

    def to_json(self) -> dict[str, Any]:
        def clean(v):
            if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
                return None
            return v

        out = asdict(self)
        out["rows"] = [{k: clean(v) for k, v in r.items()} for r in self.rows]
        return out


class Evaluation(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    folder: ClassVar[str]  # dataset folder under the data dir; "" = needs no dataset (e.g. a simulation study)

    @abstractmethod
    def run(self, data_dir: Path, **options: Any) -> EvalResult: ...


def resolve_options(defaults: dict[str, Any], options: dict[str, Any], extra: tuple[str, ...] = ("progress",)
                    ) -> dict[str, Any]:
    """``defaults`` updated by ``options``; ValueError naming unknown keys (``extra`` are allowed, not returned)."""
    unknown = sorted(set(options) - set(defaults) - set(extra))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; known: {sorted(defaults)}")
    return {**defaults, **{k: v for k, v in options.items() if k in defaults}}


def register(cls: type[Evaluation]) -> type[Evaluation]:
    _EVALS[cls.name] = cls()
    return cls


def _load_all() -> None:
    import sunday.evaluation.registry  # noqa: F401


def evaluation_names() -> list[str]:
    _load_all()
    return sorted(_EVALS)


def get_evaluation(name: str) -> Evaluation:
    _load_all()
    if name not in _EVALS:
        raise UnknownNameError("evaluation", name, list(_EVALS))
    return _EVALS[name]


def run_evaluation(name: str, data_dir: Path, out_dir: Path, **options: Any) -> tuple[EvalResult, Path]:
    """Run one evaluation and write its JSON (with timing and environment) to ``out_dir/NAME.json``."""
    ev = get_evaluation(name)
    t0 = time.perf_counter()
    result = ev.run(Path(data_dir), **options)
    result.meta.setdefault("data_dir", str(data_dir))
    result.meta["seconds"] = round(time.perf_counter() - t0, 2)
    result.meta["python"] = platform.python_version()
    result.meta["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    return result, path
