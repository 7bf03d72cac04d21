"""``sunday demo``: the main job on embedded defaults. Later issues add their steps to ``STEPS``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from sunday.settings import Settings


@dataclass
class DemoContext:
    settings: Settings
    events: int
    seed: int
    console: Console
    summary: list[tuple[str, str]] = field(default_factory=list)  # (what, figure)
    port: int = 8000
    wait: bool = True  # keep the app up after the summary until Ctrl-C (interactive runs only)
    state: dict[str, Any] = field(default_factory=dict)


def step_ray(ctx: DemoContext) -> None:
    from sunday.runtime import cluster_resources, ensure_ray

    ray = ensure_ray(ctx.settings)
    res = cluster_resources()
    where = ctx.settings.ray_address or "local"
    ctx.summary.append(("ray cluster", f"{where}: {len(ray.nodes())} node(s), {res.get('CPU', 0):g} CPU, "
                                       f"{res.get('GPU', 0):g} GPU"))


def step_import(ctx: DemoContext) -> None:
    from sunday.data.importers import importer_names
    from sunday.data.pipeline import import_many, render_imports

    if not ctx.settings.data_dir.is_dir():
        ctx.console.print(f"datasets folder {ctx.settings.data_dir} not found: running on the simulator alone")
        ctx.summary.append(("datasets", "none (folder missing): simulator only"))
        return
    outcomes = import_many(importer_names(), ctx.settings, fail_fast=False)
    render_imports(outcomes)
    ok = [o for o in outcomes if not o.error]
    rows = sum(sum(o.counts.values()) for o in ok)
    ctx.summary.append(("datasets imported", f"{len(ok)}/{len(outcomes)} ({rows:,} rows)"))
    for o in outcomes:
        if o.error:
            ctx.summary.append((f"dataset {o.name}", f"failed: {o.error}"))


def step_simulate(ctx: DemoContext) -> None:
    from sunday.data.pipeline import render_simulation, run_simulation

    result = run_simulation(ctx.settings, events=ctx.events, seed=ctx.seed, engine="ray", name="demo")
    render_simulation(result)
    ctx.state["simulation"] = result
    c = result.counts
    ctx.summary.append(("simulated workspace", f"{c.get('users', 0):,} users, {c.get('projects', 0):,} projects, "
                                               f"{c.get('tasks', 0):,} tasks, {c.get('events', 0):,} events "
                                               f"({result.events_per_second:,.0f} events/s)"))


def _cell(v) -> str:
    import pandas as pd

    if v is None or (not isinstance(v, (list, str)) and pd.isna(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def step_features(ctx: DemoContext) -> None:
    """Build the feature platform from the demo simulation, then read one training set and one online row."""
    import pandas as pd

    from sunday.features.online import OnlineFeatures
    from sunday.features.platform import build_platform, render_platform
    from sunday.features.training import training_set

    result = build_platform(ctx.settings, sim_name="demo", engine="ray", accept_drift=True)
    render_platform(result)
    rows = sum(result.rows.values())
    ctx.summary.append(("feature platform", f"{rows:,} feature rows in {len(result.rows)} groups; offline "
                                            f"{result.offline_store}, online {result.online_store}"))

    # a point-in-time training set for the assignment model: (task, candidate user) at each assignment event
    from sunday.data.simulator import read_simulation

    sim = read_simulation(result.sim_path)
    events = sim.events.to_pandas()
    assigned = events[events.event_type == "assigned"]
    assigned = assigned.iloc[len(assigned) // 2: len(assigned) // 2 + 5]  # mid-log: users have history
    users = sim.observable["users"].to_pandas().set_index("user_id")
    entity_df = pd.DataFrame({
        "task_id": assigned.task_id.to_numpy(), "user_id": assigned.user_id.to_numpy(),
        "team_id": users.loc[assigned.user_id, "team_id"].to_numpy(),
        "event_timestamp": assigned.timestamp.to_numpy(),
    })
    ts = training_set(entity_df, "assignment", ctx.settings)
    cols = ["user_id", "event_timestamp", "open_task_count", "hours_logged_7d", "completion_rate", "story_points",
            "open_points_gini"]
    short = {"user_id": "user", "event_timestamp": "as of", "open_task_count": "open tasks",
             "hours_logged_7d": "hours 7d", "completion_rate": "completion", "story_points": "task pts",
             "open_points_gini": "team gini"}
    table = Table(title="point-in-time training rows (assignment service, features as of each assignment)")
    for c in cols:
        table.add_column(short[c], justify="left" if c in ("user_id", "event_timestamp") else "right")
    for _, r in ts[cols].iterrows():
        table.add_row(*[_cell(r[c]) for c in cols])
    ctx.console.print(table)
    user = str(assigned.user_id.iloc[0])
    online = OnlineFeatures(ctx.settings).get("user_workload", {"user_id": user})
    ctx.console.print(f"online user_workload for {user}: "
                      + ", ".join(f"{k}={_cell(v)}" for k, v in online.items() if k != "user_id"))
    ctx.summary.append(("training set / online read", f"{len(ts)} rows x {ts.shape[1]} columns; online row for {user}"))


def step_assignment(ctx: DemoContext) -> None:
    """Train the assignment ranker (quick profile; the network through Ray Train), register it in MLflow, and
    rank the team for one held-out task from the online store."""
    from sunday.features.online import OnlineFeatures
    from sunday.models.assignment.service import AssignmentService, task_embedder
    from sunday.models.assignment.train import TrainConfig, train_assignment

    config = TrainConfig(sim_name="demo", profile="quick", neural=True, trainer="ray", num_workers=2)
    result = train_assignment(ctx.settings, config, log=ctx.console.print)
    m = result.metrics
    ctx.console.print(f"holdout ({result.n_holdout_tasks} latest decisions): top-1 {m['top1']:.3f} "
                      f"(skill-only {m['baseline_skill_only_top1']:.3f}, least-loaded "
                      f"{m['baseline_least_loaded_top1']:.3f}), MRR {m['mrr']:.3f}")
    if result.promotion is not None:
        ctx.console.print(result.promotion.line())

    pairs = result.holdout.pairs
    task_id = pairs["task_id"].iloc[0]
    rows = pairs[pairs["task_id"] == task_id]
    first = rows.iloc[0]
    task = {"task_id": task_id, "title": first["title"], "description": first["description"],
            "required_skills": list(first["required_skills"]), "story_points": first["story_points"],
            "priority": ("low", "medium", "high", "critical")[int(first["priority_score"])]}
    service = AssignmentService(result.ranker, OnlineFeatures(ctx.settings), embed=task_embedder(ctx.settings),
                                version=result.version)
    answer = service.recommend(task, rows["user_id"].tolist())
    table = Table(title=f"ranked team for {task_id}: {task['title'][:40]!s} (needs "
                        f"{', '.join(task['required_skills'])}, {task['story_points']:g} pts)")
    for c in ("user", "final", "score", "p(done)", "quality", "hours", "gini after"):
        table.add_column(c, justify="left" if c == "user" else "right", no_wrap=True)
    for r in answer["alternatives"]:
        table.add_row(r["user_id"], f"{r['final_score']:.3f}", f"{r['score']:.2f}",
                      f"{r['completion_probability']:.2f}", f"{r['expected_quality']:.1f}",
                      "-" if r["estimated_hours"] is None else f"{r['estimated_hours']:.0f}", f"{r['gini_after']:.2f}")
    ctx.console.print(table)
    for r in answer["alternatives"]:
        if r["reasons"]:
            ctx.console.print(f"  why {r['user_id']}: " + "; ".join(
                f"{x['description']} {x['contribution']:+.2f}" for x in r["reasons"]))
    ctx.summary.append(("task assignment", f"holdout top-1 {m['top1']:.3f} vs skill-only "
                                          f"{m['baseline_skill_only_top1']:.3f}; registered "
                                          f"task_assignment v{result.version}; recommended "
                                          f"{answer['recommended_user']} for {task_id}"))


def step_timeline(ctx: DemoContext) -> None:
    """Train the timeline forecaster (+ the task delay-risk model), register it, forecast one project."""
    from sunday.features.platform import simulation_path
    from sunday.models.timeline.service import predict_timeline
    from sunday.models.timeline.train import TimelineTrainConfig, load_task_risk, train_timeline
    from sunday.serving.directory import ProjectCatalog

    result = train_timeline(ctx.settings, TimelineTrainConfig(sim_name="demo", profile="quick"),
                            log=ctx.console.print)
    rows = result.rows()
    table = Table(title=f"holdout: {result.n_holdout_projects} projects never seen in training "
                        f"({result.n_holdout_snapshots} forecasts)")
    for c in ("forecaster", "MAE days", "p10-p90 coverage", "late flagged 7 d ahead"):
        table.add_column(c, justify="left" if c == "forecaster" else "right")
    for r in rows:
        table.add_row(r["row"], f"{r['mae_days']:.1f}", f"{r['coverage_p10_p90']:.0%}",
                      f"{r['early_warning_recall']:.0%}")
    ctx.console.print(table)
    if result.promotion is not None:
        ctx.console.print(result.promotion.line())
    import pandas as pd

    pid = str(result.holdout.meta["project_id"].iloc[0])
    catalog = ProjectCatalog(ctx.settings, simulation_path(ctx.settings, "demo"))
    project = catalog.project(pid, with_tasks=False)
    hist = project["history"]  # as of two weeks before its planned end, when a warning still helps
    planned = pd.Timestamp(project["planned_end"])
    planned = planned.tz_convert(None) if planned.tzinfo is not None else planned
    before = pd.to_datetime(hist["event_timestamp"], utc=True).dt.tz_localize(None) < planned - pd.Timedelta(days=14)
    project["history"] = hist.iloc[: max(7, int(before.sum()))]
    ws = str(catalog.projects.loc[pid, "workspace_id"])
    tasks = catalog.tasks(ws, pid, pd.Timestamp(project["history"]["event_timestamp"].iloc[-1]))
    f = predict_timeline(result.model, project, mc_samples=30, tasks=tasks,
                         task_model=load_task_risk(result.model_dir))
    ctx.console.print(f"[bold]{pid}[/bold] as of {f['as_of']} (planned end {f['planned_end']}): expected "
                      f"{f['expected']}, band {f['best']} .. {f['worst']} (p10..p90), delay {f['delay_days']:+.0f} d, "
                      f"risk {f['risk_class']} "
                      + ", ".join(f"{k} {v:.0%}" for k, v in f["risk"].items()))
    ctx.console.print("  drivers: " + "; ".join(f"{d['feature']} {d['effect_days']:+.1f} d"
                                                 for d in f["drivers"]["features"]))
    overdue = [t for t in f["at_risk_tasks"] if t.get("overdue")]
    ahead = [t for t in f["at_risk_tasks"] if not t.get("overdue")]
    ctx.console.print(f"  open tasks already overdue: {len(overdue)}; not yet due, most likely to slip:")
    for t in ahead[:3]:
        why = "; ".join(str(r.get("feature", r)) for r in t.get("reasons", [])[:2])
        ctx.console.print(f"  at-risk task {t['task_id']}: P(delayed) {t['p_delayed']:.2f} ({t['risk_class']}), due "
                          f"{t['due_date'][:10]} ({t['days_to_due']:+.0f} d)" + (f"; {why}" if why else ""))
    m = result.metrics
    ctx.summary.append(("project timeline", f"holdout MAE {m['mae_days']:.1f} d vs burn-down "
                                           f"{m['burndown_mae_days']:.1f} d, coverage {m['coverage_p10_p90']:.0%}; "
                                           f"registered project_timeline v{result.version}; {pid}: "
                                           f"{f['best']} .. {f['expected']} .. {f['worst']}"))


def step_search_index(ctx: DemoContext) -> None:
    """Index the workspace's tasks and comments into the vector store (embedded Qdrant) for semantic search."""
    from sunday.features.platform import simulation_path
    from sunday.nlp.indexing import SearchIndexer, index_simulation

    indexer = SearchIndexer.for_settings(ctx.settings)
    try:
        counts = index_simulation(indexer, simulation_path(ctx.settings, "demo"), progress=True)
    finally:
        indexer.store.close()  # the Serve app's Nlp replica opens the folder next
    ctx.console.print(f"indexed {counts['tasks']:,} tasks and {counts['comments']:,} comments into "
                      f"{indexer.store.where}; the reranker is trained by python train_jobs/reranker.py")
    ctx.summary.append(("search index", f"{counts['tasks']:,} tasks + {counts['comments']:,} comments in Qdrant"))


