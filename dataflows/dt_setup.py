"""Disruptive Technologies' own set-up: the variables of DT's examples to a stream URL.

DT's examples read ``DT_PROJECT_ID``, ``DT_SERVICE_ACCOUNT_KEY_ID``,
``DT_SERVICE_ACCOUNT_SECRET`` and ``DT_SERVICE_ACCOUNT_EMAIL``; given them, the job reads
the project's device stream (``GET /v2/projects/<id>/devices:stream``) with the
service account's key: the OAuth2 JWT grant when the email is given, basic auth (key id
and secret, as DT's streaming example does) when not. Settings are read in
``dataflows.config``; this module only builds what they name.
"""

from __future__ import annotations

import math
from urllib.parse import quote, urlencode

__all__ = ["DT_API_URL", "DT_IDLE_CLOSE", "DT_TOKEN_URL", "ping_interval", "stream_url"]

DT_API_URL = "https://api.d21s.com/v2"
DT_TOKEN_URL = "https://identity.disruptive-technologies.com/oauth2/token"
# A DT heartbeat brings up to 15 minutes of temperature samples (a sensor's default
# heartbeat), so quiet sensors' windows stay open that long and a minute more.
DT_IDLE_CLOSE = "16m"


def ping_interval(heartbeat_seconds: float) -> str:
    """DT's ``ping_interval`` for a heartbeat timeout: pings a sixth more often than the
    timeout, so one ping late by DT's jitter does not make the job reconnect (DT's own
    example waits the interval plus a jitter of a fifth of it)."""
    every = heartbeat_seconds * 5 / 6
    if every >= 1:
        return f"{math.floor(every)}s"
    return f"{max(every, 0.05):.2f}s"


def stream_url(
    api_url: str, project: str, heartbeat_seconds: float, event_types: tuple[str, ...]
) -> str:
    """The project's device stream, with DT's ``ping_interval`` and ``event_types``."""
    query = [("ping_interval", ping_interval(heartbeat_seconds))]
    query += [("event_types", kind) for kind in event_types]
    base = api_url.rstrip("/")
    return f"{base}/projects/{quote(project, safe='')}/devices:stream?{urlencode(query)}"
