"""Imports every evaluation module so each registers itself. Model issues add their module here."""

from sunday.evaluation import (  # noqa: F401
    anomaly_sim, assignment_sim, cf_sim, delay_risk, nab, notify_sim, obd, priority_sim, qmsum_search, qmsum_summary,
    sprints, storypoints, storypoints_baselines, task_risk, timeline, triage, workload_sim,
)
