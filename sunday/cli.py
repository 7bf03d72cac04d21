"""The ``sunday`` command line. User errors print one line on stderr and exit with code 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

try:  # typer >= 0.29 vendors click; its usage errors are these classes
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer uses click itself
    import click.exceptions as cx

from sunday.errors import SundayError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Sunday ML: data, training, evaluation and serving on Ray.")
data_app = typer.Typer(no_args_is_help=True, help="Import the public datasets; simulate a workspace.")
app.add_typer(data_app, name="data")
features_app = typer.Typer(no_args_is_help=True, help="Feature platform: Ray Data pipelines into Feast.")
app.add_typer(features_app, name="features")


def _mount_keys() -> None:
    from sunday.cli_keys import keys_app

    app.add_typer(keys_app, name="keys")


_mount_keys()


def _mount_nlp() -> None:
    from sunday.cli_nlp import nlp_app

    app.add_typer(nlp_app, name="nlp")


_mount_nlp()


def _mount_pipeline() -> None:
    from sunday.cli_pipeline import pipeline_app

    app.add_typer(pipeline_app, name="pipeline")


_mount_pipeline()

DataDirOpt = typer.Option(None, "--data-dir", help="datasets folder (default: SUNDAY_DATA_DIR or ../shared/data)")


def _settings(data_dir: Optional[Path] = None):
    from sunday.settings import get_settings

    return get_settings(data_dir=data_dir).ensure_dirs()


@app.command()
def info(ray: bool = typer.Option(True, "--ray/--no-ray", help="start or join Ray to show its resources")) -> None:
    """Print the resolved settings, package versions and the Ray cluster's resources."""
    from sunday.info import collect_info, render_info

    render_info(collect_info(_settings(), with_ray=ray))


@data_app.command("import")
def data_import(name: str = typer.Argument(..., help="dataset name, or 'all'"),
                data_dir: Optional[Path] = DataDirOpt) -> None:
    """Import a public dataset (or all of them) into the state folder's warehouse."""
    from sunday.data.importers import importer_names
    from sunday.data.pipeline import import_many, render_imports

    settings = _settings(data_dir)
    names = importer_names() if name == "all" else [name]
    render_imports(import_many(names, settings, fail_fast=name != "all"))


