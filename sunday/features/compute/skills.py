"""``user_skills``: one row per user at the end of every ISO week (Sunday 23:59:59.999999 UTC) in which they
completed a task, built from every task they completed at or before that moment: the mean text embedding of
those tasks, their counts per required skill (in ``skill_vocab()`` order) and how many there are.

A completed task is a ``completed`` event naming the user (each task once per user: its first completion);
required skills come from the tasks table (fixed at creation). The text embedding of a task comes from the
``embedder`` (see :mod:`sunday.features.embeddings`).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from sunday.features.compute.common import (
    empty, float_lists, group_cumsum, group_starts, prepare_events, scalar_us, to_arrow, week_end,
)
from sunday.features.groups import skill_vocab

GROUP = "user_skills"


class Embedder(Protocol):
    def task_vectors(self, titles: Sequence[str], descriptions: Sequence[str]) -> np.ndarray:
        """(n, 384) float32: the text embedding of each task."""


def completions(ev: pd.DataFrame) -> pd.DataFrame:
    """(user_id, task_id, ts, seq) of each user's first completion of each task, in time order."""
    c = ev.loc[(ev["event_type"] == "completed") & ev["user_id"].notna(), ["user_id", "task_id", "ts", "seq"]]
    return c.drop_duplicates(["user_id", "task_id"]).sort_values(["ts", "seq"], kind="stable")


def skill_matrix(tasks: pd.DataFrame, task_ids: np.ndarray) -> np.ndarray:
    vocab = {s: i for i, s in enumerate(skill_vocab())}
    req = tasks.drop_duplicates("task_id").set_index("task_id")["required_skills"].reindex(task_ids)
    out = np.zeros((len(task_ids), len(vocab)), dtype=np.float64)
    for i, skills in enumerate(req.to_numpy()):
        if skills is None or isinstance(skills, float):
            continue
        for s in skills:
            j = vocab.get(s)
            if j is not None:
                out[i, j] += 1.0
    return out


def task_vectors(tasks: pd.DataFrame, task_ids: np.ndarray, embedder: Embedder) -> np.ndarray:
    t = tasks.drop_duplicates("task_id").set_index("task_id").reindex(task_ids)
    return np.asarray(embedder.task_vectors(t["title"].fillna("").astype(str).tolist(),
                                            t["description"].fillna("").astype(str).tolist()), dtype=np.float32)


def profiles(comp: pd.DataFrame, tasks: pd.DataFrame, embedder: Embedder, at_of_row: np.ndarray) -> pd.DataFrame:
    """The profile after each of the rows of ``comp`` that closes a (user, stamp) group, the stamp of row i being
    ``at_of_row[i]``. Running sums per user in completion order (float64), then divided by the count."""
    comp = comp.assign(at=at_of_row).sort_values(["user_id", "ts", "seq"], kind="stable").reset_index(drop=True)
    ids = comp["task_id"].to_numpy()
    vec = task_vectors(tasks, ids, embedder).astype(np.float64) if len(ids) else np.zeros((0, 384))
    skl = skill_matrix(tasks, ids)
    user = comp["user_id"].to_numpy()
    start = group_starts(user)
    cv, cs = group_cumsum(vec, start), group_cumsum(skl, start)
    count = np.arange(len(comp)) - start + 1
    last = np.ones(len(comp), dtype=bool)  # the last completion of each (user, stamp)
    at = comp["at"].to_numpy()
    last[:-1] = (user[1:] != user[:-1]) | (at[1:] != at[:-1])
    return pd.DataFrame({"user_id": user[last], "event_timestamp": at[last], "count": count[last],
                         "emb": list((cv[last] / count[last, None]).astype(np.float32)),
                         "skills": list(cs[last])})


def _table(p: pd.DataFrame) -> pa.Table:
    if p.empty:
        return empty(GROUP)
    return to_arrow(GROUP, {
        "user_id": p["user_id"].to_numpy(), "event_timestamp": p["event_timestamp"].to_numpy(),
        "skill_embedding": float_lists(np.stack(p["emb"].to_numpy())),
        "skill_counts": float_lists(np.stack(p["skills"].to_numpy())),
        "skill_task_count": p["count"].to_numpy(),
    })


def compute(ev: pd.DataFrame, tasks: pd.DataFrame, embedder: Embedder) -> pa.Table:
    comp = completions(ev)
    return _table(profiles(comp, tasks, embedder, week_end(comp["ts"].to_numpy())))


def user_skills_asof(events: pd.DataFrame, tasks: pd.DataFrame, user_id: str, as_of: pd.Timestamp,
                     embedder: Embedder) -> dict[str, object] | None:
    """One user's profile as of any timestamp (None before their first completion); same code as the batch."""
    at = scalar_us(as_of)
    ev = prepare_events(events)
    comp = completions(ev[(ev["ts"] <= at) & (ev["user_id"] == user_id)])
    if comp.empty:
        return None
    p = profiles(comp, tasks, embedder, np.full(len(comp), at, dtype=np.int64)).iloc[-1]
    return {"user_id": user_id, "event_timestamp": pd.Timestamp(at, unit="us", tz="UTC"),
            "skill_embedding": p["emb"].tolist(), "skill_counts": p["skills"].tolist(),
            "skill_task_count": int(p["count"])}
