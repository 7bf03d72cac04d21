"""Benchmark the training pipeline: end-to-end wall time of the quick profile and how it splits by step.

    python benchmarks/pipeline.py [--models priority_scorer,workload_predictor,...] [--ray] [--events 30000]

In this process, on a fresh state folder (a temporary ``SUNDAY_HOME``): the simulation is made first (outside
both timings), then

* **baseline**: the same models trained and scored on their holdouts by calling their train functions directly
  (``register=False``: no MLflow, no registry, no gate), what a bare training script costs;
* **pipeline** run 1: :func:`sunday.pipeline.run_pipeline` (extract, validate, train, evaluate, register, gate,
  promote, reconfigure): every model becomes the first champion;
* **pipeline** run 2: the same, now against a champion: the champion is downloaded, re-scored on the same holdout
  and both are timed for the latency check (the promotion decided by the gate).

Prints wall time per step (summed over models) and in total, and the ratio of the pipeline to the baseline;
writes ``benchmarks/results/pipeline.json``. The Ray Train models (``personalization_cf``, ``project_timeline``) train in
process unless ``--ray``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_MODELS = "priority_scorer,workload_predictor,notification_ranker,personalization_cf,project_timeline"


def by_step(steps: dict) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for key, v in steps.items():
        out[key.split("/")[-1]] += v["seconds"]
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=DEFAULT_MODELS)
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--ray", action="store_true", help="personalization_cf through Ray Train (2 workers)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline.json")
    args = p.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="sunday-bench-pipeline-"))
    os.environ["SUNDAY_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    from sunday.data.pipeline import run_simulation
    from sunday.pipeline import PipelineConfig, run_pipeline
    from sunday.pipeline.config import PROFILES
    from sunday.pipeline.models import TrainContext, get_spec
    from sunday.settings import Settings

    settings = Settings().ensure_dirs()
    models = [m for m in args.models.split(",") if m]
    sim = PROFILES["quick"]["sim"]
    t0 = time.perf_counter()
    run_simulation(settings, events=args.events, seed=0, engine="local", name=sim, progress=False)
    sim_s = time.perf_counter() - t0
    quiet = lambda *_a, **_k: None  # noqa: E731

    config = PipelineConfig(models=models, profile="quick", events=args.events, reason="benchmark",
                            use_ray=args.ray)
    baseline: dict[str, float] = {}
    t0 = time.perf_counter()
    for name in models:
        spec = get_spec(name)
        t1 = time.perf_counter()
        trained = spec.train(settings, TrainContext(sim, "quick", 0, config.train_settings(name), args.ray, 2, quiet))
        spec.score(spec.load(trained.model_dir), trained.holdout)
        baseline[name] = time.perf_counter() - t1
    baseline_s = time.perf_counter() - t0

    runs = []
    for i in (1, 2):
        t0 = time.perf_counter()
        result = run_pipeline(settings, PipelineConfig(models=models, profile="quick", events=args.events,
                                                       reason=f"benchmark run {i}", use_ray=args.ray), log=quiet)
        wall = time.perf_counter() - t0
        runs.append({"run": i, "wall_s": wall, "by_step_s": by_step(result.steps),
                     "steps_s": {k: v["seconds"] for k, v in result.steps.items()},
                     "verdicts": {n: {"status": v.status, "version": v.version, "failed": v.failed_checks,
                                      "challenger_p99_ms": v.challenger_p99_ms, "champion_p99_ms": v.champion_p99_ms}
                                  for n, v in result.verdicts.items()}})
    print(f"simulation ({args.events:,} events, outside the timings): {sim_s:.1f} s; models: {', '.join(models)}")
    print(f"baseline (train + holdout score, direct calls): {baseline_s:.1f} s  "
          + ", ".join(f"{k} {v:.1f}" for k, v in baseline.items()))
    for r in runs:
        print(f"pipeline run {r['run']}: {r['wall_s']:.1f} s (x{r['wall_s'] / baseline_s:.2f} the baseline)")
        for step, s in r["by_step_s"].items():
            print(f"  {step:<12} {s:6.2f} s")
        print("  verdicts: " + ", ".join(f"{n} {v['status']}" + (f" ({','.join(v['failed'])})" if v["failed"]
                                                                   else "") for n, v in r["verdicts"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "profile": "quick", "events": args.events, "models": models, "ray_train": args.ray, "cpus": os.cpu_count(),
        "simulation_s": sim_s, "baseline_s": baseline_s, "baseline_by_model_s": baseline, "runs": runs,
        "ratio_run1": runs[0]["wall_s"] / baseline_s, "ratio_run2": runs[1]["wall_s"] / baseline_s},
        indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
