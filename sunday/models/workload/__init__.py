"""Next-week hours per user: weekly point-in-time features and labels (``features``) and the gradient-boosted
predictor (``predictor``) with per-prediction explanations from tree SHAP contributions."""
