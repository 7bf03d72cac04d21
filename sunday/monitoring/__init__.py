"""Model monitoring: the serving prediction log, training references, drift (PSI, KS, chi-square), HTML reports
and the scheduled drift job that records drift in MLflow / Prometheus and starts retraining
(``train_jobs/monitor.py``). Submodules import their heavy dependencies lazily; nothing runs at import."""

from sunday.monitoring.drift import DriftConfig, DriftReport, compute_drift
from sunday.monitoring.predictions import PredictionLog, default_prediction_log
from sunday.monitoring.reference import load_reference, save_reference

__all__ = ["DriftConfig", "DriftReport", "compute_drift", "PredictionLog", "default_prediction_log",
           "save_reference", "load_reference"]
