"""Start the Serve application on the embedded defaults and show how to call it (``sunday serve``, the demo)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

from sunday.errors import SundayError

APP_NAME = "sunday"


@dataclass
class Running:
    url: str
    args: dict[str, Any]


def start(settings, args: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 8000) -> Running:
    """Start (or join) Ray, start Serve's HTTP proxy on ``host:port`` and deploy the app; returns its URL."""
    import sys
    from pathlib import Path

    from ray import serve

    from sunday.runtime import ensure_ray

    root = str(Path(__file__).resolve().parents[2])  # serve_apps/ lives beside sunday/
    if root not in sys.path:
        sys.path.insert(0, root)
    from serve_apps.app import build_app

    # replicas import serve_apps/ (not an installed package) and read the same state folder, whoever started Ray
    env = {"env_vars": {"SUNDAY_HOME": str(settings.home), "PYTHONPATH": root}}
    ensure_ray(settings, runtime_env=env)
    serve.start(http_options={"host": host, "port": port})
    args = {"home": str(settings.home), "runtime_env": env, **(args or {})}
    try:
        serve.run(build_app(args), name=APP_NAME, route_prefix="/", blocking=False)
    except RuntimeError as exc:
        raise SundayError(f"the Serve application failed to start: {exc}") from None
    return Running(f"http://{host}:{port}", args)


def sample_requests(settings, sim: str = "demo") -> dict[str, Any]:
    """A real workspace, some of its users and one of its projects, for example requests."""
    from sunday.features.platform import simulation_path
    from sunday.serving.directory import _table

    path = simulation_path(settings, sim)
    users = _table(path, "users", ["user_id", "workspace_id", "team_id"])
    projects = _table(path, "projects", ["project_id", "workspace_id"])
    if users.empty:
        raise SundayError(f"simulation '{sim}' has no users")
    ws = str(users["workspace_id"].iloc[0])
    team = users[(users["workspace_id"] == ws) & (users["team_id"] == users["team_id"].iloc[0])]
    project = projects.loc[projects["workspace_id"] == ws, "project_id"]
    return {"workspace_id": ws, "candidates": team["user_id"].astype(str).head(20).tolist(),
            "project_id": str(project.iloc[0]) if len(project) else None}


def curl_lines(url: str, token: str, sample: dict[str, Any]) -> list[str]:
    auth = f"-H 'Authorization: Bearer {token}'"
    assign = {"task": {"title": "Fix flaky login test", "description": "The OAuth callback times out in CI",
                       "required_skills": ["python", "testing"], "story_points": 3, "priority": "high"},
              "candidates": sample["candidates"], "top_k": 3}
    lines = [f"curl -s {url}/api/v1/ml/health",
             f"curl -s {auth} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(assign))} "
             f"{url}/api/v1/ml/assign-task"]
    if sample.get("project_id"):
        lines.append(f"curl -s {auth} -H 'Content-Type: application/json' "
                     f"-d '{{\"project_id\": \"{sample['project_id']}\"}}' {url}/api/v1/ml/predict-timeline")
    if sample.get("project_id"):
        lines.append(f"curl -s {auth} '{url}/api/v1/ml/anomalies/{sample['project_id']}?limit=5'")
    search = {"query": "dashboard feels sluggish", "top_k": 3}
    lines.append(f"curl -s {auth} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(search))} "
                 f"{url}/api/v1/ml/search")
    draft = {"brief": "Let users export a board to CSV"}
    lines.append(f"curl -s {auth} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(draft))} "
                 f"{url}/api/v1/ml/draft-task   # embedded 135M LLM: slow, and often refused with the reason")
    if sample.get("candidates"):
        dash = {"user_id": sample["candidates"][0], "top_k": 5}
        lines.append(f"curl -s {auth} -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(dash))} "
                     f"{url}/api/v1/ml/personalize-dashboard   # then POST personalization/feedback "
                     "{decision_id, reward}")
    lines.append(f"curl -s {auth} {url}/api/v1/ml/models")
    lines.append(f"open {url}/docs   # OpenAPI")
    return lines
