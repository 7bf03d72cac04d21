"""Train the collaborative-filtering recommender (relevant tasks, collaborators) on a simulated workspace, log it to
MLflow, register it and gate the champion.

    python train_jobs/personalization_cf.py [--sim demo] [--epochs 12] [--num-workers 2] [--use-gpu] [--no-ray]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/personalization_cf.py

Data: the simulation ``--sim`` under the state folder (``SUNDAY_HOME``); when it does not exist yet the job
simulates ``--events`` events and builds its features first (``sunday.jobs.ensure_simulation``). Interactions come
from the OBSERVABLE event log only (``sunday.models.personalization.interactions``). Split per user by time as
``sunday eval cf-sim``: the last ``--holdout`` share of each user's tasks by first touch is held out. The held-out
NDCG@10 (higher is better) gates the ``champion`` alias of the registered model ``personalization_cf``
(``challenger`` always; the first version becomes champion). Training: Ray Train ``TorchTrainer`` DDP workers
(gloo on CPU, NCCL with ``--use-gpu``), or in process with ``--no-ray``. The logged model is an MLflow pyfunc:
``predict(DataFrame with user_id [, workspace_id, k])`` -> ``user_id, rank, task_id, score``.
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
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default 12)")
    p.add_argument("--dim", type=int, default=None, help="embedding size (default 32)")
    p.add_argument("--params", type=Path, help="CFConfig settings as JSON")
    p.add_argument("--num-workers", type=int, default=2, help="Ray Train workers")
    p.add_argument("--use-gpu", action="store_true", help="Ray Train workers on GPUs (one each, NCCL)")
    p.add_argument("--no-ray", action="store_true", help="train in process instead of on Ray Train workers")
    p.add_argument("--holdout", type=float, default=0.2, help="share of each user's latest tasks held out")
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import ensure_simulation, read_params, settings_from, write_result
    from sunday.models.personalization.cf import CFConfig
    from sunday.models.personalization.cf_mlflow import CfJobConfig, train_and_register
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        params = read_params(args.params)
        if "seed" in params:
            raise SundayError("CF setting 'seed' is set by the job's --seed flag, not --params")
        flags = {"epochs": args.epochs, "dim": args.dim, "seed": args.seed}
        model = settings_from(CFConfig, {**params, **{k: v for k, v in flags.items() if v is not None}}, "CF")
        job = CfJobConfig(model=model, sim=args.sim, use_ray=not args.no_ray, num_workers=args.num_workers,
                          use_gpu=args.use_gpu, holdout=args.holdout, register=not args.no_register)
        ensure_simulation(settings, args.sim, args.events, args.seed)
        result = train_and_register(settings, job)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"held-out tasks ({result.counts['holdout_users']} users, the last {args.holdout:.0%} of each user's "
          "tasks by first touch):")
    print(f"  {'':15} {'NDCG@10':>8} {'recall@10':>9} {'HR@10':>6} {'MRR':>6}")
    for name, m in result.table.items():
        print(f"  {name:15} {m['ndcg@10']:8.3f} {m['recall@10']:9.3f} {m['hr@10']:6.3f} {m['mrr']:6.3f}")
    s = result.seconds
    print(f"time: data {s['data']:.1f} s, fit {s['fit']:.1f} s "
          f"({'in process' if args.no_ray else f'Ray Train, {args.num_workers} workers'}), eval {s['eval']:.1f} s")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    else:
        print(f"model saved to {result.model_dir} (not registered)")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
