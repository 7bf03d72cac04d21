"""Open Bandit Dataset sample -> notification_impressions (logged bandit feedback) and bandit_items.

Logs are discovered as ``obd/<policy>/<campaign>/<campaign>.csv`` (policy random/bts, campaign all/men/women), each
with an ``item_context.csv`` beside it. Values are kept as logged: position stays 1-3, clicks are not checked here
(the notification_impressions spec rejects anything but 0/1), timestamps become naive UTC.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.data.csvio import read_csv, to_number
from sunday.data.importers.base import Importer, register
from sunday.errors import DatasetMissingError, MalformedInputError

WORKSPACE = "obd"
LOG_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")
CONTEXT_COLUMNS = tuple(f"user_feature_{i}" for i in range(4))
ITEM_COLUMNS = ("item_id", "item_feature_0", "item_feature_1", "item_feature_2", "item_feature_3")
AFFINITY = re.compile(r"^user-item_affinity_(\d+)$")


def log_files(source_dir: Path) -> dict[tuple[str, str], Path]:
    """(policy, campaign) -> log CSV for every ``obd/<policy>/<campaign>/<campaign>.csv``, sorted."""
    root = Path(source_dir) / "obd"
    if not root.is_dir():
        raise DatasetMissingError(f"Open Bandit logs folder not found: {root} is missing")
    found = {(p.parent.parent.name, p.parent.name): p for p in root.glob("*/*/*.csv") if p.stem == p.parent.name}
    if not found:
        raise DatasetMissingError(f"Open Bandit folder {root} holds no <policy>/<campaign>/<campaign>.csv logs")
    return dict(sorted(found.items()))


def _require(df: pd.DataFrame, columns: tuple[str, ...], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MalformedInputError(f"{path}: missing column(s) {missing}")


def _list_column(block: np.ndarray, type_: pa.DataType) -> pa.Array:
    """The rows of a 2-D block as a list column (every list as wide as the block)."""
    n, width = block.shape
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(block.ravel(), type=type_.value_type)).cast(type_)


def read_log(path: Path, policy: str, campaign: str) -> pa.Table:
    """One logged-bandit-feedback CSV as notification_impressions rows."""
    raw = read_csv(path)
    _require(raw, LOG_COLUMNS + CONTEXT_COLUMNS, path)
    source = str(path)
    n = len(raw)
    # the unnamed first column is the row number pandas wrote; fall back to the position when it is absent
    rows = to_number(raw, "", source, "int") if "" in raw.columns else pd.Series(np.arange(n), dtype="Int64")
    stamps = pd.to_datetime(raw["timestamp"], format="ISO8601", utc=True, errors="coerce")
    if stamps.isna().any():
        i = int(stamps.isna().to_numpy().argmax())
        raise MalformedInputError(f"{path}: line {i + 2}: timestamp is not a timestamp: {raw['timestamp'].iloc[i]!r}")
    affinity_cols = sorted((c for c in raw.columns if AFFINITY.match(c)), key=lambda c: int(AFFINITY.match(c)[1]))
    affinity = np.column_stack([to_number(raw, c, source).to_numpy() for c in affinity_cols]) if affinity_cols \
        else np.empty((n, 0))
    context = raw[list(CONTEXT_COLUMNS)].to_numpy(dtype=object)

    ids = pd.Series(f"{policy}:{campaign}:", index=raw.index) + rows.astype(str)
    return pa.table({
        "impression_id": pa.array(ids, type=pa.string()),
        "workspace_id": pa.array([WORKSPACE] * n, type=pa.string()),
        "timestamp": pa.array(stamps.dt.tz_convert(None).astype("datetime64[us]"), type=pa.timestamp("us")),
        "item_id": pa.array(to_number(raw, "item_id", source, "int"), type=pa.int64()),
        "position": pa.array(to_number(raw, "position", source, "int"), type=pa.int64()),
        "clicked": pa.array(to_number(raw, "click", source, "int"), type=pa.int64()),
        "propensity": pa.array(to_number(raw, "propensity_score", source), type=pa.float64()),
        "policy": pa.array([policy] * n, type=pa.string()),
        "campaign": pa.array([campaign] * n, type=pa.string()),
        "context": _list_column(context, pa.list_(pa.string())),
        "affinity": _list_column(affinity, pa.list_(pa.float64())),
    })


def read_items(path: Path, policy: str, campaign: str) -> pd.DataFrame:
    """One item_context.csv as bandit_items rows."""
    raw = read_csv(path)
    _require(raw, ITEM_COLUMNS, path)
    source = str(path)
    item_id = to_number(raw, "item_id", source, "int")
    return pd.DataFrame({
        "item_key": f"{policy}:{campaign}:" + item_id.astype(str),
        "workspace_id": WORKSPACE,
        "policy": policy,
        "campaign": campaign,
        "item_id": item_id,
        "item_feature_0": to_number(raw, "item_feature_0", source),
        "item_feature_1": raw["item_feature_1"],
        "item_feature_2": raw["item_feature_2"],
        "item_feature_3": raw["item_feature_3"],
    })


@register
class OpenBanditImporter(Importer):
    name = "open_bandit"
    folder = "open_bandit_sample"
    description = "Open Bandit Dataset sample: logged recommendations (random and Thompson-sampling policies)"

    def load(self, source: Path) -> dict[str, Any]:
        logs, items, notes = [], [], []
        for (policy, campaign), path in log_files(source).items():
            log = read_log(path, policy, campaign)
            logs.append(log)
            clicks = log.column("clicked").to_numpy(zero_copy_only=False)
            ctr = float(np.nanmean(clicks)) if len(clicks) else float("nan")
            notes.append(f"{policy}/{campaign}: {log.num_rows} impressions, on-policy CTR {ctr:.4f}")
            context = path.parent / "item_context.csv"
            if context.exists():
                items.append(read_items(context, policy, campaign))
            else:
                notes.append(f"{policy}/{campaign}: no item_context.csv beside the log; its items are not imported")
        tables: dict[str, Any] = {
            "workspaces": pd.DataFrame([{"workspace_id": WORKSPACE, "name": "Open Bandit Dataset sample",
                                         "source": "open_bandit_sample"}]),
            "notification_impressions": pa.concat_tables(logs, promote_options="permissive"),
        }
        if items:
            tables["bandit_items"] = pd.concat(items, ignore_index=True)
        tables["_notes"] = notes
        return tables
