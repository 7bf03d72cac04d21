"""Importers from the public datasets folder (``SUNDAY_DATA_DIR``) into the data model, one module each.

Importing this package registers every importer (no data is read until ``load``).
"""

from sunday.data.importers import (  # noqa: F401  (each module registers its importer)
    bug_triage, delayed_issues, nab, open_bandit, qmsum, sprint_delivery, storypoints,
)
from sunday.data.importers.base import ImportResult, Importer, get_importer, import_dataset, importer_names

__all__ = ["ImportResult", "Importer", "get_importer", "import_dataset", "importer_names"]
