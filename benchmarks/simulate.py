"""Benchmark the workspace simulator: one process (engine="local") against Ray Data on 2 CPUs (engine="ray").

    python benchmarks/simulate.py                 # 1M events, local then Ray
    python benchmarks/simulate.py --also-10m      # ... and 10M events with Ray (target: under 5 minutes)

Reports wall seconds, events/s and peak memory: RSS of this process, and for Ray the sum of the RSS of the Ray
worker processes, sampled by a background thread (RSS counts pages shared with the object store in every process
that maps them, so the Ray sum is an upper bound). Writes ``benchmarks/results/simulate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sunday.data.simulator import SimConfig, simulate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "simulate.json"
TARGET_10M_S = 300.0
MB = 1024 * 1024


def _is_ray_worker(proc: psutil.Process) -> bool:
    try:
        name = proc.name()
        if name.startswith("ray::"):
            return True
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any("default_worker.py" in c for c in cmd) or any(c.startswith("ray::") for c in cmd)


class MemorySampler:
    """Peak RSS of this process and of the sum over Ray worker processes, sampled every ``interval`` s."""

    def __init__(self, ray_workers: bool, interval: float = 0.1):
        self.ray_workers, self.interval = ray_workers, interval
        self.me = psutil.Process()
        self.peak_driver = self.peak_workers = self.peak_total = 0
        self.max_workers_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._workers: dict[int, psutil.Process] = {}
        self._last_scan = 0.0

    def _scan(self) -> None:
        for proc in psutil.process_iter():
            if proc.pid not in self._workers and proc.pid != self.me.pid and _is_ray_worker(proc):
                self._workers[proc.pid] = proc

    def sample(self) -> None:
        driver = self.me.memory_info().rss
        workers = 0
        if self.ray_workers:
            now = time.monotonic()
            if now - self._last_scan > 1.0:  # new workers appear while Ray Data scales up
                self._scan()
                self._last_scan = now
            alive = 0
            for pid, proc in list(self._workers.items()):
                try:
                    workers += proc.memory_info().rss
                    alive += 1
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    self._workers.pop(pid, None)
            self.max_workers_seen = max(self.max_workers_seen, alive)
        self.peak_driver = max(self.peak_driver, driver)
        self.peak_workers = max(self.peak_workers, workers)
        self.peak_total = max(self.peak_total, driver + workers)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemorySampler":
        if self.ray_workers:
            self._scan()
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def machine_info(**versions: str) -> dict:
    """This machine and the versions that matter, for a benchmark's JSON (``versions``: extra name -> version)."""
    import numpy
    import pyarrow
    import ray

    return {"cpus": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 1024**3, 1),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "ray": ray.__version__, "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__, **versions, "platform": platform.platform()}


def write_report(path: Path, report: dict, console) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {path}")


def run_one(label: str, n_events: int, engine: str, seed: int, progress: bool) -> dict:
    config = SimConfig(n_events=n_events, seed=seed)
    tmp = Path(tempfile.mkdtemp(prefix="sunday-sim-bench-"))
    try:
        with MemorySampler(ray_workers=engine == "ray") as mem:
            t0 = time.perf_counter()
            result = simulate(config, tmp / "sim", engine=engine, progress=progress)
            wall = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in result.path.rglob("*") if f.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "label": label, "engine": engine, "events_requested": n_events, "events_written": result.n_events,
        "tasks": result.counts["tasks"], "workspaces": result.n_workspaces, "partitions": result.n_partitions,
        "wall_s": round(wall, 3), "simulate_s": round(result.seconds, 3),
        "events_per_s": round(result.n_events / wall, 1),
        "peak_rss_driver_mb": round(mem.peak_driver / MB, 1),
        "peak_rss_ray_workers_mb": round(mem.peak_workers / MB, 1) if engine == "ray" else None,
        "ray_workers_seen": mem.max_workers_seen if engine == "ray" else None,
        "peak_rss_total_mb": round(mem.peak_total / MB, 1),
        "disk_mb": round(disk / MB, 1),
    }


