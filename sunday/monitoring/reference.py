"""The training reference of a model version: a sample of the rows it was trained / validated on, with its
predictions, saved beside the registry under ``<home>/monitoring/reference/<model>/<version>.parquet``.

A training job (or the pipeline) calls, once the version is registered::

    from sunday.monitoring.reference import save_reference
    save_reference(settings, "priority_scorer", version, holdout_frame)

The frame's columns should be named as the prediction log names them (:mod:`sunday.monitoring.predictions`:
model inputs as they are, model outputs prefixed ``pred_``): the drift monitor compares the columns both share.
When a version has no saved reference, the monitor falls back to the first rows the version served
(:func:`serving_baseline`).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pandas as pd

from sunday.errors import SundayError

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def reference_dir(settings, model_name: str) -> Path:
    if not _SAFE.match(model_name):
        raise SundayError(f"model_name: {model_name!r} is not a valid model name (letters, digits, _ . -)")
    return Path(settings.home) / "monitoring" / "reference" / model_name


def reference_path(settings, model_name: str, version: str) -> Path:
    version = str(version)
    if not _SAFE.match(version):
        raise SundayError(f"version: {version!r} is not a valid version")
    return reference_dir(settings, model_name) / f"{version}.parquet"


def save_reference(settings, model_name: str, version: str | int, frame: pd.DataFrame, max_rows: int = 5000,
                   seed: int = 0, source: str = "") -> Path:
    """Save a sample of at most ``max_rows`` rows of ``frame`` as the reference of ``model_name`` v``version``
    (replacing an earlier one); returns the file. Columns of unsupported types (lists, dicts) are dropped."""
    if not isinstance(frame, pd.DataFrame) or frame.empty:
        raise SundayError(f"frame: the reference of {model_name} v{version} must be a non-empty DataFrame")
    if max_rows < 1:
        raise SundayError(f"max_rows: must be >= 1, got {max_rows}")
    sample = frame.sample(n=max_rows, random_state=seed) if len(frame) > max_rows else frame
    sample = sample.reset_index(drop=True)
    keep = [c for c in sample.columns if not sample[c].map(lambda v: isinstance(v, (list, dict, tuple))).any()]
    sample = sample[keep].copy()
    sample.columns = [str(c) for c in sample.columns]
    for c in sample.columns:  # mixed object columns (e.g. str and None) -> strings parquet can hold
        if sample[c].dtype == object:
            sample[c] = sample[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    path = reference_path(settings, model_name, str(version))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    sample.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    meta = {"model": model_name, "version": str(version), "rows": len(sample), "rows_total": len(frame),
            "saved_at": time.time(), "source": source, "columns": list(sample.columns)}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2))
    return path


def load_reference(settings, model_name: str, version: str | int | None = None) -> tuple[pd.DataFrame, str] | None:
    """``(frame, version)`` of the saved reference of ``version`` (None: the most recently saved one), or None."""
    folder = reference_dir(settings, model_name)
    if version is not None:
        path = reference_path(settings, model_name, str(version))
        return (pd.read_parquet(path), str(version)) if path.is_file() else None
    files = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    if not files:
        return None
    return pd.read_parquet(files[-1]), files[-1].stem


def reference_versions(settings, model_name: str) -> list[str]:
    folder = reference_dir(settings, model_name)
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


def serving_baseline(log, model_name: str, version: str | None, rows: int) -> pd.DataFrame:
    """The first ``rows`` predictions ``version`` of ``model_name`` served (the reference of a version that has
    no saved training reference)."""
    return log.read(model_name, version=version, limit=rows, oldest_first=True)


__all__ = ["save_reference", "load_reference", "reference_path", "reference_dir", "reference_versions",
           "serving_baseline"]
