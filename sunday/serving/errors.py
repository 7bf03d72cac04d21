"""Errors of the serving API's access layer, each carrying the HTTP status the ingress answers with.

All subclass :class:`sunday.errors.SundayError`, so the CLI prints them as one line with exit code 2; the FastAPI
ingress maps them with ``status_code`` and ``headers()``::

    except ServingError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code, headers=exc.headers())
"""

from __future__ import annotations

import math

from sunday.errors import SundayError, ValidationError


class ServingError(SundayError):
    """Base class: an error with an HTTP status (``status_code``) and optional response headers."""

    status_code = 500

    def headers(self) -> dict[str, str]:
        return {}


class InvalidField(ServingError, ValidationError):
    """Bad input to the access layer (unknown role, empty workspace, ...). ``field`` names the offending field."""

    status_code = 400

    def __init__(self, field: str, message: str, table: str = "api_key"):
        ValidationError.__init__(self, table=table, field=field, message=message)


class Unauthorized(ServingError):
    """No API key, or one that is unknown, revoked or expired (HTTP 401)."""

    status_code = 401

    def __init__(self, message: str = "missing or invalid API key"):
        super().__init__(message)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ServingError):
    """A valid key that lacks the role, or that belongs to another workspace (HTTP 403)."""

    status_code = 403


class NotFound(ServingError):
    """An API key id (or other named thing) that does not exist (HTTP 404)."""

    status_code = 404


class RateLimited(ServingError):
    """The workspace's token bucket is empty (HTTP 429). ``retry_after`` is in seconds (float);
    ``headers()`` gives ``Retry-After`` rounded up to whole seconds (at least 1), as HTTP requires."""

    status_code = 429

    def __init__(self, workspace_id: str, retry_after: float):
        self.workspace_id = workspace_id
        self.retry_after = float(retry_after)
        super().__init__(f"rate limit exceeded for workspace '{workspace_id}'; retry after {self.retry_after:.2f} s")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class AuditUnavailable(ServingError):
    """The audit log could not be written (database stayed locked past the deadline, disk error) (HTTP 503).
    A request whose audit record failed must not be reported as served."""

    status_code = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}
