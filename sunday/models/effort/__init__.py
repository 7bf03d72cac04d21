"""Effort estimation models. :mod:`.text_points`: story points of an issue from its title and description."""

from sunday.models.effort.text_points import TextPointsConfig, TextPointsEstimator

__all__ = ["TextPointsConfig", "TextPointsEstimator"]
