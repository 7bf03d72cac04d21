"""Train the workload predictor (next-week hours per user) on a simulated workspace, log it to MLflow, register it
and gate the champion.

    python train_jobs/workload.py [--sim demo] [--train-fraction 0.7] [--params best.json] [--no-register]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/workload.py

Data: the simulation ``--sim`` under the state folder (``SUNDAY_HOME``; pass its absolute path with ``ray job
submit``); when it does not exist yet the job simulates ``--events`` events and builds its features first
(``sunday.jobs.ensure_simulation``). Rows: every user at every week end (features from the observable tables at or
before the cut); label: the HIDDEN true hours of work in the next 7 days (``truth/task_truth``, see
``sunday.models.workload.features``). Time split as ``sunday eval workload-sim``. The holdout MAE against the truth
(hours, lower is better: ``promote(..., higher_is_better=False)``) gates the ``champion`` alias of the registered
model ``workload_predictor`` (``challenger`` always). The logged model is an MLflow pyfunc (``WorkloadPyfunc``
around the saved booster folder): ``predict(workload_features rows)`` -> ``hours``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy

from sunday.models.workload.job import train_and_register  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    from sunday.jobs import sim_job_parser

    return sim_job_parser(__doc__.split("\n\n")[0], "WorkloadConfig settings JSON (e.g. a sweep's best)",
                          "share of the weekly cuts trained on").parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sunday.errors import SundayError
    from sunday.jobs import sim_job_config, write_result
    from sunday.models.explain import format_explanation
    from sunday.models.workload.predictor import WorkloadConfig

    try:
        settings, config = sim_job_config(args, WorkloadConfig, "workload")
        result = train_and_register(settings, args.sim, config, args.train_fraction, not args.no_register)
    except SundayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("holdout (user-weeks after the split), next-week hours:")
    print(f"  {'':30} {'MAE truth':>9} {'R2 truth':>8} {'MAE logged':>10} {'R2 logged':>9}")
    for row in result.rows:
        if row.get("mae_truth") is None:
            continue
        print(f"  {row['row']:30} {row['mae_truth']:9.2f} {row['r2_truth']:8.3f} {row['mae_logged']:10.2f} "
              f"{row['r2_logged']:9.3f}")
    ex = result.example
    print(f"example {ex.get('user_id')} at {ex.get('cut')}: {ex['hours']:.1f} h (truth {ex['truth_hours']:.1f} h) "
          f"because {format_explanation(ex, ' h')}")
    s = result.seconds
    print(f"time: read {s['read']:.1f} s, features + labels {s['features']:.1f} s, fit {s['fit']:.1f} s")
    if result.promotion is not None:
        print(f"mlflow run {result.run_id}: {result.promotion.line()}")
    else:
        print(f"model saved to {result.model_dir} (not registered)")
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
