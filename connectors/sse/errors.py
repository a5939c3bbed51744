"""Typed subscription errors: what retrying cannot mend, each with what, where and what to do.

Messages are redacted before an error is built (``redact.py``), so an error never holds
a secret.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "SSEConnectionError",
    "SSEContentEncodingError",
    "SSEContentTypeError",
    "SSEError",
    "SSEHTTPError",
    "SSERetryExhausted",
    "SSETokenError",
]


class SSEError(Exception):
    """A subscription failed for good; its message names what, where, and what to do."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle would call the class with the message alone, and the subclasses' fields
        # are keyword-only: a reader process hands its error to the job this way.
        return (_restored, (type(self), self.args, self.__dict__))


def _restored(cls: type[SSEError], args: tuple[Any, ...], fields: dict[str, Any]) -> SSEError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


class SSEHTTPError(SSEError):
    """The server answered with a status that retrying will not change (401, 403, 404...)."""

    def __init__(self, message: str, *, status: int, url: str) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class SSEContentTypeError(SSEError):
    """The server answered 200 with something that is not an event stream."""

    def __init__(self, message: str, *, content_type: str, url: str) -> None:
        super().__init__(message)
        self.content_type = content_type
        self.url = url


class SSEContentEncodingError(SSEError):
    """The server answered 200 with a body in a coding the client does not decode."""

    def __init__(self, message: str, *, content_encoding: str, url: str) -> None:
        super().__init__(message)
        self.content_encoding = content_encoding
        self.url = url


class SSEConnectionError(SSEError):
    """A failure no retry can mend: TLS verification, a redirect loop, a bad URL."""


class SSERetryExhausted(SSEError):
    """The retry policy's cap on attempts or on time was reached."""

    def __init__(self, message: str, *, attempts: int, last_reason: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_reason = last_reason


class SSETokenError(SSEError):
    """The token endpoint refused the credentials, or a fresh token was refused too."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
