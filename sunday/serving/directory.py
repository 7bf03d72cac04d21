"""Who belongs to which workspace, and where a project's timeline inputs come from.

:class:`WorkspaceDirectory` maps users, projects and tasks to their workspace, read from the observable tables
of a simulation (or any warehouse in the same layout) and extended by ingested ``created`` events. The API
refuses a request naming an entity of another workspace (HTTP 403) or an entity it has never seen (HTTP 404),
so a key of workspace A never reads B's features or forecasts.

:class:`ProjectCatalog` gives ``predict_timeline`` its input for a project id when the caller sends no history:
the project's daily ``project_velocity`` rows from the offline store, its start / planned end from the
``projects`` table and its team's size and weekly capacity from ``users``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd

from sunday.serving.errors import Forbidden, ServingError


class NotFound(ServingError):
    status_code = 404


def _table(sim_path: Path, name: str, columns: list[str]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    files = sorted((Path(sim_path) / name).glob("*.parquet"))
    if not files:
        return pd.DataFrame(columns=columns)
    return pd.concat([pq.read_table(f, columns=columns).to_pandas() for f in files], ignore_index=True)


class WorkspaceDirectory:
    KINDS = ("user", "project", "task")

    def __init__(self, owners: dict[str, dict[str, str]] | None = None):
        self._owners = {k: dict((owners or {}).get(k, {})) for k in self.KINDS}
        self._lock = threading.Lock()

    @classmethod
    def from_simulation(cls, sim_path: Path) -> "WorkspaceDirectory":
        owners = {}
        for kind, table in (("user", "users"), ("project", "projects"), ("task", "tasks")):
            df = _table(sim_path, table, [f"{kind}_id", "workspace_id"])
            owners[kind] = dict(zip(df[f"{kind}_id"].astype(str), df["workspace_id"].astype(str)))
        return cls(owners)

    def workspace_of(self, kind: str, entity_id: str) -> str | None:
        return self._owners[kind].get(str(entity_id))

    def check(self, kind: str, ids: list[str], workspace_id: str) -> None:
        """Raise Forbidden when any id belongs to another workspace, NotFound when one is unknown."""
        owners = self._owners[kind]
        foreign = [i for i in ids if owners.get(str(i)) not in (None, workspace_id)]
        if foreign:
            raise Forbidden(f"{kind}(s) {foreign[:5]} are not in workspace {workspace_id!r}")
        unknown = [i for i in ids if str(i) not in owners]
        if unknown:
            raise NotFound(f"unknown {kind} id(s) {unknown[:5]} in workspace {workspace_id!r}")

    def add(self, kind: str, entity_id: str, workspace_id: str) -> None:
        """Register a new entity (an ingested ``created`` event); an id already owned elsewhere is refused."""
        with self._lock:
            owner = self._owners[kind].get(str(entity_id))
            if owner is not None and owner != workspace_id:
                raise Forbidden(f"{kind} {entity_id!r} belongs to another workspace")
            self._owners[kind][str(entity_id)] = workspace_id

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self._owners.items()}


class ProjectCatalog:
    """Timeline inputs per project id, from the offline store and the simulation's tables (read once)."""

    def __init__(self, settings: Any, sim_path: Path):
        from sunday.models.timeline.data import team_stats

        self.settings = settings
        self.projects = _table(sim_path, "projects", ["project_id", "workspace_id", "team_id", "start_date",
                                                      "planned_end"]).set_index("project_id")
        users = _table(sim_path, "users", ["user_id", "team_id", "weekly_capacity_hours"])
        self.teams = team_stats(users) if len(users) else pd.DataFrame(columns=["team_size", "team_capacity_hours"])
        self.sim_path = sim_path
        self._velocity: dict[str, pd.DataFrame] | None = None
        self._logs: dict[str, Any] = {}
        self._tables = None
        self._lock = threading.Lock()

    def _series(self, project_id: str) -> pd.DataFrame:
        with self._lock:
            if self._velocity is None:
                import pyarrow.dataset as pads

                from sunday.features.pipeline import offline_path

                table = pads.dataset(offline_path(self.settings, "project_velocity"), format="parquet").to_table()
                frame = table.to_pandas().sort_values("event_timestamp")
                self._velocity = {str(k): g.drop(columns=["project_id"]).reset_index(drop=True)
                                  for k, g in frame.groupby("project_id", sort=False)}
            return self._velocity.get(project_id, pd.DataFrame())

    def tasks(self, workspace_id: str, project_id: str, as_of) -> pd.DataFrame:
        """The project's tasks as of ``as_of`` (features for the task delay-risk model), from the event log."""
        from sunday.models.timeline.task_risk import prepare_workspace, task_risk_features

        with self._lock:
            if workspace_id not in self._logs:
                if self._tables is None:
                    from sunday.data.simulator.writer import read_simulation

                    self._tables = read_simulation(self.sim_path)
                self._logs[workspace_id] = prepare_workspace(self._tables, workspace_id)
            log = self._logs[workspace_id]
        frame = task_risk_features(log, workspace_id, as_of)
        return frame[frame["project_id"] == project_id].reset_index(drop=True)

    def has(self, project_id: str) -> bool:
        return project_id in self.projects.index

    def project(self, project_id: str, with_tasks: bool = True) -> dict[str, Any]:
        """``predict_timeline``'s input for a project id (``tasks``: its tasks as of the last history day)."""
        if project_id not in self.projects.index:
            raise NotFound(f"unknown project id {project_id!r}")
        p = self.projects.loc[project_id]
        hist = self._series(project_id)
        team = self.teams.loc[p["team_id"]] if p["team_id"] in self.teams.index else None
        tasks = None
        if with_tasks and len(hist):
            tasks = self.tasks(str(p["workspace_id"]), project_id, pd.Timestamp(hist["event_timestamp"].iloc[-1]))
        return {"project_id": project_id, "history": hist, "tasks": tasks, "start_date": p["start_date"],
                "planned_end": p["planned_end"],
                "team_size": float(team["team_size"]) if team is not None else 0.0,
                "team_capacity_hours": float(team["team_capacity_hours"]) if team is not None else 0.0}
