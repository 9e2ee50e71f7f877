"""The errors sophia-mcp raises on purpose.

Adapters and workflows raise these; the MCP surface turns each into an `isError` result whose text says
what to do next, and the CLI prints it. Anything else is a bug and is reported without its details.
"""

from __future__ import annotations

from typing import TypeVar


class SophiaError(Exception):
    """Base of every anticipated failure; its message is safe to show to a user or a model."""

    # The external service that failed, when one did (the HTTP layer names it): the healing watch groups by it.
    service: str | None = None


class NotFound(SophiaError):
    """The thing asked for does not exist (an unknown id, an empty filter result that should not be)."""


class InvalidInput(SophiaError):
    """The request is well-formed but cannot be served as asked (a bad cursor, a date range backwards)."""


class ServiceUnavailable(SophiaError):
    """An external service (or the local store) could not answer, after the retries it was allowed."""


class DiskFull(ServiceUnavailable):
    """The disk holding the store (or a file being written) has no space left; nothing more can be kept."""


class RateLimited(ServiceUnavailable):
    """An external service kept saying it is rate limited past the retry budget."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ConfigurationError(SophiaError):
    """The settings do not describe a usable backend (a missing credential, an unknown backend name)."""


class CredentialsRefused(ConfigurationError):
    """A service answered 401/403: the credentials its settings give are wrong, expired or lack a permission."""


E = TypeVar("E", bound=SophiaError)


def of_service(error: E, service: str) -> E:
    """`error`, naming the external service that failed: the healing watch groups failures by it."""
    error.service = service
    return error
