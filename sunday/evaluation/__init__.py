"""Real-data evaluations (``sunday eval NAME``)."""

from sunday.evaluation.base import Anchor, EvalResult, Evaluation, evaluation_names, get_evaluation, run_evaluation

__all__ = ["Anchor", "EvalResult", "Evaluation", "evaluation_names", "get_evaluation", "run_evaluation"]
