"""Run the simulation in memory, or write it as Parquet with one process (``local``) or Ray Data (``ray``).

Layout of a written simulation (one version folder under ``out_dir``, swapped in atomically)::

    manifest.json                      config, counts, engine, timing, observation cut-off
    workspaces/ teams/ users/ projects/ tasks/      part-NNNNN.parquet, one file per partition
    events/workspace_id=<id>/*.parquet              the event log, hive-partitioned by workspace
    truth/<name>/part-NNNNN.parquet                 hidden ground truth (never mixed with the above)

Both engines run the same partition function, so they write the same rows; only the names of the event files
differ (Ray Data names its own).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from sunday.data.simulator.config import Plan, SimConfig, make_plan
from sunday.data.simulator.workspace import (
    OBSERVABLE_SPECS, TRUTH_SCHEMAS, PartitionOutput, conform, generate_partition, table_names,
)
from sunday.errors import SundayError
from sunday.store import atomic_version, current_version

ENGINES = ("local", "ray")
EVENTS = "events"
PARTITION_COLUMN = "workspace_id"


@dataclass(frozen=True)
class SimTables:
    """Observable tables (name -> table, ``events`` in the ``task_events`` schema) and the hidden truth."""

    observable: dict[str, pa.Table]
    truth: dict[str, pa.Table]

    def __getitem__(self, name: str) -> pa.Table:
        if name.startswith("truth/"):
            return self.truth[name.split("/", 1)[1]]
        return self.observable[name]

    @property
    def events(self) -> pa.Table:
        return self.observable[EVENTS]

    def counts(self) -> dict[str, int]:
        out = {name: t.num_rows for name, t in self.observable.items()}
        out.update({f"truth/{name}": t.num_rows for name, t in self.truth.items()})
        return out


@dataclass(frozen=True)
class SimResult:
    path: Path
    engine: str
    counts: dict[str, int]
    seconds: float
    n_workspaces: int
    n_partitions: int
    extra: dict = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        return self.counts.get(EVENTS, 0)

    @property
    def events_per_second(self) -> float:
        return self.n_events / self.seconds if self.seconds > 0 else float("inf")


def _split(tables: dict[str, pa.Table]) -> SimTables:
    return SimTables({k: v for k, v in tables.items() if not k.startswith("truth/")},
                     {k.split("/", 1)[1]: v for k, v in tables.items() if k.startswith("truth/")})


def iter_partitions(config: SimConfig, plan: Plan | None = None) -> Iterator[PartitionOutput]:
    plan = plan or make_plan(config)
    for i in range(plan.n_partitions):
        yield generate_partition(config, plan, i)


def simulate_tables(config: SimConfig, partitions: int | None = None) -> SimTables:
    """The whole simulation in memory (for tests and small demos)."""
    plan = make_plan(config, partitions)
    parts = list(iter_partitions(config, plan))
    return _split({name: pa.concat_tables([p.tables[name] for p in parts]) for name in table_names()})


# -- writing ---------------------------------------------------------------------------------------------------

def _part_file(root: Path, name: str, index: int) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"part-{index:05d}.parquet"


def write_side_tables(root: Path, part: PartitionOutput) -> None:
    """Every table but the event log, one file per table and partition (deterministic names: retries overwrite)."""
    for name, table in part.tables.items():
        if name != EVENTS:
            pq.write_table(table, _part_file(root, name, part.index))


def _write_events_local(root: Path, part: PartitionOutput) -> None:
    """The partition's events as one file per workspace, in the hive layout Ray Data writes."""
    events = part.tables[EVENTS]
    body = events.drop_columns([PARTITION_COLUMN])
    runs = pc.run_end_encode(events.column(PARTITION_COLUMN).combine_chunks())  # events are grouped by workspace
    start = 0
    for end, ws in zip(runs.run_ends.to_pylist(), runs.values.to_pylist()):
        folder = root / EVENTS / f"{PARTITION_COLUMN}={ws}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(body.slice(start, end - start), folder / f"part-{part.index:05d}.parquet")
        start = end


def _write_local(config: SimConfig, plan: Plan, root: Path, progress: bool) -> None:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.n_events, unit="ev", unit_scale=True, desc="simulate (local)")
    try:
        for part in iter_partitions(config, plan):
            write_side_tables(root, part)
            _write_events_local(root, part)
            if bar is not None:
                bar.update(part.n_events)
    finally:
        if bar is not None:
            bar.close()


