from pathlib import Path

from sunday.settings import Settings


def test_defaults_resolve_under_state_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("SUNDAY_HOME", "SUNDAY_DATA_DIR", "RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SUNDAY_QDRANT_URL"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.home == tmp_path / ".sunday"
    assert s.data_dir == (tmp_path / "../shared/data").resolve() or s.data_dir.name == "data"
    assert s.ray_address is None
    assert s.resolved_mlflow_uri == f"sqlite:///{tmp_path / '.sunday' / 'mlflow' / 'mlflow.db'}"
    assert s.vector_store_dir.parent == s.home


def test_env_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("SUNDAY_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SUNDAY_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    monkeypatch.setenv("SUNDAY_QDRANT_URL", "http://qdrant:6333")
    s = Settings()
    assert s.home == tmp_path / "h" and s.data_dir == tmp_path / "d"
    assert s.ray_address == "ray://head:10001"
    assert s.resolved_mlflow_uri == "http://mlflow:5000"
    assert s.qdrant_url == "http://qdrant:6333"


def test_ensure_dirs_creates_state_layout(settings):
    for d in (settings.warehouse_dir, settings.mlflow_dir, settings.feature_repo_dir, settings.vector_store_dir,
              settings.logs_dir, settings.eval_dir, settings.simulations_dir):
        assert Path(d).is_dir()
