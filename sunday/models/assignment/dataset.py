"""Assignment training data from a workspace's event log and the feature store (point-in-time correct).

One *decision* per task: its first ``assigned`` event. The candidates are the members of the assignee's team
(the people a lead would choose from); the label is who got it. Every candidate's features come from
:func:`sunday.features.training.training_set` (service ``assignment``) as of one microsecond before the decision,
so a profile holds only work done before the task was assigned (cold-start users simply have empty profiles).
The task's text embedding (the feature platform's MiniLM cache) gives ``task_embedding`` for ``embed_sim``.

Outcomes, known for the assignee's row only (NaN for the other candidates):

* ``completed``: the task was completed within ``horizon_days`` of the assignment (decisions closer than that to
  the end of the log are left unknown);
* ``quality`` (0-5), from what the log shows: 5, minus 1 per review cycle beyond the first, minus 1.5 if done
  after its due date, minus 1.5 if reassigned away, minus 2.5 if not completed within the horizon (floor 0);
* ``hours``: hours the assignee logged on the task (for the hours-per-point estimate).

Decisions are ordered by time; :func:`time_split` holds out the latest ones for the champion/challenger gate.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np
import pandas as pd

from sunday.features.groups import TIMESTAMP


@dataclass
class AssignmentData:
    pairs: pd.DataFrame  # pair frame, rows of a task contiguous, decisions in time order
    assigned: np.ndarray
    completed: np.ndarray
    quality: np.ndarray
    hours: np.ndarray

    @property
    def n_tasks(self) -> int:
        return int(self.pairs["task_id"].nunique())

    def subset(self, mask: np.ndarray) -> "AssignmentData":
        return AssignmentData(self.pairs[mask].reset_index(drop=True), self.assigned[mask], self.completed[mask],
                              self.quality[mask], self.hours[mask])


def decisions(events: pd.DataFrame, tasks: pd.DataFrame, users: pd.DataFrame, horizon_days: float = 30.0,
              max_tasks: int | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per task's first assignment with its outcome (``completed``, ``quality``, ``hours``)."""
    ev = events.sort_values(["timestamp", "event_id"], kind="stable")
    first = ev[ev["event_type"] == "assigned"].drop_duplicates("task_id")[["task_id", "user_id", "timestamp"]]
    first = first[first["user_id"].notna()]
    team = users.set_index("user_id")["team_id"]
    first = first[first["user_id"].isin(team.index)]
    first["team_id"] = team.loc[first["user_id"]].to_numpy()
    if max_tasks is not None and len(first) > max_tasks:
        first = first.sample(max_tasks, random_state=seed).sort_values("timestamp", kind="stable")
    end = ev["timestamp"].max()
    horizon = pd.Timedelta(days=horizon_days)

    done = ev[ev["event_type"] == "completed"].drop_duplicates("task_id", keep="first").set_index("task_id")["timestamp"]
    reviews = ev[(ev["event_type"] == "status_changed") & (ev["to_status"] == "in_review")].groupby("task_id").size()
    moved = ev[ev["event_type"] == "reassigned"].groupby("task_id").size()
    logged = ev[ev["event_type"] == "time_logged"].groupby(["task_id", "user_id"])["hours"].sum()
    due = tasks.set_index("task_id")["due_date"]

    d = first.reset_index(drop=True)
    t_done = d["task_id"].map(done)
    within = t_done.notna() & (t_done - d["timestamp"] <= horizon)
    known = (d["timestamp"] + horizon <= end) | within
    d["completed"] = np.where(known, within.astype(float), np.nan)
    cycles = d["task_id"].map(reviews).fillna(0).to_numpy()
    late = (t_done.notna() & d["task_id"].map(due).notna() & (t_done > d["task_id"].map(due))).to_numpy()
    reassigned = d["task_id"].map(moved).fillna(0).to_numpy() > 0
    q = 5.0 - np.maximum(cycles - 1, 0) - 1.5 * late - 1.5 * reassigned - 2.5 * (~within.to_numpy())
    d["quality"] = np.where(known, np.clip(q, 0, 5), np.nan)
    keys = list(zip(d["task_id"], d["user_id"]))
    d["hours"] = [float(logged.get(k, np.nan)) for k in keys]
    return d


