"""The offline feature build: a written simulation (event log) -> one Parquet dataset per feature group.

    result = build_features(settings, sim_path, engine="ray")     # or engine="local" (one process)
    offline_path(settings, "user_workload")                         # <home>/features/offline/<version>/user_workload

Stages:

1. **embed**: every distinct task text of the simulation is embedded once through the persistent cache
   (:class:`~sunday.features.embeddings.TextEmbedder`, MiniLM on CPU); only texts never seen before cost model time.
2. **compute**: the workspaces are grouped into batches (never across the simulator's partition files, so each
   batch reads its side tables once); each batch runs :func:`~sunday.features.compute.compute_workspace` on its
   workspaces and writes ``<staging>/<group>/part-<batch>.parquet`` (deterministic names: a retried task
   overwrites its own files). ``engine="ray"``: Ray Data, one task per batch, the embedding lookup shared through
   the object store; ``engine="local"``: the same function in a plain loop (the single-process baseline).
3. **validate**: each group's full table goes to the ``validate(group, table)`` hook; an exception aborts the build
   and the previous version stays live (everything is written inside :func:`sunday.store.atomic_version`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from sunday.errors import SundayError
from sunday.features.groups import GROUPS
from sunday.settings import Settings
from sunday.store import atomic_version, current_version

ENGINES = ("ray", "local")
Validator = Callable[[str, pa.Table], None]


@dataclass
class BuildResult:
    path: Path
    engine: str
    rows: dict[str, int]
    seconds: float
    n_events: int
    n_workspaces: int
    n_batches: int
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage
    embedding: dict = field(default_factory=dict)  # texts, cache hits, embedded, seconds

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")


def offline_root(settings: Settings) -> Path:
    return settings.home / "features" / "offline"


def offline_path(settings: Settings, group: str) -> Path:
    """The folder of a group's Parquet files in the live version of the offline features."""
    if group not in GROUPS:
        raise SundayError(f"unknown feature group {group!r}; known: {', '.join(GROUPS)}")
    live = current_version(offline_root(settings))
    if live is None or not (live / group).exists():
        raise SundayError("no features built yet: run sunday features build")
    return live / group


def read_group(settings: Settings, group: str) -> pa.Table:
    """A group's whole table from the live version."""
    return _read_folder(offline_path(settings, group), group)


def _read_folder(folder: Path, group: str) -> pa.Table:
    schema = GROUPS[group].arrow_schema()
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return schema.empty_table()
    return pads.dataset(files, schema=schema, format="parquet").to_table()


# -- the per-batch step (shared by both engines) ------------------------------------------------------------------

def compute_batch(sim: str, batch: int, workspace_ids: list[str], staging: str, lookup) -> dict:
    """Compute every group of the batch's workspaces and write one file per group; returns counts."""
    from sunday.features.compute import compute_workspace, iter_workspaces

    t0 = time.perf_counter()
    parts: dict[str, list[pa.Table]] = {g: [] for g in GROUPS}
    n_events = 0
    for frames in iter_workspaces(Path(sim), workspace_ids):
        n_events += frames.n_events
        for g, table in compute_workspace(frames, lookup).items():
            parts[g].append(table)
    rows = {}
    for g, tables in parts.items():
        table = pa.concat_tables(tables) if tables else GROUPS[g].arrow_schema().empty_table()
        folder = Path(staging) / g
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".part-{batch:05d}.parquet.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / f"part-{batch:05d}.parquet")
        rows[g] = table.num_rows
    return {"batch": batch, "workspaces": len(workspace_ids), "events": n_events,
            "seconds": time.perf_counter() - t0, **{f"rows_{g}": n for g, n in rows.items()}}


def _ray_batch(batch: dict, sim: str, staging: str, lookup_ref) -> dict:
    """Ray Data ``map_batches`` UDF (batch_size=1): one batch of workspaces."""
    import numpy as np
    import ray

    from sunday.features.embeddings import EmbeddingLookup

    state = lookup_ref if isinstance(lookup_ref, tuple) else ray.get(lookup_ref[0])
    lookup = EmbeddingLookup.from_state(state)
    out = []
    for b, ids in zip(batch["batch"], batch["ids"]):
        out.append(compute_batch(sim, int(b), [str(x) for x in ids], staging, lookup))
    return {k: np.array([o[k] for o in out]) for k in out[0]}


def plan_batches(workspaces, cpus: int, max_per_batch: int | None = None) -> list[list[str]]:
    """Workspaces -> batches: consecutive workspaces of one partition file, about 4 batches per CPU."""
    n = len(workspaces)
    per = max_per_batch or max(1, min(8, math.ceil(n / max(1, 4 * cpus))))
    batches: list[list[str]] = []
    for _, group in workspaces.groupby("part", sort=False):
        ids = group["workspace_id"].tolist()
        batches += [ids[i:i + per] for i in range(0, len(ids), per)]
    return batches


# -- stages ---------------------------------------------------------------------------------------------------------

