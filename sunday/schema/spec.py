"""Table specifications: a pyarrow schema plus the checks a record must pass.

``validate(spec, data)`` returns a ``pa.Table`` in the spec's schema or raises
:class:`sunday.errors.ValidationError` naming the table, the first bad record (row index and key) and the field.
Checks are vectorised with ``pyarrow.compute`` so validating millions of rows stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from sunday.errors import ValidationError


@dataclass(frozen=True)
class Check:
    """One rule on one column. Null values are only judged by ``required``."""

    column: str
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    nonempty: bool = False  # strings must not be empty / blank

    def describe(self) -> str:
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min}")
        if self.max is not None:
            parts.append(f"<= {self.max}")
        if self.allowed is not None:
            parts.append(f"one of {list(self.allowed)}")
        if self.nonempty:
            parts.append("non-empty")
        return " and ".join(parts)


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    key: str | None = None
    required: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    description: str = ""
    unique_key: bool = True

    @property
    def columns(self) -> list[str]:
        return self.schema.names


_REGISTRY: dict[str, TableSpec] = {}


def register(spec: TableSpec) -> TableSpec:
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> TableSpec:
    # importing the table modules fills the registry (no work beyond building schemas)
    from sunday.schema import tables  # noqa: F401

    if name not in _REGISTRY:
        from sunday.errors import UnknownNameError

        raise UnknownNameError("table", name, list(_REGISTRY))
    return _REGISTRY[name]


def all_specs() -> dict[str, TableSpec]:
    from sunday.schema import tables  # noqa: F401

    return dict(_REGISTRY)


def _to_table(spec: TableSpec, data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    try:
        import pandas as pd

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(data, Mapping):
        return pa.table(dict(data))
    if isinstance(data, Iterable):
        rows = list(data)
        names = list(dict.fromkeys(k for r in rows for k in r))
        arrays = {}
        for name in names:
            values = [r.get(name) for r in rows]
            target = spec.schema.field(name).type if name in spec.columns else None
            try:
                arrays[name] = pa.array(values, type=target)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                for i, v in enumerate(values):
                    try:
                        pa.array([v], type=target)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
                        key = rows[i].get(spec.key) if spec.key else None
                        raise ValidationError(spec.name, name, f"cannot be read as {target}: {v!r}", i,
                                              f"{spec.key}={key!r}" if key is not None else None) from None
                raise
        if not arrays:
            return spec.schema.empty_table()
        return pa.table(arrays)
    raise TypeError(f"cannot validate {type(data).__name__} as {spec.name}")


def _key_of(spec: TableSpec, table: pa.Table, row: int) -> object:
    if spec.key and spec.key in table.column_names:
        v = table.column(spec.key)[row].as_py()
        return f"{spec.key}={v!r}"
    return None


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int | None:
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py())


def _cast_column(spec: TableSpec, table: pa.Table, name: str, target: pa.DataType) -> pa.ChunkedArray:
    col = table.column(name)
    if col.type == target:
        return col
    try:
        return pc.cast(col, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        # find the first offending element to name it
        for i in range(len(col)):
            try:
                pc.cast(col.slice(i, 1), target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                value = col[i].as_py()
                raise ValidationError(spec.name, name, f"cannot be read as {target}: {value!r}", i,
                                      _key_of(spec, table, i)) from None
        raise ValidationError(spec.name, name, f"cannot be converted from {col.type} to {target}") from None


def validate(spec: TableSpec | str, data: Any) -> pa.Table:
    """Validate ``data`` (pa.Table, DataFrame, mapping of columns or list of dicts) against ``spec``."""
    if isinstance(spec, str):
        spec = get_spec(spec)
    table = _to_table(spec, data)

    unknown = [c for c in table.column_names if c not in spec.columns]
    if unknown:
        raise ValidationError(spec.name, unknown[0], f"is not in the {spec.name} schema")
    for name in spec.required:
        if name not in table.column_names:
            raise ValidationError(spec.name, name, "is required but missing")

    arrays = []
    n = table.num_rows
    for f in spec.schema:
        if f.name in table.column_names:
            arrays.append(_cast_column(spec, table, f.name, f.type))
        else:
            arrays.append(pa.nulls(n, type=f.type))
    out = pa.Table.from_arrays(arrays, schema=spec.schema)

    for name in spec.required:
        bad = _first_true(pc.is_null(out.column(name)))
        if bad is not None:
            raise ValidationError(spec.name, name, "is required but empty", bad, _key_of(spec, out, bad))

    for chk in spec.checks:
        col = out.column(chk.column)
        masks = []
        if chk.min is not None:
            masks.append(pc.less(col, chk.min))
        if chk.max is not None:
            masks.append(pc.greater(col, chk.max))
        if chk.allowed is not None:
            masks.append(pc.invert(pc.is_in(col, value_set=pa.array(chk.allowed, type=col.type))))
        if chk.nonempty:
            masks.append(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        valid = pc.is_valid(col)
        for m in masks:
            bad = _first_true(pc.and_(m, valid))
            if bad is not None:
                value = col[bad].as_py()
                raise ValidationError(spec.name, chk.column, f"must be {chk.describe()}, got {value!r}", bad,
                                      _key_of(spec, out, bad))

    if spec.key and spec.unique_key and n:
        keys = out.column(spec.key)
        if pc.count_distinct(keys).as_py() != n:
            counts = pc.value_counts(keys)
            dup = next(v["values"] for v in counts.to_pylist() if v["counts"] > 1)
            row = _first_true(pc.equal(keys, pa.scalar(dup, type=keys.type)))
            # name the second occurrence: that is the record that breaks uniqueness
            second = _first_true(pc.and_(pc.equal(keys, pa.scalar(dup, type=keys.type)),
                                         pc.greater(pa.array(range(n)), row)))
            raise ValidationError(spec.name, spec.key, f"must be unique; {dup!r} appears again", second,
                                  _key_of(spec, out, second))
    return out
