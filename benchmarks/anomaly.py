"""Benchmark the streaming anomaly detectors: points per second per core and memory per series.

    python benchmarks/anomaly.py [--points 5000] [--series realKnownCause/nyc_taxi.csv] [--no-lstm]

One CPU thread (torch and BLAS limited to 1), one NAB series (``$SUNDAY_DATA_DIR/nab``; a synthetic daily-seasonal
series when the data is absent), its first ``--points`` points:

* **streaming**: ``update(value, timestamp)`` one point at a time (what the workspace monitor does), and the
  **block** path ``score(values, timestamps)`` (what the NAB evaluation uses; same scores), points/s;
* the **baseline** in the same process: a windowed Gaussian (rolling mean / std z over the last 500 points, per
  point in Python, NAB's "windowed Gaussian" idea); every rate is also given as a ratio to it;
* **memory per series**: ``state_size()`` (numbers held) and the bytes tracemalloc sees a detector keep after the
  series (the LSTM autoencoder's weights are shared by all series and counted once, apart).

Writes ``benchmarks/results/anomaly.json``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tracemalloc
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "anomaly.json"


class WindowedGaussian:
    """Baseline: z of the point under the mean / std of the last ``window`` points (running sums)."""

    def __init__(self, window: int = 500):
        self.win: deque[float] = deque()
        self.window, self.s, self.ss = window, 0.0, 0.0

    def update(self, x: float, _ts=None) -> float:
        n = len(self.win)
        z = 0.0
        if n > 1:
            mean = self.s / n
            std = math.sqrt(max(self.ss / n - mean * mean, 1e-12))
            z = abs(x - mean) / std
        self.win.append(x)
        self.s += x
        self.ss += x * x
        if n + 1 > self.window:
            old = self.win.popleft()
            self.s -= old
            self.ss -= old * old
        return 1 - math.erfc(z / math.sqrt(2)) if n > 1 else 0.0


def load_series(name: str, points: int):
    import numpy as np

    data = Path(os.environ.get("SUNDAY_DATA_DIR", ROOT.parent / "shared" / "data")) / "nab"
    if (data / "data" / name).is_file():
        from sunday.data.importers.nab import read_series

        df = read_series(data / "data" / name).iloc[:points]
        return df["value"].to_numpy(), np.maximum.accumulate(df["timestamp"].to_numpy().astype("datetime64[ns]")), name
    rng = np.random.default_rng(0)
    n = points
    v = 10 + np.sin(np.arange(n) * 2 * np.pi / 288) + rng.normal(0, 0.1, n)
    t = np.datetime64("2024-01-01") + np.arange(n) * np.timedelta64(300, "s")
    return v, t.astype("datetime64[ns]"), "synthetic (NAB data absent)"


def rate(fn, n: int, min_seconds: float = 0.5) -> float:
    """Points per second of ``fn()`` which processes ``n`` points (repeated until ``min_seconds``)."""
    reps, t0 = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= min_seconds:
            return reps * n / el


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=5000)
    ap.add_argument("--series", default="realKnownCause/nyc_taxi.csv")
    ap.add_argument("--no-lstm", action="store_true", help="leave the LSTM autoencoder out")
    args = ap.parse_args()

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from sunday.models.anomaly.ensemble import DEFAULT_DETECTORS, Ensemble, EnsembleConfig, make_detector

    torch.set_num_threads(1)
    console = Console()
    v, t, label = load_series(args.series, args.points)
    n = len(v)
    pts = list(zip(v.tolist(), t))

    extra: dict = {}
    names = list(DEFAULT_DETECTORS)
    if not args.no_lstm:
        from sunday.models.anomaly.lstm_ae import AeTrainConfig
        from sunday.models.anomaly.lstm_ae_train import train_autoencoder

        t0 = time.perf_counter()
        model = train_autoencoder([v[: min(750, n // 5)]], AeTrainConfig(epochs=2), use_ray=False)
        console.print(f"lstm_ae: trained a small model in {time.perf_counter() - t0:.1f} s for the benchmark")
        extra["lstm_ae"] = {"model": model}
        names.append("lstm_ae")
        model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    def run_baseline():
        g = WindowedGaussian()
        for x, _ in pts:
            g.update(x)
    baseline = rate(run_baseline, n)

    rows = []

    def stream(factory):
        def go():
            d = factory()
            for x, ts in pts:
                d.update(x, ts)
        return go

    def block(factory):
        return lambda: factory().score(v, t)

    for name in names:
        def factory(name=name):
            return make_detector(name, **extra.get(name, {}))
        s_rate = rate(stream(factory), n)
        b_rate = rate(block(factory), n)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        d = factory()
        d.score(v, t)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        kept = sum(s.size_diff for s in after.compare_to(before, "filename"))
        rows.append({"detector": name, "stream_points_per_s": s_rate, "block_points_per_s": b_rate,
                     "stream_vs_baseline": s_rate / baseline, "state_numbers": d.state_size(),
                     "memory_kb_per_series": kept / 1024})
        del d

    cfg = EnsembleConfig(detectors=tuple(names))

    def ens_stream():
        e = Ensemble(cfg, detector_args=extra)
        for x, ts in pts:
            e.update(x, ts)
    e_stream = rate(ens_stream, n)
    e_block = rate(lambda: Ensemble(cfg, detector_args=extra).run(v, t), n)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    e = Ensemble(cfg, detector_args=extra)
    e.run(v, t)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    rows.append({"detector": "ensemble", "stream_points_per_s": e_stream, "block_points_per_s": e_block,
                 "stream_vs_baseline": e_stream / baseline, "state_numbers": e.state_size(),
                 "memory_kb_per_series": sum(s.size_diff for s in after.compare_to(before, "filename")) / 1024})
    rows.append({"detector": "baseline: windowed Gaussian", "stream_points_per_s": baseline,
                 "block_points_per_s": None, "stream_vs_baseline": 1.0, "state_numbers": 500,
                 "memory_kb_per_series": None})

    table = Table(title=f"anomaly detectors, 1 thread, {n} points of {label}")
    for c in ("detector", "stream pts/s", "block pts/s", "stream / baseline", "state numbers", "KB / series"):
        table.add_column(c, justify="left" if c == "detector" else "right")
    for r in rows:
        table.add_row(r["detector"], f"{r['stream_points_per_s']:,.0f}",
                      "-" if r["block_points_per_s"] is None else f"{r['block_points_per_s']:,.0f}",
                      f"{r['stream_vs_baseline']:.3f}", f"{r['state_numbers']:,}",
                      "-" if r["memory_kb_per_series"] is None else f"{r['memory_kb_per_series']:,.0f}")
    console.print(table)
    if "lstm_ae" in names:
        console.print(f"lstm_ae model weights (shared by every series): {model_bytes / 1024:.0f} KB")
    report = {"series": label, "points": n, "threads": 1, "rows": rows,
              "lstm_model_kb": model_bytes / 1024 if "lstm_ae" in names else None,
              "machine": machine_info(torch=torch.__version__, numpy=np.__version__)}
    write_report(RESULTS, report, console)


if __name__ == "__main__":
    main()
