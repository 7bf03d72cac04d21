"""Strict CSV reading: every row must have the header's field count, or the error names the file and line."""

from __future__ import annotations

import csv
import io
import sys
import zipfile
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sunday.errors import DatasetMissingError, MalformedInputError

csv.field_size_limit(sys.maxsize)

# a repair gets (header, row, line) and returns a fixed row, or None to refuse it
Repair = Callable[[list[str], list[str], int], "list[str] | None"]


def _rows(text: Iterable[str], source: str, repair: Repair | None, report: list | None) -> pd.DataFrame:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise MalformedInputError(f"{source}: file is empty (no header row)") from None
    rows = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            fixed = repair(header, row, reader.line_num) if repair else None
            if fixed is None or len(fixed) != len(header):
                raise MalformedInputError(
                    f"{source}: line {reader.line_num}: expected {len(header)} fields, got {len(row)}")
            if report is not None:
                report.append({"file": source, "line": reader.line_num, "fields": len(row)})
            row = fixed
        rows.append(row)
    return pd.DataFrame(rows, columns=header, dtype=object)


def read_csv(path: Path, encoding: str = "utf-8", repair: Repair | None = None,
             repaired: list | None = None) -> pd.DataFrame:
    """Read a CSV as strings. A row with the wrong field count raises MalformedInputError naming file and line,
    unless ``repair`` fixes it (each repaired row is appended to ``repaired`` so callers can report them)."""
    path = Path(path)
    if not path.exists():
        raise DatasetMissingError(f"missing file: {path}")
    with open(path, newline="", encoding=encoding) as fh:
        return _rows(fh, str(path), repair, repaired)


def read_zipped_csv(path: Path, member_suffix: str = ".csv", encoding: str = "utf-8") -> pd.DataFrame:
    """Read the one CSV inside a zip archive, ignoring macOS ``__MACOSX`` entries."""
    path = Path(path)
    if not path.exists():
        raise DatasetMissingError(f"missing file: {path}")
    with zipfile.ZipFile(path) as zf:
        members = [m for m in zf.namelist() if m.endswith(member_suffix) and not m.startswith("__MACOSX")]
        if len(members) != 1:
            raise MalformedInputError(f"{path}: expected one {member_suffix} inside, found {members}")
        with zf.open(members[0]) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, newline="")
            return _rows(text, f"{path}!{members[0]}", None, None)


def to_number(df: pd.DataFrame, column: str, source: str, kind: str = "float", na=("", "NULL", "NA")) -> pd.Series:
    """Convert a string column to numbers, correctly rounded (Arrow's parser; pandas' fast one can be one ulp off).

    A value that is not a number (or, with ``kind="int"``, not a whole number) raises MalformedInputError naming
    the CSV line and the column.
    """
    s = df[column].where(~df[column].isin(na), None)
    strings = pa.array(s.to_numpy(dtype=object), type=pa.string())
    try:
        values = pc.cast(pc.utf8_trim_whitespace(strings), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        coerced = pd.to_numeric(s, errors="coerce")
        bad = coerced.isna() & s.notna()
        i = int(bad.to_numpy().argmax())
        raise MalformedInputError(
            f"{source}: data row {i + 1}: column '{column}' is not a number: {s.iloc[i]!r}") from None
    out = pd.Series(values.to_numpy(zero_copy_only=False), index=df.index, dtype="float64")
    if kind == "int":
        frac = out.notna() & (out != out.round())
        if frac.any():
            i = int(frac.to_numpy().argmax())
            raise MalformedInputError(
                f"{source}: data row {i + 1}: column '{column}' must be a whole number: {s.iloc[i]!r}")
        return out.astype("Int64")
    return out
