"""Delay risk of issues with due dates -> workspaces, tasks, delay_snapshots.

Files are ``<project>_<time>.csv`` for time in creation/due/discussion; projects are discovered from the files
present and every project must have all three. Files are Latin-1, ``NULL`` marks a missing value.

Ids: workspace ``delayed_issues:<project>``, task ``<project>:<issuekey>``, snapshot ``<task_id>@<time>``.
A task is built from the ``creation`` file (the row order there is ``source_order``): created_at = openeddate,
status ``done`` (every issue was resolved: delaydays is known) and priority mapped to the core set
(Trivial/Minor/Optional -> low, Major -> medium, Critical -> high, Blocker -> critical; anything else, e.g. Mulesoft's
"To be reviewed", is left null). The raw priority of every time stays in ``delay_snapshots``. Row order differs
between the time files of some projects (ties on openeddate), so each snapshot keeps its own ``source_order``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from sunday.data.csvio import read_csv, to_number
from sunday.data.importers.base import Importer, register
from sunday.data.importers.sprint_delivery import to_int
from sunday.errors import DatasetMissingError, MalformedInputError
from sunday.schema.planning_tables import DELAY_COUNTS, PREDICTION_TIMES, TOPIC_SIZES

DATASET = "delayed_issues"
ENCODING = "latin-1"
NA = ("", "NULL")
OPENED_FORMAT = "%Y-%m-%d %H:%M:%S"
_FILE = re.compile(r"^(?P<project>.+)_(?P<time>" + "|".join(PREDICTION_TIMES) + r")\.csv$")
PRIORITY_MAP = {"trivial": "low", "minor": "low", "optional": "low", "major": "medium", "critical": "high",
                "blocker": "critical"}
INT_COLUMNS = ("delaydays", *DELAY_COUNTS, "ProgressTime", "RemainingDay", *[f"topic_{k}" for k in TOPIC_SIZES])
FLOAT_COLUMNS = ("perofdelay", "reporterrep")
TEXT_COLUMNS = ("type", "priority")


def project_files(source_dir: Path) -> dict[str, dict[str, Path]]:
    """project -> {time -> path} for every project with files in ``source_dir``."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DatasetMissingError(f"delayed issues folder not found: {source_dir}")
    out: dict[str, dict[str, Path]] = {}
    for path in sorted(source_dir.glob("*.csv")):
        m = _FILE.match(path.name)
        if m:
            out.setdefault(m["project"], {})[m["time"]] = path
    if not out:
        raise DatasetMissingError(f"delayed issues folder {source_dir} holds no <project>_<time>.csv file "
                                  f"(time one of {list(PREDICTION_TIMES)})")
    for project, files in out.items():
        missing = [t for t in PREDICTION_TIMES if t not in files]
        if missing:
            raise DatasetMissingError(f"delayed issues project '{project}' lacks "
                                      + ", ".join(f"{project}_{t}.csv" for t in missing) + f" in {source_dir}")
    return dict(sorted(out.items()))


def read_snapshots(path: Path, project: str, time: str) -> pd.DataFrame:
    """delay_snapshots rows of one file."""
    raw = read_csv(path, encoding=ENCODING)
    needed = ("issuekey", "openeddate", *INT_COLUMNS, *FLOAT_COLUMNS, *TEXT_COLUMNS)
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise MalformedInputError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    key = raw["issuekey"].str.strip()
    task_id = project + ":" + key
    opened = pd.to_datetime(raw["openeddate"].where(~raw["openeddate"].isin(NA), None),
                            format=OPENED_FORMAT, errors="coerce")
    bad = opened.isna() & ~raw["openeddate"].isin(NA)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise MalformedInputError(f"{path}: data row {i + 1}: column 'openeddate' is not a date: "
                                  f"{raw['openeddate'].iloc[i]!r}")
    out = pd.DataFrame({
        "snapshot_id": task_id + "@" + time, "task_id": task_id, "workspace_id": f"{DATASET}:{project}",
        "project": project, "prediction_time": time, "issuekey": key, "openeddate": opened.astype("datetime64[us]"),
    })
    for c in TEXT_COLUMNS:
        out[c] = raw[c].where(~raw[c].isin(NA), None)
    for c in INT_COLUMNS:
        out[c] = to_int(raw, c, str(path), na=NA)
    for c in FLOAT_COLUMNS:
        out[c] = to_number(raw, c, str(path), na=NA)
    out["source_order"] = pd.Series(range(len(raw)), index=raw.index, dtype="int64")
    return out


def map_priority(raw: pd.Series) -> pd.Series:
    """Tracker priority -> low/medium/high/critical, null when there is no sensible mapping."""
    return raw.str.strip().str.lower().map(PRIORITY_MAP).astype(object).where(lambda s: s.notna(), None)


def tasks_of(creation: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task_id": creation["task_id"], "workspace_id": creation["workspace_id"],
        "priority": map_priority(creation["priority"]), "status": "done",
        "created_at": creation["openeddate"], "source_key": creation["issuekey"],
        "source_order": creation["source_order"],
    })


@register
class DelayedIssuesImporter(Importer):
    name = "delayed_issues"
    folder = "delayed_issues"
    description = "JIRA issues with due dates: delay days and risk factors at creation, due-date and discussion time"

    def load(self, source: Path) -> dict[str, Any]:
        workspaces, tasks, snaps, notes = [], [], [], []
        for project, files in project_files(source).items():
            per_time = {t: read_snapshots(files[t], project, t) for t in PREDICTION_TIMES}
            creation = per_time["creation"]
            for t, df in per_time.items():
                if set(df["task_id"]) != set(creation["task_id"]):
                    raise MalformedInputError(f"{files[t]}: holds other issues than {files['creation']}")
            workspaces.append({"workspace_id": f"{DATASET}:{project}", "name": project, "source": DATASET})
            t = tasks_of(creation)
            tasks.append(t)
            snaps.extend(per_time.values())
            unmapped = creation["priority"][t["priority"].isna()].fillna("(missing)").value_counts()
            notes.append(f"{project}: {len(creation)} issues x {len(PREDICTION_TIMES)} prediction times"
                         + ("; priority left null for " + ", ".join(f"{k!r} {v}" for k, v in unmapped.items())
                            if len(unmapped) else ""))
        return {
            "workspaces": pd.DataFrame(workspaces),
            "tasks": pd.concat(tasks, ignore_index=True),
            "delay_snapshots": pd.concat(snaps, ignore_index=True),
            "_notes": notes,
        }
