"""Bug triage (fixer recommendation): one zipped CSV of fixed bug reports per project -> workspaces, users, tasks.

Projects are discovered from the ``*.csv.zip`` files present: the project name is the file name without
``.csv.zip``, a ``sun_`` prefix and a ``_data`` suffix (``jdt_data.csv.zip`` -> ``jdt``, ``sun_firefox.csv.zip`` ->
``firefox``). Columns are matched case-insensitively: the label ``Assignee`` (or the misspelt ``Asignee``) and
``Description`` are required; ``bug_id``, ``creation_ts``, ``Summary`` are used when present.

Ids: workspace ``bug_triage:<project>``, user ``<project>:<assignee>``, task ``<project>-<bug_id>`` (or
``<project>-<row>`` with the 0-based row number when the file has no bug id). Every report is a fixed bug, so
status is ``done``. A report with an empty assignee keeps a null ``assignee_id`` and creates no user.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from sunday.data.csvio import read_zipped_csv
from sunday.data.importers.base import Importer, register
from sunday.errors import DatasetMissingError, MalformedInputError

DATASET = "bug_triage"
TITLE_CHARS = 120
CREATION_FORMAT = "%m/%d/%Y %H:%M"  # JDT: "10/10/2001 22:14"
_ALIASES = {
    "assignee": ("assignee", "asignee"),
    "description": ("description",),
    "summary": ("summary",),
    "bug_id": ("bug_id",),
    "creation_ts": ("creation_ts",),
}


def project_name(zip_path: Path) -> str:
    """``jdt_data.csv.zip`` -> ``jdt``; ``sun_firefox.csv.zip`` -> ``firefox``."""
    name = Path(zip_path).name
    name = re.sub(r"\.csv\.zip$", "", name, flags=re.IGNORECASE)
    name = re.sub(r"^sun_", "", name)
    return re.sub(r"_data$", "", name)


def project_files(source_dir: Path) -> dict[str, Path]:
    """project -> zip path for every ``*.csv.zip`` in ``source_dir``, sorted by project."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DatasetMissingError(f"bug triage folder not found: {source_dir}")
    files = {project_name(p): p for p in sorted(source_dir.glob("*.csv.zip"))}
    if not files:
        raise DatasetMissingError(f"bug triage folder {source_dir} holds no *.csv.zip file")
    return dict(sorted(files.items()))


def _columns(raw: pd.DataFrame, source: str) -> dict[str, str]:
    """role -> source column name, for the roles found (case-insensitive, with the known misspellings)."""
    lower = {c.strip().lower(): c for c in raw.columns}
    found = {role: lower[a] for role, names in _ALIASES.items() for a in names if a in lower}
    missing = [r for r in ("assignee", "description") if r not in found]
    if missing:
        raise MalformedInputError(f"{source}: missing column(s) {missing}; found {list(raw.columns)}")
    return found


def _titles(text: pd.Series) -> pd.Series:
    """First non-blank line of ``text``, stripped, at most TITLE_CHARS characters; None when blank."""
    first = text.str.strip().str.split("\n", n=1).str[0].str.strip().str[:TITLE_CHARS]
    return first.where(first != "", None)


def _created(values: pd.Series, source: str) -> pd.Series:
    blank = values.str.strip() == ""
    out = pd.to_datetime(values.where(~blank, None), format=CREATION_FORMAT, errors="coerce")
    retry = out.isna() & ~blank
    if retry.any():  # another tracker's format: let pandas infer it per value
        out[retry] = pd.to_datetime(values[retry], format="mixed", errors="coerce")
    bad = out.isna() & ~blank
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise MalformedInputError(f"{source}: data row {i + 1}: column 'creation_ts' is not a date: {values.iloc[i]!r}")
    return out.astype("datetime64[us]")


def load_project(project: str, path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(users, tasks) of one project zip."""
    raw = read_zipped_csv(path)
    cols = _columns(raw, str(path))
    n = len(raw)
    workspace = f"{DATASET}:{project}"
    assignee = raw[cols["assignee"]].str.strip()
    assignee_id = (project + ":" + assignee).where(assignee != "", None)
    description = raw[cols["description"]]
    order = pd.RangeIndex(n)
    if "bug_id" in cols:
        bug_id = raw[cols["bug_id"]].str.strip()
        source_key = bug_id.where(bug_id != "", None)
    else:
        source_key = pd.Series([None] * n, dtype=object)
    task_key = source_key.fillna(pd.Series(order.astype(str)))
    if "summary" in cols:
        summary = raw[cols["summary"]].str.strip()
        title = summary.where(summary != "", _titles(description))
    else:
        title = _titles(description)
    created = (_created(raw[cols["creation_ts"]], str(path)) if "creation_ts" in cols
               else pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]"))
    tasks = pd.DataFrame({
        "task_id": project + "-" + task_key,
        "workspace_id": workspace,
        "title": title,
        "description": description,
        "status": "done",
        "assignee_id": assignee_id,
        "created_at": created,
        "source_key": source_key,
        "source_order": pd.Series(order, dtype="int64"),
    })
    names = pd.Series(assignee[assignee != ""].unique(), dtype=object)
    users = pd.DataFrame({"user_id": project + ":" + names, "workspace_id": workspace, "name": names})
    return users, tasks


@register
class BugTriageImporter(Importer):
    name = "bug_triage"
    folder = "bug_triage"
    description = "fixed bug reports with their assignee (Eclipse JDT, Firefox, ...) for fixer recommendation"

    def load(self, source: Path) -> dict[str, Any]:
        workspaces, users, tasks, notes = [], [], [], []
        for project, path in project_files(source).items():
            u, t = load_project(project, path)
            workspaces.append({"workspace_id": f"{DATASET}:{project}", "name": project, "source": DATASET})
            users.append(u)
            tasks.append(t)
            unassigned = int(t["assignee_id"].isna().sum())
            notes.append(f"{path.name}: {len(t)} reports, {len(u)} assignees"
                         + (f", {unassigned} report(s) with an empty assignee (assignee_id left null)"
                            if unassigned else ""))
        return {
            "workspaces": pd.DataFrame(workspaces),
            "users": pd.concat(users, ignore_index=True),
            "tasks": pd.concat(tasks, ignore_index=True),
            "_notes": notes,
        }