def simulation_texts(sim: Path, mode: str) -> list[str]:
    """The distinct texts whose embeddings the tasks of the simulation need."""
    import pandas as pd

    from sunday.features.embeddings import task_texts

    files = sorted((sim / "tasks").glob("*.parquet"))
    if not files:
        return []
    t = pa.concat_tables([pq.read_table(f, columns=["title", "description"]) for f in files]).to_pandas()
    if mode == "parts":
        return task_texts(pd.unique(t["title"]).tolist(), pd.unique(t["description"]).tolist(), mode)
    t = t.drop_duplicates()
    return task_texts(t["title"].tolist(), t["description"].tolist(), mode)


def _count_events(sim: Path) -> int:
    manifest = sim / "manifest.json"
    if manifest.exists():
        counts = json.loads(manifest.read_text()).get("counts", {})
        if "events" in counts:
            return int(counts["events"])
    return sum(pq.ParquetFile(f).metadata.num_rows for f in (sim / "events").rglob("*.parquet"))


def _run_local(sim: Path, batches: list[list[str]], staging: Path, lookup, progress: bool) -> list[dict]:
    from tqdm import tqdm

    out = []
    with tqdm(total=sum(len(b) for b in batches), unit="ws", desc="features (local)", disable=not progress) as bar:
        for i, ids in enumerate(batches):
            out.append(compute_batch(str(sim), i, ids, str(staging), lookup))
            bar.update(len(ids))
    return out


def _run_ray(settings: Settings, sim: Path, batches: list[list[str]], staging: Path, lookup,
             progress: bool) -> list[dict]:
    import ray
    import ray.data

    from sunday.runtime import ray_data_context

    with ray_data_context(settings, progress=progress):
        ref = ray.put(lookup.state())
        ds = ray.data.from_items([{"batch": i, "ids": ids} for i, ids in enumerate(batches)],
                                 override_num_blocks=len(batches))
        ds = ds.map_batches(_ray_batch, batch_size=1, num_cpus=1,
                            fn_kwargs={"sim": str(sim), "staging": str(staging), "lookup_ref": [ref]})
        return ds.take_all()


def build_features(settings: Settings, sim_path: Path, engine: str = "ray", progress: bool = True,
                   validate: Validator | None = None, embedder=None, text_mode: str = "parts",
                   max_workspaces_per_batch: int | None = None) -> BuildResult:
    """Build every feature group from the simulation at ``sim_path`` as a new version of
    ``<home>/features/offline`` (swapped in only when every group is written and validated)."""
    from sunday.features.compute import list_workspaces, resolve_simulation
    from sunday.features.embeddings import TextEmbedder

    if engine not in ENGINES:
        raise SundayError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    t_start = time.perf_counter()
    stages: dict[str, float] = {}
    sim = resolve_simulation(Path(sim_path))
    workspaces = list_workspaces(sim)
    if workspaces.empty:
        raise SundayError(f"the simulation at {sim} has no workspaces")
    n_events = _count_events(sim)

    # 1. embeddings of every distinct task text, through the cache
    t0 = time.perf_counter()
    if embedder is None:
        embedder = TextEmbedder.for_settings(settings, text_mode=text_mode, progress=progress)
    texts = simulation_texts(sim, embedder.text_mode)
    before = dict(embedder.stats)
    lookup = embedder.lookup(texts)
    stages["embed"] = time.perf_counter() - t0
    embedding = {"texts": len(texts), "text_mode": embedder.text_mode,
                 "cache_hits": embedder.stats["cache_hits"] - before["cache_hits"],
                 "embedded": embedder.stats["embedded"] - before["embedded"],
                 "model_s": embedder.stats["embed_s"] - before["embed_s"], "seconds": stages["embed"]}

    cpus = os.cpu_count() or 1
    if engine == "ray":
        import ray

        if ray.is_initialized():
            cpus = int(ray.cluster_resources().get("CPU", cpus))
    batches = plan_batches(workspaces, cpus, max_workspaces_per_batch)
    rows: dict[str, int] = {}
    root = offline_root(settings)
    with atomic_version(root) as staging:
        # 2. per-workspace features
        t0 = time.perf_counter()
        if engine == "local":
            stats = _run_local(sim, batches, staging, lookup, progress)
        else:
            stats = _run_ray(settings, sim, batches, staging, lookup, progress)
        stages["compute"] = time.perf_counter() - t0
        if len(stats) != len(batches):
            raise SundayError(f"feature build: {len(stats)} of {len(batches)} batches reported back")
        # 3. validation of each group's full table, before the swap
        t0 = time.perf_counter()
        for g in GROUPS:
            folder = staging / g
            folder.mkdir(exist_ok=True)
            table = _read_folder(folder, g)
            rows[g] = table.num_rows
            if validate is not None:
                validate(g, table)
            del table
        stages["validate"] = time.perf_counter() - t0
        seconds = time.perf_counter() - t_start
        manifest = {
            "built_from": str(sim), "engine": engine, "groups": {g: {"rows": rows[g], "path": g} for g in GROUPS},
            "workspaces": len(workspaces), "batches": len(batches), "events": n_events,
            "seconds": round(seconds, 3), "stages": {k: round(v, 3) for k, v in stages.items()},
            "embedding": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in embedding.items()},
            "point_in_time": "a row stamped T uses only events with timestamp <= T",
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return BuildResult(path=current_version(root), engine=engine, rows=rows, seconds=time.perf_counter() - t_start,
                       n_events=n_events, n_workspaces=len(workspaces), n_batches=len(batches), stages=stages,
                       embedding=embedding)
