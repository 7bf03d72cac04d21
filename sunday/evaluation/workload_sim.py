"""Next-week hours per user on a simulated workspace: the workload predictor vs simple baselines.

``sunday eval workload-sim`` needs no dataset: it simulates ``events`` observable events (seed ``seed``), builds
:func:`~sunday.models.workload.features.workload_features` rows (every user named by an event, at every week end
from 4 weeks after the workspace's first event; events at or before the cut only) and splits *by time*: cuts
whose label week ends by the split time (``train_fraction`` of the cut range) train the model, cuts from the split
on are the test rows; only cuts whose next week lies inside the observed log are used.

Labels: ``truth`` -- the HIDDEN true hours of work in the next 7 days from ``truth/task_truth`` (effort spread over
each task's working span, :func:`~sunday.models.workload.features.true_hours_next_week`); ``logged`` -- the
observable ``time_logged`` hours in the next 7 days. Rows: ``lightgbm`` and ``xgboost`` (the predictor's two back
ends with the same settings, trained on the truth label; the default back end, LightGBM, had the lower MAE on seeds
1-2), ``<default back end> (trained on logged)`` (what a deployment without hidden truth can train),
``last-week-logged``, ``mean-4-weeks-logged``,
``capacity x mean-utilisation`` (declared weekly capacity x the user's mean logged hours / capacity since their
first event), and ``design target`` (the seed design's stated target for workload_predictor_v1, R^2 0.92 -- a
design goal, not a published result on this data). Columns: MAE / RMSE / R^2 against the truth and against the
logged hours.

Options: ``events`` (200000), ``seed`` (0), ``train_fraction`` (0.7), ``config`` (dict of
:class:`~sunday.models.workload.predictor.WorkloadConfig` fields; the other back end's row uses the same settings
with its ``backend``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunday.errors import SundayError
from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register, resolve_options

DEFAULTS: dict[str, Any] = {"events": 200_000, "seed": 0, "train_fraction": 0.7, "config": None}
COLUMNS = ("mae_truth", "rmse_truth", "r2_truth", "mae_logged", "rmse_logged", "r2_logged")
TARGET_ROW = "design target (workload_predictor_v1)"
TARGET_SOURCE = "seed design target, not a published result"
TARGET_R2 = 0.92


def regression_metrics(y: np.ndarray, pred: np.ndarray, suffix: str) -> dict[str, float]:
    y, pred = np.asarray(y, dtype=np.float64), np.asarray(pred, dtype=np.float64)
    e = pred - y
    ss = float(((y - y.mean()) ** 2).sum())
    return {f"mae_{suffix}": float(np.abs(e).mean()), f"rmse_{suffix}": float(np.sqrt((e ** 2).mean())),
            f"r2_{suffix}": 1.0 - float((e ** 2).sum()) / ss if ss > 0 else float("nan")}


def labelled_rows(tables: Any, first_cut_days: float = 28.0) -> pd.DataFrame:
    """Feature rows with ``y_truth`` (hidden) and ``y_logged`` (observable), cuts whose next week is in the log.
    The features come from the observable tables only; the truth label from ``truth/task_truth``."""
    from sunday.models.workload.features import logged_hours_next_week, true_hours_next_week, workload_features

    obs = getattr(tables, "observable", tables)
    F = workload_features(obs, first_cut_days=first_cut_days)
    end = pd.to_datetime(obs["events"].column("timestamp").to_pandas() if hasattr(obs["events"], "column")
                         else obs["events"]["timestamp"]).max()
    F = F[F["cut"] + pd.Timedelta(days=7) <= end].reset_index(drop=True)
    if F.empty:
        raise SundayError("no cut with a full next week inside the log: simulate more days")
    F["y_truth"] = true_hours_next_week(tables["truth/task_truth"], F)
    F["y_logged"] = logged_hours_next_week(obs, F)
    return F


def time_split(F: pd.DataFrame, train_fraction: float) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """(train: label week ends by the split, test: cut at or after the split, split time)."""
    if not 0 < train_fraction < 1:
        raise SundayError(f"train_fraction must be between 0 and 1, got {train_fraction}")
    lo, hi = F["cut"].min(), F["cut"].max()
    split = lo + (hi - lo) * float(train_fraction)
    return (F["cut"] + pd.Timedelta(days=7) <= split).to_numpy(), (F["cut"] >= split).to_numpy(), split


def evaluate_workload(tables: Any, config=None, train_fraction: float = 0.7, rows: pd.DataFrame | None = None,
                      backends: tuple[str, ...] = ("xgboost", "lightgbm"), logged_model: bool = True
                      ) -> dict[str, Any]:
    """Fit on the training cuts, score the test cuts; ``rows`` (model rows + baselines), the fitted ``model`` (the
    ``config`` back end), test rows ``X_test`` with both labels, an ``example`` explanation, counts, timings."""
    from sunday.models.workload.predictor import WorkloadConfig, WorkloadPredictor

    cfg = config or WorkloadConfig()
    t0 = time.perf_counter()
    F = rows if rows is not None else labelled_rows(tables)
    data_s = time.perf_counter() - t0
    train, test, split = time_split(F, train_fraction)
    if train.sum() < 50 or test.sum() < 20:
        raise SundayError(f"too few (user, week) rows for a time split: {int(train.sum())} train, "
                          f"{int(test.sum())} test (simulate more events)")
    Xtr, Xte = F[train].reset_index(drop=True), F[test].reset_index(drop=True)
    yt, yl = Xte["y_truth"].to_numpy(), Xte["y_logged"].to_numpy()

    def both(pred: np.ndarray) -> dict[str, float]:
        return {**regression_metrics(yt, pred, "truth"), **regression_metrics(yl, pred, "logged")}

    out_rows: list[dict[str, Any]] = []
    fit_s: dict[str, float] = {}
    models: dict[str, Any] = {}
    for backend in dict.fromkeys((cfg.backend,) + tuple(backends)):
        c = WorkloadConfig(**{**cfg.__dict__, "backend": backend})
        t1 = time.perf_counter()
        models[backend] = WorkloadPredictor(c).fit(Xtr, Xtr["y_truth"].to_numpy())
        fit_s[backend] = time.perf_counter() - t1
        out_rows.append({"row": backend, **both(models[backend].predict(Xte))})
    if logged_model:
        m_log = WorkloadPredictor(cfg).fit(Xtr, Xtr["y_logged"].to_numpy())
        out_rows.append({"row": f"{cfg.backend} (trained on logged)", **both(m_log.predict(Xte))})
    out_rows.append({"row": "last-week-logged", **both(Xte["hours_logged_7d"].to_numpy())})
    out_rows.append({"row": "mean-4-weeks-logged", **both(Xte["hours_logged_4w_mean"].to_numpy())})
    util = Xte["declared_capacity"].to_numpy() * Xte["mean_utilisation"].to_numpy()
    out_rows.append({"row": "capacity x mean-utilisation", **both(np.nan_to_num(util, nan=0.0))})
    out_rows.append({"row": TARGET_ROW, "r2_truth": TARGET_R2})
    model = models[cfg.backend]
    # one example: the test row with the largest prediction among users holding tasks in progress
    pred = model.predict(Xte)
    cand = np.flatnonzero(Xte["in_progress_tasks"].to_numpy() > 0)
    i = int(cand[np.argmax(pred[cand])]) if len(cand) else int(np.argmax(pred))
    example = model.explain(Xte.iloc[[i]], top_k=5)[0]
    example["truth_hours"] = round(float(yt[i]), 3)
    example["logged_hours"] = round(float(yl[i]), 3)
    return {
        "rows": out_rows, "model": model, "models": models, "X_test": Xte, "split_at": str(split),
        "n_train": int(train.sum()), "n_test": int(test.sum()), "n_users": int(F["user_id"].nunique()),
        "n_workspaces": int(F["workspace_id"].nunique()), "n_cuts": int(F["cut"].nunique()),
        "test_mean_truth": float(yt.mean()), "test_mean_logged": float(yl.mean()),
        "example": example, "top_features": {k: round(v, 4) for k, v in list(model.feature_importance().items())[:8]},
        "data_s": data_s, "fit_s": fit_s,
    }


@register
class WorkloadSimEvaluation(Evaluation):
    name = "workload-sim"
    description = ("next-week hours per user on a simulated workspace (weekly cuts): XGBoost / LightGBM vs last "
                   "week, 4-week mean and capacity x utilisation; MAE, RMSE, R^2 vs hidden truth and vs logged hours")
    folder = ""

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from sunday.data.simulator import SimConfig, simulate_tables
        from sunday.models.explain import format_explanation
        from sunday.models.workload.predictor import WorkloadConfig

        o = resolve_options(DEFAULTS, options)
        t0 = time.perf_counter()
        tables = simulate_tables(SimConfig(n_events=int(o["events"]), seed=int(o["seed"])))
        sim_s = time.perf_counter() - t0
        cfg = WorkloadConfig.from_dict({"seed": int(o["seed"]), **(o["config"] or {})})
        r = evaluate_workload(tables, cfg, train_fraction=float(o["train_fraction"]))
        rows = [{"row": x["row"], **{c: x.get(c) for c in COLUMNS}} for x in r["rows"]]
        by = {x["row"]: x for x in r["rows"]}
        best_base = min((x for x in r["rows"] if x["row"] in ("last-week-logged", "mean-4-weeks-logged",
                                                              "capacity x mean-utilisation")),
                        key=lambda x: x["mae_truth"])
        m = by[cfg.backend]
        ex = r["example"]
        notes = [
            f"{o['events']} simulated events (seed {o['seed']}), {r['n_workspaces']} workspaces, {r['n_users']} "
            f"users, {r['n_cuts']} weekly cuts (week ends); time split at {r['split_at']}: train {r['n_train']} "
            f"(user, week) rows (label week ends by the split), test {r['n_test']} (cut after it).",
            f"test mean next-week hours: truth {r['test_mean_truth']:.2f}, logged {r['test_mean_logged']:.2f} (users "
            "log a noisy, slightly low share of their time, in a few lumpy entries per task).",
            f"{cfg.backend}: MAE {m['mae_truth']:.2f} h vs {best_base['mae_truth']:.2f} h for the best baseline "
            f"({best_base['row']}); R^2 {m['r2_truth']:.3f}. xgboost vs lightgbm MAE: "
            f"{by['xgboost']['mae_truth']:.3f} vs {by['lightgbm']['mae_truth']:.3f}.",
            "design target R^2 0.92 is the seed design's goal for workload_predictor_v1, not a published result: "
            "in this simulator over half of a user's next-week hours come from tasks not yet assigned at the cut "
            "(seed 0: 8.7 of 16.5 h; assigned during the week by the noisy policy); during development, knowing "
            "the hidden next-week hours of the tasks already assigned exactly (the rest at its mean) reached only "
            "R^2 0.43.",
            "truth label: true_effort_hours spread uniformly from true_start to true_completion - 8 h (the "
            "review / close waits; the simulator's main-work end is not in task_truth) -- see "
            "sunday.models.workload.features.",
            "features: users / tasks / task_events at or before the cut (the user_workload group's workload_at, "
            "weekly logged hours, open work by status, due points, pace, team flow); never truth/ tables.",
            "top features (gain share): " + ", ".join(f"{k} {v:.2f}" for k, v in r["top_features"].items()),
            f"example {ex.get('user_id')} at {ex.get('cut')}: predicted {ex['hours']:.1f} h (truth "
            f"{ex['truth_hours']:.1f} h, logged {ex['logged_hours']:.1f} h); top contributions (h, bias "
            f"{ex['bias']:+.2f}): " + format_explanation(ex),
            f"time: simulate {sim_s:.1f} s, features + labels {r['data_s']:.1f} s, fit "
            + ", ".join(f"{k} {v:.1f} s" for k, v in r["fit_s"].items()) + ".",
        ]
        meta = {"options": o, "config": cfg.__dict__, "sim_s": sim_s,
                **{k: v for k, v in r.items() if k not in ("rows", "model", "models", "X_test")}}
        anchors = [Anchor(cfg.backend, "r2_truth", TARGET_R2, TARGET_SOURCE)]
        return EvalResult(self.name, "row", rows, anchors=anchors, notes=notes, meta=meta)
