"""The assignment ranker as an MLflow pyfunc model: what the registry stores and serving loads."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import pandas as pd


class AssignmentPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(pair_frame)`` -> per pair ``score_logit``, ``completion``, ``quality`` and ``rank`` in its task.

    ``unwrap_python_model().ranker`` gives the :class:`AssignmentRanker` itself (``rank`` with weights, reasons).
    """

    def load_context(self, context: Any) -> None:
        from sunday.models.assignment.ranker import AssignmentRanker

        self.ranker = AssignmentRanker.load(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.ranker.rank_frame(model_input)
