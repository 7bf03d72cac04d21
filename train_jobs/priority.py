"""Train the priority scorer on a simulated workspace, log it to MLflow, register it and gate the champion.

    python train_jobs/priority.py [--sim demo] [--train-fraction 0.7] [--params best.json] [--no-register]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/priority.py

Data: the simulation ``--sim`` under the state folder (``SUNDAY_HOME``; a job submitted with ``--working-dir`` runs
in a copy of the code, so pass the state folder's absolute path as above); when it does not exist yet the job
simulates ``--events`` events and builds its features first (``sunday.jobs.ensure_simulation``). Each task's
features at created_at + ``horizon_hours`` (24 h; observable tables only), label = the tasks table's priority.
Time split as ``sunday eval priority-sim``: tasks whose cut is before the split (``--train-fraction`` of the
creation-time range) train, tasks created after it are the holdout. The holdout macro-F1 (higher is better) gates
the ``champion`` alias of the registered model ``priority_scorer`` (``challenger`` always). The logged model is an
MLflow pyfunc (``PriorityPyfunc`` around the saved XGBoost folder): ``predict(priority_features rows)`` -> class,
priority_score and class probabilities.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy

from sunday.models.priority.job import train_and_register  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from sunday.jobs import sim_job_parser

    return sim_job_parser(__doc__.split("\n\n")[0], "PriorityConfig settings JSON (e.g. a sweep's best)",
                          "share of the period trained on").parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import sim_job_config, write_result
    from sunday.models.explain import format_explanation
    from sunday.models.priority.scorer import PriorityConfig

    try:
        settings, config = sim_job_config(args, PriorityConfig, "priority")
        result = train_and_register(settings, args.sim, config, args.train_fraction, not args.no_register)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"holdout (tasks created after the split, features {config.horizon_hours:g} h after creation):")
    print(f"  {'':24} {'accuracy':>8} {'macro-F1':>8} {'QWK':>6} {'AUC hi':>6}")
    for row in result.rows:
        if row.get("macro_f1") is None:
            continue
        print(f"  {row['row']:24} {row['accuracy']:8.3f} {row['macro_f1']:8.3f} {row['qwk']:6.3f} "
              f"{row['auc_high']:6.3f}")
    ex = result.example
    print(f"example {ex.get('task_id')}: {ex['priority']} (p={ex['probability']:.2f}, true {ex['true_priority']}) "
          f"because {format_explanation(ex)}")
    s = result.seconds
    print(f"time: read {s['read']:.1f} s, features {s['features']:.1f} s, fit {s['fit']:.1f} s")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    else:
        print(f"model saved to {result.model_dir} (not registered)")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
