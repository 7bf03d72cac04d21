"""Workspace anomaly alerts against the simulator's injected anomalies (``sunday eval anomaly-sim``).

Simulates workspaces (or reads a written simulation: option ``sim``), runs
:class:`~sunday.models.anomaly.monitor.WorkspaceMonitor` over the whole event log in time order (the streaming
path, one event at a time, days closed as the stream moves on) and matches its alerts to ``truth/anomalies``
(read only here, never by the monitor).

Matching rule: an alert *hits* a label when it concerns the label's entity (its project; its team for
``workload_concentration``), its signal points at the label's kind (velocity -> velocity_drop, tasks_created ->
creation_spike, stuck_days -> stuck_task, task_reassignments -> reassignment_churn, assigned_share ->
workload_concentration) and its first day lies in ``[label start day, max(label end day, label start day +
grace_days)]`` (UTC days; ``grace_days`` 7). A label is detected when an alert hits it; its delay is the first
hitting alert's first day minus the label's start day. An alert is true when it hits a label, else false.

Rows: one per kind -- labels, detected, recall, alerts of the kind's signal, true alerts, precision, median and
90th-percentile delay in days, false alerts per project-month (false alerts / (watched project-days / 30); team
alerts included in ``all``), and ``no_detector``, the share of alerts in which no detector agreed (raised by the
signal's rule alone) -- and ``all``.

Options: ``events`` (400000: about 10 workspaces of a year), ``seed`` (2: the rules of
:data:`~sunday.models.anomaly.monitor.RULES` were chosen on seeds 0 and 1), ``anomaly_rate`` (1.0, the
simulator's default), ``sim`` (a simulation folder to read instead of simulating), ``grace_days`` (7).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sunday.evaluation.base import EvalResult, Evaluation, register, resolve_options

DEFAULTS: dict[str, Any] = {"events": 400_000, "seed": 2, "anomaly_rate": 1.0, "sim": None, "grace_days": 7}
DAY = pd.Timedelta(days=1)


def _tables(opts: dict[str, Any]):
    if opts["sim"]:
        from sunday.data.simulator.writer import read_simulation

        return read_simulation(Path(opts["sim"])), {"sim": str(opts["sim"])}
    from sunday.data.simulator import SimConfig, simulate_tables

    cfg = SimConfig(n_events=int(opts["events"]), seed=int(opts["seed"]), anomaly_rate=float(opts["anomaly_rate"]))
    return simulate_tables(cfg), {"events": cfg.n_events, "seed": cfg.seed, "anomaly_rate": cfg.anomaly_rate}


def match(alerts: pd.DataFrame, labels: pd.DataFrame, kind_of: dict[str, str],
          grace_days: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labels with ``detected`` / ``delay_days``, alerts with ``true``) under the module's matching rule.

    ``alerts``: workspace_id, entity_type, entity_id, signal, start (ISO day); ``labels``: the truth/anomalies
    frame."""
    labels = labels.copy()
    alerts = alerts.copy()
    labels["entity"] = np.where(labels["kind"] == "workload_concentration", labels["team_id"], labels["project_id"])
    labels["d0"] = pd.to_datetime(labels["start"]).dt.floor("D")
    d_end = pd.to_datetime(labels["end"]).dt.floor("D")
    labels["d1"] = np.maximum(d_end, labels["d0"] + grace_days * DAY)
    alerts["kind"] = alerts["signal"].map(kind_of)
    alerts["d"] = pd.to_datetime(alerts["start"])
    alerts["true"] = False
    labels["detected"] = False
    labels["delay_days"] = np.nan
    if len(alerts) and len(labels):
        m = labels.reset_index().merge(alerts.reset_index(), left_on=["workspace_id", "entity", "kind"],
                                       right_on=["workspace_id", "entity_id", "kind"], suffixes=("_l", "_a"))
        m = m[(m["d"] >= m["d0"]) & (m["d"] <= m["d1"])]
        if len(m):
            alerts.loc[m["index_a"].unique(), "true"] = True
            first = m.groupby("index_l")["d"].min()
            labels.loc[first.index, "detected"] = True
            labels.loc[first.index, "delay_days"] = (first - labels.loc[first.index, "d0"]).dt.days
    return labels, alerts


