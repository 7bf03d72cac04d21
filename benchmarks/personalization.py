"""Benchmark personalization serving: bandit select + update per second, and ranking latency for 50 notifications.

    python benchmarks/personalization.py [--rounds 5000] [--events 30000] [--repeats 200]

One thread (BLAS, LightGBM and torch limited to 1), in this process:

* **bandit**: the product's ``dashboard_layout`` bandit (linear Thompson sampling, 6 arms, 8 context features):
  ``select(context)`` then ``update(context, arm, reward)`` in memory, and through the SQLite
  :class:`~sunday.models.personalization.bandit_store.BanditStore` (each update committed in its own transaction:
  what a restart must not lose); **baseline**: a non-contextual Beta-Bernoulli Thompson sampler over the same arms
  (numpy), rounds per second; ratios to it;
* **notifications**: a :class:`~sunday.models.personalization.notifications.NotificationRanker` fitted on a
  simulated workspace's notification log, then ``rank`` of 50 notifications for one recipient (request check,
  point-in-time features from the history, LightGBM, reasons for the top 5 -- and for all 50): p50 / p99 ms;
  **baseline**: the same request checked
  and sorted newest first (the logged inbox order), which is what serving without the model costs;
* **priority**: the ``score-priority`` route's work for 1 and 50 tasks (:class:`PersonalizationService`: the
  history's feature rows built once, then looked up, scored and explained); **baseline**: the features computed
  on demand for the request's tasks (``priority_features(tables, task_ids)``, which scans the history).

Writes ``benchmarks/results/personalization.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "personalization.json"


class BetaBernoulliTS:
    """Baseline: context-free Thompson sampling with Beta posteriors (rewards in [0, 1] as fractional successes)."""

    def __init__(self, n_arms: int, seed: int = 0):
        self.a, self.b = np.ones(n_arms), np.ones(n_arms)
        self.rng = np.random.default_rng(seed)

    def select(self, _context=None) -> int:
        return int(np.argmax(self.rng.beta(self.a, self.b)))

    def update(self, _context, arm: int, reward: float) -> None:
        self.a[arm] += reward
        self.b[arm] += 1.0 - reward


def _rate(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def bench_bandit(rounds: int, tmp: Path) -> dict:
    from sunday.models.personalization.bandit import LinearThompsonSampling
    from sunday.models.personalization.bandit_store import BanditStore, ProductBandits

    config = ProductBandits().configs()["dashboard_layout"]
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(rounds), rng.random((rounds, config.context_dim - 1))])
    theta = rng.normal(0, 0.3, (len(config.arms), config.context_dim))
    p = 1 / (1 + np.exp(-(X @ theta.T)))  # the reward probability of each arm
    R = (rng.random(p.shape) < p).astype(float)

    base = BetaBernoulliTS(len(config.arms))

    def base_round(i):
        arm = base.select()
        base.update(None, arm, R[i, arm])

    mem = LinearThompsonSampling(config)
    index = {a: k for k, a in enumerate(config.arms)}

    def mem_round(i):
        arm = mem.select(X[i])
        mem.update(X[i], arm, R[i, index[arm]])

    store = BanditStore(tmp / "bandits.sqlite")
    store.create("dashboard_layout", config)
    n_store = max(200, rounds // 5)

    def store_round(i):
        arm = store.select("dashboard_layout", X[i])
        store.update("dashboard_layout", X[i], arm, R[i, index[arm]], request_id=f"r{i}")

    out = {"baseline_beta_bernoulli": _rate(base_round, rounds), "linear_ts_memory": _rate(mem_round, rounds),
           "linear_ts_sqlite": _rate(store_round, n_store)}
    # learning check on the same rounds: mean reward of the last half vs the best fixed arm's
    out["linear_ts_reward_last_half"] = float(np.mean([R[i, index[mem.predict(X[i:i + 1])[0]]]
                                                       for i in range(rounds // 2, rounds)]))
    out["best_fixed_arm_reward"] = float(R.mean(axis=0).max())
    store.close()
    return out


def _lat(fn, repeats: int) -> dict:
    fn()  # warm
    ms = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(np.mean(ms))}


def bench_notifications(events: int, repeats: int) -> dict:
    from sunday.evaluation.notify_sim import fit_ranker, load_notify_data, time_split
    from sunday.models.personalization.notifications import RankContext, request_frame

    data = load_notify_data(events=events, seed=0)
    train, _test, _cut = time_split(data.frame)
    t0 = time.perf_counter()
    ranker = fit_ranker(train)
    fit_s = time.perf_counter() - t0
    log = data.log.to_pandas()
    user = log["user_id"].value_counts().index[0]
    as_of = log["created_at"].max()
    sample = log.sample(50, random_state=0)
    notes = [{"notification_id": r.notification_id, "type": r.type, "sender_id": r.sender_id,
              "task_id": r.task_id, "project_id": r.project_id, "created_at": r.created_at}
             for r in sample.itertuples()]
    from sunday.models.personalization.notifications import NotificationHistory

    history = NotificationHistory.from_tables(data.tables, data.log)
    ctx = RankContext(user, history, as_of)
    model = _lat(lambda: ranker.rank(notes, ctx), repeats)
    every = _lat(lambda: ranker.rank(notes, ctx, explain_top=None), max(20, repeats // 5))
    base = _lat(lambda: request_frame(notes, user, as_of).sort_values("created_at", ascending=False), repeats)
    return {"notifications": 50, "fit_s": fit_s, "ranker": model, "ranker_reasons_for_all_50": every,
            "baseline_newest_first": base, "train_rows": len(train)}


def bench_priority(events: int, repeats: int, tmp: Path) -> dict:
    from sunday.data.simulator import SimConfig, simulate_tables
    from sunday.models.personalization.bandit_store import BanditStore
    from sunday.models.personalization.decisions import DecisionLog
    from sunday.models.personalization.service import Loaded, PersonalizationService
    from sunday.models.priority.features import priority_features, priority_labels
    from sunday.models.priority.scorer import PriorityScorer

    tables = simulate_tables(SimConfig(n_events=events, seed=0))
    X = priority_features(tables)
    model = PriorityScorer().fit(X, priority_labels(tables))
    service = PersonalizationService(BanditStore(tmp / "pb.sqlite"), DecisionLog(tmp / "pd.sqlite"), None, tables,
                                     priority=Loaded(model, "bench"))
    ids = X["task_id"].tolist()
    t0 = time.perf_counter()
    service.score_priority({"task_ids": ids[:1]})  # builds the history's feature rows once
    out: dict = {"cache_build_ms": (time.perf_counter() - t0) * 1e3, "tasks_in_history": len(ids)}
    for n in (1, 50):
        pick = ids[:n]

        def on_demand():
            f = priority_features(tables, task_ids=pick)
            model.score(f)
            model.explain(f)

        out[f"service_{n}"] = _lat(lambda: service.score_priority({"task_ids": pick}), max(20, repeats // 4))
        out[f"on_demand_{n}"] = _lat(on_demand, max(10, repeats // 10))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5000)
    p.add_argument("--events", type=int, default=30000)
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args(argv)
    console = Console()
    from sunday.runtime import torch_threads

    with tempfile.TemporaryDirectory() as tmp, torch_threads(1):
        bandit = bench_bandit(args.rounds, Path(tmp))
        notes = bench_notifications(args.events, args.repeats)
        prio = bench_priority(args.events, args.repeats, Path(tmp))

    t = Table(title="bandit select + update (rounds/s, one thread)")
    for c in ("variant", "rounds/s", "vs baseline"):
        t.add_column(c, justify="right" if c != "variant" else "left")
    b0 = bandit["baseline_beta_bernoulli"]
    for k in ("baseline_beta_bernoulli", "linear_ts_memory", "linear_ts_sqlite"):
        t.add_row(k, f"{bandit[k]:,.0f}", f"{bandit[k] / b0:.3f}")
    console.print(t)
    console.print(f"linear TS reward over the last half {bandit['linear_ts_reward_last_half']:.3f} "
                  f"(best fixed arm {bandit['best_fixed_arm_reward']:.3f})")
    t = Table(title="rank 50 notifications (ms)")
    for c in ("variant", "p50", "p99", "p50 vs baseline"):
        t.add_column(c, justify="right" if c != "variant" else "left")
    base = notes["baseline_newest_first"]
    for k in ("baseline_newest_first", "ranker", "ranker_reasons_for_all_50"):
        r = notes[k]
        t.add_row(k, f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['p50_ms'] / base['p50_ms']:.1f}")
    console.print(t)
    t = Table(title="score-priority (features + score + reasons, ms)")
    for c in ("tasks", "service p50", "service p99", "on-demand features p50", "ratio"):
        t.add_column(c, justify="right")
    for n in (1, 50):
        r, b = prio[f"service_{n}"], prio[f"on_demand_{n}"]
        t.add_row(str(n), f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", f"{b['p50_ms']:.1f}",
                  f"{b['p50_ms'] / r['p50_ms']:.1f}x")
    console.print(t)
    console.print(f"service: feature rows of {prio['tasks_in_history']:,} tasks built once in "
                  f"{prio['cache_build_ms']:.0f} ms")
    import lightgbm
    import xgboost

    report = {"args": vars(args), "bandit_rounds_per_s": bandit, "rank_notifications": notes, "priority": prio,
              "machine": machine_info(lightgbm=lightgbm.__version__, xgboost=xgboost.__version__)}
    write_report(RESULTS, report, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