def _table(runs: list[dict], ratio: dict, ten: dict | None):
    from rich.table import Table

    table = Table(title="workspace simulator: local (1 process) vs Ray Data (2 CPUs)")
    for col in ("run", "events", "wall s", "events/s", "peak RSS driver MB", "peak RSS Ray workers MB",
                "peak RSS total MB"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        table.add_row(r["label"], f"{r['events_written']:,}", f"{r['wall_s']:.2f}", f"{r['events_per_s']:,.0f}",
                      f"{r['peak_rss_driver_mb']:.0f}",
                      "-" if r["peak_rss_ray_workers_mb"] is None else f"{r['peak_rss_ray_workers_mb']:.0f}",
                      f"{r['peak_rss_total_mb']:.0f}")
    for which, r in ratio.items():
        table.add_row(f"ratio ray/local ({which})", "", f"{r['wall_s']:.2f}x", f"{r['events_per_s']:.2f}x", "", "",
                      f"{r['peak_rss_total_mb']:.2f}x", style="bold")
    if ten is not None:
        table.caption = (f"10M events with Ray: {ten['wall_s']:.1f} s -> "
                         f"{'MET' if ten['met_target'] else 'MISSED'} the {TARGET_10M_S:.0f} s target")
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per run (default 1,000,000)")
    parser.add_argument("--also-10m", action="store_true", help="also run 10M events with Ray (target < 5 min)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    SimConfig(n_events=args.events)  # validates --events before anything starts

    from rich.console import Console

    console = Console(width=130)
    n = args.events
    label = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n:,}"
    runs = []
    console.print(f"[bold]local[/] engine, {n:,} events ...")
    runs.append(run_one(f"local {label}", n, "local", args.seed, args.progress))

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    try:
        console.print(f"[bold]ray[/] engine (Ray Data, 2 CPUs), {n:,} events, first job (cold workers) ...")
        runs.append(run_one(f"ray {label} (cold)", n, "ray", args.seed, args.progress))
        console.print(f"[bold]ray[/] engine, {n:,} events again (warm workers) ...")
        runs.append(run_one(f"ray {label} (warm)", n, "ray", args.seed, args.progress))
        ten = None
        if args.also_10m:
            console.print("[bold]ray[/] engine, 10,000,000 events ...")
            r10 = run_one("ray 10M", 10_000_000, "ray", args.seed, args.progress)
            runs.append(r10)
            ten = {"wall_s": r10["wall_s"], "events_written": r10["events_written"],
                   "events_per_s": r10["events_per_s"], "target_s": TARGET_10M_S,
                   "met_target": r10["wall_s"] < TARGET_10M_S}
    finally:
        ray.shutdown()

    local = runs[0]
    ratio = {
        which: {
            "events_per_s": round(r["events_per_s"] / local["events_per_s"], 3),
            "wall_s": round(r["wall_s"] / local["wall_s"], 3),
            "peak_rss_total_mb": round(r["peak_rss_total_mb"] / local["peak_rss_total_mb"], 3),
        }
        for which, r in (("cold", runs[1]), ("warm", runs[2]))
    }
    report = {
        "benchmark": "sunday.data.simulator", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(),
        "settings": {"events": n, "seed": args.seed, "ray_num_cpus": 2,
                     "note": "wall_s includes writing Parquet; ray runs exclude ray.init (ray_init_s); 'cold' is the "
                             "first Ray Data job after ray.init (workers import the simulator), 'warm' the same job "
                             "again; Ray worker RSS is summed over ray:: worker processes (shared object-store pages "
                             "counted in each)"},
        "ray_init_s": round(ray_init_s, 3),
        "runs": runs,
        "ratio_ray_over_local": ratio,
        "ten_million": ten,
    }
    console.print(_table(runs, ratio, ten))
    write_report(args.out, report, console)
    return report


if __name__ == "__main__":
    main()