@data_app.command("simulate")
def data_simulate(
    events: int = typer.Option(10_000, "--events", help="number of events to generate (> 0)"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    engine: str = typer.Option("ray", "--engine", help="ray (Ray Data) or local (one process)"),
    name: str = typer.Option("default", "--name", help="simulation name under the state folder"),
) -> None:
    """Simulate a workspace event log (observable tables plus a separate hidden ground truth)."""
    from sunday.data.pipeline import render_simulation, run_simulation

    settings = _settings()
    render_simulation(run_simulation(settings, events=events, seed=seed, engine=engine, name=name))


@features_app.command("build")
def features_build(
    sim: str = typer.Option("default", "--sim", help="simulation (event log) to build from"),
    engine: str = typer.Option("ray", "--engine", help="ray (Ray Data) or local (one process)"),
    accept_drift: bool = typer.Option(False, "--accept-drift",
                                      help="accept a reviewed data shift: drift warns instead of rejecting"),
) -> None:
    """Run the feature pipelines, validate each group, apply the Feast repo and materialize the online store."""
    from sunday.features.platform import build_platform, render_platform

    render_platform(build_platform(_settings(), sim_name=sim, engine=engine, accept_drift=accept_drift))


@app.command()
def demo(events: int = typer.Option(200_000, "--events", help="simulated events"),
         seed: int = typer.Option(0, "--seed"),
         port: int = typer.Option(8000, "--port", help="HTTP port of the served app"),
         wait: bool = typer.Option(True, "--wait/--no-wait", help="keep the app up after the summary until Ctrl-C "
                                                                  "(only when run from a terminal)"),
         data_dir: Optional[Path] = DataDirOpt) -> None:
    """The main job: Ray, datasets, a simulated workspace, features, models (train, register), the served API."""
    from sunday.demo import run_demo

    run_demo(_settings(data_dir), events=events, seed=seed, port=port, wait=wait)


@app.command()
def serve(host: str = typer.Option("127.0.0.1", "--host", help="HTTP host of Serve's proxy"),
          port: int = typer.Option(8000, "--port", help="HTTP port"),
          sim: str = typer.Option("demo", "--sim", help="simulation whose workspaces and feature store to serve"),
          batching: bool = typer.Option(True, "--batching/--no-batching", help="@serve.batch dynamic batching"),
          demo_key: bool = typer.Option(False, "--demo-key", help="create a member key for the first workspace "
                                                                  "and print curl lines that use it"),
          detach: bool = typer.Option(False, "--detach", help="deploy and return instead of blocking")) -> None:
    """Start Ray Serve with the Sunday ML application (serve_apps/app.py) on the embedded defaults."""
    import time

    from sunday.serving.launch import curl_lines, sample_requests, start

    settings = _settings()
    running = start(settings, {"sim": sim, "batching": batching}, host=host, port=port)
    print(f"Sunday ML API on {running.url} (OpenAPI: {running.url}/docs)")
    token = "$SUNDAY_API_KEY"
    if demo_key:
        from sunday.serving.keys import default_keystore

        sample = sample_requests(settings, sim)
        _, token = default_keystore(settings).create(sample["workspace_id"], "member", name="sunday serve --demo-key")
        print(f"created a member key for workspace {sample['workspace_id']} (shown once): {token}")
    else:
        sample = sample_requests(settings, sim)
        print(f"create a key: sunday keys create --workspace {sample['workspace_id']} --role member")
    for line in curl_lines(running.url, token, sample):
        print(line)
    if detach:
        return
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve as ray_serve

        ray_serve.shutdown()


@app.command("eval")
def eval_cmd(name: Optional[str] = typer.Argument(None, help="evaluation to run; omit to list them"),
             data_dir: Optional[Path] = DataDirOpt,
             option: list[str] = typer.Option([], "--option", "-o", metavar="KEY=VALUE",
                                               help="evaluation option, repeatable (value read as JSON when it "
                                                    "parses: -o embeddings=false -o workspaces=4)")) -> None:
    """List the real-data evaluations, or run one: prints its table beside the published anchors, writes JSON."""
    from rich.console import Console

    from sunday.evaluation import evaluation_names, get_evaluation, run_evaluation
    from sunday.evaluation.report import render

    console = Console()
    if not console.is_terminal:  # piped / logged: wide rows instead of 80-column folding of the tables
        console = Console(width=200)
    if name is None:
        for n in evaluation_names():
            ev = get_evaluation(n)
            console.print(f"{n:24s} {ev.description}  [dim](data: {ev.folder or 'none, simulated'})[/dim]")
        return
    settings = _settings(data_dir)
    ev = get_evaluation(name)
    if ev.folder:
        folder = settings.data_dir / ev.folder
        if not folder.is_dir():
            raise SundayError(f"evaluation '{name}' needs {folder} (set SUNDAY_DATA_DIR or --data-dir)")
    result, path = run_evaluation(name, settings.data_dir, settings.eval_dir, **_options(option))
    render(result, console)
    console.print(f"wrote {path}")


def _options(items: list[str]) -> dict:
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SundayError(f"--option must look like KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        rv = app(args=argv, prog_name="sunday", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except cx.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else str(exc))
        return 0
    except cx.UsageError as exc:
        where = f" (try: {exc.ctx.command_path} --help)" if exc.ctx else ""
        print(f"error: {exc.format_message()}{where}", file=sys.stderr)
        return 2
    except cx.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except (typer.Exit, cx.TyperException) as exc:
        return getattr(exc, "exit_code", 1)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
