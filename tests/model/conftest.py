"""Shared state of the serving tests: one small simulated workspace with features and two registered assignment
model versions (``served``, built once per test session: ~1-2 min), and the in-process API client over it."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """``(settings, sim_path)``: simulation ``demo`` (30k events), its feature store, two versions of
    ``task_assignment`` (version 1 is the champion), a ``project_timeline`` champion (4 epochs, with its task
    delay-risk model) and the personalization champions (:func:`train_personalization`) in the state's own MLflow
    store. ``SUNDAY_HOME`` points at it
    only while it is built: every user of the state takes ``settings`` (or its ``home``) explicitly, so the rest of
    the session is unaffected."""
    from sunday.data.pipeline import run_simulation
    from sunday.features.platform import build_platform, simulation_path
    from sunday.models.assignment.train import TrainConfig, train_assignment
    from sunday.models.timeline.train import TimelineTrainConfig, train_timeline
    from sunday.settings import Settings

    home = tmp_path_factory.mktemp("serve") / "state"
    # a tracking server configured in the environment (MLFLOW_TRACKING_URI) would take the models away from this
    # state's own store, where the Serve replicas (fresh processes) look for them
    saved = {k: os.environ.pop(k, None) for k in ("MLFLOW_TRACKING_URI", "SUNDAY_MLFLOW_TRACKING_URI")}
    old = os.environ.get("SUNDAY_HOME")
    os.environ["SUNDAY_HOME"] = str(home)
    try:
        settings = Settings().ensure_dirs()
        run_simulation(settings, events=30_000, seed=5, engine="local", name="demo")
        build_platform(settings, sim_name="demo", engine="local", progress=False, accept_drift=True)
        train_assignment(settings, TrainConfig(sim_name="demo", profile="quick", seed=0), log=lambda *_: None)
        train_assignment(settings, TrainConfig(sim_name="demo", profile="quick", seed=1,
                                               lgbm_overrides={"n_estimators": 5}), log=lambda *_: None)
        train_timeline(settings, TimelineTrainConfig(sim_name="demo", profile="quick", overrides={"epochs": 4},
                                                     cut_every=7), log=lambda *_: None)
        train_personalization(settings)
    finally:
        for k, v in {**saved, "SUNDAY_HOME": old}.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert settings.mlflow_tracking_uri is None, "the served state must use its own MLflow store"
    return settings, simulation_path(settings, "demo")


def train_personalization(settings) -> None:
    """Champions of ``priority_scorer``, ``notification_ranker`` and ``personalization_cf`` (in process) on
    ``demo`` (small settings: a few seconds each)."""
    from sunday.models.personalization.cf import CFConfig
    from sunday.models.personalization.cf_mlflow import CfJobConfig, train_and_register as train_cf
    from sunday.models.personalization.notifications_job import NotifyJobConfig, train_and_register as train_notify
    from sunday.models.priority.job import train_and_register as train_priority
    from sunday.models.priority.scorer import PriorityConfig

    quiet = lambda *_a, **_k: None  # noqa: E731
    train_priority(settings, "demo", PriorityConfig(n_estimators=60), 0.7, True)
    train_notify(settings, NotifyJobConfig(sim_name="demo", n_estimators=60), log=quiet)
    train_cf(settings, CfJobConfig(model=CFConfig(epochs=3), sim="demo", use_ray=False), log=quiet)


def make_client(settings, sim_path, rate=1000.0, burst=1000.0, **kwargs):
    """``(TestClient, Context)``: the plain FastAPI app (:mod:`sunday.serving.plain`, no Ray) over the served state,
    without the text encoder (``kwargs``: more :func:`build_local_context` arguments)."""
    from fastapi.testclient import TestClient

    from sunday.serving.plain import build_local_app

    app, ctx = build_local_app(settings, sim="demo", rate=rate, burst=burst, embeddings=False, **kwargs)
    return TestClient(app), ctx


def body(sample, **extra):
    """A valid assign-task body for the sample workspace's first 8 candidates."""
    return {"task": {"title": "Fix flaky login test", "description": "OAuth callback times out in CI",
                     "required_skills": ["python"], "story_points": 3, "priority": "high"},
            "candidates": sample["candidates"][:8], **extra}


def auth(token):
    return {"Authorization": f"Bearer {token}"}
