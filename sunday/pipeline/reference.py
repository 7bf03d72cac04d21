"""The drift monitor's training reference of each version the pipeline registers: the model's answers on its own
holdout, turned into prediction-log rows by the serving path's extractors
(:func:`sunday.monitoring.predictions.prediction_rows`), so that the reference has the columns, names and meaning
of what the serving app logs. Saved with :func:`sunday.monitoring.reference.save_reference`.

Models whose answers are built from more than the model (``task_assignment``: candidates, workload balance, the
request's own task; ``project_timeline``: a project's live state) or that no route logs (``workload_predictor``,
``personalization_cf``) have no builder here: the monitor falls back to the first rows the version served
(:func:`sunday.monitoring.reference.serving_baseline`), and the pipeline's result says so.
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

DROP = ("pred_channel",)  # chosen by the channel bandit at serving time, not by the model: no reference value


def _priority_answers(model: Any, holdout: dict) -> list[tuple[dict, dict]]:
    from sunday.models.personalization.service import priority_answers
    from sunday.models.priority.scorer import PRIORITIES

    X, y = holdout["X"], holdout["y"]
    current = {str(t): PRIORITIES[int(c)] for t, c in zip(X["task_id"], y)}
    return [({"task_ids": list(current)}, {"scores": priority_answers(model.score(X), current)})]


def _notification_answers(model: Any, holdout: dict) -> list[tuple[dict, dict]]:
    test = holdout["test"]
    scored = test[["session_id", "type"]].assign(score=model.predict(test))  # the position set to the top
    out = []
    for _sid, session in scored.groupby("session_id", sort=False):
        session = session.sort_values("score", ascending=False, kind="stable")
        items = [{"type": t, "score": float(s), "rank": r}
                 for r, (t, s) in enumerate(zip(session["type"], session["score"]), start=1)]
        out.append(({}, {"notifications": items, "channel": None}))
    return out


# model -> (endpoint whose answers it gives, (model, holdout) -> [(request body, answer)])
BUILDERS: dict[str, tuple[str, Callable[[Any, Any], list[tuple[dict, dict]]]]] = {
    "priority_scorer": ("score-priority", _priority_answers),
    "notification_ranker": ("rank-notifications", _notification_answers),
}


def reference_frame(name: str, model: Any, holdout: Any) -> pd.DataFrame | None:
    """The prediction-log shaped answers of ``model`` on ``holdout`` (None when ``name`` has no builder)."""
    from sunday.monitoring.predictions import prediction_rows, rows_frame

    if name not in BUILDERS:
        return None
    endpoint, answers = BUILDERS[name]
    rows = [r for body, result in answers(model, holdout)
            for r in prediction_rows(endpoint, name, None, body, result)]
    frame = rows_frame(rows)
    return frame.drop(columns=[c for c in DROP if c in frame.columns])


def save_training_reference(settings, name: str, version: str, model: Any, holdout: Any) -> dict[str, Any]:
    """Save ``version``'s reference (see the module docstring); what was saved, or why nothing was."""
    from sunday.monitoring.reference import save_reference

    frame = reference_frame(name, model, holdout)
    if frame is None:
        return {"saved": False, "reason": f"no holdout reference for {name}: the monitor uses the first rows this "
                                          f"version serves"}
    path = save_reference(settings, name, version, frame, source=f"pipeline: holdout answers of v{version}")
    return {"saved": True, "path": str(path), "rows": int(min(len(frame), 5000)), "rows_total": int(len(frame)),
            "columns": sorted(frame.columns)}


__all__ = ["BUILDERS", "reference_frame", "save_training_reference"]
