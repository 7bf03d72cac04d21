"""Errors of the NLP layer. Each is a :class:`~sunday.serving.errors.ServingError` (one line and exit code 2 in the CLI)
with the HTTP status the serving app answers with."""

from __future__ import annotations

from sunday.serving.errors import ServingError


class NlpError(ServingError):
    """Base class; the serving app answers with ``status_code`` and ``headers()``."""

    status_code = 400


class InputTooLarge(NlpError):
    """A query, transcript or prompt over its size limit (HTTP 413). ``field`` names the input."""

    status_code = 413

    def __init__(self, field: str, size: int, limit: int, unit: str = "characters"):
        self.field, self.size, self.limit, self.unit = field, size, limit, unit
        super().__init__(f"field '{field}' is too large: {size} {unit}, the limit is {limit} {unit}")


class TokenBudgetExceeded(NlpError):
    """The workspace's LLM token budget for the period is spent (HTTP 429)."""

    status_code = 429

    def __init__(self, workspace_id: str, used: int, requested: int, limit: int, retry_after_s: int | None = None):
        self.workspace_id, self.used, self.requested, self.limit = workspace_id, used, requested, limit
        self.retry_after_s = retry_after_s
        super().__init__(f"workspace '{workspace_id}' LLM token budget exceeded: {used} used + {requested} "
                         f"requested > {limit}")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}


class LLMUnavailable(NlpError):
    """The LLM backend cannot be reached or answered with an error (HTTP 503)."""

    status_code = 503


class DraftRejected(NlpError):
    """LLM output that could not be repaired into a valid result (HTTP 422); ``reason`` says why."""

    status_code = 422

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"generated output rejected: {reason}")


class ModelMissing(NlpError):
    """A model the request needs is not trained or registered yet (HTTP 503); the message says how to train it."""

    status_code = 503


class VectorStoreBusy(NlpError):
    """The embedded vector store's folder is locked by another process (HTTP 503)."""

    status_code = 503
