"""Importers from the public datasets folder (``SUNDAY_DATA_DIR``) into the data model, one module each."""

import importlib

from sunday.data.importers.base import ImportResult, Importer, get_importer, import_dataset, importer_names

MODULES = ("bug_triage", "storypoints", "sprint_delivery", "delayed_issues", "nab", "qmsum", "open_bandit")

for _m in MODULES:
    try:
        importlib.import_module(f"sunday.data.importers.{_m}")
    except ModuleNotFoundError as exc:  # a module not written yet
        if exc.name != f"sunday.data.importers.{_m}":
            raise

__all__ = ["ImportResult", "Importer", "get_importer", "import_dataset", "importer_names", "MODULES"]
