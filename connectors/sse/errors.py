"""Typed subscription errors, and the redaction of secrets (it lives here and only here).

Every message that leaves the connector (exceptions, log lines, reprs) passes through a
``Redactor``: it replaces the secrets a subscription was given, ``token=``-like query
parameters, URL passwords and ``Authorization`` values with ``***``. urllib3's own
loggers get a filter that does the same, since they print request paths.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Redactor",
    "SSEConnectionError",
    "SSEContentTypeError",
    "SSEError",
    "SSEHTTPError",
    "SSERetryExhausted",
    "install_log_redaction",
]

MASK = "***"

# Query parameters whose values are secrets whatever the vendor calls them.
SECRET_PARAMS = (
    "token",
    "access_token",
    "auth",
    "api_key",
    "apikey",
    "key",
    "password",
    "secret",
    "signature",
    "sig",
)
_PARAM_RE = re.compile(
    r"(?i)([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&#\s'\"<>]*",
)
_AUTH_RE = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+")
_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@/\s]*@")


class Redactor:
    """Replaces known secrets and secret-shaped substrings with ``***``."""

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _PARAM_RE.sub(r"\1" + MASK, text)
        text = _AUTH_RE.sub(r"\1\2" + MASK, text)
        return _USERINFO_RE.sub(r"\1" + MASK + "@", text)

    def url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
            url = urlunsplit(parts._replace(netloc=netloc))
        return self.text(url)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


class SSEError(Exception):
    """A subscription failed for good; its message names what, where, and what to do."""


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


class SSEConnectionError(SSEError):
    """A failure no retry can mend: TLS verification, a redirect loop, a bad URL."""


class SSERetryExhausted(SSEError):
    """The retry policy's cap on attempts or on time was reached."""

    def __init__(self, message: str, *, attempts: int, last_reason: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.last_reason = last_reason


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message with every secret registered so far masked."""

    def __init__(self) -> None:
        super().__init__("sensorwax-redaction")
        self._lock = threading.Lock()
        self._redactor = Redactor()
        self._secrets: set[str] = set()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            new = {s for s in secrets if s} - self._secrets
            if new:
                self._secrets |= new
                self._redactor = Redactor(self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self._redactor.text(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


_FILTER = _RedactingFilter()
# Filters on a logger apply only to records it logs itself, so each module logger is named.
_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.util.retry",
    "connectors.sse.client",
    "connectors.sse.parser",
    "connectors.source",
)


def install_log_redaction(secrets: Iterable[str] = ()) -> None:
    """Make the connector's and urllib3's loggers mask ``secrets`` and secret shapes."""
    _FILTER.add(secrets)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
