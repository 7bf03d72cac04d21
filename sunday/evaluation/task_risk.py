"""At-risk tasks inside projects on a simulated workspace: the delay-risk classifier vs simple rules.

Needs no dataset: simulates ``events`` observable events (seed ``seed``), builds task snapshots every ``cut_every``
days (each due-dated task at every cut while it is open and before its due date; features from events <= the cut
only, :func:`sunday.models.timeline.task_risk.task_risk_features`), and splits *by time*: the cuts before the split
time (``train_fraction`` of the cut range), with tasks completed by then, train
:class:`~sunday.models.timeline.task_risk.TaskDelayRisk` (the LightGBM + Random Forest blend of
:mod:`sunday.models.delay.risk`); the cuts from the split time on are the test rows. Labels: the task's class
(non-delay / minor / medium / major, the workspace's 33rd / 66th percentile cut points of the training tasks'
delays) from its observable completion event; test tasks not completed by the end of the log have no label and are
left out (``n_test_censored``).

Rows: ``lgbm+rf`` (the model), ``days-to-due<k`` (delayed when fewer than k days to the due date), ``project-late-
share`` (the project's share of late tasks among those whose due date passed), ``logistic(days_to_due,late-share)``
-- the rules' cut points tuned on the training rows for ``f``, then the commonest delayed class.
Columns: ``auc`` (P(delayed) or the rule's score, delayed vs non-delay), ``precision`` / ``recall`` / ``f`` (delayed
classes, a hit needs the exact class: the delay paper's definition), ``f_any`` (delayed vs not), ``flagged_share``,
and for the model ``auc_macro`` (one-vs-rest over the 4 classes) and ``mmae`` (macro MAE over the ordinal classes).
Anchors: none -- no published figure exists for this simulator.

Options: ``seed`` (0), ``events`` (200000), ``cut_every`` (7), ``train_fraction`` (0.7), ``margin`` (21: no cut in
the last ``margin`` days of the log, so that most test tasks complete), ``config`` (dict of
:class:`~sunday.models.delay.risk.DelayRiskConfig` fields).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sunday.evaluation.base import EvalResult, Evaluation, register, resolve_options

DEFAULTS: dict[str, Any] = {"seed": 0, "events": 200_000, "cut_every": 7, "train_fraction": 0.7, "margin": 21,
                            "config": None}
COLUMNS = ("auc", "precision", "recall", "f", "f_any", "flagged_share", "auc_macro", "mmae")


@register
class TaskRiskEvaluation(Evaluation):
    name = "task-risk"
    description = ("at-risk tasks inside simulated projects: delay-risk classifier (LightGBM + RF) on point-in-time "
                   "task snapshots, time-ordered split, vs days-to-due and project late-share rules: AUC, delayed F")
    folder = ""

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from sunday.data.simulator import SimConfig, simulate_tables
        from sunday.models.delay.risk import DelayRiskConfig
        from sunday.models.timeline.task_risk import evaluate_task_risk

        o = resolve_options(DEFAULTS, options)
        t0 = time.perf_counter()
        tables = simulate_tables(SimConfig(n_events=int(o["events"]), seed=int(o["seed"])))
        sim_s = time.perf_counter() - t0
        cfg = DelayRiskConfig(**{"seed": int(o["seed"]), **(o["config"] or {})})
        r = evaluate_task_risk(tables, train_fraction=float(o["train_fraction"]), cut_every_days=float(o["cut_every"]),
                               margin_days=float(o["margin"]), config=cfg)
        r.pop("model")
        rows = [{"row": x["row"], **{c: x.get(c, float("nan")) for c in COLUMNS}} for x in r["rows"]]
        m = {x["row"]: x for x in r["rows"]}
        model, dd = m["lgbm+rf"], m["days-to-due<k"]
        counts = r["test_class_counts"]
        notes = [
            f"{o['events']} simulated events (seed {o['seed']}), {r['n_workspaces']} workspaces; snapshots every "
            f"{o['cut_every']} days (none in the last {o['margin']} days of the log); time split at {r['split_at']}: "
            f"train {r['n_train_rows']} rows / {r['n_train_tasks']} tasks (cuts before the split, tasks completed by "
            f"it), test {r['n_test_rows']} rows / {r['n_test_tasks']} tasks ({r['n_test_censored']} test rows left "
            "out: task not completed by the end of the log).",
            f"test classes non-delay/minor/medium/major: {counts} ({r['test_delayed_share']:.0%} delayed); cut points "
            f"(days late, 33rd/66th pct of the training tasks' delays, per workspace): all "
            f"{[round(x, 2) for x in r['thresholds']['*']]}.",
            f"model vs days-to-due rule: AUC {model['auc']:.3f} vs {dd['auc']:.3f}, delayed F {model['f']:.3f} vs "
            f"{dd['f']:.3f} (P(delayed) threshold {r['decision_threshold']} tuned on inner-CV training predictions).",
            "features: only events <= the cut and creation-time task attributes (priority, due date, skills, "
            "dependencies, text length); never the tasks table's end-of-log status / assignee / points, never "
            "truth/ tables. No task type: the tasks schema has none.",
            "top features (LightGBM gain share): " + ", ".join(f"{k} {v:.2f}" for k, v in r["top_features"].items()),
            "caveats: the rules flag one delayed class (the commonest in training), so their exact-class f is low "
            "by construction -- f_any compares the flagging alone; test tasks not completed by the end of the log "
            "(mostly late ones) are left out, which favours on-time labels slightly.",
            "anchors: none published (simulated data).",
            f"time: simulate {sim_s:.1f} s, snapshots {r['data_s']:.1f} s, fit {r['fit_s']:.1f} s.",
        ]
        meta = {"options": o, **{k: v for k, v in r.items() if k != "rows"}, "sim_s": sim_s}
        return EvalResult(self.name, "row", rows, anchors=[], notes=notes, meta=meta)