def summarize(labels: pd.DataFrame, alerts: pd.DataFrame, kinds: list[str], project_days: int) -> list[dict]:
    months = project_days / 30.0
    rows = []

    def row(name: str, lab: pd.DataFrame, al: pd.DataFrame) -> dict:
        d = lab.loc[lab["detected"], "delay_days"]
        return {"kind": name, "labels": len(lab), "detected": int(lab["detected"].sum()),
                "recall": float(lab["detected"].mean()) if len(lab) else float("nan"),
                "alerts": len(al), "true_alerts": int(al["true"].sum()),
                "precision": float(al["true"].mean()) if len(al) else float("nan"),
                "median_delay_days": float(d.median()) if len(d) else float("nan"),
                "p90_delay_days": float(d.quantile(0.9)) if len(d) else float("nan"),
                "false_per_project_month": float((~al["true"]).sum() / months) if months else float("nan"),
                "no_detector": float((al["detectors"].map(len) == 0).mean()) if len(al) else float("nan")}

    for k in kinds:
        rows.append(row(k, labels[labels["kind"] == k], alerts[alerts["kind"] == k]))
    rows.append(row("all", labels, alerts))
    return rows


@register
class AnomalySimEvaluation(Evaluation):
    name = "anomaly-sim"
    description = ("workspace anomaly alerts (velocity drops, creation spikes, stuck tasks, reassignment churn, "
                   "workload concentration) against the simulator's injected anomalies: recall per kind, precision, "
                   "detection delay, false alerts per project-month")
    folder = ""  # needs no dataset: the workspaces are simulated

    def run(self, data_dir: Path, **options: Any) -> EvalResult:
        from sunday.data.simulator.anomalies import KINDS
        from sunday.models.anomaly.monitor import WorkspaceMonitor

        opts = resolve_options(DEFAULTS, options)
        t0 = time.perf_counter()
        tables, source = _tables(opts)
        t_sim = time.perf_counter() - t0
        final: dict[str, Any] = {}

        def sink(alerts):
            for a in alerts:
                final[a.alert_id] = a

        monitor = WorkspaceMonitor.from_tables(tables["users"].to_pandas(), tables["projects"].to_pandas(),
                                               sink=sink)
        stats = monitor.replay(tables.events)
        cols = ["alert_id", "workspace_id", "entity_type", "entity_id", "signal", "kind", "start", "end", "score",
                "detectors", "subject", "reason"]
        alerts = pd.DataFrame([{c: getattr(a, c) for c in cols} for a in final.values()], columns=cols)
        labels = tables["truth/anomalies"].to_pandas()
        kind_of = {s: r.kind for s, r in monitor.config.rules.items()}
        lab, al = match(alerts, labels, kind_of, int(opts["grace_days"]))
        rows = summarize(lab, al, list(KINDS), monitor.entity_days["project"])
        n_ws = len(tables.events.column("workspace_id").unique())
        notes = [
            f"{n_ws} workspaces, {stats.events} events replayed in time order through WorkspaceMonitor in "
            f"{stats.seconds:.1f} s ({stats.events_per_second:,.0f} events/s; {stats.days} workspace-days closed, "
            f"{monitor.entity_days['project']} project-days and {monitor.entity_days['team']} team-days fed to "
            f"{monitor.watched()} ensembles); simulation {t_sim:.1f} s.",
            f"hit rule: same entity (project; team for workload_concentration), the signal of the label's kind, alert "
            f"first day from the label's start day to max(its end day, start day + {opts['grace_days']}) (UTC days); "
            "delay = first hitting alert's first day - label start day (days).",
            "no_detector = share of the row's alerts in which no detector's own score reached the ensemble's 'agree' "
            "level (0.6): raised by the signal's rule (SignalRule.sure) or on a weak combined score.",
            "false_per_project_month: false alerts of the row's signal (all: every signal, team alerts included) per "
            "30 watched project-days.",
        ]
        missed = lab[~lab["detected"]].groupby("kind").size().to_dict()
        meta = {"source": source, "options": {k: v for k, v in opts.items()}, "replay": stats.__dict__,
                "missed": missed, "signals": kind_of,
                "false_alerts": al.loc[~al["true"], ["workspace_id", "entity_id", "signal", "start", "end",
                                                     "reason"]].head(50).to_dict("records")}
        return EvalResult(self.name, "kind", rows, notes=notes, meta=meta)
