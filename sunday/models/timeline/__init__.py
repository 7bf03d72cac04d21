"""Project timeline forecaster (issue 5): snapshots, baselines, the LSTM quantile/risk model and the service."""
