"""Imports every evaluation module so each registers itself. Model issues add their module to MODULES."""

import importlib

MODULES = ("storypoints_baselines",)

for _m in MODULES:
    try:
        importlib.import_module(f"sunday.evaluation.{_m}")
    except ModuleNotFoundError as exc:
        if exc.name != f"sunday.evaluation.{_m}":
            raise
