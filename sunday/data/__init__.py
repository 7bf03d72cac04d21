"""Data: importers of the public datasets into the data model, and the workspace simulator."""
