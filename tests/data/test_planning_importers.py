"""Planning datasets on the real files: the counts each SOURCE.md states, the repaired rows, and storage."""

from __future__ import annotations

import csv
import zipfile

import pandas as pd
import pytest

from sunday.data.importers import get_importer, import_dataset
from sunday.schema import validate
from sunday.store import Warehouse

FOLDERS = {"bug_triage": "bug_triage", "storypoints": "storypoints_deepse", "sprint_delivery": "sprint_delivery",
           "delayed_issues": "delayed_issues"}


@pytest.fixture(scope="module")
def loaded(data_dir):
    """dataset -> tables as returned by the importer, validated (each importer runs once per module)."""
    out = {}
    for name, folder in FOLDERS.items():
        tables = get_importer(name).load(data_dir / folder)
        notes = tables.pop("_notes")
        out[name] = {k: validate(k, v).to_pandas() for k, v in tables.items()}
        out[name]["_notes"] = notes
    return out


def test_bug_triage_counts(loaded, data_dir):
    t = loaded["bug_triage"]
    tasks, users = t["tasks"], t["users"]
    assert sorted(t["workspaces"]["name"]) == ["firefox", "jdt"]
    per = tasks.groupby("workspace_id").size()
    assert per["bug_triage:jdt"] == 1465 and per["bug_triage:firefox"] == 13668
    assert users.groupby("workspace_id").size()["bug_triage:jdt"] == 69
    # SOURCE counts 849 Firefox assignees: one of them is the empty string (one report), which makes no user
    with zipfile.ZipFile(data_dir / "bug_triage" / "sun_firefox.csv.zip") as zf:
        raw = pd.read_csv(zf.open("sun_firefox.csv"), dtype=str, keep_default_na=False)
    assert raw["Assignee"].nunique() == 849 and (raw["Assignee"] == "").sum() == 1
    assert users.groupby("workspace_id").size()["bug_triage:firefox"] == 848
    jdt = tasks[tasks["workspace_id"] == "bug_triage:jdt"]
    assert jdt["created_at"].notna().all() and str(jdt["created_at"].min()) == "2001-10-10 22:14:00"
    assert jdt["task_id"].iloc[0] == "jdt-1521" and jdt["source_key"].iloc[0] == "1521"
    assert set(tasks["assignee_id"].dropna()) <= set(users["user_id"])
    assert (tasks["status"] == "done").all() and tasks["title"].str.len().max() <= 120


def test_storypoints_counts(loaded, data_dir):
    t = loaded["storypoints"]
    folder = data_dir / "storypoints_deepse"
    projects = sorted(p.stem for p in folder.glob("*.csv") if p.name != "within_proj_data.csv")
    assert len(projects) == 12 and sorted(t["projects"]["project_id"]) == projects
    per = t["tasks"].groupby("project_id").size()
    for p in projects:  # each project's task count is its CSV row count (pandas' own parser as the reference)
        assert per[p] == len(pd.read_csv(folder / f"{p}.csv", dtype=str)), p
    assert per["mesos"] == 1680 and per["datamanagement"] == 4667
    assert per.sum() == 17971  # the 12 of SOURCE's 23,313 over 16 projects that are present here
    assert t["tasks"]["split"].notna().all() and t["tasks"]["story_points"].notna().all()
    mesos = t["tasks"][t["tasks"]["project_id"] == "mesos"]
    assert mesos["source_key"].iloc[0] == "MESOS-313" and mesos["split"].value_counts()["test"] == 336


def test_sprint_delivery_counts_and_repairs(loaded, data_dir):
    t = loaded["sprint_delivery"]
    snaps = t["sprint_snapshots"]
    at0 = snaps[snaps["pct_elapsed"] == 0].groupby("workspace_id").size()
    assert at0.to_dict() == {"sprint_delivery:apache": 348, "sprint_delivery:jboss": 372,
                             "sprint_delivery:jira": 1873, "sprint_delivery:mongodb": 765}
    assert sorted(snaps["pct_elapsed"].unique()) == [0, 30, 50, 80]
    assert len(t["sprints"]) == 348 + 372 + 1873 + 765
    issues0 = t["sprint_issues"].query("pct_elapsed == 0").groupby("workspace_id").size()
    assert issues0.to_dict() == {"sprint_delivery:apache": 5826, "sprint_delivery:jboss": 4984,
                                 "sprint_delivery:jira": 10852, "sprint_delivery:mongodb": 17528}
    repaired = {n.split(":")[0]: int(n.split(": ")[1].split(" ")[0]) for n in t["_notes"] if "_iteration_" in n}
    for t_ in (0, 30, 50, 80):
        assert repaired[f"JBoss/jboss_iteration_{t_}.csv"] == 4
        assert repaired[f"JIRA/jira_iteration_{t_}.csv"] == 12
        assert f"Apache/apache_iteration_{t_}.csv" not in repaired  # nothing to repair, nothing noted
    names = set(t["sprints"]["name"])
    assert {"Rel 5.0.0.Alpha2, 4.5.0.Alpha2", "Sprint_July7-11,2014", "Xavi, get back to work!"} <= names
    assert "Déjà vu" in names  # UTF-8 bytes read as Latin-1, decoded back
    # the repaired rows kept their numbers in the right columns
    row = snaps[(snaps["name"] == "Sprint_July7-11,2014") & (snaps["pct_elapsed"] == 0)].iloc[0]
    assert row["no_admin"] >= 1 and row["no_teammember"] >= 1
    links = t["issue_links"]
    assert links["pct_elapsed"].isna().all()  # identical across times, stored once
    assert links.groupby("workspace_id").size()["sprint_delivery:apache"] == 1500


def test_delayed_issues_counts(loaded, data_dir):
    t = loaded["delayed_issues"]
    folder = data_dir / "delayed_issues"
    assert len(t["workspaces"]) == 6
    per = t["tasks"].groupby("workspace_id").size()
    for project in ("apache", "javanet", "jboss", "jira", "moodle", "mulesoft"):
        with open(folder / f"{project}_creation.csv", encoding="latin-1", newline="") as fh:
            rows = sum(1 for _ in csv.reader(fh)) - 1
        assert per[f"delayed_issues:{project}"] == rows, project
    assert per["delayed_issues:apache"] == 6289
    snaps = t["delay_snapshots"]
    assert len(snaps) == 3 * len(t["tasks"])
    assert snaps.groupby("prediction_time").size().to_dict() == {p: len(t["tasks"]) for p in
                                                                ("creation", "discussion", "due")}
    assert snaps["openeddate"].notna().all() and (snaps["delaydays"] >= 0).all()
    tasks = t["tasks"].set_index("task_id")
    assert tasks.at["apache:DIR-1", "priority"] == "high" and str(tasks.at["apache:DIR-1", "created_at"]) == \
        "2004-01-26 00:00:00"
    mule = snaps[snaps["project"] == "mulesoft"]
    assert (mule["priority"] == "To be reviewed").any()  # raw value kept where the task's priority is null


@pytest.mark.parametrize("name", list(FOLDERS))
def test_import_through_warehouse(name, data_dir, tmp_path, loaded):
    result = import_dataset(name, data_dir, Warehouse(tmp_path / "warehouse"))
    expected = {k: len(v) for k, v in loaded[name].items() if k != "_notes"}
    assert result.counts == expected
    assert result.notes == loaded[name]["_notes"]
    stored = Warehouse(tmp_path / "warehouse").read(name, "tasks" if "tasks" in expected else "sprints")
    assert stored.num_rows == expected.get("tasks", expected.get("sprints"))
