"""Train the task-assignment ranker, log it to MLflow, register it and gate the champion.

    python train_jobs/assignment.py [--profile quick|full] [--neural] [--deepspeed --zero-stage 2] ...
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \
        -- python train_jobs/assignment.py --neural

Data: a simulated workspace and its feature platform under the state folder (``SUNDAY_HOME``; a job submitted
with ``--working-dir`` runs in a copy of the code, so pass the state folder's absolute path as above). When the
simulation named by ``--sim`` does not exist yet, the job simulates it (``--events``) and builds its features first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", default="demo", help="simulation name under the state folder (default: demo)")
    p.add_argument("--events", type=int, default=200_000, help="events to simulate when --sim does not exist")
    p.add_argument("--profile", default="quick", choices=["quick", "full"])
    p.add_argument("--neural", action="store_true", help="also train the multi-objective network (Ray Train)")
    p.add_argument("--trainer", default="ray", choices=["ray", "local"], help="where the network trains")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers for the network")
    p.add_argument("--gpu", action="store_true", help="Ray Train workers on GPUs (NCCL)")
    p.add_argument("--deepspeed", action="store_true", help="train the network with DeepSpeed (implies --neural)")
    p.add_argument("--zero-stage", type=int, default=2, help="DeepSpeed ZeRO stage (CPU/gloo: 1 or 2)")
    p.add_argument("--holdout", type=float, default=0.2, help="latest share of decisions held out")
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--params", type=Path, help="LightGBM settings JSON (e.g. the sweep's best, tune/assignment.py)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import ensure_simulation, read_params, write_result
    from sunday.models.assignment.train import TrainConfig, train_assignment
    from sunday.runtime import ensure_ray
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        overrides = read_params(args.params)
        config = TrainConfig(sim_name=args.sim, profile=args.profile, holdout=args.holdout, neural=args.neural,
                             trainer=args.trainer, num_workers=args.num_workers, use_gpu=args.gpu,
                             deepspeed=args.deepspeed, zero_stage=args.zero_stage, register=not args.no_register,
                             seed=args.seed, lgbm_overrides=overrides)
        ensure_ray(settings)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        result = train_assignment(settings, config)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = result.metrics
    print(f"holdout: top1 {m['top1']:.3f} (least-loaded {m['baseline_least_loaded_top1']:.3f}, skill-only "
          f"{m['baseline_skill_only_top1']:.3f}), top3 {m['top3']:.3f}, MRR {m['mrr']:.3f}"
          + (f", completion AUC {m['completion_auc']:.3f}" if "completion_auc" in m else "")
          + (f", quality MAE {m['quality_mae']:.2f} (mean baseline {m['quality_mae_mean_baseline']:.2f})"
             if "quality_mae" in m else ""))
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
