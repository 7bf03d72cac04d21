"""The LSTM autoencoder through Ray Train (2 DDP workers on gloo) and the training job end to end on a tiny slice of
NAB's normal history: MLflow run, registered ``anomaly_lstm_ae`` (challenger and first champion), loadable back."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]

JOB = Path(__file__).resolve().parents[2] / "train_jobs" / "anomaly_ae.py"


def _sine(n: int, seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return scale * (3 + np.sin(2 * np.pi * t / 40 + rng.uniform(0, 6)) + 0.05 * rng.standard_normal(n))


def test_ray_train_two_workers_loss_falls(ray_session, settings):
    from sunday.models.anomaly.lstm_ae import (
        AeTrainConfig,
        LstmAeDetector,
        LstmAutoencoder,
    )
    from sunday.models.anomaly.lstm_ae_train import train_autoencoder

    series = [_sine(500, s, 10.0 ** s) for s in range(3)]
    cfg = AeTrainConfig(epochs=4, batch_size=32, lr=5e-3, max_windows=1200, seed=0)
    model = train_autoencoder(series, cfg, use_ray=True, num_workers=2)
    assert isinstance(model, LstmAutoencoder) and model.config == cfg
    losses = [row["loss"] for row in model.history_]
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]
    assert (settings.home / "ray_results").is_dir()  # the run's checkpoint lives in the state folder
    assert LstmAeDetector(model).score(_sine(300, 9, 5.0)).shape == (300,)


def test_job_registers_the_model(ray_session, settings, data_dir, monkeypatch, tmp_path):
    if not (data_dir / "nab" / "data").is_dir():
        pytest.skip("NAB not present")
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from sunday import tracking
    from sunday.models.anomaly.lstm_ae import LstmAutoencoder
    from sunday.models.anomaly.lstm_ae_mlflow import MODEL_NAME, load_registered

    monkeypatch.setenv("SUNDAY_DATA_DIR", str(data_dir))
    spec = importlib.util.spec_from_file_location("anomaly_ae_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    out = tmp_path / "result.json"
    assert job.main(["--max-windows", "500", "--epochs", "2", "--json", str(out)]) == 0

    result = json.loads(out.read_text())
    assert result["version"] == "1" and "first champion" in result["promotion"]
    assert np.isfinite(result["metrics"]["val_mse"]) and np.isfinite(result["metrics"]["final_train_loss"])
    assert tracking.alias_version(MODEL_NAME, "challenger") == "1" == tracking.alias_version(MODEL_NAME, "champion")
    client = MlflowClient()
    assert len(client.get_metric_history(result["run_id"], "train_loss")) == 2
    params = client.get_run(result["run_id"]).data.params
    assert params["model.epochs"] == "2" and params["model.max_windows"] == "500" and params["n_windows"] == "500"

    model = load_registered(settings)
    assert isinstance(model, LstmAutoencoder) and len(model.history_) == 2
    assert load_registered(settings, alias="nope") is None
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    scores = pyfunc.predict(pd.DataFrame({"value": _sine(200, 1, 2.0)}))
    assert list(scores.columns) == ["score"] and len(scores) == 200
    assert ((scores["score"] >= 0) & (scores["score"] <= 1)).all()
