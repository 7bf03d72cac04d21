import pytest

from sunday.errors import DatasetMissingError, ValidationError
from sunday.store import Warehouse, atomic_version, current_version


def test_write_read_counts(tmp_path):
    wh = Warehouse(tmp_path)
    wh.write("ds", {"tasks": [{"task_id": "a", "workspace_id": "w"}], "workspaces": [{"workspace_id": "w", "name": "W"}]})
    assert wh.datasets() == ["ds"]
    assert wh.counts("ds") == {"tasks": 1, "workspaces": 1}
    assert wh.read("ds", "tasks").column("task_id").to_pylist() == ["a"]


def test_failed_load_keeps_previous_version(tmp_path):
    wh = Warehouse(tmp_path)
    wh.write("ds", {"tasks": [{"task_id": "a", "workspace_id": "w"}]})
    before = current_version(tmp_path / "ds")
    with pytest.raises(ValidationError):
        wh.write("ds", {"tasks": [{"task_id": "b", "workspace_id": "w", "story_points": -1}]})
    assert current_version(tmp_path / "ds") == before
    assert wh.read("ds", "tasks").column("task_id").to_pylist() == ["a"]


def test_crash_while_writing_leaves_no_partial_version(tmp_path):
    wh = Warehouse(tmp_path)
    wh.write("ds", {"tasks": [{"task_id": "a", "workspace_id": "w"}]})
    with pytest.raises(RuntimeError):
        with atomic_version(tmp_path / "ds") as staging:
            (staging / "tasks.parquet").write_bytes(b"half a file")
            raise RuntimeError("disk full")
    assert wh.read("ds", "tasks").num_rows == 1
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".staging")]


def test_old_versions_pruned(tmp_path):
    wh = Warehouse(tmp_path)
    for i in range(4):
        wh.write("ds", {"tasks": [{"task_id": f"t{i}", "workspace_id": "w"}]})
    versions = [p for p in (tmp_path / "ds").iterdir() if p.name.startswith("v-")]
    assert len(versions) == 2
    assert wh.read("ds", "tasks").column("task_id").to_pylist() == ["t3"]


def test_unknown_dataset_message(tmp_path):
    with pytest.raises(DatasetMissingError, match="sunday data import nope"):
        Warehouse(tmp_path).read("nope", "tasks")
