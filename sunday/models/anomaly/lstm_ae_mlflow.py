"""The LSTM autoencoder's training job and MLflow registry (the model: :mod:`sunday.models.anomaly.lstm_ae`).

:func:`train_and_register` (behind ``train_jobs/anomaly_ae.py``) trains on NAB's normal history (the probationary
first 15% of each series), logs to MLflow and registers ``anomaly_lstm_ae`` (a pyfunc, ``LstmAePyfunc``, around
the model folder); :func:`load_registered` loads a registered version by alias. MLflow is imported only when used.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sunday.errors import SundayError
from sunday.models.anomaly.lstm_ae import AeTrainConfig, LstmAeDetector, LstmAutoencoder, series_windows
from sunday.models.anomaly.lstm_ae_train import train_autoencoder

MODEL_NAME = "anomaly_lstm_ae"
EXPERIMENT = "anomaly-lstm-ae"
GATE_METRIC = "val_mse"  # reconstruction MSE of held-out series' normal windows, lower is better
BASELINE_METRIC = "flat_val_mse"  # the same windows each reconstructed as a flat line at its own mean


# -- registry -----------------------------------------------------------------------------------------------------

def load_registered(settings, alias: str = "champion", name: str = MODEL_NAME) -> LstmAutoencoder | None:
    """The registered autoencoder ``name`` at ``alias`` (None when nothing is registered under it)."""
    from sunday import tracking

    tracking.configure(settings)
    found = tracking.load_alias(name, LstmAutoencoder.load, alias)
    return None if found is None else found[0]


def _predict(model: LstmAutoencoder, model_input: Any, params: dict | None = None) -> Any:
    import pandas as pd

    if not isinstance(model_input, pd.DataFrame) or "value" not in model_input.columns:
        raise SundayError("input must be a DataFrame with a 'value' column (one series, in time order)")
    ts = model_input["timestamp"].to_numpy() if "timestamp" in model_input.columns else None
    return pd.DataFrame({"score": LstmAeDetector(model).score(model_input["value"].to_numpy(), ts)})


def _pyfunc_class():
    from sunday import tracking

    return tracking.lazy_pyfunc(__name__, "LstmAePyfunc", LstmAutoencoder.load, _predict, doc=(
        "``predict(DataFrame with 'value' [and 'timestamp'], one series in order)`` -> DataFrame ``score`` (the "
        "calibrated [0, 1] scores a fresh LstmAeDetector gives the series)."))


def __getattr__(name: str) -> Any:  # ``LstmAePyfunc`` on demand (the same class: pickled by reference)
    if name == "LstmAePyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- the training job ---------------------------------------------------------------------------------------------

def nab_normal_history(data_dir: Path) -> dict[str, np.ndarray]:
    """series id -> the probationary (normal) history of every NAB series under ``data_dir / 'nab'``."""
    from sunday.data.importers.nab import load_series
    from sunday.evaluation.nab_scoring import probation_values

    series = load_series(Path(data_dir) / "nab")
    return probation_values({sid: frame["value"].to_numpy(np.float64) for sid, frame in series.items()})


@dataclass
class AeJobConfig:
    model: AeTrainConfig = field(default_factory=AeTrainConfig)
    use_ray: bool = True
    num_workers: int = 2
    use_gpu: bool = False
    holdout: float = 0.1   # share of the series held out: their normal windows give the gate's val_mse
    register: bool = True
    model_name: str = MODEL_NAME

    def __post_init__(self) -> None:
        if not 0 < self.holdout < 1:
            raise SundayError(f"--holdout must be between 0 and 1, got {self.holdout}")
        if self.num_workers < 1:
            raise SundayError(f"--num-workers must be at least 1, got {self.num_workers}")


@dataclass
class AeJobResult:
    metrics: dict[str, float]
    run_id: str | None
    version: str | None
    promotion: Any
    model: LstmAutoencoder
    model_dir: Path
    history: list[dict[str, float]]
    n_train_series: int
    n_holdout_series: int
    n_windows: int
    seconds: dict[str, float]
    holdout: dict[str, np.ndarray] | None = None  # held-out series id -> its normal history (gate re-scoring)


def split_series(ids: list[str], holdout: float, seed: int) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids): a seeded ``holdout`` share of the series (at least one each side)."""
    if len(ids) < 2:
        raise SundayError(f"need at least 2 series to hold one out, got {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    n_ho = min(len(ids) - 1, max(1, round(holdout * len(ids))))
    held = sorted(ids[i] for i in order[:n_ho])
    return [i for i in ids if i not in set(held)], held


def holdout_windows(holdout: dict[str, np.ndarray], config: AeTrainConfig) -> np.ndarray:
    """The normalised windows (``config``'s window and scaling) of every held-out series, in id order."""
    parts = [series_windows(holdout[s], config) for s in sorted(holdout)]
    return np.concatenate(parts or [np.empty((0, config.window))])


def flat_mse(windows: np.ndarray) -> float:
    """The baseline: each window reconstructed as a flat line at its own mean (per value)."""
    if len(windows) == 0:
        return float("nan")
    return float(((windows - windows.mean(axis=1, keepdims=True)) ** 2).mean())


def train_and_register(settings, job: AeJobConfig, log: Callable[..., Any] = print) -> AeJobResult:
    """NAB normal history -> autoencoder (Ray Train or in process) -> MLflow run, ``anomaly_lstm_ae`` version,
    ``challenger`` alias, ``champion`` when its held-out val_mse beats the champion's on the same windows.
    ``job.register=False``: trained and scored only (no MLflow run); the result's ``holdout`` (the held-out series'
    normal history) re-scores any model with :func:`holdout_windows`."""
    from sunday import tracking

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    history = nab_normal_history(settings.data_dir)
    train_ids, held_ids = split_series(sorted(history), job.holdout, job.model.seed)
    seconds["data"] = time.perf_counter() - t0
    cfg = job.model
    n_all = sum(len(series_windows(history[s], cfg)) for s in train_ids)
    log(f"NAB normal history: {len(history)} series ({sum(len(v) for v in history.values()):,} points, the "
        f"probationary 15%); {len(train_ids)} to train on ({n_all:,} windows, {min(n_all, cfg.max_windows):,} "
        f"used), {len(held_ids)} held out")
    if job.use_ray:
        from sunday.runtime import ensure_ray

        ensure_ray(settings)
    t0 = time.perf_counter()
    model = train_autoencoder([history[s] for s in train_ids], cfg, use_ray=job.use_ray,
                              num_workers=job.num_workers, use_gpu=job.use_gpu)
    seconds["fit"] = time.perf_counter() - t0
    for row in model.history_:
        log(f"  epoch {int(row['epoch']) + 1}/{cfg.epochs}: loss {row['loss']:.4f} ({row['seconds']:.1f} s)")
    holdout = {s: history[s] for s in held_ids}
    held_windows = holdout_windows(holdout, cfg)
    metrics = {"final_train_loss": float(model.history_[-1]["loss"]) if model.history_ else float("nan"),
               GATE_METRIC: model.reconstruction_mse(held_windows), BASELINE_METRIC: flat_mse(held_windows)}
    model_dir = model.save(Path(tempfile.mkdtemp(prefix="lstm-ae-")) / "model")

    run_id = version = promotion = None
    if job.register:
        import mlflow
        import pandas as pd

        with tracking.run(settings, EXPERIMENT, run_name="lstm-ae-nab",
                          tags={"trainer": "ray" if job.use_ray else "local", "data": "nab-probationary"}) as run:
            run_id = run.info.run_id
            mlflow.log_params(tracking.flat_params(cfg, "model."))
            mlflow.log_params({"use_ray": job.use_ray, "num_workers": job.num_workers, "use_gpu": job.use_gpu,
                               "holdout": job.holdout, "n_train_series": len(train_ids),
                               "n_holdout_series": len(held_ids), "n_windows_available": n_all,
                               "n_windows": min(n_all, cfg.max_windows), "n_holdout_windows": len(held_windows)})
            for row in model.history_:
                mlflow.log_metric("train_loss", float(row["loss"]), step=int(row["epoch"]))
            mlflow.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
            mlflow.log_metrics({f"seconds_{k}": v for k, v in seconds.items()})
            example = pd.DataFrame({"value": np.asarray(history[held_ids[0]][:200], np.float64)})
            info = tracking.log_model_folder(model_dir, _pyfunc_class()(), input_example=example)
            version = tracking.register(info.model_uri, job.model_name,
                                        tags={"gate_metric": GATE_METRIC, "higher_is_better": "false"})

            def score_version(v: str) -> float:
                with tempfile.TemporaryDirectory() as tmp:
                    champ = LstmAutoencoder.load(tracking.download_version(job.model_name, v, Path(tmp)))
                wins = np.concatenate([series_windows(history[s], champ.config) for s in held_ids])
                return champ.reconstruction_mse(wins)

            promotion = tracking.promote(job.model_name, version, metrics[GATE_METRIC], GATE_METRIC, score_version,
                                         higher_is_better=False)
            tracking.log_promotion(promotion)
    return AeJobResult(metrics, run_id, version, promotion, model, model_dir, list(model.history_), len(train_ids),
                       len(held_ids), min(n_all, cfg.max_windows), seconds, holdout)
