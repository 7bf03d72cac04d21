"""Anomaly detection: streaming detectors (statistical rules, Isolation Forest, LSTM autoencoder), their
calibrated ensemble with alerts, and the workspace signals they watch."""
