"""Benchmark the NLP layer: embedding throughput, vector search at 100k points, reranking, LLM summary latency.

    python benchmarks/nlp.py [--points 100000] [--queries 200] [--skip-summary]

* **Embeddings** (all-MiniLM-L6-v2 on this machine's CPUs): texts per second encoding QMSum passages in batches
  of 64, beside one text per call (the baseline, ratio).
* **Search** on ``--points`` stored vectors (the embedded Qdrant under a temp folder, 10 workspaces, 10 % of the
  points restricted to a few users): p50 / p99 of ``VectorStore.search`` (the embedded store's vectorised filtered
  kNN) beside Qdrant local mode's own filtered ``query_points`` on the same store and queries (baseline, ratio; it
  is slow, so it runs ``--slow-queries`` times), plus the time to store the points.
* **Rerank**: the cross-encoder scoring the 50 dense candidates of a query (when a reranker is registered or found
  at ``--reranker``), and the whole ``SemanticSearch.search`` without the answer.
* **Summary**: ``summarize_meeting`` of one QMSum val meeting and a query-focused summary with the embedded LLM
  (first call includes no model load: the model is warmed up first).

Writes ``benchmarks/results/nlp.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from simulate import machine_info, write_report  # noqa: E402  (benchmarks/simulate.py)

RESULTS = ROOT / "benchmarks" / "results" / "nlp.json"


def _pct(times_s: list[float]) -> dict:
    import numpy as np

    ms = np.array(times_s) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def bench_embeddings(texts: list[str], single: int = 64) -> dict:
    from sunday.features.embeddings import load_model

    model = load_model()
    model.encode(texts[:8], convert_to_numpy=True, show_progress_bar=False)  # warm up
    t0 = time.perf_counter()
    model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
    batched = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for t in texts[:single]:
        model.encode([t], convert_to_numpy=True, show_progress_bar=False)
    one = single / (time.perf_counter() - t0)
    return {"texts": len(texts), "batched_texts_per_s": batched, "single_texts_per_s": one,
            "ratio": batched / one}


def bench_search(n_points: int, queries: int, slow_queries: int) -> dict:
    import numpy as np

    from sunday.nlp.vectorstore import VectorStore

    rng = np.random.default_rng(0)
    folder = Path(tempfile.mkdtemp(prefix="sunday-nlp-bench-"))
    store = VectorStore(path=folder / "qdrant")
    t0 = time.perf_counter()
    for lo in range(0, n_points, 10_000):
        n = min(10_000, n_points - lo)
        vectors = rng.normal(size=(n, 384)).astype(np.float32)
        payloads = [{"workspace_id": f"w{i % 10}", "project_id": f"p{i % 40}",
                     "visibility": "restricted" if i % 10 == 0 else "workspace",
                     "allowed_users": [f"u{i % 5}"] if i % 10 == 0 else []} for i in range(lo, lo + n)]
        store.upsert("tasks", [f"t{i}" for i in range(lo, lo + n)], vectors, payloads, batch=2_000)
    store_s = time.perf_counter() - t0
    qs = rng.normal(size=(queries, 384)).astype(np.float32)
    fast = []
    for i, q in enumerate(qs):
        t = time.perf_counter()
        store.search("tasks", q, workspace_id=f"w{i % 10}", user_id=f"u{i % 5}", limit=50)
        fast.append(time.perf_counter() - t)
    slow = []
    for i, q in enumerate(qs[:slow_queries]):
        t = time.perf_counter()
        store.search("tasks", q, workspace_id=f"w{i % 10}", user_id=f"u{i % 5}", limit=50, force_qdrant=True)
        slow.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    store.close()
    reopened = VectorStore(path=folder / "qdrant")
    reopened.ensure("tasks")
    reopen_s = time.perf_counter() - t0
    reopened.close()
    f, s = _pct(fast), _pct(slow)
    return {"points": n_points, "store_s": store_s, "store_points_per_s": n_points / store_s,
            "reopen_s": reopen_s, "search": f, "qdrant_local_search": s, "p50_speedup": s["p50_ms"] / f["p50_ms"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--slow-queries", type=int, default=5)
    parser.add_argument("--texts", type=int, default=2_000)
    parser.add_argument("--skip-summary", action="store_true")
    parser.add_argument("--reranker", type=Path, default=None, help="a saved reranker folder (default: the "
                        "registered qmsum_reranker champion)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from rich.console import Console
    from rich.table import Table

    from sunday.nlp.passages import load_qmsum, turn_passages
    from sunday.settings import Settings

    console = Console(width=160)
    settings = Settings()
    meetings = load_qmsum(settings.data_dir, "val")
    passages = [p for m in meetings for p in turn_passages(m.meeting_id, m.turns)]
    report: dict = {"machine": machine_info()}

    console.print("embeddings ...")
    report["embeddings"] = bench_embeddings([p.text for p in passages[:args.texts]])
    console.print(f"search on {args.points:,} points ...")
    report["search"] = bench_search(args.points, args.queries, args.slow_queries)
    extra = extra_benchmarks(settings, meetings, passages, skip_summary=args.skip_summary,
                             reranker_path=args.reranker)
    report.update(extra)

    t = Table(title="NLP benchmarks (this machine)")
    for col in ("case", "ours", "baseline", "ratio"):
        t.add_column(col)
    e, s = report["embeddings"], report["search"]
    t.add_row("embed texts/s (batch 64 vs one a call)", f"{e['batched_texts_per_s']:.0f}",
              f"{e['single_texts_per_s']:.0f}", f"{e['ratio']:.1f}x")
    t.add_row(f"search p50 ms ({s['points']:,} pts; vs Qdrant local filter)", f"{s['search']['p50_ms']:.1f}",
              f"{s['qdrant_local_search']['p50_ms']:.0f}", f"{s['p50_speedup']:.0f}x")
    t.add_row("search p99 ms", f"{s['search']['p99_ms']:.1f}", f"{s['qdrant_local_search']['p99_ms']:.0f}", "")
    t.add_row("store points/s (embedded, WAL)", f"{s['store_points_per_s']:.0f}", "", "")
    for name, row in extra.items():
        for case, val in row.items():
            if isinstance(val, dict) and "p50_ms" in val:
                t.add_row(f"{name}: {case} p50/p99 ms", f"{val['p50_ms']:.0f} / {val['p99_ms']:.0f}", "", "")
    console.print(t)
    write_report(args.out, report, console)
    return report


def extra_benchmarks(settings, meetings, passages, skip_summary: bool, reranker_path: Path | None = None) -> dict:
    """Rerank (50 candidates) and summary latency on QMSum val."""
    from sunday.errors import SundayError
    from sunday.nlp.meetings import SummaryConfig, summarize, summarize_meeting
    from sunday.nlp.reranker import CrossEncoderReranker, load_reranker

    out: dict = {}
    queries = [(m, q) for m in meetings for q in m.queries if q.kind == "specific"][:40]
    reranker = CrossEncoderReranker.load(reranker_path) if reranker_path else None
    for alias in ("champion", "challenger") if reranker is None else ():
        try:
            reranker = load_reranker(settings, alias)
            break
        except SundayError as exc:
            out["rerank"] = {"skipped": str(exc)}
    if reranker is not None:
        by_meeting: dict[str, list[str]] = {}
        for p in passages:
            by_meeting.setdefault(p.doc_id, []).append(p.text)
        times = []
        for m, q in queries[:30]:
            texts = by_meeting[m.meeting_id][:50]
            t = time.perf_counter()
            reranker.score(q.query, texts)
            times.append(time.perf_counter() - t)
        out["rerank"] = {"top50": _pct(times), "model": reranker.info.get("registered_version")}
    if not skip_summary:
        from sunday.nlp.guard import GuardedLLM

        m = min(meetings, key=lambda x: len(x.turns))
        turns = [{"speaker": t.speaker, "content": t.content} for t in m.turns]
        meta = {"meeting_id": m.meeting_id, "workspace_id": "bench"}
        summarize_meeting(turns, meta)  # warm up (MiniLM)
        ext = []
        for _ in range(3):
            t = time.perf_counter()
            summarize_meeting(turns, meta)
            ext.append(time.perf_counter() - t)
        llm = GuardedLLM.for_settings(settings).for_workspace("bench")
        llm.chat([{"role": "user", "content": "hi"}], max_tokens=1)  # load the model
        hyb, specific = [], [q for q in m.queries if q.kind == "specific"][:3]
        for q in specific:
            t = time.perf_counter()
            summarize(q.query, m, llm=llm, config=SummaryConfig(method="hybrid"))
            hyb.append(time.perf_counter() - t)
        out["summary"] = {"meeting": m.meeting_id, "turns": len(m.turns),
                          "summarize_meeting_extractive": _pct(ext),
                          "query_summary_hybrid_llm": _pct(hyb) if hyb else None}
    return out


if __name__ == "__main__":
    main()
