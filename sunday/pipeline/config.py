"""The pipeline's settings: which models, which profile, the gate, resuming."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sunday.errors import SundayError

STEPS = ("extract", "validate", "train", "evaluate", "register", "gate", "promote", "reconfigure")
MODEL_STEPS = ("train", "evaluate", "register", "gate", "promote")

# sim: the simulation trained on (simulated when missing); settings: per-model training settings
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {"sim": "pipeline-quick", "events": 30_000, "engine": "local", "latency_reps": 200,
              "settings": {"priority_scorer": {"n_estimators": 60}, "workload_predictor": {"n_estimators": 60},
                           "notification_ranker": {"n_estimators": 60}, "personalization_cf": {"epochs": 3},
                           "task_assignment": {"n_estimators": 100},
                           # the timeline's own quick profile (25 epochs, a cut every 4 days: ~3 s in process)
                           "anomaly_lstm_ae": {"epochs": 8, "max_windows": 10_000}}},
    "full": {"sim": "demo", "events": 200_000, "engine": "ray", "latency_reps": 500,
             "settings": {}},
}


@dataclass
class PipelineConfig:
    """``models``: registered model names (None: all of :data:`sunday.pipeline.models.MODELS`); ``profile``:
    ``quick`` / ``full``; ``reason``: why it runs (a tag: "drift: ...", "manual"); ``resume``: a run id whose
    finished steps are skipped; ``overrides``: per-model training settings over the profile's (e.g.
    ``{"priority_scorer": {"n_estimators": 5}}``); ``min_metric``: per-model gate thresholds over the models'
    own (a baseline each); ``stop_after``: stop after this step (``train``: every model trained; for tests and
    step-by-step runs; resume with ``resume``)."""

    models: list[str] | None = None
    profile: str = "quick"
    reason: str = "manual"
    sim: str | None = None
    events: int | None = None
    seed: int = 0
    resume: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    min_metric: dict[str, float] = field(default_factory=dict)
    max_drop: float = 0.02
    max_latency_ratio: float = 1.2
    latency_slack_ms: float = 0.5
    use_ray: bool = True        # personalization_cf, project_timeline and anomaly_lstm_ae train through Ray Train
    num_workers: int = 2        # their Ray Train workers
    reconfigure: bool = True
    stop_after: str | None = None

    def __post_init__(self) -> None:
        from sunday.pipeline.models import MODELS

        if self.profile not in PROFILES:
            raise SundayError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        if self.models is not None:
            if isinstance(self.models, str):
                self.models = [m for m in self.models.split(",") if m]
            unknown = [m for m in self.models if m not in MODELS]
            if unknown or not self.models:
                raise SundayError(f"models: unknown {unknown or 'empty list'}; known: {', '.join(MODELS)}")
        for name in list(self.overrides) + list(self.min_metric):
            if name not in MODELS:
                raise SundayError(f"overrides/min_metric: unknown model {name!r}; known: {', '.join(MODELS)}")
        if self.num_workers < 1:
            raise SundayError(f"num_workers must be at least 1, got {self.num_workers}")
        if self.stop_after is not None and self.stop_after not in STEPS:
            raise SundayError(f"stop_after must be one of {', '.join(STEPS)}, got {self.stop_after!r}")
        if self.events is not None and self.events < 1000:
            raise SundayError(f"events must be at least 1000, got {self.events}")

    @property
    def model_names(self) -> list[str]:
        from sunday.pipeline.models import MODELS

        return list(self.models) if self.models else list(MODELS)

    @property
    def sim_name(self) -> str:
        return self.sim or PROFILES[self.profile]["sim"]

    @property
    def n_events(self) -> int:
        return self.events or PROFILES[self.profile]["events"]

    def train_settings(self, model: str) -> dict[str, Any]:
        return {**PROFILES[self.profile]["settings"].get(model, {}), **self.overrides.get(model, {})}


def parse_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["priority_scorer.n_estimators=5", ...]`` (values JSON, else strings) -> per-model overrides."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot or not name:
            raise SundayError(f"--set must look like MODEL.KEY=JSON, got {item!r}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        out.setdefault(model, {})[name] = parsed
    return out


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """``["priority_scorer=0.5", ...]`` -> per-model gate thresholds."""
    out = {}
    for item in items:
        model, sep, value = item.partition("=")
        try:
            out[model] = float(value) if sep else float("x")
        except ValueError:
            raise SundayError(f"--min-metric must look like MODEL=NUMBER, got {item!r}") from None
    return out
