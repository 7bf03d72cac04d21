"""``sunday pipeline run``: the training pipeline from the shell (what ``train_jobs/pipeline.py`` runs).

Mounted by ``sunday/cli.py`` as ``app.add_typer(pipeline_app, name="pipeline")``.
"""

from __future__ import annotations

import typer

pipeline_app = typer.Typer(no_args_is_help=True,
                           help="Training pipeline: train, evaluate, register, gate, promote, reconfigure Serve.")


@pipeline_app.callback()
def _group() -> None:
    """Training pipeline: train, evaluate, register, gate, promote, reconfigure Serve."""


@pipeline_app.command("run", add_help_option=False,
                      context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(ctx: typer.Context) -> None:
    """Run (or resume) the pipeline; one verdict line per model (the flags of train_jobs/pipeline.py: --help)."""
    from sunday.pipeline.cli import main

    code = main(list(ctx.args), prog="sunday pipeline run")
    if code:
        raise typer.Exit(code)
