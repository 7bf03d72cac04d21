"""``sunday pipeline run``: the training pipeline from the shell (what ``train_jobs/pipeline.py`` runs).

Mounted by ``sunday/cli.py`` as ``app.add_typer(pipeline_app, name="pipeline")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

pipeline_app = typer.Typer(no_args_is_help=True,
                           help="Training pipeline: train, evaluate, register, gate, promote, reconfigure Serve.")


@pipeline_app.callback()
def _group() -> None:
    """Training pipeline: train, evaluate, register, gate, promote, reconfigure Serve."""


@pipeline_app.command("run")
def run(models: Optional[List[str]] = typer.Option(None, "--models", help="registered model names "
                                                   "(repeat or comma-separate; default: all)"),
        profile: str = typer.Option("quick", "--profile", help="quick or full"),
        reason: str = typer.Option("manual", "--reason", help="why this run (tagged on the MLflow run)"),
        sim: Optional[str] = typer.Option(None, "--sim", help="simulation name (default: the profile's)"),
        resume: Optional[str] = typer.Option(None, "--resume", help="a run id: its finished steps are skipped"),
        stop_after: Optional[str] = typer.Option(None, "--stop-after", help="stop after this step"),
        setting: List[str] = typer.Option([], "--set", help="MODEL.KEY=JSON training setting (repeatable)"),
        min_metric: List[str] = typer.Option([], "--min-metric", help="MODEL=VALUE gate threshold (repeatable)"),
        max_drop: float = typer.Option(0.02, "--max-drop", help="largest relative drop vs the champion"),
        max_latency_ratio: float = typer.Option(1.2, "--max-latency-ratio", help="largest p99 ratio"),
        local: bool = typer.Option(False, "--local", help="train the Ray Train models (personalization_cf, "
                                   "project_timeline, anomaly_lstm_ae) in process"),
        reconfigure: bool = typer.Option(True, "--reconfigure/--no-reconfigure"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the result here")) -> None:
    """Run (or resume) the pipeline; one verdict line per model. Exit 1 when a model's step failed."""
    import json

    from sunday.errors import SundayError
    from sunday.pipeline.config import PipelineConfig, parse_settings, parse_thresholds
    from sunday.pipeline.runner import run_pipeline
    from sunday.settings import get_settings

    names = [m for item in models or [] for m in item.split(",") if m] or None
    try:
        config = PipelineConfig(models=names, profile=profile, reason=reason, sim=sim, resume=resume,
                                stop_after=stop_after, overrides=parse_settings(setting),
                                min_metric=parse_thresholds(min_metric), max_drop=max_drop,
                                max_latency_ratio=max_latency_ratio, use_ray=not local, reconfigure=reconfigure)
        result = run_pipeline(get_settings().ensure_dirs(), config, log=typer.echo)
    except SundayError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in result.lines():
        typer.echo(line)
    typer.echo(f"result: {result.run_dir / 'result.json'}")
    if json_out:
        json_out.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    if not result.ok:
        raise typer.Exit(1)
