"""Sweep the assignment ranker's LambdaMART settings with Ray Tune (Optuna search + ASHA), tracked in MLflow.

    python tune/assignment.py [--samples 12] [--sim demo]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \
        -- python tune/assignment.py

Writes the best settings to ``<state>/tune/assignment_best.json``; train with them:
``python train_jobs/assignment.py --params <state>/tune/assignment_best.json``.
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
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--samples", type=int, default=12, help="trials")
    p.add_argument("--max-rounds", type=int, default=400, help="boosting rounds of a trial that is never stopped")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import mlflow

    from sunday import tracking
    from sunday.errors import SundayError
    from sunday.models.assignment.train import TrainConfig, load_data
    from sunday.models.assignment.tuning import METRIC, SweepConfig, sweep
    from sunday.sweeps import save_best
    from sunday.runtime import ensure_ray
    from sunday.settings import get_settings

    from sunday.jobs import ensure_simulation

    try:
        settings = get_settings().ensure_dirs()
        ensure_ray(settings)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        train, _holdout = load_data(settings, TrainConfig(sim_name=args.sim, profile=args.profile, seed=args.seed))
        cfg = SweepConfig(num_samples=args.samples, max_rounds=args.max_rounds, max_concurrent=args.concurrent,
                          seed=args.seed)
        result = sweep(train, cfg, storage_path=settings.home / "ray_results")
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_best(result, settings.home / "tune" / "assignment_best.json")
    with tracking.run(settings, "task-assignment-sweep", run_name=f"sweep-{args.samples}"):
        mlflow.log_params({f"best.{k}": v for k, v in result["best_params"].items()})
        mlflow.log_params({"samples": args.samples, "max_rounds": args.max_rounds, "search": "optuna",
                           "scheduler": "asha"})
        mlflow.log_metrics({f"best_{METRIC}".replace("@", "_at_"): result[f"best_{METRIC}"],
                            "trials_stopped_early": result["stopped_early"]})
        mlflow.log_dict(result, "sweep.json")
    rows = sorted(result["trials"], key=lambda t: -(t[f"best_{METRIC}"] if t[f"best_{METRIC}"] == t[f"best_{METRIC}"]
                                                     else -1))
    print(f"{'val ' + METRIC:>10}  {'rounds':>6}  params")
    for t in rows:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        print(f"{t[f'best_{METRIC}']:10.4f}  {t['rounds']:6d}  {shown}")
    print(f"{len(rows)} trials, {result['stopped_early']} stopped early by ASHA; best {METRIC} "
          f"{result[f'best_{METRIC}']:.4f} on {result['n_val_tasks']} validation decisions; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
