"""Train the project timeline forecaster, log it to MLflow, register it and gate the champion.

    python train_jobs/timeline.py [--profile quick|full] [--trainer ray --num-workers 2] [--deepspeed] ...
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \
        -- python train_jobs/timeline.py --trainer ray

Data: a simulated workspace under the state folder (``SUNDAY_HOME``; a job submitted with ``--working-dir`` runs in
a copy of the code, so pass the state folder's absolute path as above). When the simulation named by ``--sim`` does
not exist yet, the job simulates it (``--events``) and builds its features first
(``sunday.jobs.ensure_simulation``). Snapshots of every eligible project, a ``--holdout`` share of the *projects* held out; the
holdout MAE (days) gates the ``champion`` alias of the registered model ``project_timeline`` (lower is better).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy
sys.path.insert(0, str(Path(__file__).resolve().parent))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", default="demo", help="simulation name under the state folder (default: demo)")
    p.add_argument("--events", type=int, default=200_000, help="events to simulate when --sim does not exist")
    p.add_argument("--profile", default="quick", choices=["quick", "full"],
                   help="quick: a cut every 4 days, 25 epochs; full: every 2 days, 40 epochs, refit after calibrating")
    p.add_argument("--trainer", default="local", choices=["local", "ray"],
                   help="in process, or Ray Train TorchTrainer workers (DDP)")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers (--trainer ray)")
    p.add_argument("--gpu", action="store_true", help="Ray Train workers on GPUs (NCCL; implies --trainer ray)")
    p.add_argument("--deepspeed", action="store_true", help="train with DeepSpeed ZeRO (implies --trainer ray)")
    p.add_argument("--zero-stage", type=int, default=1, help="DeepSpeed ZeRO stage (CPU/gloo: 1 or 2)")
    p.add_argument("--holdout", type=float, default=0.3, help="share of the projects held out")
    p.add_argument("--cut-every", type=int, default=None, help="days between snapshot cuts (default: the profile's)")
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--params", type=Path,
                   help="TimelineConfig settings JSON (e.g. the sweep's best, tune/timeline.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def _fmt(v: float, pct: bool = False) -> str:
    if v != v:
        return "n/a"
    return f"{v:.0%}" if pct else f"{v:.2f}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import ensure_simulation, read_params, write_result
    from sunday.models.timeline.train import TimelineTrainConfig, train_timeline
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        overrides = read_params(args.params)
        config = TimelineTrainConfig(sim_name=args.sim, profile=args.profile, holdout=args.holdout,
                                     cut_every=args.cut_every, trainer=args.trainer, num_workers=args.num_workers,
                                     use_gpu=args.gpu, deepspeed=args.deepspeed, zero_stage=args.zero_stage,
                                     register=not args.no_register, seed=args.seed, overrides=overrides)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        result = train_timeline(settings, config)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"holdout ({result.n_holdout_projects} projects, {result.n_holdout_snapshots} snapshots; "
          f"{m['n_early_warning_projects']} end >= 7 days late, {m['n_at_risk_projects']} >= 21):")
    print(f"  {'':16} {'MAE days':>9} {'p10-p90 cov':>11} {'warn recall':>11} {'warn prec':>9} "
          f"{'at-risk rec':>11}")
    for row in result.rows():
        print(f"  {row['row']:16} {_fmt(row['mae_days']):>9} {_fmt(row['coverage_p10_p90'], True):>11} "
              f"{_fmt(row['early_warning_recall'], True):>11} {_fmt(row['early_warning_precision'], True):>9} "
              f"{_fmt(row['at_risk_recall'], True):>11}")
    print(f"  MAE vs burn-down {m['mae_vs_burndown']:.2f}x, vs Monte Carlo {m['mae_vs_monte_carlo']:.2f}x; "
          f"time: data {result.seconds['data']:.1f} s, fit {result.seconds['fit']:.1f} s "
          f"({config.trainer} trainer)")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
