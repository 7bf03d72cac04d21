"""The pipeline's command line: one parser for ``python train_jobs/pipeline.py`` (also through ``ray job submit``) and
``sunday pipeline run`` -- the same flags, the same exit status (0: every model got a verdict, 1: a model's step
failed, 2: a usage or data-validation error). Usage, state and resume: ``train_jobs/pipeline.py``'s docstring."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DESCRIPTION = ("The training pipeline: extract -> validate -> train -> evaluate -> register (challenger) -> gate -> "
               "promote (champion) -> reconfigure the Serve app.")


def parse(argv: list[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    p.add_argument("--profile", default="quick", help="quick (30k-event simulation, small models) or full")
    p.add_argument("--models", default=None, help="comma-separated registered model names (default: all)")
    p.add_argument("--reason", default="manual", help="why this run (tagged on the MLflow run)")
    p.add_argument("--sim", default=None, help="simulation name (default: the profile's)")
    p.add_argument("--events", type=int, default=None, help="events to simulate when --sim does not exist")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", default=None, help="a pipeline run id: its finished steps are skipped")
    p.add_argument("--stop-after", default=None, help="stop after this step (e.g. train); resume later")
    p.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=JSON",
                   help="a training setting, e.g. priority_scorer.n_estimators=5 (repeatable)")
    p.add_argument("--min-metric", action="append", default=[], metavar="MODEL=VALUE",
                   help="the gate's threshold of a model's primary metric (repeatable)")
    p.add_argument("--max-drop", type=float, default=0.02, help="largest relative drop vs the champion")
    p.add_argument("--max-latency-ratio", type=float, default=1.2, help="largest p99 ratio vs the champion")
    p.add_argument("--latency-slack-ms", type=float, default=0.5, help="absolute p99 tolerance (ms)")
    p.add_argument("--local", action="store_true",
                   help="train personalization_cf, project_timeline and anomaly_lstm_ae in process (no Ray Train)")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers")
    p.add_argument("--no-reconfigure", action="store_true", help="do not touch a running Serve app")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace):
    from sunday.pipeline.config import PipelineConfig, parse_settings, parse_thresholds

    return PipelineConfig(models=args.models.split(",") if args.models else None, profile=args.profile,
                          reason=args.reason, sim=args.sim, events=args.events, seed=args.seed, resume=args.resume,
                          overrides=parse_settings(args.set), min_metric=parse_thresholds(args.min_metric),
                          max_drop=args.max_drop, max_latency_ratio=args.max_latency_ratio,
                          latency_slack_ms=args.latency_slack_ms, use_ray=not args.local,
                          num_workers=args.num_workers, reconfigure=not args.no_reconfigure,
                          stop_after=args.stop_after)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    from sunday.errors import SundayError
    from sunday.pipeline.runner import run_pipeline
    from sunday.settings import get_settings

    try:
        args = parse(argv, prog)
    except SystemExit as exc:  # --help, or a usage error argparse has printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        config = config_from_args(args)
        result = run_pipeline(get_settings().ensure_dirs(), config)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in result.lines():
        print(line)
    print(f"result: {result.run_dir / 'result.json'}")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return 0 if result.ok else 1