def step_personalization(ctx: DemoContext) -> None:
    """Train and register the priority scorer, the notification ranker and the collaborative filter (MLflow)."""
    from sunday.models.personalization.cf_mlflow import CfJobConfig, train_and_register as train_cf
    from sunday.models.personalization.notifications_job import NotifyJobConfig, train_and_register as train_notify
    from sunday.models.priority.job import train_and_register as train_priority
    from sunday.models.priority.scorer import PriorityConfig

    quiet = lambda *_a, **_k: None  # noqa: E731
    p = train_priority(ctx.settings, "demo", PriorityConfig(), 0.7, True)
    ctx.console.print(f"priority scorer (XGBoost): holdout accuracy {p.metrics['accuracy']:.3f}, macro-F1 "
                      f"{p.metrics['macro_f1']:.3f} vs the slack/pick-up rule {p.metrics['rule_macro_f1']:.3f}; "
                      + p.promotion.line())
    n = train_notify(ctx.settings, NotifyJobConfig(sim_name="demo"), log=quiet)
    ctx.console.print(f"notification ranker (LightGBM): holdout IPS NDCG@10 {n.metrics['ndcg_10_ips']:.3f}; "
                      + n.promotion.line())
    c = train_cf(ctx.settings, CfJobConfig(sim="demo"), log=quiet)
    ctx.console.print(f"collaborative filter (Ray Train): holdout NDCG@10 {c.metrics['ndcg_at_10']:.3f}; "
                      + c.promotion.line())
    ctx.summary.append(("personalization", f"priority macro-F1 {p.metrics['macro_f1']:.3f}, notifications IPS "
                                           f"NDCG@10 {n.metrics['ndcg_10_ips']:.3f}, tasks NDCG@10 "
                                           f"{c.metrics['ndcg_at_10']:.3f} (registered, champion rule applied)"))


