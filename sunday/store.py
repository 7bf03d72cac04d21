"""Versioned Parquet storage under the state folder, written aside then swapped in.

A dataset is a folder of tables. Each write goes to a staging folder; only when every table is validated and
written does a ``CURRENT`` pointer (replaced atomically with ``os.replace``) switch readers to it. A load that fails
half-way leaves the previous version untouched and readable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from sunday.errors import DatasetMissingError, SundayError
from sunday.schema import validate

CURRENT = "CURRENT"


def _write_pointer(folder: Path, version: str) -> None:
    tmp = folder / f".{CURRENT}.{uuid.uuid4().hex}"
    tmp.write_text(version + "\n")
    os.replace(tmp, folder / CURRENT)


def current_version(folder: Path) -> Path | None:
    """The live version folder of a versioned folder, or None when nothing was stored yet."""
    pointer = folder / CURRENT
    if not pointer.exists():
        return None
    path = folder / pointer.read_text().strip()
    return path if path.exists() else None


@contextlib.contextmanager
def atomic_version(folder: Path, keep: int = 2) -> Iterator[Path]:
    """Yield a staging folder; on success it becomes the live version of ``folder``.

    On any exception the staging folder is removed and the live version stays as it was.
    ``keep`` versions (the new one included) are kept for rollback; older ones are removed.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # nanosecond stamp first so names sort in write order; uuid keeps concurrent writers apart
    version = f"v-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    staging = folder / f".staging-{version}"
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    os.rename(staging, folder / version)
    _write_pointer(folder, version)
    versions = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("v-"))
    for old in versions[:-keep]:
        if old.name != version:
            shutil.rmtree(old, ignore_errors=True)


class Warehouse:
    """Imported datasets in the workspace data model, one versioned folder each."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def write(self, dataset: str, tables: Mapping[str, Any], specs: Mapping[str, str] | None = None) -> Path:
        """Validate and store ``tables`` (name -> data) as the new version of ``dataset``.

        Each table is validated against the spec of the same name, or ``specs[name]`` when given.
        """
        specs = specs or {}
        validated = {name: validate(specs.get(name, name), data) for name, data in tables.items()}
        with atomic_version(self.root / dataset) as staging:
            for name, table in validated.items():
                pq.write_table(table, staging / f"{name}.parquet")
        return current_version(self.root / dataset)

    def _version(self, dataset: str) -> Path:
        path = current_version(self.root / dataset)
        if path is None:
            raise DatasetMissingError(f"dataset '{dataset}' has not been imported (run: sunday data import {dataset})")
        return path

    def read(self, dataset: str, table: str, columns: list[str] | None = None) -> pa.Table:
        path = self._version(dataset) / f"{table}.parquet"
        if not path.exists():
            raise SundayError(f"dataset '{dataset}' has no table '{table}'")
        return pq.read_table(path, columns=columns)

    def tables(self, dataset: str) -> list[str]:
        return sorted(p.stem for p in self._version(dataset).glob("*.parquet"))

    def datasets(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if current_version(p) is not None)

    def counts(self, dataset: str) -> dict[str, int]:
        version = self._version(dataset)
        return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(version.glob("*.parquet"))}
