"""Story-point estimation (Deep-SE issues with GPT2SP split marks) -> workspaces, projects, tasks.

Every ``*.csv`` in the folder except ``within_proj_data.csv`` is one project (``mesos.csv`` -> ``mesos``) with columns
``issuekey, title, description, storypoint, split_mark``. Ids: workspace ``storypoints:<project>``, project
``<project>``, task ``<project>:<issuekey>``. Rows are kept in file order (``source_order``), which is creation order.
``load_published_mae`` reads the published per-project MAE table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sunday.data.csvio import read_csv, to_number
from sunday.data.importers.base import Importer, register
from sunday.errors import DatasetMissingError, MalformedInputError

DATASET = "storypoints"
PUBLISHED_FILE = "within_proj_data.csv"
COLUMNS = ("issuekey", "title", "description", "storypoint", "split_mark")
SPLITS = ("train", "val", "test")


def _folder(source_dir: Path) -> Path:
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise DatasetMissingError(f"story-point folder not found: {source_dir}")
    return source_dir


def project_files(source_dir: Path) -> dict[str, Path]:
    """project -> CSV path for every project CSV in ``source_dir``, sorted by project."""
    folder = _folder(source_dir)
    files = {p.stem: p for p in sorted(folder.glob("*.csv")) if p.name != PUBLISHED_FILE}
    if not files:
        raise DatasetMissingError(f"story-point folder {folder} holds no project *.csv file")
    return files


def read_project(path: Path) -> pd.DataFrame:
    """One project CSV, checked: all columns present, storypoint numeric, split_mark one of train/val/test."""
    raw = read_csv(path)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise MalformedInputError(f"{path}: missing column(s) {missing}; found {list(raw.columns)}")
    raw["storypoint"] = to_number(raw, "storypoint", str(path))
    split = raw["split_mark"].str.strip().str.lower()
    bad = ~split.isin(SPLITS)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise MalformedInputError(f"{path}: data row {i + 1}: column 'split_mark' must be one of {list(SPLITS)}, "
                                  f"got {raw['split_mark'].iloc[i]!r}")
    raw["split_mark"] = split
    return raw


def project_tasks(project: str, raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task_id": project + ":" + raw["issuekey"],
        "workspace_id": f"{DATASET}:{project}",
        "project_id": project,
        "title": raw["title"],
        "description": raw["description"],
        "story_points": raw["storypoint"],
        "split": raw["split_mark"],
        "source_key": raw["issuekey"],
        "source_order": pd.Series(range(len(raw)), index=raw.index, dtype="int64"),
    })


def load_published_mae(source_dir: Path) -> pd.DataFrame:
    """The published within-project table: ``project`` plus SP_mean, SP_std and one MAE column per method
    (GPT2SP, DeepSE, ..., Median, Mean), as floats. One row per project it lists (16, more than are present)."""
    path = _folder(source_dir) / PUBLISHED_FILE
    raw = read_csv(path)
    if "Project" not in raw.columns:
        raise MalformedInputError(f"{path}: missing column 'Project'; found {list(raw.columns)}")
    out = pd.DataFrame({"project": raw["Project"].str.strip()})
    for c in raw.columns:
        if c != "Project":
            out[c] = to_number(raw, c, str(path))
    return out


@register
class StoryPointsImporter(Importer):
    name = "storypoints"
    folder = "storypoints_deepse"
    description = "JIRA issues with team story points and the GPT2SP train/val/test split (Deep-SE dataset)"

    def load(self, source: Path) -> dict[str, Any]:
        workspaces, projects, tasks, notes = [], [], [], []
        for project, path in project_files(source).items():
            raw = read_project(path)
            workspace = f"{DATASET}:{project}"
            workspaces.append({"workspace_id": workspace, "name": project, "source": DATASET})
            projects.append({"project_id": project, "workspace_id": workspace, "name": project})
            tasks.append(project_tasks(project, raw))
            counts = raw["split_mark"].value_counts()
            notes.append(f"{path.name}: {len(raw)} issues (" + ", ".join(f"{s} {int(counts.get(s, 0))}"
                                                                         for s in SPLITS) + ")")
        return {
            "workspaces": pd.DataFrame(workspaces),
            "projects": pd.DataFrame(projects),
            "tasks": pd.concat(tasks, ignore_index=True),
            "_notes": notes,
        }
