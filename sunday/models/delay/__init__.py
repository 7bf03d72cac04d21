"""Delay risk of issues with due dates: classify non-delay / minor / medium / major delay at a prediction time."""

from sunday.models.delay.risk import (CLASS_NAMES, DelayRiskClassifier, DelayRiskConfig, build_features,
                                      class_thresholds, p_delayed, risk_classes)

__all__ = ["CLASS_NAMES", "DelayRiskClassifier", "DelayRiskConfig", "build_features", "class_thresholds",
           "p_delayed", "risk_classes"]
