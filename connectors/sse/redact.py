"""Secrets out of every message: a Redactor for strings and a logging filter built on it.

A ``Redactor`` replaces the secrets it was given, ``token=``-like query parameters, URL
passwords and ``Authorization`` values with ``***``. ``redact_logs`` installs one shared
filter, which knows every secret registered so far, on the loggers or handlers it is
given: a filter on a logger sees only what that logger logs itself, a filter on a handler
sees everything that reaches the handler.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "SECRET_PARAMS", "Redactor", "redact_logs"]

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
# A value ends where the query does; in a message, a colon right before that end is the
# message's ("<url>: HTTP 401"), not the value's, and stays.
_PARAM_RE = re.compile(
    r"(?i)([?&;](?:" + "|".join(SECRET_PARAMS) + r")=)[^&#\s'\"<>]*?(?=:?(?:[&#\s'\"<>]|$))",
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


# One filter for the process: a secret registered by one subscription is masked in the
# records of every other, since a urllib3 logger is shared by all of them.
_FILTER = _RedactingFilter()


def redact_logs(
    secrets: Iterable[str], targets: Iterable[logging.Logger | logging.Handler]
) -> None:
    """Mask ``secrets`` (and secret shapes) in what ``targets`` log or emit from now on."""
    _FILTER.add(secrets)
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
