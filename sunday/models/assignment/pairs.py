"""(task, candidate) pair features: the one input contract of every assignment ranker.

A *pair frame* has one row per (task, candidate user): ``task_id``, ``user_id``, the task's columns and the
candidate's as-of columns (the names of the ``task_features``, ``user_workload`` and ``user_skills`` feature groups,
as :func:`sunday.features.training.training_set` and the online store return them), plus optional columns a source
may already know per pair (text-model scores, history counts). :func:`pair_features` turns it into the numeric
matrix :data:`FEATURES` (NaN where a source has nothing: the simulator has no text-model score, bug reports have no
workload), grouped into the blocks of :data:`BLOCKS` that the neural ranker encodes separately.

Everything here is computed per task group from the frame alone (shares, ranks within the candidate list), so the
same frame gives the same features in training, in batch evaluation and at serving time.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

# -- pair columns a source may supply directly (left NaN otherwise)
SUPPLIED = (
    "text_score",        # text model (e.g. TF-IDF+SVM decision value) of this candidate for this task
    "knn_score",         # summed similarity of the task to the candidate's past tasks among its nearest neighbours
    "history_count",     # tasks the candidate completed before the task's timestamp
    "recent_count",      # ... of those, in the recent window (source-defined, e.g. the last 10% of history)
    "since_last",        # tasks (or days) since the candidate's last completion before the timestamp
    "embed_sim",         # cosine of the task's text embedding and the candidate's skill_embedding
)

SKILL = ["skill_match", "skill_coverage", "embed_sim", "embed_sim_gap", "text_score", "text_gap", "text_rank",
         "knn_score", "knn_share", "history_share", "recent_share", "since_last_log"]
WORKLOAD = ["open_task_count", "open_points", "capacity_utilisation", "hours_logged_7d", "open_points_share",
            "completed_log", "completion_rate", "on_time_rate", "mean_completion_hours_log", "review_cycles",
            "reassignment_count"]
TASK = ["story_points", "priority_score", "required_skill_count", "complexity", "days_to_due", "n_candidates_log"]

#: block name -> feature names (the neural ranker has one encoder per block)
BLOCKS: dict[str, list[str]] = {"skill": SKILL, "workload": WORKLOAD, "task": TASK}
FEATURES: list[str] = SKILL + WORKLOAD + TASK

#: short, human reasons for the top contributions
DESCRIPTIONS = {
    "skill_match": "skill match with the task's required skills",
    "skill_coverage": "share of required skills already shown",
    "embed_sim": "similar past work (embeddings)",
    "embed_sim_gap": "closest past work of the candidates",
    "text_score": "text model score",
    "text_gap": "text model score vs the best candidate",
    "text_rank": "text model rank",
    "knn_score": "similar past reports fixed",
    "knn_share": "share of the similar past reports",
    "history_share": "share of the team's past work",
    "recent_share": "share of recent work",
    "since_last_log": "time since last completion",
    "open_task_count": "open tasks",
    "open_points": "open story points",
    "capacity_utilisation": "capacity used this week",
    "hours_logged_7d": "hours logged in 7 days",
    "open_points_share": "share of the team's open points",
    "completed_log": "tasks completed so far",
    "completion_rate": "completion rate",
    "on_time_rate": "on-time rate",
    "mean_completion_hours_log": "typical completion time",
    "review_cycles": "review cycles per task",
    "reassignment_count": "reassignments away",
    "story_points": "task size",
    "priority_score": "task priority",
    "required_skill_count": "skills the task needs",
    "complexity": "task complexity",
    "days_to_due": "days to due date",
    "n_candidates_log": "number of candidates",
}


def _num(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.full(len(frame), np.nan)
    values = frame[column]
    if values.dtype.kind in "fiub":
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


class _Groups:
    """Within-task reductions over integer task codes (numpy, no pandas groupby: ranking one task is the hot path)."""

    def __init__(self, task_ids: pd.Series):
        values = task_ids.to_numpy()
        if len(values) and (values == values[0]).all():
            self.codes, self.n = np.zeros(len(values), dtype=np.int64), 1
        else:
            self.codes, uniq = pd.factorize(values)
            self.n = len(uniq)
        self.size = np.bincount(self.codes, minlength=self.n).astype("float64")

    def sum(self, x: np.ndarray) -> np.ndarray:
        """Per-row total of its task (NaN ignored; NaN when the task has no value)."""
        ok = np.isfinite(x)
        tot = np.bincount(self.codes, weights=np.where(ok, x, 0.0), minlength=self.n)
        cnt = np.bincount(self.codes, weights=ok.astype("float64"), minlength=self.n)
        return np.where(cnt > 0, tot, np.nan)[self.codes]

    def max(self, x: np.ndarray) -> np.ndarray:
        out = np.full(self.n, -np.inf)
        np.fmax.at(out, self.codes, np.where(np.isfinite(x), x, -np.inf))
        out = np.where(np.isfinite(out), out, np.nan)
        return out[self.codes]

    def share(self, x: np.ndarray) -> np.ndarray:
        tot = self.sum(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, x / np.where(tot > 0, tot, 1.0), np.nan)

    def rank_desc(self, x: np.ndarray) -> np.ndarray:
        """1 = largest within the task (ties share the lowest rank); NaN stays NaN."""
        out = np.full(len(x), np.nan)
        ok = np.isfinite(x)
        if not ok.any():
            return out
        idx = np.flatnonzero(ok)
        c, v = self.codes[idx], x[idx]
        order = np.lexsort((-v, c))
        c_s, v_s = c[order], v[order]
        start = np.r_[True, c_s[1:] != c_s[:-1]]
        pos = np.arange(len(order)) - np.maximum.accumulate(np.where(start, np.arange(len(order)), 0))
        new_val = np.r_[True, (v_s[1:] != v_s[:-1]) | start[1:]]
        first = np.arange(len(order)) - pos  # index where each row's task starts
        last_new = np.maximum.accumulate(np.where(new_val, np.arange(len(order)), 0))
        out[idx[order]] = (last_new - first + 1).astype("float64")
        return out


def _skill_match(required: pd.Series, counts: pd.Series, vocab: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(match, coverage) per row: mean log1p(count) over the task's required skills, and the share with count > 0."""
    index = {s: i for i, s in enumerate(vocab)}
    n = len(required)
    match = np.full(n, np.nan)
    cover = np.full(n, np.nan)
    req_list = required.tolist()
    cnt_list = counts.tolist()
    same_task = n > 0 and all(r is req_list[0] for r in req_list)
    cached_idx = None
    for r in range(n):
        req, cnt = req_list[r], cnt_list[r]
        if req is None or cnt is None or (isinstance(cnt, float) and np.isnan(cnt)):
            continue
        if same_task and cached_idx is not None:
            idx = cached_idx
        else:
            idx = [index[s] for s in list(req) if s in index]
            cached_idx = idx
        if not idx:
            continue
        c = np.asarray(cnt, dtype="float64")
        if c.size < len(vocab):
            continue
        vals = c[idx]
        match[r] = float(np.log1p(np.maximum(vals, 0)).mean())
        cover[r] = float((vals > 0).mean())
    return match, cover


