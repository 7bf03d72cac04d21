"""Point-in-time features of a task shortly after its creation, for suggesting its priority.

One row per task at its cut time ``as_of = created_at + horizon_hours`` (default 24 h), from what is observable
then: the ``tasks`` table's creation-time attributes (title, description, due date, required skills, dependencies,
project, created_at), the task's ``task_events`` at or before ``as_of`` (the ``created`` event's story points and
reporter (its actor), assignments, comments, status changes), and *other* tasks created before it (the reporter's
and the project's earlier priorities; the project's creations in the last day / week up to ``as_of``).

Never read: the task's own ``priority`` (the label), the tasks table's end-of-log ``status`` / ``assignee_id`` /
``story_points``, any event after ``as_of``, and any hidden ``truth/...`` table -- :func:`observable_frames` takes
only the observable tables (a ``SimTables``' ``observable`` part). Earlier tasks' priorities count as known at
``as_of`` (a task created before this one was triaged by its own cut, which is before this task's cut).

:data:`FEATURES` lists the columns in model order, :data:`FEATURE_LABELS` their readable names,
:data:`FEATURE_SOURCES` where each comes from.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.features.compute.common import PRIORITY_SCORE, US_PER_DAY, US_PER_HOUR, to_us

PRIORITIES: tuple[str, ...] = tuple(sorted(PRIORITY_SCORE, key=PRIORITY_SCORE.get))  # low .. critical
NOT_SET = np.iinfo(np.int64).min
PROJECT_RECENT_K = 20  # the project's last K earlier tasks give its recent priority mix

TASK_COLUMNS = ("task_id", "project_id", "title", "created_at", "due_date")
EVENT_COLUMNS = ("task_id", "event_type", "timestamp")

#: cue words (whole words, lower case) -- a cheap stand-in for a text model; generic tracker vocabulary
CUES: dict[str, tuple[str, ...]] = {
    "bug": ("fix", "fixes", "bug", "crash", "crashes", "error", "errors", "investigate", "resolve", "debug",
            "regression", "broken", "timeout", "leak", "race", "wrong", "fail", "fails", "failing", "failure",
            "incident", "outage", "hotfix", "exception"),
    "feature": ("implement", "add", "build", "create", "support", "new", "feature", "enable", "introduce",
                "allow"),
    "chore": ("refactor", "update", "clean", "cleanup", "upgrade", "migrate", "optimize", "bump", "chore",
              "rename", "deprecate", "tidy"),
    "urgent": ("urgent", "asap", "blocker", "blocking", "critical", "customer", "production", "prod", "outage",
               "security", "sev1", "p0", "p1", "immediately"),
}
_CUE_RE = {k: re.compile(r"\b(?:" + "|".join(map(re.escape, v)) + r")\b") for k, v in CUES.items()}

#: identification columns of a feature frame (not features); ``reporter_id`` is the created event's actor
ID_COLUMNS = ("task_id", "workspace_id", "project_id", "reporter_id", "created_at", "as_of")
FEATURES: tuple[str, ...] = (
    "title_bug_cues", "title_feature_cues", "title_chore_cues", "text_urgent_cues", "title_length",
    "description_length",
    "story_points", "has_due_date", "plan_days", "slack_per_point", "slack_per_point_rel",
    "required_skill_count", "dependency_count",
    "assigned_by_cut", "hours_to_first_assignment", "started_by_cut", "comments_by_cut", "status_changes_by_cut",
    "reassignments_by_cut",
    "reporter_mean_priority", "reporter_high_share", "reporter_n_tasks",
    "project_recent_priority", "project_recent_high_share", "project_recent_n",
    "project_age_days", "project_created_1d", "project_created_7d",
)

FEATURE_LABELS: dict[str, str] = {
    "title_bug_cues": "bug words in title", "title_feature_cues": "feature words in title",
    "title_chore_cues": "chore words in title", "text_urgent_cues": "urgency words in text",
    "title_length": "title length", "description_length": "description length",
    "story_points": "story points at creation", "has_due_date": "has a due date",
    "plan_days": "days from creation to due date", "slack_per_point": "due-date slack per story point (days)",
    "slack_per_point_rel": "slack per point vs workspace median",
    "required_skill_count": "required skills", "dependency_count": "dependencies",
    "assigned_by_cut": "assigned by the cut", "hours_to_first_assignment": "hours to first assignment",
    "started_by_cut": "work started by the cut", "comments_by_cut": "comments by the cut",
    "status_changes_by_cut": "status changes by the cut", "reassignments_by_cut": "reassignments by the cut",
    "reporter_mean_priority": "reporter's mean earlier priority", "reporter_high_share": "reporter's high+ share",
    "reporter_n_tasks": "reporter's earlier tasks",
    "project_recent_priority": "project's recent mean priority",
    "project_recent_high_share": "project's recent high+ share", "project_recent_n": "project's recent tasks",
    "project_age_days": "project age (days)", "project_created_1d": "project tasks created in 1 day",
    "project_created_7d": "project tasks created in 7 days",
}

_EV = "task_events at or before as_of"
FEATURE_SOURCES: dict[str, str] = {
    **{c: "tasks.title" for c in ("title_bug_cues", "title_feature_cues", "title_chore_cues", "title_length")},
    "text_urgent_cues": "tasks.title + tasks.description", "description_length": "tasks.description",
    "story_points": "the created event's story_points", "has_due_date": "tasks.due_date",
    "plan_days": "tasks.due_date - tasks.created_at", "slack_per_point": "plan_days / created-event points",
    "slack_per_point_rel": "slack_per_point / median over the workspace's earlier tasks",
    "required_skill_count": "tasks.required_skills", "dependency_count": "tasks.dependencies",
    **{c: _EV for c in ("assigned_by_cut", "hours_to_first_assignment", "started_by_cut", "comments_by_cut",
                        "status_changes_by_cut", "reassignments_by_cut")},
    **{c: "tasks.priority of the reporter's (created event actor) earlier tasks"
       for c in ("reporter_mean_priority", "reporter_high_share", "reporter_n_tasks")},
    **{c: f"tasks.priority of the project's last {PROJECT_RECENT_K} earlier tasks"
       for c in ("project_recent_priority", "project_recent_high_share", "project_recent_n")},
    "project_age_days": "created_at - the project's first task's created_at",
    "project_created_1d": "tasks.created_at of the project, (as_of - 1 day, as_of]",
    "project_created_7d": "tasks.created_at of the project, (as_of - 7 days, as_of]",
}


# ------------------------------------------------------------------------------------------------------ input


def observable_frames(tables: Any, required: Mapping[str, Iterable[str]]) -> dict[str, pd.DataFrame]:
    """pandas frames of the observable tables named in ``required`` (``events`` also found as ``task_events``)
    from ``simulate_tables``' SimTables (its ``observable`` part only: truth is never read), a mapping of Arrow
    tables or a mapping of DataFrames. SundayError naming a missing table or required column."""
    obs = getattr(tables, "observable", tables)
    if not isinstance(obs, Mapping):
        raise SundayError(f"tables must be SimTables or a mapping of table name -> table, got {type(tables).__name__}")
    out: dict[str, pd.DataFrame] = {}
    for name, cols in required.items():
        key = name if name in obs else ("task_events" if name == "events" and "task_events" in obs else None)
        if key is None:
            raise SundayError(f"no '{name}' table given")
        t = obs[key]
        df = t if isinstance(t, pd.DataFrame) else t.to_pandas()
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise SundayError(f"{name}: missing required field(s) {missing}")
        out[name] = df
    return out


def priority_values(priority: pd.Series) -> np.ndarray:
    """Priority names -> 0 (low) .. 3 (critical); NaN where null. SundayError naming an unknown value."""
    s = priority.astype(object)
    known = s.isna() | s.isin(list(PRIORITY_SCORE))
    if not known.all():
        bad = sorted({str(v) for v in s[~known]})
        raise SundayError(f"tasks: field 'priority' has unknown value(s) {bad[:5]}; known: {list(PRIORITIES)}")
    return s.map(PRIORITY_SCORE).to_numpy(dtype=np.float64)


def _list_len(col: pd.Series) -> np.ndarray:
    return np.array([len(v) if isinstance(v, (list, tuple, np.ndarray)) else 0 for v in col], dtype=np.float64)


def _cues(text: pd.Series, kind: str) -> np.ndarray:
    return text.str.count(_CUE_RE[kind].pattern).to_numpy(dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- history


def _exclusive_history(frame: pd.DataFrame, key: str, value: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows sorted by (created_us, task_id): per row, over the earlier rows (strictly earlier created_us) with
    the same ``key`` and a non-NaN ``value``: (count, mean value, share of value >= 2)."""
    known = ~np.isnan(value)
    g = pd.DataFrame({"k": frame[key].to_numpy(), "t": frame["created_us"].to_numpy(),
                      "n": known.astype(np.float64), "v": np.where(known, value, 0.0),
                      "h": (known & (value >= 2)).astype(np.float64)})
    cs = g.groupby("k", sort=False)[["n", "v", "h"]].cumsum() - g[["n", "v", "h"]].to_numpy()
    cs["k"], cs["t"] = g["k"], g["t"]
    first = cs.groupby(["k", "t"], sort=False)[["n", "v", "h"]].transform("first")  # ties: none of them counts
    n = first["n"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return n, np.where(n > 0, first["v"].to_numpy() / n, np.nan), np.where(n > 0, first["h"].to_numpy() / n, np.nan)


def _recent_history(frame: pd.DataFrame, key: str, value: np.ndarray, k: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`_exclusive_history` over the group's last ``k`` earlier rows (unlabelled ones count as slots)."""
    known = ~np.isnan(value)
    g = pd.DataFrame({"k": frame[key].to_numpy(), "t": frame["created_us"].to_numpy(),
                      "n": known.astype(np.float64), "v": np.where(known, value, 0.0),
                      "h": (known & (value >= 2)).astype(np.float64)})
    grp = g.groupby("k", sort=False)
    rolled = grp[["n", "v", "h"]].transform(lambda s: s.shift(1).rolling(k, min_periods=1).sum()).fillna(0.0)
    rolled["k"], rolled["t"] = g["k"], g["t"]
    first = rolled.groupby(["k", "t"], sort=False)[["n", "v", "h"]].transform("first")
    n = first["n"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return n, np.where(n > 0, first["v"].to_numpy() / n, np.nan), np.where(n > 0, first["h"].to_numpy() / n, np.nan)


def _window_counts(key: np.ndarray, created: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Per row: rows with the same key and created in (at - width, at]."""
    out = np.zeros(len(key))
    order = np.lexsort((created, key))
    ks, cs = key[order], created[order]
    bounds = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = order[a:b]
        c = cs[a:b]
        out[rows] = np.searchsorted(c, at[rows], side="right") - np.searchsorted(c, at[rows] - width, side="right")
    return out


# --------------------------------------------------------------------------------------------------- features


def priority_features(tables: Any, horizon_hours: float = 24.0, task_ids: Iterable[str] | None = None
                      ) -> pd.DataFrame:
    """Feature rows (:data:`ID_COLUMNS` + :data:`FEATURES`)
    of every task (or of ``task_ids``, in that order) at ``as_of = created_at + horizon_hours``; see the module
    docstring for what is read. SundayError naming a missing table / field or an unknown task id."""
    if not np.isfinite(horizon_hours) or horizon_hours < 0:
        raise SundayError(f"horizon_hours must be a number >= 0, got {horizon_hours!r}")
    f = observable_frames(tables, {"tasks": TASK_COLUMNS, "events": EVENT_COLUMNS})
    tasks, events = f["tasks"], f["events"]
    t = tasks.drop_duplicates("task_id").reset_index(drop=True)
    if t["task_id"].isna().any():
        raise SundayError("tasks: field 'task_id' is missing in some row(s)")
    created = to_us(t["created_at"].reset_index(drop=True))
    if (created == NOT_SET).any():
        bad = t.loc[created == NOT_SET, "task_id"].astype(str).tolist()[:5]
        raise SundayError(f"tasks: field 'created_at' is missing for task(s) {bad}")
    a = pd.DataFrame({"task_id": t["task_id"].astype(str).to_numpy(),
                      "workspace_id": (t["workspace_id"].astype(str).to_numpy() if "workspace_id" in t.columns
                                       else np.full(len(t), "workspace", dtype=object)),
                      "project_id": t["project_id"].astype(object).where(t["project_id"].notna(), "").astype(str)
                      .to_numpy(),
                      "created_us": created})
    label = priority_values(t["priority"]) if "priority" in t.columns else np.full(len(t), np.nan)
    h_us = int(round(horizon_hours * US_PER_HOUR))
    a["as_of_us"] = a["created_us"] + h_us
    due = to_us(t["due_date"].reset_index(drop=True))
    has_due = due != NOT_SET

    # -- events at or before each task's cut
    ev = events[["task_id", "event_type", "timestamp"] + [c for c in ("actor_id", "story_points", "to_status")
                                                          if c in events.columns]].copy()
    ev["task_id"] = ev["task_id"].astype(str)
    ev["ts"] = to_us(ev["timestamp"].reset_index(drop=True))
    pos = pd.Index(a["task_id"]).get_indexer(ev["task_id"])
    ev = ev[pos >= 0]
    pos = pos[pos >= 0]
    ev = ev[ev["ts"].to_numpy() <= a["as_of_us"].to_numpy()[pos]]
    pos = pd.Index(a["task_id"]).get_indexer(ev["task_id"])
    et = ev["event_type"].to_numpy()
    n = len(a)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(pos[mask], minlength=n).astype(np.float64)

    def first_ts(mask: np.ndarray) -> np.ndarray:
        out = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(out, pos[mask], ev["ts"].to_numpy()[mask])
        return out

    cr = et == "created"
    first_created = np.full(n, -1, dtype=np.int64)
    if cr.any():  # the first created event of each task (log order: timestamp, then position)
        order = np.lexsort((np.arange(int(cr.sum())), ev["ts"].to_numpy()[cr]))
        rows = np.flatnonzero(cr)[order]
        p = pos[rows]
        _, keep = np.unique(p, return_index=True)
        first_created[p[keep]] = rows[keep]
    got = first_created >= 0
    points = np.full(n, np.nan)
    if "story_points" in ev.columns:
        points[got] = pd.to_numeric(ev["story_points"], errors="coerce").to_numpy(np.float64)[first_created[got]]
    reporter = np.full(n, None, dtype=object)
    if "actor_id" in ev.columns:
        reporter[got] = ev["actor_id"].to_numpy(dtype=object)[first_created[got]]
    asg = np.isin(et, ("assigned", "reassigned"))
    fa = first_ts(asg)
    assigned = fa < np.iinfo(np.int64).max
    to_status = ev["to_status"].to_numpy(dtype=object) if "to_status" in ev.columns else np.full(len(ev), None)
    started = count((et == "status_changed") & (to_status == "in_progress")) > 0

    title = t["title"].fillna("").astype(str).str.lower()
    desc = t["description"].fillna("").astype(str).str.lower() if "description" in t.columns \
        else pd.Series([""] * n)
    text = title + " " + desc
    plan = np.where(has_due, (due - created) / US_PER_DAY, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        spp = np.where(has_due & (points > 0), plan / np.where(points > 0, points, 1.0), np.nan)

    feats: dict[str, np.ndarray] = {
        "title_bug_cues": _cues(title, "bug"), "title_feature_cues": _cues(title, "feature"),
        "title_chore_cues": _cues(title, "chore"), "text_urgent_cues": _cues(text, "urgent"),
        "title_length": title.str.len().to_numpy(np.float64), "description_length": desc.str.len().to_numpy(np.float64),
        "story_points": points, "has_due_date": has_due.astype(np.float64), "plan_days": plan,
        "slack_per_point": spp,
        "required_skill_count": _list_len(t["required_skills"]) if "required_skills" in t.columns else np.zeros(n),
        "dependency_count": _list_len(t["dependencies"]) if "dependencies" in t.columns else np.zeros(n),
        "assigned_by_cut": assigned.astype(np.float64),
        "hours_to_first_assignment": np.where(assigned, (fa - created) / US_PER_HOUR, np.nan),
        "started_by_cut": started.astype(np.float64),
        "comments_by_cut": count(et == "commented"), "status_changes_by_cut": count(et == "status_changed"),
        "reassignments_by_cut": count(et == "reassigned"),
    }

    # -- other tasks created before this one (history) or by its cut (creation counts), per workspace
    order = np.lexsort((a["task_id"].to_numpy(), a["created_us"].to_numpy(), a["workspace_id"].to_numpy()))
    s = a.iloc[order].reset_index(drop=True)
    s["reporter"] = pd.Series(reporter[order]).astype(object).where(pd.notna(reporter[order]), None)
    s["reporter_key"] = s["workspace_id"] + "\x1f" + s["reporter"].fillna("\x00").astype(str)
    s["project_key"] = s["workspace_id"] + "\x1f" + s["project_id"]
    lab = label[order]
    r_n, r_mean, r_high = _exclusive_history(s, "reporter_key", lab)
    no_rep = s["reporter"].isna().to_numpy()
    r_n, r_mean, r_high = np.where(no_rep, np.nan, r_n), np.where(no_rep, np.nan, r_mean), \
        np.where(no_rep, np.nan, r_high)
    p_n, p_mean, p_high = _recent_history(s, "project_key", lab, PROJECT_RECENT_K)
    s_spp = pd.Series(spp[order])
    ws_med = s_spp.groupby(s["workspace_id"], sort=False).transform(
        lambda x: x.expanding(min_periods=1).median().shift(1))
    ws_med = ws_med.groupby([s["workspace_id"], s["created_us"]], sort=False).transform("first").to_numpy()
    first_in_project = s.groupby("project_key", sort=False)["created_us"].transform("min").to_numpy()
    pk = s["project_key"].to_numpy()
    c1 = _window_counts(pk, s["created_us"].to_numpy(), s["as_of_us"].to_numpy(), US_PER_DAY)
    c7 = _window_counts(pk, s["created_us"].to_numpy(), s["as_of_us"].to_numpy(), 7 * US_PER_DAY)
    back = np.empty(n, dtype=np.int64)
    back[order] = np.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = spp[order] / ws_med
    hist = {
        "slack_per_point_rel": rel,
        "reporter_mean_priority": r_mean, "reporter_high_share": r_high, "reporter_n_tasks": r_n,
        "project_recent_priority": p_mean, "project_recent_high_share": p_high, "project_recent_n": p_n,
        "project_age_days": (s["created_us"].to_numpy() - first_in_project) / US_PER_DAY,
        "project_created_1d": c1, "project_created_7d": c7,
    }
    feats.update({k: np.asarray(v, dtype=np.float64)[back] for k, v in hist.items()})

    out = pd.DataFrame({
        "task_id": a["task_id"], "workspace_id": a["workspace_id"], "project_id": a["project_id"],
        "reporter_id": reporter, "created_at": pd.to_datetime(a["created_us"].to_numpy(), unit="us"),
        "as_of": pd.to_datetime(a["as_of_us"].to_numpy(), unit="us"),
        **{c: feats[c] for c in FEATURES},
    })
    if task_ids is not None:
        ids = [str(x) for x in task_ids]
        idx = pd.Index(out["task_id"]).get_indexer(ids)
        if (idx < 0).any():
            unknown = [i for i, j in zip(ids, idx) if j < 0]
            raise SundayError(f"unknown task id(s) {unknown[:5]}: not in the tasks table")
        out = out.iloc[idx].reset_index(drop=True)
    return out


def priority_labels(tables: Any, task_ids: Iterable[str] | None = None) -> pd.Series:
    """The tasks table's ``priority`` as 0 (low) .. 3 (critical), indexed by task id (NaN: not triaged). The
    label only -- never a feature."""
    t = observable_frames(tables, {"tasks": ("task_id", "priority")})["tasks"].drop_duplicates("task_id")
    y = pd.Series(priority_values(t["priority"]), index=t["task_id"].astype(str).to_numpy(), name="priority")
    if task_ids is not None:
        ids = [str(x) for x in task_ids]
        missing = [i for i in ids if i not in y.index]
        if missing:
            raise SundayError(f"unknown task id(s) {missing[:5]}: not in the tasks table")
        y = y.loc[ids]
    return y