def _alerted_project(ctx: DemoContext, workspace_id: str) -> str | None:
    """The project of the workspace's newest project alert in the monitor's store (written by the Serve app's
    anomaly monitor as it replays the workspace's events), or None."""
    from sunday.models.anomaly.alerts import AlertStore

    store = AlertStore.for_settings(ctx.settings)
    try:
        alerts = [a for a in store.query(workspace_id, limit=50) if a.project_id]
    finally:
        store.close()
    return alerts[0].project_id if alerts else None


def step_serve(ctx: DemoContext) -> None:
    """Deploy the Ray Serve application, make a key, call it; leave it up (interactive) and print curl lines."""
    import sys

    import httpx

    from sunday.serving.keys import default_keystore
    from sunday.serving.launch import curl_lines, sample_requests, start

    running = start(ctx.settings, {"sim": "demo"}, port=ctx.port)
    sample = sample_requests(ctx.settings, "demo")
    _, token = default_keystore(ctx.settings).create(sample["workspace_id"], "member", name="sunday demo")
    lines = curl_lines(running.url, token, sample)
    headers = {"Authorization": f"Bearer {token}"}
    body = {"task": {"title": "Fix flaky login test", "description": "The OAuth callback times out in CI",
                     "required_skills": ["python", "testing"], "story_points": 3, "priority": "high"},
            "candidates": sample["candidates"], "top_k": 3}
    with httpx.Client(base_url=running.url, timeout=60) as client:
        r = client.post("/api/v1/ml/assign-task", json=body, headers=headers)
        r.raise_for_status()
        a = r.json()
        ctx.console.print(f"POST /api/v1/ml/assign-task -> {a['recommended_user']} (confidence "
                          f"{a['confidence']:.2f}, model v{a['model_version']}, {a['latency_ms']:.0f} ms in the "
                          f"ingress)")
        if sample.get("project_id"):
            r = client.post("/api/v1/ml/predict-timeline", json={"project_id": sample["project_id"]},
                            headers=headers)
            if r.status_code == 200:
                t = r.json()
                ctx.console.print(f"POST /api/v1/ml/predict-timeline -> {sample['project_id']}: expected "
                                  f"{t['expected']} ({t['best']} .. {t['worst']}), {t['risk_class']}, "
                                  f"{len(t['at_risk_tasks'])} at-risk task(s)")
            else:
                ctx.console.print(f"POST /api/v1/ml/predict-timeline -> HTTP {r.status_code}: {r.text[:200]}")
        project = _alerted_project(ctx, sample["workspace_id"]) or sample.get("project_id")
        if project:
            r = client.get(f"/api/v1/ml/anomalies/{project}", params={"limit": 5}, headers=headers)
            if r.status_code == 200:
                out = r.json()
                newest = out["alerts"][0] if out["alerts"] else None
                ctx.console.print(f"GET /api/v1/ml/anomalies/{project} -> {out['count']} alert(s)"
                                  + (f"; newest: {newest['reason']}" if newest else ""))
            else:
                ctx.console.print(f"GET /api/v1/ml/anomalies -> HTTP {r.status_code}: {r.text[:200]}")
        user = sample["candidates"][0]
        r = client.post("/api/v1/ml/personalize-dashboard", json={"user_id": user, "top_k": 3}, headers=headers)
        if r.status_code == 200:
            d = r.json()
            ctx.console.print(f"POST /api/v1/ml/personalize-dashboard -> {user}: layout {d['layout']!r}, next tasks "
                              f"{[t['id'] for t in d['tasks']]} ({d['recommender']})")
            r = client.post("/api/v1/ml/personalization/feedback",
                            json={"decision_id": d["decision_id"], "reward": 1.0}, headers=headers)
            ctx.console.print(f"POST /api/v1/ml/personalization/feedback -> HTTP {r.status_code}")
            if d["tasks"]:
                r = client.post("/api/v1/ml/score-priority", json={"task_ids": [t["id"] for t in d["tasks"]]},
                                headers=headers)
                if r.status_code == 200:
                    for sc in r.json()["scores"]:
                        why = ", ".join(f"{x['name']} {x['contribution']:+.2f}" for x in sc["reasons"][:2])
                        ctx.console.print(f"POST /api/v1/ml/score-priority -> {sc['task_id']}: {sc['priority']} "
                                          f"(score {sc['score']:.2f}, now {sc['current_priority']}); {why}")
                else:
                    ctx.console.print(f"POST /api/v1/ml/score-priority -> HTTP {r.status_code}: {r.text[:200]}")
        else:
            ctx.console.print(f"POST /api/v1/ml/personalize-dashboard -> HTTP {r.status_code}: {r.text[:200]}")
        r = client.post("/api/v1/ml/search", json={"query": "dashboard feels sluggish", "top_k": 3},
                        headers=headers)
        if r.status_code == 200:
            out = r.json()
            top = out["hits"][0] if out["hits"] else None
            ctx.console.print(f"POST /api/v1/ml/search -> {len(out['hits'])} hits"
                              + (f", best {top['collection']} {top['key']}: {top['title']!r}" if top else "")
                              + f"; answer ({out['answer_source']}): {(out['answer'] or '')[:160]}")
        else:
            ctx.console.print(f"POST /api/v1/ml/search -> HTTP {r.status_code}: {r.text[:200]}")
    ctx.console.print(f"member key for workspace {sample['workspace_id']} (shown once): {token}")
    for line in lines:
        ctx.console.print(line, soft_wrap=True, highlight=False)
    ctx.summary.append(("serving", f"Ray Serve app up at {running.url} (OpenAPI {running.url}/docs); "
                                   f"assign-task answered with model v{a['model_version']}"))
    ctx.state["serving_url"] = running.url
    ctx.state["wait"] = ctx.wait and sys.stdin.isatty()


