"""Planning importers and the story-point baselines on tiny files: errors name the file, line and column."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from rich.console import Console

from sunday.data.importers import get_importer
from sunday.errors import DatasetMissingError, MalformedInputError
from sunday.evaluation import get_evaluation
from sunday.evaluation.report import render
from sunday.schema import validate

SP_HEADER = "issuekey,title,description,storypoint,split_mark\n"
ITER_HEADER = ("boardid,sprintid,name,vel_diff,planday,no_issue_starttime,vel_starttime,no_issue_added,vel_added,"
               "no_issue_removed,vel_removed,no_issuetodo,vel_todo,no_issueinprogress,vel_inprogress,no_issuedone,"
               "vel_done,no_admin,no_teammember\n")
ISSUE_HEADER = ("boardid,sprintid,type,priority,no_comment,no_affectversion,no_fixversion,no_issuelink,no_blocking,"
                "no_blockedby,no_fixversion_change,no_priority_change,no_des_change,gunning_fog\n")
DELAY_HEADER = ("issuekey,delaydays,openeddate,type,discussion,repetition,perofdelay,workload,priority,no_comment,"
                "no_priority_change,no_fixversion,no_fixversion_change,no_issuelink,no_blocking,no_blockedby,"
                "no_affectversion,reporterrep,no_des_change,ProgressTime,RemainingDay,topic_10,topic_100,topic_200,"
                "topic_300,topic_400\n")
PUBLISHED_HEADER = ("Project,SP_mean,SP_std,GPT2SP,DeepSE,LSTM+RF,LSTM+SVM,Doc2Vec+RF,BOW+RF,LSTM+ATLM,LSTM+LR,"
                    "Median,Mean\n")


def _tables(name: str, folder: Path) -> tuple[dict, list[str]]:
    tables = get_importer(name).load(folder)
    notes = tables.pop("_notes")
    return {k: validate(k, v).to_pandas() for k, v in tables.items()}, notes


def _sprint_folder(root: Path, iteration_rows: str) -> Path:
    folder = root / "sprint_delivery" / "Acme"
    folder.mkdir(parents=True)
    (folder / "acme_iteration_0.csv").write_text(ITER_HEADER + iteration_rows, encoding="latin-1")
    (folder / "acme_issue_0.csv").write_text(ISSUE_HEADER + "1,7,Bug,Major,2,0,1,0,0,0,0,0,0,easy\n"
                                             "1,7,Task,null,0,0,0,0,0,0,0,0,0,hard\n")
    (folder / "acme_issuelink_0.csv").write_text("idissuelink,issuekey,linkedIssueKey,name\n1,AC-1,AC-2,blocks\n")
    return folder.parent


def _delay_folder(root: Path, times=("creation", "due", "discussion"), bad_row: str | None = None) -> Path:
    folder = root / "delayed_issues"
    folder.mkdir()
    rows = ('AC-1,3,"2015-01-02 00:00:00",Bug,0,0,0,1,Blocker,0,0,1,0,0,0,0,1,0.5,0,0,4,1,7,9,300,12\n'
            'AC-2,0,"2015-01-03 00:00:00",Task,0,0,0,1,NULL,0,0,1,0,0,0,0,1,0,0,0,4,10,100,200,1,400\n')
    for t in times:
        (folder / f"acme_{t}.csv").write_text(DELAY_HEADER + rows + (bad_row or ""), encoding="latin-1")
    return folder


# --- malformed rows -------------------------------------------------------------------------------------------------

def test_storypoints_row_with_wrong_field_count_names_file_and_line(tmp_path):
    (tmp_path / "acme.csv").write_text(SP_HEADER + "AC-1,t,d,3,train\nAC-2,t,d,extra,5,test\n")
    with pytest.raises(MalformedInputError, match=r"acme\.csv: line 3: expected 5 fields, got 6"):
        get_importer("storypoints").load(tmp_path)


def test_sprint_iteration_row_with_too_few_fields_is_not_repaired(tmp_path):
    folder = _sprint_folder(tmp_path, "1,7,Sprint 1,0,10,2,5,0,0,0,0,1,3,0,0,1,2,1,3\n1,8,Sprint 2,0,10\n")
    with pytest.raises(MalformedInputError, match=r"acme_iteration_0\.csv: line 3: expected 19 fields, got 5"):
        get_importer("sprint_delivery").load(folder)


def test_delayed_issues_row_with_wrong_field_count_names_file_and_line(tmp_path):
    folder = _delay_folder(tmp_path, bad_row="AC-3,1,2\n")
    with pytest.raises(MalformedInputError, match=r"acme_creation\.csv: line 4: expected 26 fields, got 3"):
        get_importer("delayed_issues").load(folder)


def test_non_numeric_story_point_names_the_column(tmp_path):
    (tmp_path / "acme.csv").write_text(SP_HEADER + "AC-1,t,d,3,train\nAC-2,t,d,big,test\n")
    with pytest.raises(MalformedInputError, match=r"acme\.csv: .*row \d+: column 'storypoint' is not a number: 'big'"):
        get_importer("storypoints").load(tmp_path)


def test_fractional_count_names_the_column(tmp_path):
    folder = _sprint_folder(tmp_path, "1,7,Sprint 1,0,10,2.5,5,0,0,0,0,1,3,0,0,1,2,1,3\n")
    with pytest.raises(MalformedInputError, match="column 'no_issue_starttime' is not a whole number"):
        get_importer("sprint_delivery").load(folder)


# --- missing data ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bug_triage", "storypoints", "sprint_delivery", "delayed_issues"])
def test_missing_folder_raises_dataset_missing(name, tmp_path):
    with pytest.raises(DatasetMissingError, match="not found"):
        get_importer(name).load(tmp_path / "nope")
    with pytest.raises(DatasetMissingError, match="not found"):
        get_importer(name).source_dir(tmp_path)


@pytest.mark.parametrize("name", ["bug_triage", "storypoints", "sprint_delivery", "delayed_issues"])
def test_empty_folder_raises_dataset_missing(name, tmp_path):
    with pytest.raises(DatasetMissingError, match="holds no"):
        get_importer(name).load(tmp_path)


def test_delayed_issues_missing_time_file(tmp_path):
    folder = _delay_folder(tmp_path, times=("creation", "discussion"))
    with pytest.raises(DatasetMissingError, match=r"lacks acme_due\.csv"):
        get_importer("delayed_issues").load(folder)


# --- tiny folders that load ----------------------------------------------------------------------------------------

def test_sprint_name_with_commas_is_repaired_and_reported(tmp_path):
    folder = _sprint_folder(tmp_path, "1,7,Rel 5, 4.5,Final,-2,10,2,5,0,0,0,0,1,3,0,0,1,2,1,3\n"
                                      "2,9,Sprint 2,1.5,0,2,5,0,0,0,0,1,3,0,0,1,2,1,3\n")
    t, notes = _tables("sprint_delivery", folder)
    snap = t["sprint_snapshots"].set_index("sprint_id")
    assert snap.at["acme:1:7", "name"] == "Rel 5, 4.5,Final"
    assert snap.at["acme:1:7", "vel_diff"] == -2 and snap.at["acme:1:7", "no_teammember"] == 3
    assert snap.at["acme:2:9", "vel_diff"] == 1.5
    assert notes == ["Acme/acme_iteration_0.csv: 1 of 2 row(s) repaired (sprint name with unquoted commas)"]
    assert list(t["projects"]["project_id"]) == ["acme:1", "acme:2"]
    assert t["sprints"].set_index("sprint_id").at["acme:1:7", "planned_days"] == 10.0
    issues = t["sprint_issues"]
    assert list(issues["issue_row_id"]) == ["acme:1:7@0#0", "acme:1:7@0#1"]
    assert issues["priority"].isna().tolist() == [False, True]  # 'null' is missing


def test_delayed_issues_tiny(tmp_path):
    t, notes = _tables("delayed_issues", _delay_folder(tmp_path))
    tasks = t["tasks"].set_index("task_id")
    assert tasks.at["acme:AC-1", "priority"] == "critical" and tasks.at["acme:AC-2", "priority"] is None
    assert str(tasks.at["acme:AC-1", "created_at"]) == "2015-01-02 00:00:00"
    snaps = t["delay_snapshots"].set_index("snapshot_id")
    assert len(snaps) == 6 and snaps.at["acme:AC-1@due", "delaydays"] == 3
    assert snaps.at["acme:AC-1@due", "priority"] == "Blocker" and snaps.at["acme:AC-1@due", "reporterrep"] == 0.5
    assert "priority left null for '(missing)' 1" in notes[0]


def test_bug_triage_discovers_projects_and_misspelt_assignee(tmp_path):
    with zipfile.ZipFile(tmp_path / "gcc_data.csv.zip", "w") as zf:
        zf.writestr("gcc_data.csv", "Asignee,Description\nalice,\"Crash\nwith -O2\"\n,\nbob,x\n")
        zf.writestr("__MACOSX/._gcc_data.csv", "junk")
    with zipfile.ZipFile(tmp_path / "jdt_data.csv.zip", "w") as zf:
        zf.writestr("jdt_data.csv", "bug_id,creation_ts,Assignee,Description\n15,10/10/2001 22:14,carol,Text\n")
    t, notes = _tables("bug_triage", tmp_path)
    assert sorted(t["workspaces"]["name"]) == ["gcc", "jdt"]
    tasks = t["tasks"].set_index("task_id")
    assert list(tasks.index) == ["gcc-0", "gcc-1", "gcc-2", "jdt-15"]
    assert tasks.at["gcc-0", "title"] == "Crash" and tasks.at["gcc-0", "assignee_id"] == "gcc:alice"
    assert tasks.at["gcc-1", "assignee_id"] is None and tasks.at["gcc-1", "title"] is None
    assert str(tasks.at["jdt-15", "created_at"]) == "2001-10-10 22:14:00"
    assert sorted(t["users"]["user_id"]) == ["gcc:alice", "gcc:bob", "jdt:carol"]


def test_bug_triage_bad_date_names_the_row(tmp_path):
    with zipfile.ZipFile(tmp_path / "jdt_data.csv.zip", "w") as zf:
        zf.writestr("jdt_data.csv", "bug_id,creation_ts,Assignee,Description\n1,10/10/2001 22:14,a,x\n2,soon,b,y\n")
    expected = r"jdt_data\.csv\.zip: data row 2: column 'creation_ts' is not a date: 'soon'"
    with pytest.raises(MalformedInputError, match=expected):
        get_importer("bug_triage").load(tmp_path)


# --- the story-point baselines evaluation ---------------------------------------------------------------------------

def _sp_project(folder: Path, name: str, rows: list[tuple[int, str]]) -> None:
    lines = [f"{name.upper()}-{i},t{i},d{i},{sp},{split}" for i, (sp, split) in enumerate(rows)]
    (folder / f"{name}.csv").write_text(SP_HEADER + "\n".join(lines) + "\n")


def test_storypoints_baselines_on_two_tiny_projects(tmp_path):
    folder = tmp_path / "storypoints_deepse"
    folder.mkdir()
    # alpha: train+val = 1,2,3,6 -> mean 3, median 2.5; test 4,5 -> MAE mean (1+2)/2 = 1.5, median (1.5+2.5)/2 = 2
    _sp_project(folder, "alpha", [(1, "train"), (2, "train"), (3, "train"), (6, "val"), (4, "test"), (5, "test")])
    # beta: train+val = 1,1,7,3 -> mean 3, median 2; test 2 -> MAE mean 1, median 0
    _sp_project(folder, "beta", [(1, "train"), (1, "train"), (7, "train"), (3, "val"), (2, "test")])
    (folder / "within_proj_data.csv").write_text(
        PUBLISHED_HEADER
        + "alpha,3,1,0.9,1.2,0,0,0,0,0,0,2.5,1.55\n"   # Mean 1.55 (within 0.1 of 1.5), Median 2.5 (not)
        + "beta,3,1,0.4,0.8,0,0,0,0,0,0,0.3,1.0\n"     # Mean 1.0 (match), Median 0.3 (not)
        + "gamma,3,1,0.5,0.6,0,0,0,0,0,0,1,1\n")       # published but not present
    result = get_evaluation("storypoints-baselines").run(tmp_path)
    rows = {r["project"]: r for r in result.rows}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"]["n_train"] == 4 and rows["alpha"]["n_test"] == 2
    assert rows["alpha"]["mae_mean"] == pytest.approx(1.5) and rows["alpha"]["mae_median"] == pytest.approx(2.0)
    assert rows["beta"]["mae_mean"] == pytest.approx(1.0) and rows["beta"]["mae_median"] == pytest.approx(0.0)
    assert rows["alpha"]["published_deepse"] == 1.2 and rows["beta"]["published_gpt2sp"] == 0.4
    anchors = {(a.row, a.metric): a.value for a in result.anchors}
    assert anchors[("alpha", "mae_mean")] == 1.55 and anchors[("beta", "mae_median")] == 0.3
    assert anchors[("alpha", "mae_deepse")] == 1.2 and anchors[("beta", "mae_gpt2sp")] == 0.4
    notes = " | ".join(result.notes)
    assert "mae_mean: 2 of 2 projects within 0.1" in notes and "mae_median: 0 of 2 projects within 0.1" in notes
    assert "train+val" in notes and "gamma" in notes
    # train only: alpha mean=median=2 -> MAE 2.5; beta mean 3, median 1 -> MAE 1, 1
    alt = get_evaluation("storypoints-baselines").run(tmp_path, include_val=False)
    train_only = {r["project"]: r for r in alt.rows}
    assert train_only["alpha"]["mae_mean"] == pytest.approx(2.5)
    assert train_only["beta"]["mae_median"] == pytest.approx(1.0)
    console = Console(record=True, width=250)
    render(result, console)
    text = console.export_text()
    assert "published_deepse" in text and "GPT2SP table" in text  # our MAE beside the published one
    row = next(line for line in text.splitlines() if "alpha" in line)
    assert "1.500" in row and "1.550" in row