def candidate_rows(dec: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """(task, team member) rows for every decision, the assignee flagged, in decision order."""
    members = users[users["team_id"].notna()][["user_id", "team_id"]].rename(columns={"user_id": "candidate"})
    dec = dec.assign(_order=np.arange(len(dec)))
    rows = dec.merge(members, on="team_id", how="inner").sort_values(["_order", "candidate"], kind="stable")
    rows["assigned"] = (rows["candidate"] == rows["user_id"]).astype(float)
    for col in ("completed", "quality", "hours"):
        rows[col] = np.where(rows["assigned"] == 1, rows[col], np.nan)
    rows = rows.drop(columns=["user_id"]).rename(columns={"candidate": "user_id"})
    return rows.reset_index(drop=True)


def from_simulation(settings, sim_name: str = "default", max_tasks: int | None = 3000, horizon_days: float = 30.0,
                    seed: int = 0, embeddings: bool = True) -> AssignmentData:
    """Training pairs of a simulated workspace whose feature platform is built (``sunday features build``)."""
    from sunday.data.simulator import read_simulation
    from sunday.features.platform import simulation_path
    from sunday.features.training import training_set

    sim = read_simulation(simulation_path(settings, sim_name))
    events = sim.events.to_pandas()
    tasks = sim.observable["tasks"].to_pandas()
    users = sim.observable["users"].to_pandas()
    dec = decisions(events, tasks, users, horizon_days=horizon_days, max_tasks=max_tasks, seed=seed)
    rows = candidate_rows(dec, users)
    entity = pd.DataFrame({"task_id": rows["task_id"], "user_id": rows["user_id"], "team_id": rows["team_id"],
                           TIMESTAMP: rows["timestamp"] - pd.Timedelta(microseconds=1)})
    feats = training_set(entity, "assignment", settings)
    pairs = pd.concat([rows[["task_id", "user_id", "team_id", "timestamp"]],
                       feats.drop(columns=["task_id", "user_id", "team_id", TIMESTAMP])], axis=1)
    text = tasks.set_index("task_id")[["title", "description"]]
    pairs["title"] = pairs["task_id"].map(text["title"])
    pairs["description"] = pairs["task_id"].map(text["description"])
    if embeddings:
        attach_task_embeddings(settings, pairs)
    return AssignmentData(pairs, rows["assigned"].to_numpy(), rows["completed"].to_numpy(),
                          rows["quality"].to_numpy(), rows["hours"].to_numpy())


def attach_task_embeddings(settings, pairs: pd.DataFrame) -> None:
    """``task_embedding`` column (MiniLM of title + description, from the feature platform's cache)."""
    from sunday.features.embeddings import TextEmbedder

    first = pairs.drop_duplicates("task_id")
    vectors = TextEmbedder.for_settings(settings).task_vectors(first["title"].fillna("").tolist(),
                                                               first["description"].fillna("").tolist())
    by_task = dict(zip(first["task_id"], list(vectors)))
    pairs["task_embedding"] = pairs["task_id"].map(by_task)


def time_split(data: AssignmentData, holdout: float = 0.2) -> tuple[AssignmentData, AssignmentData]:
    """(train, holdout): the latest ``holdout`` share of decisions (by assignment time) held out."""
    order = data.pairs.drop_duplicates("task_id")["task_id"].tolist()  # decision order
    cut = int(len(order) * (1 - holdout))
    late = set(order[cut:])
    mask = data.pairs["task_id"].isin(late).to_numpy()
    return data.subset(~mask), data.subset(mask)
