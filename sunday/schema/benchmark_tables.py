"""Tables that keep what the public benchmark datasets carry beyond the core data model."""

from sunday.schema import planning_tables, signal_tables  # noqa: F401  (each module registers its specs)
