"""Domain errors: what went wrong in the service's own terms, with no HTTP in them.

The model runtime and the service state raise these; `service.errors.from_domain` is the one place
that turns them into the API's JSON error shape (status, code, Retry-After).
"""

from __future__ import annotations


class DomainError(Exception):
    """Base class; str() is the message a client may see."""


class ModelNotReady(DomainError):
    """No model is loaded (it failed to load or has not loaded yet); retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
