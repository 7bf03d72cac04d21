"""Sweep the priority scorer's XGBoost settings with Ray Tune (Optuna search + ASHA), tracked in MLflow.

    python tune/priority.py [--samples 12] [--sim demo]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \
        -- python tune/priority.py

Sweeps on the job's training period only (:mod:`sunday.models.priority.tuning`). Writes the best settings to
``<state>/tune/priority_best.json``; train with them: ``python train_jobs/priority.py --params
<state>/tune/priority_best.json``.
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
    p.add_argument("--samples", type=int, default=12, help="trials")
    p.add_argument("--max-rounds", type=int, default=400, help="boosting rounds of a trial that is never stopped")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once")
    p.add_argument("--train-fraction", type=float, default=0.7, help="the job's split (only before it is used)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import mlflow

    from sunday import tracking
    from sunday.data.simulator.writer import read_simulation
    from sunday.errors import SundayError
    from sunday.features.platform import simulation_path
    from sunday.jobs import ensure_simulation
    from sunday.models.priority.tuning import METRIC, PrioritySweepConfig, sweep
    from sunday.sweeps import save_best
    from sunday.runtime import ensure_ray
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        ensure_ray(settings)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        tables = read_simulation(simulation_path(settings, args.sim))
        cfg = PrioritySweepConfig(num_samples=args.samples, max_rounds=args.max_rounds,
                                  max_concurrent=args.concurrent, train_fraction=args.train_fraction, seed=args.seed)
        result = sweep(tables, cfg, storage_path=settings.home / "ray_results")
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = save_best(result, settings.home / "tune" / "priority_best.json")
    with tracking.run(settings, "priority-scorer-sweep", run_name=f"sweep-{args.samples}"):
        mlflow.log_params({f"best.{k}": v for k, v in result["best_params"].items()})
        mlflow.log_params({"samples": args.samples, "max_rounds": args.max_rounds, "search": "optuna",
                           "scheduler": "asha", "sim": args.sim})
        mlflow.log_metrics({f"best_val_{METRIC}": result[f"best_{METRIC}"],
                            "trials_stopped_early": result["stopped_early"]})
        mlflow.log_dict(result, "sweep.json")
    key = f"best_{METRIC}"
    rows = sorted(result["trials"], key=lambda t: -(t[key] if t[key] == t[key] else -1))
    print(f"{'val ' + METRIC:>12}  {'rounds':>6}  params")
    for t in rows:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        print(f"{t[key]:12.4f}  {t['rounds']:6d}  {shown}")
    print(f"{len(rows)} trials, {result['stopped_early']} stopped early by ASHA; best validation {METRIC} "
          f"{result[key]:.4f} ({result['n_inner']} inner-train / {result['n_val']} validation tasks); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
