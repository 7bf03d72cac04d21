"""A seeded workspace simulator with hidden ground truth.

``simulate_tables(config)`` builds everything in memory; ``simulate(config, out_dir, engine)`` writes it as
Parquet (``engine="local"``: one process; ``engine="ray"``: Ray Data). Same config -> same rows, whatever the
engine or the number of partitions. Observable tables follow the data-model specs; the hidden truth (true skills,
speed, capacity, effort, completion, the assignment policy and anomaly labels) is kept apart under ``truth/``.
"""

from sunday.data.simulator.config import SKILLS, Plan, SimConfig, make_plan
from sunday.data.simulator.writer import SimResult, SimTables, read_simulation, simulate, simulate_tables

__all__ = [
    "SKILLS", "Plan", "SimConfig", "SimResult", "SimTables", "make_plan", "read_simulation", "simulate",
    "simulate_tables",
]
