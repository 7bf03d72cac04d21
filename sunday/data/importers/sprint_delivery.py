"""Sprint delivery capability (iteration velocity) -> workspaces, projects, sprints, sprint_snapshots, sprint_issues,
issue_links.

Each subfolder is one tracker (``Apache``, ``JBoss``, ...) holding ``<p>_iteration_T.csv``, ``<p>_issue_T.csv`` and
``<p>_issuelink_T.csv`` for each prediction time T (% of the sprint elapsed) present. Files are read as Latin-1;
text that is really UTF-8 read as Latin-1 (JIRA sprint names such as ``DÃ©jÃ  vu``) is decoded back and counted
in a note.

Mapping: a tracker folder is a workspace (``sprint_delivery:<folder lowercased>``) and each JIRA *board* in it is a
project (``<p>:<boardid>``): a board is one team's backlog, sprints belong to one board, and sprint ids only mean
something together with their board, so velocity history per board is what a project's history is in the product.
Sprints are ``<p>:<boardid>:<sprintid>``; their name and planned days come from the earliest time's file.

Known defect: some sprint names hold unquoted commas, so their rows have extra fields. ``name`` is the only free-text
column, so such a row is repaired by joining the extra fields back into ``name`` (a wrong repair would then fail the
numeric conversion of the shifted columns); every repaired file gets a note. Rows with too few fields still raise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from sunday.data.csvio import read_csv, to_number
from sunday.errors import DatasetMissingError, MalformedInputError
from sunday.data.importers.base import Importer, register
from sunday.schema.planning_tables import ISSUE_COUNTS, ITERATION_COUNTS, ITERATION_VELOCITIES

DATASET = "sprint_delivery"
ENCODING = "latin-1"
_ITERATION = re.compile(r"^(?P<prefix>.+)_iteration_(?P<time>\d+)\.csv$")
MISSING_TEXT = ("", "null", "NULL")


def join_name_fields(header: list[str], row: list[str], line: int) -> list[str] | None:
    """read_csv repair: a row with extra fields gets them joined (with the lost commas) back into ``name``."""
    extra = len(row) - len(header)
    if extra <= 0 or "name" not in header:
        return None
    i = header.index("name")
    return row[:i] + [",".join(row[i:i + extra + 1])] + row[i + extra + 1:]


def fix_mojibake(text: pd.Series) -> tuple[pd.Series, int]:
    """Decode values that are UTF-8 bytes read as Latin-1; values that do not decode cleanly stay as they are."""
    def fix(v: object) -> object:
        if not isinstance(v, str) or v.isascii():
            return v
        try:
            return v.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return v

    fixed = text.map(fix)
    return fixed, int((fixed != text).sum())


def to_int(df: pd.DataFrame, column: str, source: str, na: tuple[str, ...] = ("", "NULL", "NA")) -> pd.Series:
    """Integer column (nullable Int64); a non-number or a fractional value raises naming the row and column."""
    out = to_number(df, column, source, na=na)
    frac = out.notna() & (out % 1 != 0)
    if frac.any():
        i = int(frac.to_numpy().argmax())
        raise MalformedInputError(f"{source}: data row {i + 1}: column '{column}' is not a whole number: "
                                  f"{df[column].iloc[i]!r}")
    return out.astype("Int64")


def _text(values: pd.Series) -> pd.Series:
    return values.where(~values.str.strip().isin(MISSING_TEXT), None)


def tracker_files(source_dir: Path) -> dict[str, tuple[Path, str, list[int]]]:
    """folder name -> (folder, file prefix, sorted prediction times) for every tracker subfolder."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DatasetMissingError(f"sprint delivery folder not found: {source_dir}")
    out = {}
    for folder in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        found = [_ITERATION.match(p.name) for p in folder.glob("*_iteration_*.csv")]
        found = [m for m in found if m]
        if not found:
            continue
        prefixes = {m["prefix"] for m in found}
        if len(prefixes) > 1:
            raise MalformedInputError(f"{folder}: iteration files with several prefixes {sorted(prefixes)}")
        out[folder.name] = (folder, prefixes.pop(), sorted({int(m["time"]) for m in found}))
    if not out:
        raise DatasetMissingError(f"sprint delivery folder {source_dir} holds no <project>/*_iteration_T.csv files")
    return out


def _keys(df: pd.DataFrame, p: str, workspace: str, t: int, source: str) -> pd.DataFrame:
    boardid, sprintid = to_int(df, "boardid", source), to_int(df, "sprintid", source)
    return pd.DataFrame({
        "workspace_id": workspace,
        "project_id": p + ":" + boardid.astype(str),
        "sprint_id": p + ":" + boardid.astype(str) + ":" + sprintid.astype(str),
        "pct_elapsed": t,
        "boardid": boardid,
        "sprintid": sprintid,
    }, index=df.index)


