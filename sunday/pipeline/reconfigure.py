"""Tell a running Serve app about promoted champions: a zero-downtime in-place reconfigure.

When a Serve app runs on the cluster (Serve's REST API on the dashboard: ``ServeSubmissionClient``), its deploy
config is redeployed with the promoted model's deployment ``user_config`` ``version`` set to the new one (its other
keys, e.g. a ``rollout``, kept; ``alias`` dropped): Serve
calls the replicas' ``reconfigure`` in place (no restart). Registered name -> deployment: :data:`DEPLOYMENTS`.
``Personalization`` serves several models: it gets ``{"champions": {name: version}}`` (merged into the champions an
earlier run set) when the deployment class has a ``reconfigure`` method, and is skipped (said so) when it has none. Without a dashboard or a Serve app the
result says "nothing to reconfigure". An app deployed imperatively (``serve.run``, no deploy config) cannot be
redeployed through the REST API without deleting it: it is left alone and said so.
"""

from __future__ import annotations

import os
from typing import Any

DEPLOYMENTS = {"task_assignment": "Assignment", "project_timeline": "Timeline",
               "personalization_cf": "Personalization", "notification_ranker": "Personalization",
               "priority_scorer": "Personalization"}  # workload_predictor: no route serves it yet
SINGLE_MODEL = {"Assignment", "Timeline"}  # user_config {"version": v}


def dashboard_address(settings=None) -> str | None:
    """The setting ``serve_dashboard`` (``SUNDAY_SERVE_DASHBOARD``: the Serve app runs on another cluster, e.g. a
    KubeRay RayService) or ``RAY_DASHBOARD_ADDRESS``, else the dashboard of the Ray this process is connected to --
    joining the cluster at ``RAY_ADDRESS`` first when a job has not started Ray yet (a pipeline of models that do not
    train on Ray) -- else None (a local Ray without a dashboard, or none)."""
    configured = getattr(settings, "serve_dashboard", None) or os.environ.get("RAY_DASHBOARD_ADDRESS")
    if configured:
        return configured
    try:
        import ray

        if not ray.is_initialized():
            if settings is None or not settings.ray_address:
                return None
            from sunday.runtime import ensure_ray

            ensure_ray(settings)
        from ray._private import services, worker

        url = worker.get_dashboard_url() or services.get_webui_url_from_internal_kv()
    except Exception:  # noqa: BLE001 -- no cluster: nothing to reconfigure
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def has_reconfigure(deployment: str) -> bool:
    """Whether ``serve_apps.app``'s deployment class implements ``reconfigure``."""
    try:
        import importlib

        app = importlib.import_module("serve_apps.app")
        target = getattr(app, deployment)
        cls = getattr(target, "func_or_class", target)
        return callable(getattr(cls, "reconfigure", None))
    except Exception:  # noqa: BLE001
        return deployment in SINGLE_MODEL


def plan_user_configs(promoted: dict[str, str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``({deployment: user_config}, notes)`` for the promoted ``{model: version}``."""
    configs: dict[str, dict[str, Any]] = {}
    notes = []
    for name, version in promoted.items():
        dep = DEPLOYMENTS.get(name)
        if dep is None:
            notes.append(f"{name}: no Serve deployment serves it")
        elif dep in SINGLE_MODEL:
            configs[dep] = {"version": str(version)}
        elif has_reconfigure(dep):
            configs.setdefault(dep, {"champions": {}})["champions"][name] = str(version)
        else:
            notes.append(f"{name}: deployment {dep} has no reconfigure(): skipped (its replicas load the "
                         f"champion when they start)")
    return configs, notes


def apply_user_configs(details: dict[str, Any], configs: dict[str, dict[str, Any]]) -> tuple[dict | None, list]:
    """The deploy config (``ServeDeploySchema`` dict) of the running apps with ``configs`` applied, and what
    changed; None when an app has no deploy config (deployed imperatively)."""
    apps = details.get("applications") or {}
    out_apps, changed = [], []
    for app_name, app in apps.items():
        cfg = app.get("deployed_app_config")
        if not cfg:
            return None, [f"app {app_name!r} was deployed without a config (serve.run): not redeployed"]
        cfg = dict(cfg)
        deployments = [dict(d) for d in cfg.get("deployments") or []]
        live = set((app.get("deployments") or {}).keys())
        for dep, user_config in configs.items():
            if dep not in live:
                continue
            entry = next((d for d in deployments if d.get("name") == dep), None)
            if entry is None:
                entry = {"name": dep}
                deployments.append(entry)
            # keep the deployment's other keys (e.g. a "rollout"); the new version replaces version / alias
            before = entry.get("user_config") or {}
            merged = {k: v for k, v in before.items() if k not in ("alias", "version")}
            merged.update(user_config)
            if isinstance(before.get("champions"), dict) and "champions" in user_config:  # earlier promotions stay
                merged["champions"] = {**before["champions"], **user_config["champions"]}
            entry["user_config"] = merged
            changed.append(f"{app_name}/{dep} user_config={merged}")
        cfg["deployments"] = deployments
        out_apps.append(cfg)
    deploy: dict[str, Any] = {"applications": out_apps}
    for key in ("proxy_location", "http_options", "grpc_options"):
        if details.get(key) is not None:
            deploy[key] = details[key]
    return deploy, changed


def reconfigure_serve(settings, promoted: dict[str, str], address: str | None = None) -> dict[str, Any]:
    """Reconfigure the running Serve app for ``promoted`` (``{registered model: new champion version}``)."""
    if not promoted:
        return {"summary": "nothing promoted: nothing to reconfigure", "promoted": {}, "changed": []}
    configs, notes = plan_user_configs(promoted)
    address = address or dashboard_address(settings)
    if address is None:
        return {"summary": "no Ray dashboard: no Serve app to reconfigure", "promoted": promoted, "notes": notes,
                "changed": []}
    try:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

        client = ServeSubmissionClient(address)
        details = client.get_serve_details()
    except Exception as exc:  # noqa: BLE001 -- Serve not started on this cluster
        return {"summary": f"no Serve app: nothing to reconfigure ({type(exc).__name__})", "promoted": promoted,
                "notes": notes, "changed": []}
    if not details.get("applications"):
        return {"summary": "no Serve app: nothing to reconfigure", "promoted": promoted, "notes": notes,
                "changed": []}
    if not configs:
        return {"summary": "no running deployment to reconfigure: " + "; ".join(notes), "promoted": promoted,
                "notes": notes, "changed": []}
    deploy, changed = apply_user_configs(details, configs)
    if deploy is None:
        return {"summary": changed[0], "promoted": promoted, "notes": notes, "changed": []}
    if not changed:
        return {"summary": "the running app(s) have none of the deployments to reconfigure", "promoted": promoted,
                "notes": notes, "changed": []}
    client.deploy_applications(deploy)
    return {"summary": "reconfigured " + ", ".join(changed), "promoted": promoted, "notes": notes,
            "changed": changed, "address": address}
