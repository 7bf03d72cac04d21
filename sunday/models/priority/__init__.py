"""Priority suggestion for untriaged tasks: point-in-time features (``features``) and the XGBoost scorer
(``scorer``) with per-prediction explanations from ``pred_contribs``."""
