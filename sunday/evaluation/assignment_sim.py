"""Task assignment in the simulator (hidden skills known): one simulated month per workspace, every policy.

Runs :func:`sunday.models.assignment.month_study.run_study` (needs no dataset: the workspaces are simulated) and
reports one row per policy and load: completion rate, mean quality, on-time rate, team workload Gini, top-1
accuracy against the best hidden fit and its ratio to skill-only's, beside the issue's target (Gini < 0.25 with at
least 95 % of the skill-only ranker's top-1). The learned ranker is fit on the simulated history when
``sunday.models.assignment.ranker`` is importable; otherwise the rows are the baselines only and a note says so.

Options (``run_evaluation("assignment-sim", data_dir, out_dir, **options)``; the CLI passes none): ``seed`` (0),
``workspaces`` (10), ``teams`` per workspace (2), ``users_per_team`` (6), ``loads`` ((0.5, 1.0): one study per
load; ``load=x`` runs just x), ``balance`` (extra ranker rows with these balance weights, default ``(0, 1, 10)``),
``history_days`` (60), ``eval_days`` (30), ``ranker`` (``False``: baselines only), ``progress`` (tqdm bars on
stderr, default on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sunday.evaluation.base import Anchor, EvalResult, Evaluation, register
from sunday.models.assignment import month_study as ms

SOURCE = "issue target"
DEFAULTS: dict[str, Any] = {"seed": 0, "workspaces": 10, "teams": 2, "users_per_team": 6,
                            "loads": (ms.DEFAULT_LOAD, 1.0), "balance": ms.DEFAULT_BALANCE, "history_days": 60,
                            "eval_days": 30}
#: columns of the printed rows (the rest of each policy's figures go to meta["details"])
COLUMNS = ("row", "completion_rate", "mean_quality", "on_time_rate", "gini", "gini_assigned", "top1",
           "top1_vs_skill_only", "meets_target", "mean_cycle_days")
DETAILS = ("policy", "load", "gini_raw", "mean_fit", "n_tasks", "seconds")


def _fmt(v: float) -> str:
    return f"{v:.3f}"


def verdict(rows: list[dict[str, Any]], load: float) -> list[str]:
    """Notes on the target at one load: which rows meet it, what the ranker's balance knob buys and costs."""
    by = {r["policy"]: r for r in rows}
    notes = []
    met = [r["policy"] for r in rows if r["meets_target"] and not r["policy"].startswith(("oracle", "historical"))]
    head = f"load {load:g}: "
    notes.append(head + f"target (Gini < {ms.TARGET_GINI} and top-1 >= {ms.TARGET_TOP1_RATIO:.0%} of skill-only's) "
                 + (f"met by {', '.join(met)}" if met else "met by no deployable policy"))
    rankers = [r for r in rows if r["policy"].startswith("ranker")]
    if rankers:
        lowest = min(rankers, key=lambda r: r["gini"])
        ok_top1 = [r["policy"] for r in rankers if r["top1_vs_skill_only"] >= ms.TARGET_TOP1_RATIO]
        ok_gini = [r["policy"] for r in rankers if r["gini"] < ms.TARGET_GINI]
        notes.append(
            head + f"ranker rows: Gini {_fmt(min(r['gini'] for r in rankers))}-"
            f"{_fmt(max(r['gini'] for r in rankers))}, top-1 ratio "
            f"{_fmt(min(r['top1_vs_skill_only'] for r in rankers))}-"
            f"{_fmt(max(r['top1_vs_skill_only'] for r in rankers))}; lowest Gini: {lowest['policy']} (Gini "
            f"{_fmt(lowest['gini'])}, top-1 ratio {_fmt(lowest['top1_vs_skill_only'])}, completion "
            f"{_fmt(lowest['completion_rate'])}, quality {_fmt(lowest['mean_quality'])}); Gini < {ms.TARGET_GINI}: "
            + (", ".join(ok_gini) if ok_gini else "none") + f"; top-1 >= {ms.TARGET_TOP1_RATIO:.0%}: "
            + (", ".join(ok_top1) if ok_top1 else "none"))
    if "least-loaded" in by:
        notes.append(head + f"least-loaded, the most even baseline, has Gini {_fmt(by['least-loaded']['gini'])}")
    return notes


