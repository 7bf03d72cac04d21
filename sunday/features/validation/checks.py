"""Contract checks of one feature batch: schema, nulls, ranges, list shapes, duplicates, timestamps.

``check_batch`` returns the issues and the batch conformed to the group's Arrow schema (``None`` when a
contract column is missing or cannot be cast safely). Value checks run on every column that could be read, so one
report names every broken column, not only the first.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sunday.features.groups import TIMESTAMP, TS_TYPE, Feature, FeatureGroup
from sunday.features.validation.config import ValidationConfig
from sunday.features.validation.report import BATCH, Issue, issue

# source type kinds a contract dtype accepts (then cast with safe=True; a failing cast is a type failure)
_ACCEPTS: dict[str, set[str]] = {
    "int": {"int", "float", "null"},  # float: pandas turns int columns with missing values into float64
    "float": {"int", "float", "null"},
    "string": {"string", "null"},
    "float_list": {"list<int>", "list<float>", "list<null>", "null"},
    "string_list": {"list<string>", "list<null>", "null"},
}


def to_arrow(batch: Any) -> pa.Table:
    """A pa.Table, pa.RecordBatch or pandas DataFrame as a pa.Table (raises on anything else)."""
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    pd = sys.modules.get("pandas")  # a DataFrame implies pandas is imported; never import it here
    if pd is not None and isinstance(batch, pd.DataFrame):
        return pa.Table.from_pandas(batch, preserve_index=False)
    raise TypeError(f"a feature batch must be a pyarrow Table or pandas DataFrame, not {type(batch).__name__}")


def _kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        return _kind(t.value_type)
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "naive timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return f"list<{_kind(t.value_type)}>"
    return str(t)


def _cast(col: pa.ChunkedArray, name: str, dtype: str,
          target: pa.DataType) -> tuple[pa.ChunkedArray | None, Issue | None]:
    kind = _kind(col.type)
    if col.type == target:
        return col, None
    if kind not in _ACCEPTS[dtype]:
        return None, issue(name, "type", f"is {col.type}, the contract says {target} ({dtype})")
    try:
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        return pc.cast(col, target, safe=True), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        return None, issue(name, "type", f"is {col.type} and cannot be cast safely to {target}: {e}")


def _cast_timestamp(col: pa.ChunkedArray) -> tuple[pa.ChunkedArray | None, Issue | None]:
    kind = _kind(col.type)
    if kind == "naive timestamp":
        return None, issue(TIMESTAMP, "timezone", f"is {col.type} without a time zone; the contract is tz-aware UTC")
    if kind != "timestamp":
        return None, issue(TIMESTAMP, "type", f"is {col.type}, the contract says {TS_TYPE}")
    # unit change only drops sub-microsecond digits; the zone changes display only (values are UTC instants)
    return pc.cast(col, TS_TYPE, safe=False), None


def conform(group: FeatureGroup, table: pa.Table, config: ValidationConfig) -> tuple[dict[str, pa.ChunkedArray],
                                                                                    list[Issue], list[Issue]]:
    """Contract columns that are present and castable, cast to the contract types; schema failures and warnings."""
    failures: list[Issue] = []
    warnings: list[Issue] = []
    names = table.column_names
    for name, n in Counter(names).items():
        if n > 1:
            failures.append(issue(name, "duplicate_column", f"appears {n} times"))
    schema = group.arrow_schema()
    for name in names:
        if name not in schema.names:
            detail = f"is not in the contract of '{group.name}'"
            if config.allow_extra_columns:
                warnings.append(issue(name, "extra", detail + "; dropped"))
            else:
                failures.append(issue(name, "extra", detail))
    dtypes = {f.name: f.dtype for f in group.features} | {group.join_key: "string"}
    columns: dict[str, pa.ChunkedArray] = {}
    for fld in schema:
        if fld.name not in names:
            failures.append(issue(fld.name, "missing", f"contract column of '{group.name}' is missing"))
            continue
        col = table.column(names.index(fld.name))
        cast, problem = _cast_timestamp(col) if fld.name == TIMESTAMP else _cast(col, fld.name, dtypes[fld.name],
                                                                                 fld.type)
        if problem is not None:
            failures.append(problem)
        else:
            columns[fld.name] = cast
    return columns, failures, warnings


def _nulls(feature: Feature, col: pa.ChunkedArray, rows: int, config: ValidationConfig,
           failures: list[Issue], warnings: list[Issue]) -> None:
    nulls = col.null_count
    if not nulls or not rows:
        return
    rate = nulls / rows
    if not feature.nullable:
        failures.append(issue(feature.name, "null", f"{nulls} of {rows} rows are null; the feature is not nullable"))
    elif config.null_rate_fail is not None and rate > config.null_rate_fail:
        failures.append(issue(feature.name, "null_rate", f"null rate {rate:.1%} > {config.null_rate_fail:.1%}"))
    elif rate > config.null_rate_warn:
        warnings.append(issue(feature.name, "null_rate", f"null rate {rate:.1%} > {config.null_rate_warn:.1%}"))


def _values(feature: Feature, values: pa.Array | pa.ChunkedArray, failures: list[Issue], where: str = "") -> None:
    """Range and finiteness of numeric values (a scalar column, or the flattened items of a list column)."""
    if feature.dtype in ("float", "float_list"):
        bad = int(pc.sum(pc.invert(pc.is_finite(values))).as_py() or 0)  # nulls count as neither
        if bad:
            failures.append(issue(feature.name, "finite", f"{bad} {where}values are NaN or infinite"))
    if feature.min is None and feature.max is None:
        return
    arr = np.asarray(pc.drop_null(values).to_numpy(zero_copy_only=False), dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if feature.min is not None and (low := arr < feature.min).any():
        failures.append(issue(feature.name, "range", f"{int(low.sum())} {where}values below the minimum "
                                                     f"{feature.min:g} (lowest {arr[low].min():g})"))
    if feature.max is not None and (high := arr > feature.max).any():
        failures.append(issue(feature.name, "range", f"{int(high.sum())} {where}values above the maximum "
                                                     f"{feature.max:g} (highest {arr[high].max():g})"))


def _lists(feature: Feature, col: pa.ChunkedArray, config: ValidationConfig, failures: list[Issue]) -> None:
    if feature.dtype != "float_list":
        return
    flat = pc.list_flatten(col)
    if flat.null_count:
        failures.append(issue(feature.name, "list_nulls", f"{flat.null_count} null items inside the lists"))
    _values(feature, flat, failures, where="items: ")
    lengths = Counter(pc.drop_null(pc.list_value_length(col)).to_pylist())
    if len(lengths) > 1:
        common = ", ".join(f"{n} long: {c} rows" for n, c in lengths.most_common(4))
        failures.append(issue(feature.name, "list_length", f"lengths differ within the batch ({common})"))
    expected = config.list_lengths.get(feature.name)
    if expected is not None and lengths and set(lengths) != {expected}:
        failures.append(issue(feature.name, "list_length", f"lists must be {expected} long, found "
                                                          f"{sorted(lengths)}"))


def _duplicates(group: FeatureGroup, columns: dict[str, pa.ChunkedArray], failures: list[Issue]) -> None:
    if group.join_key not in columns or TIMESTAMP not in columns:
        return
    keys = pa.table({"k": columns[group.join_key], "t": columns[TIMESTAMP]})
    counts = keys.group_by(["k", "t"]).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts.column("count_all"), 1))
    if dup.num_rows:
        extra = int(pc.sum(dup.column("count_all")).as_py()) - dup.num_rows
        first = dup.slice(0, 1).to_pylist()[0]
        failures.append(issue(group.join_key, "duplicate",
                              f"{dup.num_rows} ({group.join_key}, {TIMESTAMP}) pairs occur more than once "
                              f"({extra} extra rows), e.g. ({first['k']!r}, {first['t']})"))


def _timestamps(col: pa.ChunkedArray, now: datetime, config: ValidationConfig, failures: list[Issue]) -> None:
    if col.null_count:
        failures.append(issue(TIMESTAMP, "null", f"{col.null_count} rows have no timestamp"))
    latest = pc.max(col).as_py()
    limit = now + config.future_tolerance
    if latest is not None and latest > limit:
        n = int(pc.sum(pc.greater(col, pa.scalar(limit, TS_TYPE))).as_py() or 0)
        failures.append(issue(TIMESTAMP, "future", f"{n} rows are later than now + {config.future_tolerance} "
                                                   f"(latest {latest.isoformat()})"))


def check_batch(group: FeatureGroup, table: pa.Table, config: ValidationConfig,
                now: datetime | None = None) -> tuple[pa.Table | None, list[Issue], list[Issue]]:
    """Check ``table`` against ``group``'s contract: (conformed table or None, failures, warnings)."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    columns, failures, warnings = conform(group, table, config)
    rows = table.num_rows
    if rows < config.min_rows:
        failures.append(issue(BATCH, "empty", f"{rows} rows; at least {config.min_rows} expected"))
    key = columns.get(group.join_key)
    if key is not None and key.null_count:
        failures.append(issue(group.join_key, "null", f"{key.null_count} rows have no {group.join_key}"))
    if TIMESTAMP in columns:
        _timestamps(columns[TIMESTAMP], now, config, failures)
    for feature in group.features:
        col = columns.get(feature.name)
        if col is None:
            continue
        _nulls(feature, col, rows, config, failures, warnings)
        if feature.dtype in ("int", "float"):
            _values(feature, col, failures)
        _lists(feature, col, config, failures)
    _duplicates(group, columns, failures)
    schema = group.arrow_schema()
    conformed = pa.Table.from_arrays([columns[n] for n in schema.names], schema=schema) \
        if all(n in columns for n in schema.names) else None
    return conformed, failures, warnings


def check_reference_shapes(group: FeatureGroup, table: pa.Table, reference: pa.Table) -> list[Issue]:
    """Float-list lengths must match the reference's (a changed embedding size breaks every consumer)."""
    failures: list[Issue] = []
    for feature in group.features:
        if feature.dtype != "float_list" or not {feature.name} <= set(reference.column_names) & set(table.column_names):
            continue
        ref = set(pc.drop_null(pc.list_value_length(reference.column(feature.name))).to_pylist())
        cur = set(pc.drop_null(pc.list_value_length(table.column(feature.name))).to_pylist())
        if ref and cur and ref != cur:
            failures.append(issue(feature.name, "list_length", f"lists are {sorted(cur)} long, the reference's "
                                                              f"{sorted(ref)}"))
    return failures
