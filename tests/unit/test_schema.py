import pandas as pd
import pyarrow as pa
import pytest

from sunday.errors import ValidationError
from sunday.schema import all_specs, validate


def _task(**kw):
    return {"task_id": "t1", "workspace_id": "w", **kw}


def test_core_tables_registered():
    names = set(all_specs())
    assert {"workspaces", "users", "teams", "projects", "tasks", "task_events", "sprints", "meetings",
            "meeting_turns", "metric_series", "anomaly_windows", "notification_impressions"} <= names


def test_valid_records_come_back_in_schema_order():
    t = validate("tasks", [_task(story_points=3, priority="high", required_skills=["backend"])])
    assert t.schema == all_specs()["tasks"].schema
    assert t.column("story_points").to_pylist() == [3.0]


def test_dataframe_input():
    df = pd.DataFrame({"task_id": ["a", "b"], "workspace_id": ["w", "w"], "story_points": [1, 2]})
    assert validate("tasks", df).num_rows == 2


@pytest.mark.parametrize("rows, field, record", [
    ([_task(), _task(task_id="t2", story_points=-1)], "story_points", 1),
    ([_task(priority="urgent")], "priority", 0),
    ([_task(), _task(task_id="t2", story_points="lots")], "story_points", 1),
    ([_task(), _task()], "task_id", 1),
    ([_task(task_id="  ")], "task_id", 0),
    ([_task(status="doing")], "status", 0),
])
def test_bad_record_named_with_field(rows, field, record):
    with pytest.raises(ValidationError) as exc:
        validate("tasks", rows)
    assert exc.value.field == field
    assert exc.value.record == record
    assert f"field '{field}'" in str(exc.value) and f"record {record}" in str(exc.value)


def test_missing_required_column_and_unknown_column():
    with pytest.raises(ValidationError, match="'workspace_id' is required"):
        validate("tasks", [{"task_id": "x"}])
    with pytest.raises(ValidationError, match="'colour' is not in the tasks schema"):
        validate("tasks", [_task(colour="red")])


def test_required_value_null_is_rejected():
    with pytest.raises(ValidationError, match="record 1 .*'workspace_id' is required but empty"):
        validate("tasks", pa.table({"task_id": ["a", "b"], "workspace_id": ["w", None]}))


def test_event_types_and_ranges():
    ok = {"event_id": "e1", "workspace_id": "w", "task_id": "t", "event_type": "assigned",
          "timestamp": pd.Timestamp("2026-01-01")}
    assert validate("task_events", [ok]).num_rows == 1
    with pytest.raises(ValidationError, match="event_type"):
        validate("task_events", [{**ok, "event_type": "teleported"}])
    with pytest.raises(ValidationError, match="hours"):
        validate("task_events", [{**ok, "hours": -2.0}])
