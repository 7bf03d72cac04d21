"""The training pipeline: extract -> validate -> train -> evaluate -> register (challenger) -> gate -> promote
(champion) -> reconfigure the Serve app.

    python train_jobs/pipeline.py [--profile quick|full] [--models priority_scorer,personalization_cf] \\
        [--reason "drift: ..."] [--resume RUN_ID] [--stop-after train] [--json result.json]
    ray job submit --working-dir . --runtime-env-json '{"env_vars": {"SUNDAY_HOME": "'$PWD'/.sunday"}}' \\
        -- python train_jobs/pipeline.py --profile quick

State and resume: ``$SUNDAY_HOME/pipeline/<run_id>/`` (a job submitted with ``--working-dir`` runs in a copy of the
code: pass the state folder's absolute path as above). MLflow: experiment ``pipeline`` (a parent run, a nested run
per step). Exit status 0 when every model got a verdict (promoted or refused), 1 when a model's step failed, 2 on
a usage or data-validation error. The flags: :mod:`sunday.pipeline.cli` (``--help``); see
:mod:`sunday.pipeline`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `ray job submit --working-dir .` runs from a copy


def main(argv: list[str] | None = None) -> int:
    from sunday.pipeline.cli import main as pipeline_main

    return pipeline_main(argv, prog="train_jobs/pipeline.py")


if __name__ == "__main__":
    sys.exit(main())
