"""The seeded workspace simulator: determinism, data-model validity, hidden truth kept apart, consistent event
logs, DAG dependencies, visible anomalies, event budget, engines (local and Ray) writing the same rows."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sunday.data.simulator import SimConfig, make_plan, read_simulation, simulate, simulate_tables
from sunday.data.simulator.workspace import OBSERVABLE_SPECS, TRUTH_SCHEMAS
from sunday.errors import SundayError
from sunday.schema import get_spec, validate

SMALL = SimConfig(n_events=12_000, seed=7, events_per_workspace=4_000)  # 3 workspaces
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def sim():
    return simulate_tables(SMALL)


@pytest.fixture(scope="module")
def big():
    """Enough work for every anomaly kind to show up a few times."""
    return simulate_tables(SimConfig(n_events=120_000, seed=11))


def _frames(tables):
    return {name: tables[name].to_pandas() for name in ("events", "tasks", "users", "teams", "projects")} | {
        name: t.to_pandas() for name, t in tables.truth.items()}


@pytest.fixture(scope="module")
def small_df(sim):
    return _frames(sim)


@pytest.fixture(scope="module")
def big_df(big):
    return _frames(big)


def _assert_same(a, b):
    assert set(a.observable) == set(b.observable) and set(a.truth) == set(b.truth)
    for name in a.observable:
        assert a[name].equals(b[name]), name
    for name in a.truth:
        assert a.truth[name].equals(b.truth[name]), f"truth/{name}"


# -- determinism -----------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_tables(sim):
    _assert_same(sim, simulate_tables(SMALL))


def test_number_of_partitions_does_not_change_the_output(sim):
    assert make_plan(SMALL).n_partitions == 1 and make_plan(SMALL, 3).n_partitions == 3
    _assert_same(sim, simulate_tables(SMALL, partitions=3))


def test_different_seed_gives_different_tables(sim):
    other = simulate_tables(replace(SMALL, seed=8))
    assert not other.events.equals(sim.events)
    assert other["tasks"].column("title").to_pylist() != sim["tasks"].column("title").to_pylist()
    assert not other.truth["user_skills"].equals(sim.truth["user_skills"])


# -- data model ------------------------------------------------------------------------------------------------

def test_observable_tables_validate_against_the_specs(sim):
    for name, spec in OBSERVABLE_SPECS.items():
        table = sim[name]
        assert table.num_rows > 0, name
        assert table.schema.equals(get_spec(spec).schema), name
        validate(spec, table)
    assert set(sim.events.column("event_type").to_pylist()) == {
        "created", "assigned", "status_changed", "commented", "completed", "reassigned", "scope_changed",
        "time_logged"}
    for name, schema in TRUTH_SCHEMAS.items():
        assert sim.truth[name].schema.equals(schema), name


def test_no_hidden_truth_leaks_into_observable_tables(sim, small_df):
    for name, spec in OBSERVABLE_SPECS.items():
        assert sim[name].column_names == get_spec(spec).columns
        for column in sim[name].column_names:
            for word in ("proficien", "speed", "true", "effort", "anomal", "truth", "stuck", "capacity_true"):
                assert word not in column, (name, column)
    assert "true_effort_hours" not in sim["tasks"].column_names

    users, skills = small_df["users"], small_df["user_skills"]
    truth = small_df["user_truth"].set_index("user_id")
    # declared capacity is not the real one
    caps = users.set_index("user_id")["weekly_capacity_hours"]
    assert (caps > truth.loc[caps.index, "true_weekly_capacity_hours"]).all()
    # declared skills are a noisy view of the proficiencies: related, but not the same thing
    strong = skills[skills.proficiency >= 0.5].groupby("user_id")["skill"].apply(frozenset)
    declared = users.set_index("user_id")["skills"].apply(frozenset)
    differs = sum(declared[u] != strong.get(u, frozenset()) for u in declared.index)
    assert 0 < differs < len(declared)
    primary = truth["primary_skill"]
    assert sum(primary[u] in declared[u] for u in declared.index) == len(declared)
    # story points carry signal about the true effort, but noisily
    tasks = small_df["tasks"].merge(small_df["task_truth"][["task_id", "initial_effort_hours"]], on="task_id")
    corr = np.corrcoef(np.log(tasks.story_points), np.log(tasks.initial_effort_hours))[0, 1]
    assert 0.4 < corr < 0.95
    # nothing in the event text gives the anomalies away
    texts = " ".join(set(small_df["events"]["text"].dropna()))
    assert "stuck" not in texts.lower() and "anomal" not in texts.lower()


def test_truth_agrees_with_the_observable_log(small_df):
    tasks = small_df["tasks"].set_index("task_id")
    truth = small_df["task_truth"].set_index("task_id").loc[tasks.index]
    assert ((tasks.status == "done") == truth.completed_in_period).all()
    assert ((tasks.status == "cancelled") <= truth.cancelled).all()
    done = tasks.status == "done"
    end = pd.Timestamp(SMALL.end)
    assert (truth.true_completion[done] <= end).all()
    assert (truth.true_completion[~done & ~truth.cancelled] > end).all()
    late = truth.late & done & tasks.due_date.notna()
    assert late.any() and (truth.true_completion[late] > tasks.due_date[late]).all()
    # the assignment policy is skill-aware: the people doing the work match the task better than their teammates
    skills = small_df["user_skills"].pivot(index="user_id", columns="skill", values="proficiency")
    users = small_df["users"].set_index("user_id")
    team_of_project = small_df["projects"].set_index("project_id").team_id
    worked = truth[truth.worker_id.notna()]
    worker_fit, team_fit = [], []
    for task_id, row in worked.iterrows():
        need = list(row.true_skills)
        team = users.index[users.team_id == team_of_project[row.project_id]]
        worker_fit.append(skills.loc[row.worker_id, need].mean())
        team_fit.append(skills.loc[team, need].mean(axis=1).mean())
    assert np.mean(worker_fit) > np.mean(team_fit) + 0.1


def test_text_carries_skill_signal(small_df):
    tasks = small_df["tasks"].merge(small_df["task_truth"][["task_id", "true_skills"]], on="task_id")
    frontend = tasks[tasks.true_skills.apply(lambda s: len(s) and s[0] == "frontend")]
    if len(frontend) < 5:
        frontend = tasks[tasks.true_skills.apply(lambda s: len(s) and s[0] == "backend")]
    words = ("UI", "React", "page", "widget", "component", "layout", "theme", "board view", "dropdown",
             "API", "server", "database", "service", "endpoint", "resolver", "queue", "cache", "webhook",
             "pagination", "indexer", "migration", "auth", "rate limiter", "notifications", "drag-and-drop")
    text = frontend.title + " " + frontend.description
    assert text.apply(lambda t: any(w in t for w in words)).mean() > 0.9


# -- event log ---------------------------------------------------------------------------------------------------

ALLOWED = {("todo", "in_progress"), ("in_progress", "in_review"), ("in_review", "in_progress"),
           ("in_review", "done"), ("todo", "cancelled")}
ORDER = {"created": 0, "assigned": 1, "reassigned": 2}


def test_events_are_time_ordered_and_consistent(small_df):
    ev, tasks = small_df["events"], small_df["tasks"].set_index("task_id")
    start, end = pd.Timestamp(SMALL.start), pd.Timestamp(SMALL.end)
    assert ev.timestamp.between(start, end).all()
    # within a workspace, event ids follow time
    for _, g in ev.groupby("workspace_id"):
        assert g.event_id.is_monotonic_increasing and g.timestamp.is_monotonic_increasing
    ev = ev.sort_values(["task_id", "event_id"])
    first = ev.groupby("task_id").first()
    assert (first.event_type == "created").all()
    assert set(first.index) == set(tasks.index)
    assert (ev.event_type == "created").sum() == len(tasks)

    def times(kind):
        return ev[ev.event_type == kind].groupby("task_id").timestamp

    created = times("created").min()
    assigned = times("assigned").min()
    completed = times("completed").min()
    assert (assigned >= created.loc[assigned.index]).all()
    assert (completed >= assigned.loc[completed.index]).all()
    started = ev[ev.to_status == "in_progress"].groupby("task_id").timestamp.min()
    assert (started >= assigned.loc[started.index]).all()
    logs = times("time_logged")
    assert (logs.min() >= started.loc[logs.min().index]).all()
    assert (logs.max() <= completed.reindex(logs.max().index).fillna(end)).all()
    reassigned = times("reassigned").min()
    assert (reassigned >= assigned.loc[reassigned.index]).all()

    status = ev[ev.event_type == "status_changed"]
    pairs = set(zip(status.from_status, status.to_status))
    assert pairs <= ALLOWED and ("in_review", "done") in pairs
    chain_ok = status.groupby("task_id").apply(
        lambda g: list(g.from_status) == ["todo"] + list(g.to_status)[:-1], include_groups=False)
    assert chain_ok.all()
    last_status = status.groupby("task_id").to_status.last()
    final = tasks.status
    assert (final.loc[last_status.index] == last_status).all()
    assert (final.drop(last_status.index) == "todo").all()
    assert set(completed.index) == set(final.index[final == "done"])
    owners = ev[ev.event_type.isin(["assigned", "reassigned"])].groupby("task_id").user_id.last()
    assert (tasks.assignee_id.loc[owners.index] == owners).all()
    assert tasks.assignee_id.drop(owners.index).isna().all()
    assert (ev[ev.event_type == "time_logged"].hours > 0).all()
    scope = ev[ev.event_type == "scope_changed"].groupby("task_id").story_points.last()
    assert len(scope) and (tasks.story_points.loc[scope.index] == scope).all()


def test_dependencies_form_a_dag_within_each_project(small_df):
    tasks = small_df["tasks"].set_index("task_id")
    edges = [(t, d) for t, deps in tasks.dependencies.items() for d in deps]
    assert len(edges) > 50
    for t, d in edges:
        assert tasks.at[d, "project_id"] == tasks.at[t, "project_id"]
        assert tasks.at[d, "created_at"] <= tasks.at[t, "created_at"]
    # Kahn's algorithm consumes every task: no cycle
    indegree = {t: len(deps) for t, deps in tasks.dependencies.items()}
    children: dict[str, list[str]] = {}
    for t, d in edges:
        children.setdefault(d, []).append(t)
    ready = [t for t, k in indegree.items() if k == 0]
    seen = 0
    while ready:
        node = ready.pop()
        seen += 1
        for c in children.get(node, ()):
            indegree[c] -= 1
            if indegree[c] == 0:
                ready.append(c)
    assert seen == len(tasks)
    # the schedule honours them: a task starts only after its dependencies are done
    truth = small_df["task_truth"].set_index("task_id")
    for t, d in edges[:500]:
        if not truth.at[t, "cancelled"] and not truth.at[d, "cancelled"]:
            assert truth.at[t, "true_start"] >= truth.at[d, "true_completion"]


# -- anomalies ---------------------------------------------------------------------------------------------------

def test_anomalies_are_labelled_and_visible_in_the_events(big_df):
    an, ev, users = big_df["anomalies"], big_df["events"], big_df["users"]
    assert set(an.kind) == {"velocity_drop", "creation_spike", "stuck_task", "reassignment_churn",
                            "workload_concentration"}
    assert an.anomaly_id.is_unique and (an.start < an.end).all()
    by_kind = {k: g for k, g in an.groupby("kind")}

    created = ev[ev.event_type == "created"]
    for a in by_kind["creation_spike"].itertuples():
        c = created[created.project_id == a.project_id].timestamp
        inside = c.between(a.start, a.end).sum() / ((a.end - a.start) / DAY)
        base = c[~c.between(a.start, a.end) & (c > c.min() + 14 * DAY)]
        baseline = len(base) / max((base.max() - base.min()) / DAY, 1.0)
        assert inside > 3 * baseline, a.anomaly_id

    for a in by_kind["stuck_task"].itertuples():
        t = ev[ev.task_id == a.task_id].timestamp
        assert not ((t > a.start) & (t < a.end)).any(), a.anomaly_id
        assert a.end - a.start >= 14 * DAY or a.end == pd.Timestamp(SimConfig(1).end)

    reassigned = ev[ev.event_type == "reassigned"]
    for a in by_kind["reassignment_churn"].itertuples():
        r = reassigned[reassigned.task_id == a.task_id].timestamp
        assert r.between(a.start, a.end).sum() >= 3, a.anomaly_id

    assigned = ev[ev.event_type == "assigned"]
    for a in by_kind["workload_concentration"].itertuples():
        team = set(users.user_id[users.team_id == a.team_id])
        g = assigned[assigned.user_id.isin(team)]
        inside = g.timestamp.between(a.start, a.end)
        share_in = (g.user_id[inside] == a.user_id).mean()
        share_out = (g.user_id[~inside] == a.user_id).mean()
        assert share_in > max(2 * share_out, 0.4), a.anomaly_id

    completed = ev[ev.event_type == "completed"]
    inside = before = 0
    for a in by_kind["velocity_drop"].itertuples():
        c = completed[completed.project_id == a.project_id].timestamp
        length = a.end - a.start
        inside += ((c >= a.start) & (c < a.end)).sum()
        before += ((c >= a.start - length) & (c < a.start)).sum()
    assert inside < 0.6 * before


def test_no_anomalies_when_rate_is_zero():
    tables = simulate_tables(SimConfig(n_events=5_000, seed=1, anomaly_rate=0))
    assert tables.truth["anomalies"].num_rows == 0
    assert tables.truth["task_truth"].column("stuck").to_pylist().count(True) == 0


# -- budget and validation ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [500, 8_000, 50_000])
def test_event_budget_is_roughly_honoured(n):
    got = simulate_tables(SimConfig(n_events=n, seed=3)).events.num_rows
    assert 0.8 * n <= got <= 1.2 * n


@pytest.mark.parametrize("bad", [-5, 0])
def test_non_positive_events_raise_naming_the_flag(bad):
    with pytest.raises(SundayError, match=f"--events must be a positive integer, got {bad}"):
        SimConfig(n_events=bad)


def test_other_bad_settings_raise(tmp_path):
    with pytest.raises(SundayError, match="--events"):
        SimConfig(n_events="many")  # type: ignore[arg-type]
    with pytest.raises(SundayError, match="--seed"):
        SimConfig(n_events=10, seed=-1)
    with pytest.raises(SundayError, match="--skills"):
        SimConfig(n_events=10, skills=("backend", "cooking"))
    with pytest.raises(SundayError, match="--engine"):
        simulate(SimConfig(n_events=10), out_dir=tmp_path / "sim", engine="spark")
    assert not (tmp_path / "sim").exists()


# -- writing -------------------------------------------------------------------------------------------------------

def test_local_writer_keeps_truth_apart_and_reads_back(settings, sim):
    out = settings.simulations_dir / "small"
    result = simulate(SMALL, out, engine="local", progress=False)
    path = result.path
    assert result.counts["events"] == sim.events.num_rows and result.events_per_second > 0
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["counts"] == result.counts and manifest["config"]["n_events"] == SMALL.n_events
    # observable folders hold only spec columns; the truth lives under truth/
    for name, spec in OBSERVABLE_SPECS.items():
        for f in (path / name).rglob("*.parquet"):
            cols = set(pq.read_schema(f).names)
            assert cols <= set(get_spec(spec).columns), f
    assert sorted(p.name for p in (path / "truth").iterdir()) == sorted(TRUTH_SCHEMAS)
    assert {p.name.split("=")[0] for p in (path / "events").iterdir()} == {"workspace_id"}
    _assert_same(read_simulation(out), sim)
    # a failed run leaves the live version untouched
    with pytest.raises(SundayError):
        simulate(SMALL, out, engine="nope")
    assert read_simulation(out)["tasks"].equals(sim["tasks"])


def test_ray_engine_writes_the_same_rows_as_local(ray_session, settings):
    config = SimConfig(n_events=20_000, seed=5, events_per_workspace=5_000, start=datetime(2023, 6, 1))
    ray_out = simulate(config, settings.simulations_dir / "ray", engine="ray", progress=False, partitions=3)
    local_out = simulate(config, settings.simulations_dir / "local", engine="local", progress=False, partitions=1)
    assert ray_out.n_partitions == 3 and local_out.n_partitions == 1
    assert ray_out.counts == local_out.counts
    assert 16_000 <= ray_out.n_events <= 24_000
    from_ray, from_local = read_simulation(ray_out.path), read_simulation(local_out.path)
    _assert_same(from_ray, from_local)
    _assert_same(from_ray, simulate_tables(config))
