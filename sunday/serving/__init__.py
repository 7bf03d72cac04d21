"""Serving: the FastAPI API, access control, audit, metrics and the plain model classes the Ray Serve
deployments in ``serve_apps/`` wrap."""
