"""Serving latency under open-loop load: ``assign-task`` with 20 candidates, Ray Serve vs the alternatives.

    python benchmarks/serve_latency.py [--rates 10,25,50,75,100,150] [--duration 10] [--home STATE]

Same machine, same state folder, same model version and the same request bodies for every configuration:

* ``in-process``: ``AssignmentModel.recommend_batch`` called directly, one request at a time (the floor: model,
  features from the cache, no HTTP, no auth, no audit);
* ``fastapi``: the same API (:mod:`sunday.serving.plain`) as one uvicorn process, models in its thread pool;
* ``serve-batched``: the Serve application (``serve_apps/app.py``), ``@serve.batch`` on;
* ``serve-unbatched``: the same with batching off (each request its own model call).

Load is open loop: request *i* is sent at ``t0 + i / rate`` whether or not earlier ones returned, and its latency
is counted from that scheduled time (no coordinated omission). Bodies: real task titles / descriptions / skills /
points drawn from the simulation, the 20 candidates of one team, so every request embeds new text. Reported per
rate: achieved rate, p50 / p95 / p99 latency (ms), error rate. "Held" = p99 under the target (50 ms), errors under
1 % and at least 95 % of the offered rate achieved. The client runs on the same 2 cores as the servers.
Writes ``benchmarks/results/serve_latency.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "serve_latency.json"
TARGET_P99_MS = 50.0
PATH = "/api/v1/ml/assign-task"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_state(settings, events: int) -> None:
    """A demo simulation with features and a ``task_assignment`` champion (made when missing)."""
    from sunday import tracking
    from sunday.models.assignment.train import TrainConfig, train_assignment

    from sunday.jobs import ensure_simulation

    ensure_simulation(settings, "demo", events, 0)
    tracking.configure(settings)
    if tracking.alias_version("task_assignment", "champion") is None:
        train_assignment(settings, TrainConfig(sim_name="demo", profile="quick"), log=lambda *_: None)


def request_bodies(settings, n: int, n_candidates: int, seed: int = 0, new_text: bool = False
                   ) -> tuple[list[dict], str]:
    """Real tasks of the simulation (``new_text``: each title and description made unique, so the server
    must run the text encoder instead of finding the task's embedding in the platform's cache)."""
    import numpy as np

    from sunday.features.platform import simulation_path
    from sunday.serving.directory import _table

    path = simulation_path(settings, "demo")
    users = _table(path, "users", ["user_id", "workspace_id", "team_id"])
    ws = str(users["workspace_id"].iloc[0])
    mine = users[users["workspace_id"] == ws]
    team = mine[mine["team_id"] == mine["team_id"].value_counts().index[0]]["user_id"].astype(str).tolist()
    cands = (team + [u for u in mine["user_id"].astype(str) if u not in team])[:n_candidates]
    tasks = _table(path, "tasks", ["title", "description", "required_skills", "story_points", "priority"])
    rng = np.random.default_rng(seed)
    rows = tasks.iloc[rng.choice(len(tasks), size=min(n, len(tasks)), replace=False)]
    bodies = []
    for _, t in rows.iterrows():
        pts = t["story_points"]
        tag = f" [{seed}-{len(bodies)}]" if new_text else ""
        bodies.append({"task": {"title": str(t["title"] or "task") + tag,
                                "description": str(t["description"] or "") + tag,
                                "required_skills": [str(s) for s in (t["required_skills"] if t["required_skills"]
                                                                     is not None else [])],
                                "story_points": None if pts != pts else float(pts),
                                "priority": str(t["priority"] or "medium")},
                       "candidates": cands, "top_k": 5})
    return bodies, ws


def summarize(lat_ms: list[float], errors: int, n: int, seconds: float, rate: float) -> dict:
    import numpy as np

    a = np.array(lat_ms) if lat_ms else np.array([np.nan])
    achieved = len(lat_ms) / seconds if seconds > 0 else 0.0
    out = {"rate": rate, "requests": n, "ok": len(lat_ms), "achieved_rps": achieved,
           "p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
           "p99_ms": float(np.percentile(a, 99)), "error_rate": errors / n if n else 0.0}
    out["held"] = bool(out["p99_ms"] < TARGET_P99_MS and out["error_rate"] < 0.01 and achieved >= 0.95 * rate)
    return out


async def open_loop(url: str, token: str, bodies: list[dict], rate: float, duration: float) -> dict:
    import httpx

    n = max(1, int(rate * duration))
    lat: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=url, timeout=15.0, limits=limits) as client:
        # warm-up (connections, first-batch effects): not counted
        await asyncio.gather(*[client.post(PATH, json=bodies[i % len(bodies)], headers=headers) for i in range(4)])
        t0 = time.perf_counter() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            start = t0 + i / rate
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            try:
                r = await client.post(PATH, json=bodies[i % len(bodies)], headers=headers)
                if r.status_code == 200:
                    lat.append((time.perf_counter() - start) * 1e3)
                else:
                    errors += 1
            except httpx.HTTPError:
                errors += 1

        await asyncio.gather(*[one(i) for i in range(n)])
        seconds = time.perf_counter() - t0
    return summarize(lat, errors, n, seconds, rate)


def ladder(url: str, token: str, bodies: list[dict], rates: list[float], duration: float, label: str,
           console) -> list[dict]:
    rows = []
    for rate in rates:
        r = asyncio.run(open_loop(url, token, bodies, rate, duration))
        r["config"] = label
        rows.append(r)
        console.print(f"  {label:16s} {rate:6.0f}/s -> {r['achieved_rps']:6.1f}/s  p50 {r['p50_ms']:7.1f}  "
                      f"p95 {r['p95_ms']:7.1f}  p99 {r['p99_ms']:7.1f} ms  errors {r['error_rate']:.1%}"
                      f"{'  held' if r['held'] else ''}")
        if r["p99_ms"] > 20 * TARGET_P99_MS or r["error_rate"] > 0.5:
            console.print(f"  {label}: saturated, higher rates skipped")
            break
    return rows


def wait_http(url: str, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url + "/api/v1/ml/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="10,25,50,60,75,100,150")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--events", type=int, default=80_000, help="simulated events when the state is empty")
    parser.add_argument("--home", type=Path, help="state folder (default: SUNDAY_HOME or .sunday)")
    parser.add_argument("--configs", default="in-process,fastapi,serve-batched,serve-unbatched")
    parser.add_argument("--max-replicas", type=int, default=1, help="cap on Serve autoscaling (1 on 2 cores: "
                                                                      "upscaling only moves model loading into "
                                                                      "the measurement)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.home:
        os.environ["SUNDAY_HOME"] = str(args.home.resolve())

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from sunday.serving.keys import default_keystore
    from sunday.settings import get_settings

    console = Console(width=160)
    settings = get_settings().ensure_dirs()
    os.environ["SUNDAY_HOME"] = str(settings.home)
    ensure_state(settings, args.events)
    bodies, ws = request_bodies(settings, 400, args.candidates)
    token = default_keystore(settings).create(ws, "member", name="benchmark")[1]
    rates = [float(r) for r in args.rates.split(",")]
    configs = args.configs.split(",")
    rows: list[dict] = []

    if "in-process" in configs:
        import torch

        from sunday.features.online import OnlineFeatures
        from sunday.serving.feature_cache import CachedFeatures
        from sunday.serving.models import AssignmentModel

        model = AssignmentModel(settings)
        feats = CachedFeatures(OnlineFeatures(settings))
        for b in bodies[:5]:
            model.recommend_batch([b], feats)
        lat = []
        for b in bodies[:200]:
            t = time.perf_counter()
            model.recommend_batch([b], feats)
            lat.append((time.perf_counter() - t) * 1e3)
        r = summarize(lat, 0, len(lat), sum(lat) / 1e3, 0.0)
        r.update(config="in-process", rate=float("nan"), held=None,
                 batch16_ms_per_request=None, torch_threads=torch.get_num_threads())
        t = time.perf_counter()
        for k in range(0, 160, 16):
            model.recommend_batch(bodies[k:k + 16], feats)
        r["batch16_ms_per_request"] = (time.perf_counter() - t) * 1e3 / 160
        rows.append(r)
        console.print(f"  in-process       sequential p50 {r['p50_ms']:.1f}  p99 {r['p99_ms']:.1f} ms; "
                      f"in batches of 16: {r['batch16_ms_per_request']:.1f} ms per request")
        del model, feats

    if "fastapi" in configs:
        port = free_port()
        env = {**os.environ, "SUNDAY_HOME": str(settings.home), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "sunday.serving.plain", "--port", str(port),
                                 "--rate", "100000", "--burst", "100000"], env=env, cwd=str(ROOT))
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url)
            rows += ladder(url, token, bodies, rates, args.duration, "fastapi", console)
        finally:
            proc.terminate()
            proc.wait(30)

    serve_configs = [c for c in configs if c.startswith("serve")]
    if serve_configs:
        from ray import serve

        from sunday.serving.launch import start

        port = free_port()
        for label in serve_configs:
            running = start(settings, {"sim": "demo", "batching": label == "serve-batched", "rate": 100000,
                                       "burst": 100000, "timeline": False, "max_replicas": args.max_replicas},
                            port=port)
            wait_http(running.url)
            rows += ladder(running.url, token, bodies, rates, args.duration, label, console)
            serve.delete("sunday")
        serve.shutdown()

    held = {c: max([r["rate"] for r in rows if r["config"] == c and r.get("held")], default=0.0)
            for c in configs if c != "in-process"}
    table = Table(title=f"assign-task, {args.candidates} candidates, open loop {args.duration:g} s per rate "
                        f"(target p99 < {TARGET_P99_MS:g} ms)")
    for c in ("config", "offered/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "errors", "held"):
        table.add_column(c, justify="left" if c == "config" else "right")
    for r in rows:
        table.add_row(r["config"], "-" if r["rate"] != r["rate"] else f"{r['rate']:g}",
                      "-" if r["config"] == "in-process" else f"{r['achieved_rps']:.1f}",
                      f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{r['error_rate']:.1%}",
                      "" if r["held"] is None else ("yes" if r["held"] else "no"))
    console.print(table)
    summary = {"max_rate_held": held}
    if held.get("serve-unbatched"):
        summary["batching_gain"] = held.get("serve-batched", 0) / held["serve-unbatched"]
    low = rates[0]
    p50 = {r["config"]: r["p50_ms"] for r in rows if r["rate"] == low}
    if "fastapi" in p50 and "serve-batched" in p50:
        summary["serve_minus_fastapi_p50_ms_at_lowest_rate"] = {
            "rate": low, "serve-batched": p50["serve-batched"] - p50["fastapi"],
            **({"serve-unbatched": p50["serve-unbatched"] - p50["fastapi"]} if "serve-unbatched" in p50 else {})}
    console.print(summary)
    report = {"benchmark": "serve_latency", "target_p99_ms": TARGET_P99_MS, "duration_s": args.duration,
              "candidates": args.candidates, "max_replicas": args.max_replicas, "rows": rows, "summary": summary,
              "machine": machine_info()}
    write_report(args.out, report, console)
    return report


if __name__ == "__main__":
    main()
