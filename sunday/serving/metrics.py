"""Request metrics of the serving API: count, latency histogram and errors per endpoint and model version.

Inside a Serve replica they are ``ray.serve.metrics`` Counter / Histogram objects, exported on each
node's Prometheus endpoint (``ray_sunday_api_*``; Serve adds the deployment / replica / application tags). Outside
a replica (the plain FastAPI baseline, tests) the same calls update in-process ``prometheus_client`` metrics that the
app exposes at ``/metrics``.
"""

from __future__ import annotations

import threading

LATENCY_BUCKETS_MS = [1, 2, 5, 10, 20, 30, 50, 75, 100, 200, 500, 1000, 2000, 5000]
TAGS = ("endpoint", "status", "model_version")


class ApiMetrics:
    def __init__(self, prefix: str = "sunday_api"):
        self.prefix = prefix
        self._lock = threading.Lock()
        self.backend = "ray" if _in_serve_replica() else "prometheus_client"
        if self.backend == "ray":
            from ray.serve import metrics as m

            self._requests = m.Counter(f"{prefix}_requests", description="API requests by endpoint, HTTP status "
                                       "and model version", tag_keys=TAGS)
            self._errors = m.Counter(f"{prefix}_errors", description="API requests answered with 4xx/5xx",
                                     tag_keys=TAGS)
            self._latency = m.Histogram(f"{prefix}_latency_ms", description="API request latency (ms) inside the "
                                        "ingress", boundaries=LATENCY_BUCKETS_MS, tag_keys=TAGS)
        else:
            import prometheus_client as pc

            self.registry = pc.CollectorRegistry()
            self._requests = pc.Counter(f"{prefix}_requests", "API requests", TAGS, registry=self.registry)
            self._errors = pc.Counter(f"{prefix}_errors", "API errors", TAGS, registry=self.registry)
            self._latency = pc.Histogram(f"{prefix}_latency_ms", "API latency (ms)", TAGS,
                                         buckets=LATENCY_BUCKETS_MS, registry=self.registry)

    def observe(self, endpoint: str, status: int, latency_ms: float, model_version: str | None = None) -> None:
        tags = {"endpoint": endpoint, "status": str(status), "model_version": model_version or "-"}
        if self.backend == "ray":
            self._requests.inc(tags=tags)
            self._latency.observe(latency_ms, tags=tags)
            if status >= 400:
                self._errors.inc(tags=tags)
        else:
            self._requests.labels(**tags).inc()
            self._latency.labels(**tags).observe(latency_ms)
            if status >= 400:
                self._errors.labels(**tags).inc()

    def exposition(self) -> bytes | None:
        """Prometheus text of the in-process metrics (None inside Ray: scrape Ray's metrics endpoint)."""
        if self.backend == "ray":
            return None
        import prometheus_client as pc

        return pc.generate_latest(self.registry)


def _in_serve_replica() -> bool:
    try:
        from ray.serve import context

        return context._get_internal_replica_context() is not None
    except Exception:  # noqa: BLE001
        return False
