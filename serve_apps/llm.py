"""The embedded LLM (SmolLM2-135M-Instruct on the CPU) as an OpenAI-compatible Ray Serve application.

    serve run serve_apps.llm:build_llm_app                          # http://127.0.0.1:8000/v1/chat/completions
    serve run serve_apps.llm:build_llm_app route_prefix=/llm        # (route prefix: a serve run option instead)
    SUNDAY_LLM_BASE_URL=http://127.0.0.1:8000/v1 sunday ...         # the project's client against it

One deployment, ``LLMServer``: each replica loads the model at start (about 16 s on 2 cores), generates one token to
warm up, then serves :func:`sunday.nlp.openai_api.build_openai_app` (``/v1/chat/completions``, ``/v1/models``,
``/health``). A replica generates one completion at a time (the model is not safe for concurrent generate calls),
so ``max_ongoing_requests`` bounds the queue per replica, not the parallelism; add replicas for that.

Arguments (``serve run serve_apps.llm:build_llm_app key=value`` or ``args:`` in the config file): ``model_name``
(the served name, default ``smollm2-135m-instruct``), ``num_cpus`` (per replica, 0.5), ``num_replicas`` (1),
``max_ongoing_requests`` (8), ``runtime_env`` (for the replicas, e.g. ``PYTHONPATH`` when Ray was started elsewhere).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel
from ray import serve

log = logging.getLogger("ray.serve")


class LLMAppArgs(BaseModel):
    model_name: str | None = None
    num_cpus: float = 0.5
    num_replicas: int = 1
    max_ongoing_requests: int = 8
    runtime_env: dict | None = None


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=8, num_replicas=1,
                  graceful_shutdown_timeout_s=30, health_check_period_s=10, health_check_timeout_s=60)
@serve.ingress()  # the app is built per replica, from the loaded model (__serve_build_asgi_app__)
class LLMServer:
    def __init__(self, model_name: str | None = None):
        import time

        from sunday.nlp.llm import EmbeddedLLM

        t0 = time.perf_counter()
        self.llm = EmbeddedLLM().load()
        self.llm.chat([{"role": "user", "content": "hi"}], max_tokens=1)  # warm-up
        self.model_name = model_name or self.llm.model
        log.info("LLM %s ready in %.1fs", self.model_name, time.perf_counter() - t0)

    def __serve_build_asgi_app__(self):
        from sunday.nlp.openai_api import build_openai_app

        return build_openai_app(self.llm, self.model_name)

    def check_health(self) -> None:
        from sunday.nlp.llm import model_loaded

        if not model_loaded():
            raise RuntimeError("the embedded LLM is not loaded")


def build_llm_app(args: dict | None = None):
    """The application (``serve run serve_apps.llm:build_llm_app``; ``args`` as in the module docstring)."""
    a = LLMAppArgs(**(args or {}))
    actor: dict[str, Any] = {"num_cpus": a.num_cpus}
    if a.runtime_env:
        actor["runtime_env"] = a.runtime_env
    deployment: Any = LLMServer  # a serve.Deployment (the decorators hide it from type checkers)
    return deployment.options(ray_actor_options=actor, num_replicas=a.num_replicas,
                              max_ongoing_requests=a.max_ongoing_requests).bind(a.model_name)
