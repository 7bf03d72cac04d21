"""Models: estimators that the evaluations and the serving layer build on, grouped by task (``assignment``, ...)."""
