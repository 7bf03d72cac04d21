"""One workspace's observable tables and event log as pandas frames.

Reads only the observable folders of a written simulation (``workspaces/ teams/ users/ projects/ tasks/`` and
``events/workspace_id=<id>/``); the hidden ``truth/`` folder is never opened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sunday.errors import SundayError

SIDE_TABLES = ("workspaces", "teams", "users", "projects", "tasks")
EVENTS = "events"
PARTITION = "workspace_id"


@dataclass
class WorkspaceFrames:
    workspace_id: str
    workspaces: pd.DataFrame
    teams: pd.DataFrame
    users: pd.DataFrame
    projects: pd.DataFrame
    tasks: pd.DataFrame
    events: pd.DataFrame  # task_events schema (naive UTC timestamps)

    @property
    def n_events(self) -> int:
        return len(self.events)


def resolve_simulation(path: Path) -> Path:
    """A simulation version folder (holding ``manifest.json``), given it or the folder holding its versions."""
    from sunday.store import current_version

    path = Path(path)
    if (path / "manifest.json").exists():
        return path
    live = current_version(path)
    if live is None or not (live / "manifest.json").exists():
        raise SundayError(f"no simulation found at {path} (run: sunday data simulate)")
    return live


@functools.lru_cache(maxsize=8)
def _index(sim: str) -> tuple[tuple[str, str], ...]:
    files = sorted((Path(sim) / "workspaces").glob("*.parquet"))
    out = []
    for f in files:
        for ws in pq.read_table(f, columns=[PARTITION]).column(PARTITION).to_pylist():
            out.append((str(ws), f.name))
    return tuple(out)


def list_workspaces(sim_path: Path) -> pd.DataFrame:
    """(workspace_id, part) of every workspace of the simulation; ``part`` names the side-table files holding it
    (the simulator writes one file per partition and table, with the same name in every table folder)."""
    sim = resolve_simulation(sim_path)
    idx = _index(str(sim))
    return pd.DataFrame({"workspace_id": [w for w, _ in idx], "part": [p for _, p in idx]})


def _read_side(sim: Path, table: str, part: str | None, ids: list[str]) -> pa.Table:
    folder = sim / table
    files = [folder / part] if part is not None and (folder / part).exists() else sorted(folder.glob("*.parquet"))
    filt = [(PARTITION, "in", ids)]
    tables = [pq.read_table(f, filters=filt) for f in files]
    return pa.concat_tables(tables) if tables else pa.table({PARTITION: pa.array([], pa.string())})


def read_events(sim: Path, workspace_id: str) -> pa.Table:
    folder = sim / EVENTS / f"{PARTITION}={workspace_id}"
    files = sorted(folder.glob("*.parquet"))
    if not files:
        from sunday.schema import get_spec

        return get_spec("task_events").schema.empty_table()
    t = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
    if PARTITION in t.column_names:
        t = t.drop_columns([PARTITION])
    t = t.append_column(PARTITION, pa.array([workspace_id] * t.num_rows, type=pa.string()))
    return t


def _split(table: pa.Table, ids: list[str]) -> dict[str, pd.DataFrame]:
    df = table.to_pandas()
    if PARTITION not in df.columns:
        return {w: df.iloc[0:0] for w in ids}
    return {w: g.reset_index(drop=True) for w, g in df.groupby(PARTITION, sort=False)} | \
        {w: df.iloc[0:0] for w in ids if w not in set(df[PARTITION])}


def iter_workspaces(sim_path: Path, workspace_ids: Iterable[str]) -> Iterator[WorkspaceFrames]:
    """Frames of each of ``workspace_ids`` (in order); side tables are read once per partition file."""
    sim = resolve_simulation(sim_path)
    ids = [str(w) for w in workspace_ids]
    part_of = dict(_index(str(sim)))
    unknown = [w for w in ids if w not in part_of]
    if unknown:
        raise SundayError(f"workspace {unknown[0]!r} is not in the simulation at {sim}")
    cache: dict[str, dict[str, dict[str, pd.DataFrame]]] = {}
    for w in ids:
        part = part_of[w]
        if part not in cache:
            cache.clear()
            wanted = [x for x in ids if part_of[x] == part]
            cache[part] = {t: _split(_read_side(sim, t, part, wanted), wanted) for t in SIDE_TABLES}
        side = cache[part]
        yield WorkspaceFrames(workspace_id=w, **{t: side[t][w] for t in SIDE_TABLES},
                              events=read_events(sim, w).to_pandas())


def load_workspace(sim_path: Path, workspace_id: str) -> WorkspaceFrames:
    """One workspace's observable tables + events, from a written simulation."""
    return next(iter_workspaces(sim_path, [workspace_id]))


def frames_from_tables(tables: Mapping[str, pa.Table] | object, workspace_id: str | None = None) -> WorkspaceFrames:
    """Frames of one workspace from in-memory tables (``simulate_tables(...)``'s ``SimTables`` or a name -> table
    mapping of the observable tables); ``workspace_id`` may be left out when there is only one."""
    obs = getattr(tables, "observable", tables)
    if workspace_id is None:
        ids = pd.unique(obs["workspaces"].column(PARTITION).to_numpy(zero_copy_only=False))
        if len(ids) != 1:
            raise SundayError(f"{len(ids)} workspaces: name the one to load")
        workspace_id = str(ids[0])
    import pyarrow.compute as pc

    def pick(name: str) -> pd.DataFrame:
        t = obs[name]
        return t.filter(pc.equal(t.column(PARTITION), workspace_id)).to_pandas()

    return WorkspaceFrames(workspace_id=workspace_id, **{t: pick(t) for t in SIDE_TABLES}, events=pick(EVENTS))
