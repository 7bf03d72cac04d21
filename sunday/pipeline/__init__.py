"""The training pipeline: extract -> validate -> train -> evaluate -> register (``challenger``) -> gate -> promote
(``champion``) -> reconfigure the Serve app; each step resumable, each step's results in MLflow.

``run_pipeline(settings, PipelineConfig(models=[...], profile="quick", reason="..."))`` -> :class:`PipelineResult`
(per-model verdicts). Models: priority_scorer, workload_predictor, notification_ranker, personalization_cf,
task_assignment, project_timeline, anomaly_lstm_ae (:data:`MODELS`; see :mod:`.models`). Entry points:
``sunday pipeline run`` and ``python train_jobs/pipeline.py`` (also through ``ray job submit``). Nothing is imported
until used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_pipeline", "PipelineConfig", "PipelineResult", "Gate", "GateResult", "MODELS"]

_WHERE = {"run_pipeline": "runner", "PipelineResult": "runner", "PipelineConfig": "config", "Gate": "gates",
          "GateResult": "gates", "MODELS": "models"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
