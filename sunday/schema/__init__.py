"""The workspace data model: pyarrow schemas plus validation."""

from sunday.schema.spec import Check, TableSpec, all_specs, get_spec, validate

__all__ = ["Check", "TableSpec", "all_specs", "get_spec", "validate"]
