"""Numenta Anomaly Benchmark: labelled metric series -> metric_series, anomaly_windows, nab_profiles.

Series are discovered as ``data/**/*.csv``; a series id is the path relative to ``data/`` with forward slashes
(``realKnownCause/nyc_taxi.csv``), the key used by ``labels/combined_windows.json``. Label entries for series that
are not in ``data/`` are ignored and counted in a note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from sunday.data.csvio import read_csv, to_number
from sunday.data.importers.base import Importer, register
from sunday.errors import DatasetMissingError, MalformedInputError

WORKSPACE = "nab"
SERIES_TS_FORMAT = "%Y-%m-%d %H:%M:%S"
WINDOWS_FILE = Path("labels") / "combined_windows.json"
PROFILES_FILE = Path("config") / "profiles.json"
# profiles.json CostMatrix keys -> short names
_WEIGHTS = {"tpWeight": "tp", "fpWeight": "fp", "fnWeight": "fn", "tnWeight": "tn"}

Window = tuple[pd.Timestamp, pd.Timestamp]


def _data_dir(source_dir: Path) -> Path:
    path = Path(source_dir) / "data"
    if not path.is_dir():
        raise DatasetMissingError(f"NAB series folder not found: {path} is missing")
    return path


def series_files(source_dir: Path) -> dict[str, Path]:
    """series_id -> CSV path for every ``data/**/*.csv``, sorted by id."""
    data = _data_dir(source_dir)
    files = {p.relative_to(data).as_posix(): p for p in data.rglob("*.csv") if p.is_file()}
    if not files:
        raise DatasetMissingError(f"NAB series folder {data} holds no *.csv series")
    return dict(sorted(files.items()))


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise DatasetMissingError(f"missing file: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise MalformedInputError(f"{path}: not valid JSON: {exc}") from None


def _parse_times(values: pd.Series, fmt: str | None, where: Callable[[int], str]) -> pd.Series:
    """Parse timestamps (naive, microseconds); the first bad value raises, located by ``where(position)``."""
    out = pd.to_datetime(values, format=fmt, errors="coerce")
    bad = out.isna()
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise MalformedInputError(f"{where(i)}: not a timestamp: {values.iloc[i]!r}")
    return out.astype("datetime64[us]")


def read_series(path: Path) -> pd.DataFrame:
    """One NAB series CSV as a DataFrame (timestamp datetime64[us], value float64)."""
    raw = read_csv(path)
    missing = [c for c in ("timestamp", "value") if c not in raw.columns]
    if missing:
        raise MalformedInputError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    return pd.DataFrame({
        # data rows start on line 2 (blank lines are skipped by read_csv, none occur in NAB)
        "timestamp": _parse_times(raw["timestamp"], SERIES_TS_FORMAT, lambda i: f"{path}: line {i + 2}: timestamp"),
        "value": to_number(raw, "value", str(path)),
    })


def load_series(source_dir: Path) -> dict[str, pd.DataFrame]:
    """series_id -> DataFrame(timestamp, value) for every series in ``data/``."""
    return {sid: read_series(path) for sid, path in series_files(source_dir).items()}


def read_windows(source_dir: Path) -> dict[str, list[Window]]:
    """Every entry of labels/combined_windows.json (present in data/ or not): series_id -> [(start, end), ...]."""
    path = Path(source_dir) / WINDOWS_FILE
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise MalformedInputError(f"{path}: expected an object mapping series to windows, got {type(raw).__name__}")
    out: dict[str, list[Window]] = {}
    for sid, windows in raw.items():
        if not isinstance(windows, list) or not all(isinstance(w, list) and len(w) == 2 for w in windows):
            raise MalformedInputError(f"{path}: series {sid!r}: expected a list of [start, end] pairs")
        flat = pd.Series([t for w in windows for t in w], dtype=object)
        times = _parse_times(flat, "ISO8601", lambda i, sid=sid: f"{path}: series {sid!r} window {i // 2}")
        pairs = [(times.iloc[2 * i], times.iloc[2 * i + 1]) for i in range(len(windows))]
        for start, end in pairs:
            if end < start:
                raise MalformedInputError(f"{path}: series {sid!r}: window ends before it starts: {start} > {end}")
        out[sid] = pairs
    return out


def load_windows(source_dir: Path) -> dict[str, list[Window]]:
    """series_id -> labelled anomaly windows, for the series present in ``data/`` only."""
    present = series_files(source_dir)
    return {sid: w for sid, w in read_windows(source_dir).items() if sid in present}


def load_profiles(source_dir: Path) -> dict[str, dict[str, float]]:
    """profile name -> {"tp", "fp", "fn", "tn"} weights from config/profiles.json."""
    path = Path(source_dir) / PROFILES_FILE
    raw = _read_json(path)
    out: dict[str, dict[str, float]] = {}
    try:
        for name, body in raw.items():
            matrix = body["CostMatrix"]
            out[name] = {short: float(matrix[key]) for key, short in _WEIGHTS.items()}
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedInputError(f"{path}: expected {{profile: {{CostMatrix: {{tpWeight, ...}}}}}}: {exc!r}") from None
    return out


@register
class NabImporter(Importer):
    name = "nab"
    folder = "nab"
    description = "Numenta Anomaly Benchmark: labelled metric series with anomaly windows and scoring profiles"

    def load(self, source: Path) -> dict[str, Any]:
        series = load_series(source)
        all_windows = read_windows(source)
        notes: list[str] = []

        points = pd.concat(
            [df.assign(series_id=sid) for sid, df in series.items()], ignore_index=True,
        )[["series_id", "timestamp", "value"]].assign(workspace_id=WORKSPACE)

        ignored = {sid: w for sid, w in all_windows.items() if sid not in series}
        if ignored:
            notes.append(f"ignored {len(ignored)} label entries ({sum(map(len, ignored.values()))} windows) for "
                         f"series not in data/: {', '.join(sorted(ignored)[:5])}{' ...' if len(ignored) > 5 else ''}")
        unlabelled = [sid for sid in series if sid not in all_windows]
        if unlabelled:
            notes.append(f"{len(unlabelled)} series have no entry in {WINDOWS_FILE.as_posix()}: "
                         f"{', '.join(unlabelled[:5])}{' ...' if len(unlabelled) > 5 else ''}")
        repeated = points.duplicated(["series_id", "timestamp"], keep="first")
        if repeated.any():
            sids = points.loc[repeated, "series_id"].unique()
            notes.append(f"{int(repeated.sum())} points in {len(sids)} series repeat an earlier timestamp of their "
                         f"series (kept as in the files, in file order): {', '.join(sorted(sids)[:5])}"
                         f"{' ...' if len(sids) > 5 else ''}")
        rows = [(sid, start, end) for sid, ws in all_windows.items() if sid in series for start, end in ws]
        windows = pd.DataFrame(rows, columns=["series_id", "start", "end"]).astype(
            {"start": "datetime64[us]", "end": "datetime64[us]"})
        windows = windows.assign(workspace_id=WORKSPACE, kind="labelled")

        tables: dict[str, Any] = {
            "workspaces": pd.DataFrame([{"workspace_id": WORKSPACE, "name": "NAB metric series", "source": "nab"}]),
            "metric_series": points,
            "anomaly_windows": windows,
        }
        if (Path(source) / PROFILES_FILE).exists():
            profiles = load_profiles(source)
            tables["nab_profiles"] = pd.DataFrame(
                [{"profile": name, **{f"{k}_weight": v for k, v in w.items()}} for name, w in profiles.items()])
        else:
            notes.append(f"no {PROFILES_FILE.as_posix()}: scoring profiles not imported")
        notes.insert(0, f"{len(series)} series, {len(points)} points, {len(windows)} labelled windows")
        tables["_notes"] = notes
        return tables
