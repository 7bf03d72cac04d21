"""Tables that keep what the public benchmark datasets carry beyond the core data model."""

from __future__ import annotations

import importlib

# each module registers its TableSpecs on import
for _mod in ("sunday.schema.planning_tables", "sunday.schema.signal_tables"):
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as exc:  # a module not written yet
        if exc.name != _mod:
            raise
