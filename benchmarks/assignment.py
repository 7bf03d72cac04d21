"""Benchmark the assignment rankers: ``rank`` latency in process, and neural training throughput with Ray Train.

    python benchmarks/assignment.py                        # both sections
    python benchmarks/assignment.py --no-training          # rank latency only
    python benchmarks/assignment.py --tasks 500 --epochs 5 --no-deepspeed

**Rank latency** (:func:`bench_rank`): an :class:`AssignmentRanker` (LambdaMART 300 trees + completion and quality
models) fit on 1,500 synthetic tasks x 8 candidates; then ``rank(task, candidates)`` for 20, 50 and 100 candidates,
interleaved with the same call explaining every candidate (``explain=None``), none (``explain=0``), and the bare
LambdaMART ``predict`` on the same rows (the in-process baseline of the ratio). Target: p99 < 20 ms at 50.

**Training** (:func:`bench_training`): one synthetic pair frame (``neural.synthetic_pairs``, run through
``pair_features``; 80 % of the tasks train, 20 % are held out for a top-1 sanity check), trained with the same
config by each of

* ``local``: the in-process loop (one thread), the reference without any Ray;
* ``ray ddp 1w`` / ``ray ddp 2w``: Ray Train ``TorchTrainer`` with 1 and 2 workers (1 CPU each, gloo DDP);
* ``ray deepspeed zero2 2w``: the same with DeepSpeed ZeRO stage 2 (fp32, torch AdamW) on 2 workers.

Throughput is pair rows trained per second over the epochs only, from the per-epoch metrics the training loop reports
(``epoch_s`` is the slowest worker's time for the epoch's steps; Ray start-up, worker start-up, reporting and
checkpointing are excluded and shown apart as ``overhead_s`` = wall of ``trainer.fit()`` minus the epochs). Each
worker trains ``batch_tasks`` tasks per step, so 2 workers take half the steps of 1 with twice the global batch
(plain data parallelism); the held-out top-1 shows what that does to the model. ``steady`` drops the first epoch.

Writes ``benchmarks/results/assignment.json`` (sections ``rank_latency`` and ``training``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "assignment.json"


def _top1(model, X, groups, assigned) -> float:
    import pandas as pd

    frame = pd.DataFrame({"g": groups, "a": assigned, "s": model.predict(X)["score"]})
    frame = frame[frame.groupby("g")["a"].transform("sum") == 1]
    return float(frame.loc[frame.groupby("g")["s"].idxmax(), "a"].mean())


def _summary(label: str, trainer: str, workers: int, history: list[dict], wall_s: float, model, test) -> dict:
    rows = sum(h["rows"] for h in history)
    train_s = sum(h["epoch_s"] for h in history)
    steady = history[1:] or history
    steady_rows, steady_s = sum(h["rows"] for h in steady), sum(h["epoch_s"] for h in steady)
    return {
        "label": label, "trainer": trainer, "workers": workers, "epochs": len(history),
        "rows_per_epoch": history[0]["rows"], "train_s": round(train_s, 3),
        "samples_per_s": round(rows / train_s, 1),
        "samples_per_s_steady": round(steady_rows / steady_s, 1),
        "epoch_s": [round(h["epoch_s"], 4) for h in history],
        "wall_s": round(wall_s, 3), "overhead_s": round(wall_s - train_s, 3),
        "final_loss": round(history[-1]["loss"], 4), "heldout_top1": round(_top1(model, *test), 4),
    }


def bench_training(n_tasks: int = 2000, n_candidates: int = 20, epochs: int = 10, batch_tasks: int = 32,
                   seed: int = 0, deepspeed: bool = True, local: bool = True, console=None) -> list[dict]:
    """Train the neural ranker with each trainer on the same data; one result dict per run (Ray must be running)."""
    from sunday.models.assignment.neural import NeuralRanker, NeuralRankerConfig, synthetic_pairs

    say = console.print if console is not None else print
    X, groups, assigned, completed, quality = synthetic_pairs(n_tasks, n_candidates, seed=seed)
    train = groups < int(n_tasks * 0.8)
    fit_data = (X[train].reset_index(drop=True), groups[train], assigned[train], completed[train], quality[train])
    test = (X[~train].reset_index(drop=True), groups[~train], assigned[~train])
    base = dict(epochs=epochs, batch_tasks=batch_tasks, seed=seed)
    runs: list[tuple[str, str, dict]] = []
    if local:
        runs.append(("local (in process)", "local", dict(num_workers=1)))
    runs += [("ray ddp 1w", "ray", dict(num_workers=1)), ("ray ddp 2w", "ray", dict(num_workers=2))]
    if deepspeed:
        runs.append(("ray deepspeed zero2 2w", "ray", dict(num_workers=2, deepspeed=True, zero_stage=2)))
    import torch

    torch.optim.AdamW([torch.zeros(1, requires_grad=True)])  # first optimiser pulls in torch._dynamo (~1 s): not timed
    storage = Path(tempfile.mkdtemp(prefix="sunday-assign-bench-"))
    results = []
    try:
        for label, trainer, extra in runs:
            say(f"[bold]{label}[/]: {int(train.sum()):,} rows x {epochs} epochs ..." if console else label)
            model = NeuralRanker(NeuralRankerConfig(**base, **extra))
            t0 = time.perf_counter()
            model.fit(*fit_data, trainer=trainer, storage_path=storage if trainer == "ray" else None)
            wall = time.perf_counter() - t0
            results.append(_summary(label, trainer, extra["num_workers"], model.history_, wall, model, test))
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    ref = next((r for r in results if r["label"] == "ray ddp 1w"), None)
    for r in results:
        r["speedup_vs_ray_1w"] = round(r["samples_per_s"] / ref["samples_per_s"], 3) if ref else None
    return results


def bench_rank(sizes: tuple[int, ...] = (20, 50, 100), repeats: int = 300, n_train_tasks: int = 1500) -> list[dict]:
    """In-process ``AssignmentRanker.rank`` latency (features, three LightGBM models, SHAP reasons, Gini) per
    candidate-list size, beside the bare LambdaMART ``predict`` on the same rows (the baseline of the ratio)."""
    import time

    import numpy as np
    import pandas as pd

    from sunday.features.groups import skill_vocab
    from sunday.models.assignment.pairs import pair_features
    from sunday.models.assignment.ranker import AssignmentRanker

    vocab = skill_vocab()
    rng = np.random.default_rng(0)

    def frame(n_tasks: int, n_cand: int) -> pd.DataFrame:
        rows = []
        for t in range(n_tasks):
            req = list(rng.choice(vocab, 2, replace=False))
            for u in range(n_cand):
                counts = rng.poisson(2.0, len(vocab)).astype(float)
                rows.append({"task_id": f"t{t}", "user_id": f"u{u}", "required_skills": req, "skill_counts": counts,
                             "open_points": float(rng.gamma(2, 3)), "open_task_count": int(rng.integers(0, 6)),
                             "capacity_utilisation": float(rng.uniform(0, 1.2)), "completed_count": int(counts.sum()),
                             "completion_rate": float(rng.uniform(.5, 1)), "on_time_rate": float(rng.uniform(.3, 1)),
                             "mean_completion_hours": float(rng.gamma(3, 10)), "story_points": 3.0,
                             "priority_score": 1, "required_skill_count": 2, "complexity": 6.0})
        df = pd.DataFrame(rows)
        X = pair_features(df)
        util = X["skill_match"] - 0.05 * X["open_points"] + rng.normal(0, .2, len(X))
        df["assigned"] = (util == util.groupby(df["task_id"]).transform("max")).astype(float)
        df["completed"] = np.where(df["assigned"] == 1, (rng.random(len(df)) < .7).astype(float), np.nan)
        df["quality"] = np.where(df["assigned"] == 1, np.clip(3 + util, 0, 5), np.nan)
        return df

    train = frame(n_train_tasks, 8)
    ranker = AssignmentRanker().fit(train, train["assigned"], train["completed"], train["quality"])
    task = {"task_id": "new", "title": "Fix the login timeout", "required_skills": ["backend", "security"],
            "story_points": 5.0, "priority_score": 2, "required_skill_count": 2, "complexity": 7.0}
    out = []
    for n in sizes:
        cand = frame(1, n).drop(columns=["task_id", "required_skills", "story_points", "priority_score",
                                         "required_skill_count", "complexity", "assigned", "completed", "quality"])
        for _ in range(10):
            ranker.rank(task, cand)
        X = pair_features(ranker.pair_frame(task, cand))
        times: dict[str, list[float]] = {"default": [], "explain_all": [], "explain_none": [], "bare": []}
        for _ in range(repeats):  # interleaved, so load changes hit every variant alike
            for key, call in (("default", lambda: ranker.rank(task, cand)),
                              ("explain_all", lambda: ranker.rank(task, cand, explain=None)),
                              ("explain_none", lambda: ranker.rank(task, cand, explain=0)),
                              ("bare", lambda: ranker.lgbm_.predict(X))):
                t0 = time.perf_counter()
                call()
                times[key].append((time.perf_counter() - t0) * 1e3)
        ms = {k: np.array(v) for k, v in times.items()}
        out.append({"candidates": n,
                    "rank_p50_ms": float(np.percentile(ms["default"], 50)),
                    "rank_p99_ms": float(np.percentile(ms["default"], 99)),
                    "rank_explain_all_p50_ms": float(np.percentile(ms["explain_all"], 50)),
                    "rank_explain_all_p99_ms": float(np.percentile(ms["explain_all"], 99)),
                    "rank_no_reasons_p50_ms": float(np.percentile(ms["explain_none"], 50)),
                    "rank_no_reasons_p99_ms": float(np.percentile(ms["explain_none"], 99)),
                    "lambdamart_predict_p50_ms": float(np.percentile(ms["bare"], 50)),
                    "ratio_p50_vs_predict": float(np.percentile(ms["default"], 50) / np.percentile(ms["bare"], 50)),
                    "repeats": repeats, "explained_candidates": ranker.config.explain_top,
                    "target_p99_ms_at_50": 20.0})
    return out


def _rank_table(rows: list[dict]):
    from rich.table import Table

    table = Table(title="AssignmentRanker.rank latency in process (ms; reasons = LightGBM pred_contrib)")
    for col in ("candidates", "p50", "p99", "p50 all explained", "p99 all explained", "p50 no reasons",
                "p99 no reasons", "bare predict p50", "p50 / predict"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["candidates"]), f"{r['rank_p50_ms']:.2f}", f"{r['rank_p99_ms']:.2f}",
                      f"{r['rank_explain_all_p50_ms']:.2f}", f"{r['rank_explain_all_p99_ms']:.2f}",
                      f"{r['rank_no_reasons_p50_ms']:.2f}", f"{r['rank_no_reasons_p99_ms']:.2f}",
                      f"{r['lambdamart_predict_p50_ms']:.3f}", f"{r['ratio_p50_vs_predict']:.1f}x")
    return table


def _training_table(rows: list[dict], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("run", "workers", "rows/epoch", "epochs", "train s", "rows/s", "rows/s steady", "vs ray 1w",
                "fit() wall s", "overhead s", "final loss", "held-out top-1"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in rows:
        table.add_row(r["label"], str(r["workers"]), f"{r['rows_per_epoch']:,}", str(r["epochs"]),
                      f"{r['train_s']:.2f}", f"{r['samples_per_s']:,.0f}", f"{r['samples_per_s_steady']:,.0f}",
                      f"{r['speedup_vs_ray_1w']:.2f}x", f"{r['wall_s']:.1f}", f"{r['overhead_s']:.1f}",
                      f"{r['final_loss']:.3f}", f"{r['heldout_top1']:.3f}")
    return table


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000, help="tasks in the synthetic pair frame (default 2,000)")
    parser.add_argument("--candidates", type=int, default=20, help="candidates per task (default 20)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-tasks", type=int, default=32, help="tasks per step and worker (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-deepspeed", action="store_true", help="skip the DeepSpeed ZeRO-2 run")
    parser.add_argument("--no-local", action="store_true", help="skip the in-process reference run")
    parser.add_argument("--rank-repeats", type=int, default=300, help="rank() calls per candidate-list size")
    parser.add_argument("--no-training", action="store_true", help="only the rank latency section")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    for name in ("tasks", "candidates", "epochs", "batch_tasks"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")

    import ray
    from rich.console import Console

    console = Console(width=160)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    rank = bench_rank(repeats=args.rank_repeats)
    console.print(_rank_table(rank))
    training: list[dict] = []
    ray_init_s = None
    if not args.no_training:
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        ray_init_s = time.perf_counter() - t0
        try:
            training = bench_training(args.tasks, args.candidates, args.epochs, args.batch_tasks, args.seed,
                                      deepspeed=not args.no_deepspeed, local=not args.no_local, console=console)
        finally:
            ray.shutdown()

    import deepspeed
    import torch

    report = {
        "benchmark": "sunday.models.assignment", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine_info(torch=torch.__version__, deepspeed=deepspeed.__version__),
        "settings": {"tasks": args.tasks, "candidates": args.candidates, "train_share": 0.8, "epochs": args.epochs,
                     "batch_tasks": args.batch_tasks, "seed": args.seed, "ray_num_cpus": 2,
                     "note": "samples_per_s = pair rows trained per second over the epochs only (sum of the "
                             "per-epoch epoch_s, the slowest worker's step time); overhead_s = trainer.fit() wall "
                             "minus the epochs (worker start-up, per-epoch report + checkpoint, shutdown); ray.init "
                             "excluded (ray_init_s); every worker trains batch_tasks tasks per step (2 workers: "
                             "global batch doubles, steps halve); one CPU and one intra-op thread per worker"},
        "load_avg_at_start": load_at_start,
        "ray_init_s": None if ray_init_s is None else round(ray_init_s, 3),
        "rank_latency": rank,
        "training": training,
    }
    if training:
        console.print(_training_table(training, f"neural ranker training throughput, {args.tasks:,} tasks x "
                                                f"{args.candidates} candidates, Ray Train on 2 CPUs"))
    write_report(args.out, report, console)
    return report


if __name__ == "__main__":
    main()
