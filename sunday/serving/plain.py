"""The same API as plain FastAPI + uvicorn in one process (no Ray): every model in process, model calls in the
thread pool. It is the usual alternative to Serve, kept as the latency baseline of ``benchmarks/serve_latency.py``
and for a laptop without Ray:

    python -m sunday.serving.plain [--port 8001] [--sim demo]
"""

from __future__ import annotations

import argparse
from typing import Any


def build_local_context(settings, sim: str = "demo", rate: float = 50.0, burst: float = 100.0,
                        embeddings: bool = True, timeline: bool = True, feature_ttl_s: float = 2.0,
                        nlp: bool = True, vector_store=None, anomaly: bool = True, personalization: bool = True,
                        log_predictions: bool = True):
    from sunday.errors import SundayError
    from sunday.features.online import OnlineFeatures
    from sunday.features.platform import simulation_path
    from sunday.features.streaming import StreamingConsumer
    from sunday.monitoring.predictions import default_prediction_log
    from sunday.serving.api import Context, LocalBackend
    from sunday.serving.audit import default_audit_log
    from sunday.serving.directory import ProjectCatalog, WorkspaceDirectory
    from sunday.serving.feature_cache import CachedFeatures
    from sunday.serving.keys import default_keystore
    from sunday.serving.metrics import ApiMetrics
    from sunday.serving.models import AssignmentModel, TimelineModel
    from sunday.serving.ratelimit import RateLimit, RateLimitConfig, make_rate_limiter

    sim_path = simulation_path(settings, sim)
    timeline_model = None
    if timeline:
        try:
            timeline_model = TimelineModel(settings)
        except SundayError:
            timeline_model = None  # no champion yet: the endpoint answers 503
    assignment = AssignmentModel(settings, embeddings=embeddings)
    assignment.warmup()
    service = None
    if nlp:
        from sunday.nlp.service import NlpService

        service = NlpService.for_settings(settings, sim_path=sim_path, store=vector_store)
    listeners: list = [service.on_event] if service else []
    alerts = None
    if anomaly:  # the anomaly monitor beside the search indexer: history replayed, then every ingested event
        from sunday.models.anomaly.monitor import serving_monitor

        monitor = serving_monitor(settings, sim_path)
        listeners.append(monitor)
        alerts = monitor.sink  # its AlertStore, read by GET /anomalies/{project}
    features = CachedFeatures(OnlineFeatures(settings), ttl_s=feature_ttl_s)
    personal = None
    if personalization:
        from sunday.models.personalization.service import PersonalizationService

        personal = PersonalizationService.for_settings(settings, sim_path, features=features)
    backend = LocalBackend(assignment, features, timeline_model,
                           StreamingConsumer(settings, sim_path, listeners=listeners), service, alerts, personal)
    return Context(backend, default_keystore(settings),
                   make_rate_limiter(settings, RateLimitConfig(default=RateLimit(rate, burst))),
                   default_audit_log(settings), WorkspaceDirectory.from_simulation(sim_path),
                   ProjectCatalog(settings, sim_path), ApiMetrics(),
                   extra={"predictions": default_prediction_log(settings)} if log_predictions else {})


def build_local_app(settings, **kwargs: Any):
    from sunday.serving.api import build_api

    ctx = build_local_context(settings, **kwargs)
    return build_api(lambda: ctx), ctx


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--sim", default="demo")
    p.add_argument("--rate", type=float, default=50.0)
    p.add_argument("--burst", type=float, default=100.0)
    p.add_argument("--no-embeddings", action="store_true")
    args = p.parse_args(argv)
    import uvicorn

    from sunday.settings import get_settings

    app, _ = build_local_app(get_settings().ensure_dirs(), sim=args.sim, rate=args.rate, burst=args.burst,
                             embeddings=not args.no_embeddings)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
