"""Imports every evaluation module so each registers itself. Model issues add their module here."""

from sunday.evaluation import assignment_sim, storypoints_baselines, triage  # noqa: F401