def _ray_partitions(batch: pa.Table, config: SimConfig, plan: Plan, root: str) -> pa.Table:
    """Ray Data map_batches UDF: generate the partitions named in ``batch``, write their side tables, return
    their events (Ray Data writes those)."""
    events = []
    for index in batch.column("id").to_pylist():
        part = generate_partition(config, plan, int(index))
        write_side_tables(Path(root), part)
        events.append(part.tables[EVENTS])
    return pa.concat_tables(events)


def _write_ray(config: SimConfig, plan: Plan, root: Path, progress: bool) -> None:
    import ray.data

    from sunday.runtime import ray_data_context

    with ray_data_context(progress=progress):
        # a materialised input (no read operator): the one fused map->write operator gets every CPU
        ds = ray.data.from_items([{"id": i} for i in range(plan.n_partitions)],
                                 override_num_blocks=plan.n_partitions)
        ds = ds.map_batches(_ray_partitions, batch_size=1, batch_format="pyarrow", num_cpus=1,
                            fn_kwargs={"config": config, "plan": plan, "root": str(root)})
        ds.write_parquet(str(root / EVENTS), partition_cols=[PARTITION_COLUMN])


def count_rows(root: Path) -> dict[str, int]:
    counts = {}
    for name in table_names():
        files = sorted((root / name).rglob("*.parquet")) if (root / name).exists() else []
        counts[name] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return counts


def simulate(config: SimConfig, out_dir: Path, engine: str = "ray", progress: bool = True,
             partitions: int | None = None) -> SimResult:
    """Simulate and write ``out_dir`` as a new version (atomically); return where, how much and how fast."""
    if engine not in ENGINES:
        raise SundayError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    plan = make_plan(config, partitions)
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    with atomic_version(out_dir) as staging:
        if engine == "local":
            _write_local(config, plan, staging, progress)
        else:
            _write_ray(config, plan, staging, progress)
        counts = count_rows(staging)
        seconds = time.perf_counter() - t0
        manifest = {
            "generator": "sunday.data.simulator", "config": config.to_dict(), "engine": engine,
            "workspaces": plan.n_workspaces, "partitions": plan.n_partitions,
            "observed_from": config.start.isoformat(), "observed_until": config.end.isoformat(),
            "counts": counts, "seconds": round(seconds, 3),
            "layout": {"observable": {n: s for n, s in OBSERVABLE_SPECS.items()},
                       "events_partitioning": f"hive:{PARTITION_COLUMN}",
                       "truth": sorted(f"truth/{n}" for n in TRUTH_SCHEMAS)},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    path = current_version(out_dir)
    return SimResult(path=path, engine=engine, counts=counts, seconds=seconds, n_workspaces=plan.n_workspaces,
                     n_partitions=plan.n_partitions)


def read_simulation(path: Path) -> SimTables:
    """Read a written simulation (a version folder, or the folder holding versions) back into tables, in the
    canonical order (partition files in order; events by event id)."""
    path = Path(path)
    if not (path / "manifest.json").exists():
        live = current_version(path)
        if live is None:
            raise SundayError(f"no simulation found at {path}")
        path = live
    tables = {}
    for name in table_names():
        folder = path / name
        if name == EVENTS:
            data = pads.dataset(folder, format="parquet", partitioning="hive").to_table()
            data = data.set_column(data.schema.get_field_index(PARTITION_COLUMN), PARTITION_COLUMN,
                                   data.column(PARTITION_COLUMN).cast(pa.string()))
            data = data.sort_by([("event_id", "ascending")])
        else:
            files = sorted(folder.glob("*.parquet"))
            data = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
            if data is None:
                data = (TRUTH_SCHEMAS[name.split("/", 1)[1]].empty_table() if name.startswith("truth/")
                        else None)
        if data is None:
            from sunday.schema import get_spec

            data = get_spec(OBSERVABLE_SPECS[name]).schema.empty_table()
        tables[name] = conform(name, data.select([c for c in _columns(name) if c in data.column_names]))
    return _split(tables)


def _columns(name: str) -> list[str]:
    if name in OBSERVABLE_SPECS:
        from sunday.schema import get_spec

        return get_spec(OBSERVABLE_SPECS[name]).columns
    return TRUTH_SCHEMAS[name.split("/", 1)[1]].names
