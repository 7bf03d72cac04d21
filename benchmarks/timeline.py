"""Benchmark the project timeline forecaster: Ray Train throughput with 1 and 2 workers, and inference latency.

    python benchmarks/timeline.py [--events 400000] [--epochs 8]

**Training**: snapshots of simulated projects (``build_snapshots`` over ``simulate_tables``), the same config trained
in process (the reference without Ray) and with Ray Train ``TorchTrainer`` on 1 and 2 workers (gloo DDP, 1 CPU
each). Throughput = snapshot rows per second of the last epoch (Ray reports the final epoch's time; for the local
run the mean over epochs after the first; rows = the batches every worker steps through), so worker start-up is
excluded and shown apart as ``overhead_s``.
Target (issue): 2 workers at least 1.6 x 1 worker.

**Inference**: ``predict_quantiles`` for one project snapshot and for a batch of 64, p50/p99 over repeated calls,
beside the burn-down baseline on the same snapshots (ratio). Writes ``benchmarks/results/timeline.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "timeline.json"


def _percentiles(times_s: list[float]) -> tuple[float, float]:
    import numpy as np

    ms = np.array(times_s) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=200, help="inference calls per case")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import numpy as np
    import ray
    from rich.console import Console
    from rich.table import Table

    from sunday.data.simulator import SimConfig, simulate_tables
    from sunday.models.timeline.baselines import forecast_snapshots
    from sunday.models.timeline.data import build_snapshots
    from sunday.models.timeline.forecaster import (TimelineConfig, TimelineForecaster, fit_stats, make_arrays,
                                                   train_local, train_with_ray)

    console = Console(width=160)
    snap = build_snapshots(simulate_tables(SimConfig(n_events=args.events, seed=0)), cut_every=4)
    cfg = TimelineConfig(epochs=args.epochs, calibration_fraction=0.0)
    data = make_arrays(snap, fit_stats(snap.static), cfg.target_scale)
    n = len(data.target)

    training = []
    t0 = time.perf_counter()
    _, hist = train_local(data, cfg)
    wall = time.perf_counter() - t0
    steady = [h["seconds"] for h in hist[1:]] or [hist[0]["seconds"]]
    rows = max(1, n // cfg.batch_size) * cfg.batch_size
    training.append({"run": "local (in process)", "workers": 1, "rows_per_s": rows / float(np.mean(steady)),
                     "wall_s": wall, "overhead_s": wall - sum(h["seconds"] for h in hist)})
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        for workers in (1, 2):
            c = TimelineConfig(epochs=args.epochs, calibration_fraction=0.0, num_workers=workers)
            t0 = time.perf_counter()
            _, metrics = train_with_ray(data, c)
            wall = time.perf_counter() - t0
            last = float(metrics["final"]["seconds"])
            rows = max(1, n // (c.batch_size * workers)) * c.batch_size * workers  # rows all workers step through
            training.append({"run": f"ray ddp {workers}w", "workers": workers, "rows_per_s": rows / last,
                             "wall_s": wall, "overhead_s": wall - last * args.epochs})
    finally:
        ray.shutdown()
    ref = next(r for r in training if r["run"] == "ray ddp 1w")["rows_per_s"]
    for r in training:
        r["vs_ray_1w"] = r["rows_per_s"] / ref

    model = TimelineForecaster(TimelineConfig(epochs=args.epochs, calibration_fraction=0.0)).fit(snap)
    one, batch = snap.take(np.arange(1)), snap.take(np.arange(min(64, len(snap))))
    inference = []
    for label, s in (("1 project", one), (f"batch of {len(batch)}", batch)):
        for _ in range(5):
            model.predict_quantiles(s)
        tm, tb = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.predict_quantiles(s)
            tm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            forecast_snapshots(s, "burndown")
            tb.append(time.perf_counter() - t0)
        p50, p99 = _percentiles(tm)
        b50, b99 = _percentiles(tb)
        inference.append({"case": label, "p50_ms": p50, "p99_ms": p99, "burndown_p50_ms": b50,
                          "ratio_p50_vs_burndown": p50 / b50 if b50 > 0 else None})

    t = Table(title=f"timeline forecaster training, {n:,} snapshots x {args.epochs} epochs (target: 2w >= 1.6 x 1w)")
    for col in ("run", "rows/s (last epoch)", "vs ray 1w", "fit wall s", "overhead s"):
        t.add_column(col, justify="left" if col == "run" else "right")
    for r in training:
        t.add_row(r["run"], f"{r['rows_per_s']:,.0f}", f"{r['vs_ray_1w']:.2f}x", f"{r['wall_s']:.1f}",
                  f"{r['overhead_s']:.1f}")
    console.print(t)
    t = Table(title="timeline inference (predict_quantiles), ms")
    for col in ("case", "p50", "p99", "burn-down p50", "p50 / burn-down"):
        t.add_column(col, justify="left" if col == "case" else "right")
    for r in inference:
        t.add_row(r["case"], f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['burndown_p50_ms']:.2f}",
                  f"{r['ratio_p50_vs_burndown']:.1f}x")
    console.print(t)
    import torch

    report = {"benchmark": "sunday.models.timeline", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "machine": machine_info(torch=torch.__version__),
              "settings": {"events": args.events, "epochs": args.epochs, "snapshots": n, "repeats": args.repeats},
              "training": training, "inference": inference}
    write_report(args.out, report, console)
    return report


if __name__ == "__main__":
    main()
