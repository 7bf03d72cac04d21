"""The importer contract and registry. One module per dataset registers one :class:`Importer`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from sunday.errors import DatasetMissingError, UnknownNameError

_IMPORTERS: dict[str, "Importer"] = {}


class Importer(ABC):
    """Reads one public dataset folder into tables of the data model.

    ``load`` must not write anything; the caller validates every table and stores them atomically.
    ``specs`` maps a table name to the spec it is validated against when the two differ.
    """

    name: ClassVar[str]
    folder: ClassVar[str]  # relative to the data dir
    description: ClassVar[str] = ""
    specs: ClassVar[dict[str, str]] = {}

    def source_dir(self, data_dir: Path) -> Path:
        path = Path(data_dir) / self.folder
        if not path.is_dir():
            raise DatasetMissingError(
                f"dataset '{self.name}' not found: {path} is missing (set SUNDAY_DATA_DIR or --data-dir)")
        return path

    @abstractmethod
    def load(self, source: Path) -> dict[str, Any]:
        """Return table name -> data (pa.Table / DataFrame) for the dataset found in ``source``."""


def register(cls: type[Importer]) -> type[Importer]:
    _IMPORTERS[cls.name] = cls()
    return cls


def _load_all() -> None:
    # importing the package imports every importer module, which registers itself
    import sunday.data.importers  # noqa: F401


def importer_names() -> list[str]:
    _load_all()
    return sorted(_IMPORTERS)


def get_importer(name: str) -> Importer:
    _load_all()
    if name not in _IMPORTERS:
        raise UnknownNameError("dataset", name, list(_IMPORTERS))
    return _IMPORTERS[name]


@dataclass
class ImportResult:
    dataset: str
    counts: dict[str, int]
    path: Path
    notes: list[str] = field(default_factory=list)


def import_dataset(name: str, data_dir: Path, warehouse) -> ImportResult:
    """Load, validate and store one dataset. Stored data is untouched when anything fails."""
    imp = get_importer(name)
    tables = imp.load(imp.source_dir(data_dir))
    notes = tables.pop("_notes", []) if isinstance(tables, dict) else []
    path = warehouse.write(imp.name, tables, imp.specs)
    return ImportResult(imp.name, warehouse.counts(imp.name), path, list(notes))
