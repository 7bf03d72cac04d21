"""Errors a user can act on. The CLI turns each into one line on stderr and exit code 2."""

from __future__ import annotations


class SundayError(Exception):
    """Base class for user-facing errors (bad input, missing data, bad settings)."""

    exit_code = 2


class ValidationError(SundayError):
    """A record breaks the data model. The message names the table, the record and the field."""

    def __init__(self, table: str, field: str, message: str, record: int | None = None, key: object = None):
        self.table, self.field, self.record, self.key = table, field, record, key
        where = f"{table}"
        if record is not None:
            where += f" record {record}"
            if key is not None:
                where += f" ({key})"
        super().__init__(f"{where}: field '{field}' {message}")


class DatasetMissingError(SundayError):
    """A dataset folder or file is not where the settings say it is."""


class MalformedInputError(SundayError):
    """A source file cannot be parsed (for example a CSV row with the wrong number of fields)."""


class UnknownNameError(SundayError):
    """A name (dataset, evaluation, ...) that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        super().__init__(f"unknown {kind} '{name}'; known: {', '.join(sorted(known)) or '(none)'}")