def _cosine(a: pd.Series, b: pd.Series) -> np.ndarray:
    out = np.full(len(a), np.nan)
    for r, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
        if x is None or y is None or isinstance(x, float) or isinstance(y, float):
            continue
        x = np.asarray(x, dtype="float64")
        y = np.asarray(y, dtype="float64")
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        if x.shape == y.shape and nx > 0 and ny > 0:
            out[r] = float(x @ y / (nx * ny))
    return out


def pair_features(frame: pd.DataFrame, vocab: Sequence[str] | None = None) -> pd.DataFrame:
    """The :data:`FEATURES` matrix (float64, NaN = unknown) of a pair frame, index kept.

    ``frame`` needs ``task_id`` and ``user_id``; every other column is optional. Within-task quantities
    (shares, gaps to the best candidate, ranks) are computed over the rows of the same ``task_id``.
    """
    for col in ("task_id", "user_id"):
        if col not in frame:
            raise ValueError(f"pair frame needs a {col!r} column")
    if vocab is None:
        from sunday.features.groups import skill_vocab

        vocab = skill_vocab()
    g = _Groups(frame["task_id"])
    out: dict[str, np.ndarray] = {}
    nan = np.full(len(frame), np.nan)

    # -- skill / fit block
    if "required_skills" in frame and "skill_counts" in frame:
        out["skill_match"], out["skill_coverage"] = _skill_match(frame["required_skills"], frame["skill_counts"], vocab)
    else:
        out["skill_match"], out["skill_coverage"] = nan, nan
    embed = _num(frame, "embed_sim")
    if np.isnan(embed).all() and "task_embedding" in frame and "skill_embedding" in frame:
        embed = _cosine(frame["task_embedding"], frame["skill_embedding"])
    out["embed_sim"] = embed
    out["embed_sim_gap"] = embed - g.max(embed)
    text = _num(frame, "text_score")
    out["text_score"] = text
    out["text_gap"] = text - g.max(text)
    out["text_rank"] = g.rank_desc(text)
    knn = _num(frame, "knn_score")
    out["knn_score"] = knn
    out["knn_share"] = g.share(knn)
    hist = _num(frame, "history_count")
    if np.isnan(hist).all():
        hist = _num(frame, "completed_count")
    out["history_share"] = g.share(hist)
    out["recent_share"] = g.share(_num(frame, "recent_count"))
    out["since_last_log"] = np.log1p(np.clip(_num(frame, "since_last"), 0, None))

    # -- workload / track record block
    for col in ("open_task_count", "open_points", "capacity_utilisation", "hours_logged_7d", "completion_rate",
                "on_time_rate", "review_cycles", "reassignment_count"):
        out[col] = _num(frame, col)
    out["open_points_share"] = g.share(out["open_points"])
    out["completed_log"] = np.log1p(np.clip(_num(frame, "completed_count"), 0, None))
    out["mean_completion_hours_log"] = np.log1p(np.clip(_num(frame, "mean_completion_hours"), 0, None))

    # -- task block
    for col in ("story_points", "priority_score", "required_skill_count", "complexity", "days_to_due"):
        out[col] = _num(frame, col)
    out["n_candidates_log"] = np.log(g.size[g.codes])
    return pd.DataFrame({name: out[name] for name in FEATURES}, index=frame.index, dtype="float64")


def group_sizes(task_ids: pd.Series) -> np.ndarray:
    """Sizes of consecutive runs of equal ``task_id`` (LightGBM's ``group``); rows of a task must be contiguous."""
    values = task_ids.to_numpy()
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    if len(np.unique(values[starts])) != len(starts):
        raise ValueError("rows of the same task_id must be contiguous (sort the pair frame by task first)")
    return np.diff(np.r_[starts, len(values)]).astype(np.int64)
