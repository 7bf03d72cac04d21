"""Train the notification ranker, evaluate it on a time holdout, log it to MLflow, register it and gate it.

    python train_jobs/notifications.py [--sim demo] [--events 200000] [--seed 0] [--objective binary]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/notifications.py

Data: the simulation named ``--sim`` under the state folder (``SUNDAY_HOME``) when it exists (its manifest's seed
seeds the notification stream), else ``--events`` events simulated in memory with ``--seed``; notifications, inbox
sessions and clicks are derived from it (:mod:`sunday.data.simulator.notifications`). Inbox sessions opened in the
first ``--train-share`` of the period train the ranker; the rest are the holdout (features point-in-time, see
:mod:`sunday.models.personalization.notifications`).

Gate: the registered model ``notification_ranker`` (a pyfunc over the feature frame) gets ``challenger``; it becomes
``champion`` when its holdout NDCG@10 beats the champion's on the same sessions and first beats the logged
(newest-first) order, what the inbox shows without a model. NDCG@10 here is ``ndcg_10_ips``: the clicks weighted
by 1 / propensity of their logged position (estimated from the training clicks), pooled over sessions -- the
raw-click NDCG favours the logged order through position bias (see ``sunday eval notify-sim``). The raw-click and
the hidden-engagement NDCG are logged beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy

from sunday.models.personalization.notifications_job import NotifyJobConfig, train_and_register, GATE_METRIC  # noqa: E402

def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sim", default="demo", help="simulation name under the state folder (used when it exists)")
    p.add_argument("--events", type=int, default=200_000, help="events to simulate in memory when --sim is absent")
    p.add_argument("--seed", type=int, default=0, help="simulation and notification seed (when simulating)")
    p.add_argument("--train-share", type=float, default=0.7, help="share of the period whose sessions train")
    p.add_argument("--objective", default="binary", choices=["binary", "lambdarank"])
    p.add_argument("--n-estimators", type=int, default=300)
    p.add_argument("--no-register", action="store_true", help="do not log to MLflow nor register")
    p.add_argument("--json", type=Path, help="also write the result here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import write_result
    from sunday.settings import get_settings

    try:
        settings = get_settings().ensure_dirs()
        job = NotifyJobConfig(sim_name=args.sim, events=args.events, seed=args.seed, train_share=args.train_share,
                              objective=args.objective, n_estimators=args.n_estimators,
                              register=not args.no_register)
        result = train_and_register(settings, job)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m, s = result.metrics, result.seconds
    print(f"holdout NDCG@10: {m[GATE_METRIC]:.4f} IPS-weighted clicks (logged order "
          f"{m['logged_order_ndcg_10_ips']:.4f}), {m['ndcg_10']:.4f} raw clicks (logged order "
          f"{m['logged_order_ndcg_10']:.4f}), {m['ndcg_10_true']:.4f} hidden engagement (logged order "
          f"{m['logged_order_ndcg_10_true']:.4f}); click AUC {m['auc_logged_pos']:.4f}; time: data {s['data']:.1f} s, "
          f"fit {s['fit']:.1f} s")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    else:
        print(f"model saved to {result.model_dir} (not registered)")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