STEPS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("start or join Ray", step_ray),
    ("import datasets", step_import),
    ("simulate a workspace", step_simulate),
    ("build the feature platform (Ray Data -> validation -> Feast)", step_features),
    ("train, register and query the task-assignment model (Ray Train, MLflow)", step_assignment),
    ("train, register and query the project timeline forecaster (MLflow)", step_timeline),
    ("index the workspace for semantic search (MiniLM -> Qdrant)", step_search_index),
    ("train and register the priority scorer, notification ranker and collaborative filter", step_personalization),
    ("serve the models: Ray Serve app behind the FastAPI ingress", step_serve),
]


def run_demo(settings: Settings, events: int = 200_000, seed: int = 0, port: int = 8000,
             wait: bool = True) -> DemoContext:
    console = Console()
    ctx = DemoContext(settings=settings, events=events, seed=seed, console=console, port=port, wait=wait)
    t_all = time.perf_counter()
    for i, (title, fn) in enumerate(STEPS, 1):
        console.rule(f"[{i}/{len(STEPS)}] {title}")
        t0 = time.perf_counter()
        fn(ctx)
        ctx.summary.append((f"  step time: {title}", f"{time.perf_counter() - t0:.1f} s"))
    table = Table(title="Sunday ML demo summary", show_header=False)
    for what, figure in ctx.summary:
        table.add_row(what, figure)
    table.add_row("state folder", str(settings.home))
    table.add_row("total time", f"{time.perf_counter() - t_all:.1f} s")
    console.print(table)
    if ctx.state.get("wait"):
        console.print(f"the app stays up at {ctx.state['serving_url']}: run the curl lines above; Ctrl-C stops it")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    if ctx.state.get("serving_url"):
        from ray import serve

        serve.shutdown()
    return ctx
