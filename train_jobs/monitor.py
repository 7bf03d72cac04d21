"""Drift monitor: compare each model's recent predictions (and inputs) with its training reference, record the drift
in MLflow and Prometheus, and start the retraining pipeline when it passes the threshold.

    python train_jobs/monitor.py [--models priority_scorer,task_assignment] [--window-hours 24] [--dry-run]
    python train_jobs/monitor.py --every 30          # loop: one pass every 30 minutes
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/monitor.py --every 30   # inside Ray: also the sunday_drift_score{model} gauge

Scheduled with cron instead of --every (every 30 minutes; logs beside the state)::

    */30 * * * * cd /srv/sunday && SUNDAY_HOME=/srv/sunday/.sunday .venv/bin/python train_jobs/monitor.py \\
        >> /srv/sunday/.sunday/logs/monitor.log 2>&1

Inputs: the serving prediction log (``$SUNDAY_HOME/monitoring/predictions/predictions.db``, written by the API) and
the training references (``$SUNDAY_HOME/monitoring/reference/<model>/<version>.parquet``; without one, the first
``--baseline-rows`` rows the version served). Outputs: one MLflow run per model in experiment ``monitoring``
(drift metrics, ``drift_table.csv``, the HTML report), ``$SUNDAY_HOME/monitoring/metrics.prom`` (node_exporter
textfile collector), HTML reports under ``$SUNDAY_HOME/monitoring/reports/<model>/``, and, for a drifting model,
``sunday.pipeline.run_pipeline(models=[model], profile=--profile)`` (``--dry-run``: only say so). Exit code 0
(1 when a model's check failed with an error, 2 on bad flags).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", help="comma-separated registered model names (default: all monitored)")
    p.add_argument("--window-hours", type=float, default=24.0, help="the recent window compared (hours)")
    p.add_argument("--min-rows", type=int, default=100, help="fewer rows: the model is skipped this pass")
    p.add_argument("--baseline-rows", type=int, default=500, help="serving baseline size without a reference")
    p.add_argument("--threshold", type=float, default=None, help="drift share that starts retraining (0.3)")
    p.add_argument("--psi", type=float, default=None, help="a column drifts above this PSI (0.2)")
    p.add_argument("--profile", default="quick", help="pipeline profile a drift starts")
    p.add_argument("--sim", default=None, help="the simulation (event log) a drift retrains on (default: the "
                   "profile's; the served one, e.g. demo, in production)")
    p.add_argument("--cooldown-hours", type=float, default=24.0, help="at most one retraining per model per period")
    p.add_argument("--dry-run", action="store_true", help="do not start the pipeline, only report it")
    p.add_argument("--no-html", action="store_true", help="no HTML report")
    p.add_argument("--no-evidently", action="store_true", help="the plain HTML table instead of Evidently's")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.add_argument("--every", type=float, default=None, metavar="MINUTES", help="loop: one pass every MINUTES")
    p.add_argument("--json", type=Path, help="also write the (last) pass's result here")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace):
    from sunday.errors import SundayError
    from sunday.monitoring.drift import DriftConfig
    from sunday.monitoring.job import DEFAULT_MODELS, MonitorConfig

    if args.every is not None and args.every <= 0:
        raise SundayError(f"--every must be > 0 minutes, got {args.every}")
    drift = {}
    if args.threshold is not None:
        drift["share_threshold"] = args.threshold
    if args.psi is not None:
        drift["psi_threshold"] = args.psi
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else DEFAULT_MODELS
    return MonitorConfig(models=models, window_hours=args.window_hours, min_rows=args.min_rows,
                         baseline_rows=args.baseline_rows, drift=DriftConfig.from_dict(drift),
                         trigger=not args.dry_run, profile=args.profile, sim=args.sim,
                         cooldown_hours=args.cooldown_hours,
                         html=not args.no_html, evidently=not args.no_evidently, mlflow=not args.no_mlflow)


def one_pass(settings, config, json_path: Path | None) -> int:
    from sunday.monitoring.job import run_monitor

    result = run_monitor(settings, config)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(result.started_at))
    print(f"[{stamp} UTC] drift monitor ({result.seconds:.1f} s; Prometheus: {result.prom_path})")
    for m in result.models:
        print(f"  {m.line()}")
        if m.html:
            print(f"    report: {m.html} ({m.html_engine}{'; ' + m.html_note if m.html_note else ''})")
        if m.run_id:
            print(f"    mlflow run {m.run_id}")
        if m.trigger is not None:
            print(f"    pipeline: {json.dumps(m.trigger, default=str)[:400]}")
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    sys.stdout.flush()
    return 1 if any(m.status == "error" for m in result.models) else 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.settings import get_settings

    try:
        config = config_from(args)
        settings = get_settings().ensure_dirs()
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.every is None:
        return one_pass(settings, config, args.json)
    while True:  # a scheduler loop: a failed pass is reported, the next one still runs
        t0 = time.monotonic()
        try:
            one_pass(settings, config, args.json)
        except Exception as exc:  # noqa: BLE001 - keep the loop alive
            print(f"error: drift monitor pass failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        time.sleep(max(0.0, args.every * 60 - (time.monotonic() - t0)))


if __name__ == "__main__":
    sys.exit(main())
