"""Sweep the timeline forecaster's settings with Ray Tune (Optuna search + ASHA), tracked in MLflow.

    python tune/timeline.py [--samples 8] [--max-epochs 25] [--sim demo]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \
        -- python tune/timeline.py

The sweep runs on the training projects of the job's split (same ``--holdout`` and ``--seed`` as
``train_jobs/timeline.py``), validating on a project split inside them: the job's holdout never enters it. Writes the
best settings to ``<state>/tune/timeline_best.json``; train with them:
``python train_jobs/timeline.py --params <state>/tune/timeline_best.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", default="demo")
    p.add_argument("--events", type=int, default=200_000, help="events to simulate when --sim does not exist")
    p.add_argument("--profile", default="quick", choices=["quick", "full"], help="snapshot cadence (as the job)")
    p.add_argument("--holdout", type=float, default=0.3, help="share of the projects the job holds out (excluded)")
    p.add_argument("--samples", type=int, default=8, help="trials")
    p.add_argument("--max-epochs", type=int, default=25, help="epochs of a trial that is never stopped")
    p.add_argument("--grace-epochs", type=int, default=3, help="ASHA grace period (epochs)")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import mlflow

    from sunday import tracking
    from sunday.errors import SundayError
    from sunday.models.timeline.train import TimelineTrainConfig, load_data
    from sunday.models.timeline.tuning import METRIC, SweepConfig, sweep
    from sunday.sweeps import save_best
    from sunday.runtime import ensure_ray
    from sunday.settings import get_settings

    from sunday.jobs import ensure_simulation

    try:
        settings = get_settings().ensure_dirs()
        job = TimelineTrainConfig(sim_name=args.sim, profile=args.profile, holdout=args.holdout, seed=args.seed)
        ensure_ray(settings)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        train, _holdout = load_data(settings, job)
        cfg = SweepConfig(num_samples=args.samples, max_epochs=args.max_epochs, grace_epochs=args.grace_epochs,
                          max_concurrent=args.concurrent, seed=args.seed)
        result = sweep(train, cfg, storage_path=settings.home / "ray_results")
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_best(result, settings.home / "tune" / "timeline_best.json")
    best_key = f"best_{METRIC}"
    with tracking.run(settings, "project-timeline-sweep", run_name=f"sweep-{args.samples}"):
        mlflow.log_params({f"best.{k}": v for k, v in result["best_params"].items()})
        mlflow.log_params({"samples": args.samples, "max_epochs": args.max_epochs, "grace_epochs": args.grace_epochs,
                           "search": "optuna", "scheduler": "asha", "sim": args.sim, "profile": args.profile,
                           "holdout": args.holdout, "seed": args.seed})
        mlflow.log_metrics({best_key: result[best_key], "trials_stopped_early": result["stopped_early"]})
        mlflow.log_dict(result, "sweep.json")
    rows = sorted(result["trials"], key=lambda t: t[best_key] if t[best_key] == t[best_key] else float("inf"))
    print(f"{'val MAE d':>9}  {'best ep':>7}  {'epochs':>6}  params")
    for t in rows:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        print(f"{t[best_key]:9.3f}  {t['best_epoch']:7d}  {t['epochs']:6d}  {shown}"
              + (f"  ERROR {t['error'][:80]}" if t["error"] else ""))
    print(f"{len(rows)} trials, {result['stopped_early']} stopped early by ASHA; best validation p50 MAE "
          f"{result[best_key]:.3f} days on {result['n_val_projects']} validation projects "
          f"({result['n_val_snapshots']} snapshots; {result['n_inner_projects']} projects trained on); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