def read_iterations(path: Path, p: str, workspace: str, t: int) -> tuple[pd.DataFrame, int, int]:
    """sprint_snapshots rows of one iteration file, with the number of repaired rows and re-decoded names."""
    repaired: list[dict] = []
    raw = read_csv(path, encoding=ENCODING, repair=join_name_fields, repaired=repaired)
    out = _keys(raw, p, workspace, t, str(path))
    out.insert(0, "snapshot_id", out["sprint_id"] + "@" + str(t))
    out["name"], decoded = fix_mojibake(raw["name"])
    for c in ITERATION_VELOCITIES:
        out[c] = to_number(raw, c, str(path))
    for c in ITERATION_COUNTS:
        out[c] = to_int(raw, c, str(path))
    out["source_order"] = pd.Series(range(len(raw)), index=raw.index, dtype="int64")
    return out, len(repaired), decoded


def read_issues(path: Path, p: str, workspace: str, t: int) -> pd.DataFrame:
    raw = read_csv(path, encoding=ENCODING)
    out = _keys(raw, p, workspace, t, str(path))
    index = out.groupby(["boardid", "sprintid"]).cumcount()
    out.insert(0, "issue_row_id", out["sprint_id"] + "@" + str(t) + "#" + index.astype(str))
    out["issue_index"] = index.astype("int64")
    out["type"] = _text(raw["type"])
    out["priority"] = _text(raw["priority"])
    for c in ISSUE_COUNTS:
        out[c] = to_int(raw, c, str(path))
    out["gunning_fog"] = _text(raw["gunning_fog"])
    return out


def read_links(path: Path, p: str, workspace: str) -> pd.DataFrame:
    raw = read_csv(path, encoding=ENCODING)
    ids = to_int(raw, "idissuelink", str(path))
    return pd.DataFrame({
        "link_id": p + ":" + ids.astype(str),
        "workspace_id": workspace,
        "pct_elapsed": pd.Series(pd.NA, index=raw.index, dtype="Int64"),
        "idissuelink": ids,
        "issuekey": raw["issuekey"].str.strip(),
        "linkedIssueKey": raw["linkedIssueKey"].str.strip(),
        "name": _text(raw["name"]),
    })


def load_tracker(folder: Path, prefix: str, times: list[int]) -> dict[str, Any]:
    p = folder.name.lower()
    workspace = f"{DATASET}:{p}"
    snaps, issues, links, notes = [], [], {}, []
    for t in times:
        path = folder / f"{prefix}_iteration_{t}.csv"
        it, n_repaired, n_decoded = read_iterations(path, p, workspace, t)
        snaps.append(it)
        if n_repaired or n_decoded:
            notes.append(f"{folder.name}/{path.name}: {n_repaired} of {len(it)} row(s) repaired "
                         f"(sprint name with unquoted commas)"
                         + (f", {n_decoded} UTF-8 name(s) decoded" if n_decoded else ""))
        issues.append(read_issues(folder / f"{prefix}_issue_{t}.csv", p, workspace, t))
        links[t] = read_links(folder / f"{prefix}_issuelink_{t}.csv", p, workspace)
    first = links[times[0]]
    if all(links[t].equals(first) for t in times):
        link_table = first
    else:  # keep every time's links apart
        link_table = pd.concat([df.assign(pct_elapsed=t, link_id=df["link_id"] + "@" + str(t))
                                for t, df in links.items()], ignore_index=True)
        notes.append(f"{folder.name}: issue link files differ between times; links stored per time")
    base = snaps[0]
    sprints = pd.DataFrame({
        "sprint_id": base["sprint_id"], "workspace_id": workspace, "project_id": base["project_id"],
        "name": base["name"], "planned_days": base["planday"].astype("float64"),
    })
    boards = base["boardid"].drop_duplicates().sort_values()
    projects = pd.DataFrame({"project_id": p + ":" + boards.astype(str), "workspace_id": workspace,
                             "name": f"{folder.name} board " + boards.astype(str)})
    return {
        "workspace": {"workspace_id": workspace, "name": folder.name, "source": DATASET},
        "projects": projects, "sprints": sprints,
        "sprint_snapshots": pd.concat(snaps, ignore_index=True),
        "sprint_issues": pd.concat(issues, ignore_index=True),
        "issue_links": link_table, "notes": notes,
    }


@register
class SprintDeliveryImporter(Importer):
    name = "sprint_delivery"
    folder = "sprint_delivery"
    description = "JIRA sprints with delivered-minus-committed velocity and features at 0/30/50/80 % elapsed"

    def load(self, source: Path) -> dict[str, Any]:
        parts = [load_tracker(*spec) for spec in tracker_files(source).values()]
        tables: dict[str, Any] = {"workspaces": pd.DataFrame([x["workspace"] for x in parts])}
        for name in ("projects", "sprints", "sprint_snapshots", "sprint_issues", "issue_links"):
            tables[name] = pd.concat([x[name] for x in parts], ignore_index=True)
        tables["_notes"] = [n for x in parts for n in x["notes"]]
        return tables
