"""Feature platform: Ray Data pipelines from the event log into Feast (offline Parquet + online store)."""
