"""Shared fixtures. Ray starts once per test session (``ray_session``), never per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The public datasets folder (``SUNDAY_DATA_DIR`` or ../shared/data); data tests skip without it."""
    path = Path(os.environ.get("SUNDAY_DATA_DIR", DEFAULT_DATA))
    if not path.is_dir():
        pytest.skip(f"datasets folder {path} not present")
    return path


def linked_subset(data_dir: Path, root: Path, files: list[str]) -> Path:
    """A data dir under ``root`` holding symlinks to ``files`` (paths relative to ``data_dir``), so an evaluation
    runs on a few real projects only; skips the test when one is missing."""
    for rel in files:
        if not (data_dir / rel).is_file():
            pytest.skip(f"{data_dir / rel} not present")
    for rel in files:
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(data_dir / rel)
    return root


@pytest.fixture()
def settings(tmp_path, monkeypatch):
    """Settings with a fresh state folder per test."""
    from sunday.settings import Settings

    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Settings().ensure_dirs()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole test session (2 CPUs, like this machine)."""
    import ray

    if not ray.is_initialized():
        # address="local": always a fresh local Ray, even when a cluster (ray start) runs on this machine
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()