@register
class AssignmentSimEvaluation(Evaluation):
    name = "assignment-sim"
    description = ("task assignment over a simulated month (hidden skills known): round-robin, least-loaded, "
                   "skill-only and the learned ranker; completion, quality, workload Gini, top-1 vs the target")
    folder = ""  # needs no dataset: the workspaces are simulated

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        unknown = sorted(set(options) - set(DEFAULTS) - {"ranker", "progress", "load"})
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; known: {sorted([*DEFAULTS, 'load', 'progress', 'ranker'])}")
        opts = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}}
        loads = (options["load"],) if "load" in options else tuple(opts["loads"])
        ranker = options.get("ranker")
        available = ms.ranker_available()
        if ranker is None:
            ranker = available
        rows: list[dict[str, Any]] = []
        anchors: list[Anchor] = []
        details: list[dict[str, Any]] = []
        per_ws: list[dict[str, Any]] = []
        notes: list[str] = []
        studies = {}
        for load in loads:
            study = ms.run_study(seed=int(opts["seed"]), workspaces=int(opts["workspaces"]), teams=int(opts["teams"]),
                                 users_per_team=int(opts["users_per_team"]), history_days=int(opts["history_days"]),
                                 eval_days=int(opts["eval_days"]), load=float(load), ranker=ranker,
                                 balance=tuple(opts["balance"]), progress=bool(options.get("progress", True)))
            studies[float(load)] = study.meta
            for r in study.rows:
                key = f"{r['policy']} @ load {float(load):g}"
                rows.append({"row": key, **{c: r.get(c) for c in COLUMNS[1:]}})
                details.append({"row": key, "policy": r["policy"], "load": float(load),
                                **{c: r.get(c) for c in DETAILS[2:]}})
                if r["policy"].startswith("ranker"):
                    anchors += [Anchor(key, "gini", ms.TARGET_GINI, SOURCE),
                                Anchor(key, "top1_vs_skill_only", ms.TARGET_TOP1_RATIO, SOURCE)]
            per_ws += [{"load": float(load), **p} for p in study.per_workspace]
            notes += verdict(study.rows, float(load))
        m = next(iter(studies.values()))
        head = [
            f"per load: {m['workspaces']} simulated workspaces (seed {m['seed']}, {m['teams']} teams, {m['users']} "
            f"users), {m['history_days']} days of history assigned by the simulator's noisy historical policy, then "
            f"a {m['eval_days']}-day month per policy with the same arrivals and noise. load = task flow relative to "
            f"the simulator's team sizing: 0.5 = users hold 1-2 open tasks (as in the workspace simulator's own "
            f"data), 1.0 = saturated team (about 7 open tasks per user).",
            "gini = normalised Gini of open story points across a team's members (team_balance's open_points_gini: "
            "0 even, 1 one member holds all) at each day end of the month, mean over days, then over all teams "
            "(meta.details.gini_raw: the plain Gini, max (n-1)/n; the ranker's balance term uses the normalised one); gini_assigned: "
            "Gini of the story points each member received in the month.",
            "top1 = share of tasks given to the team member with the best hidden fit (proficiency weighted by the "
            "task's true skill weights); top1_vs_skill_only = top1 / skill-only's top1 (same load). completion = "
            "done by the month's end; quality 0-5 of every task assigned in the month; on-time over tasks due in "
            "the month; mean_cycle_days = assigned to done.",
            "rows 'historical (simulator)' and 'oracle (hidden fit)' read the hidden truth: references, not "
            "deployable policies.",
        ]
        if ranker is False:
            head.append("learned ranker not run: " + ("sunday.models.assignment.ranker is not importable"
                                                      if not available else "ranker=False"))
        else:
            head.append("learned ranker: AssignmentRanker fit per load on the pooled history pair frames (label = "
                        "the historical assignee; completed/quality = observed outcome of that assignment); 'ranker' "
                        "= its default RankWeights, 'ranker (balance=b)' = the same with balance weight b.")
        meta = {"studies": studies, "loads": list(loads),
                "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items()},
                "details": details, "per_workspace": per_ws}
        return EvalResult(self.name, "row", rows, anchors=anchors, notes=head + notes, meta=meta)
