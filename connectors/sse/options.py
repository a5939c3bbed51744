"""ConnectOptions: how to reach a stream (timeouts, TLS, size limit, redirects, headers).

One frozen value, shared by ``subscribe`` and the jobs' settings under the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from connectors.sse.parser import DEFAULT_MAX_EVENT_BYTES

__all__ = ["ConnectOptions"]


@dataclass(frozen=True)
class ConnectOptions:
    """Transport settings for a subscription.

    - ``connect_timeout``: seconds to wait for the TCP (and TLS) connection.
    - ``heartbeat_timeout``: reconnect after this many seconds without a byte (comments
      and pings count); None waits forever.
    - ``ca_certs``: a PEM file of CAs to trust for ``https://`` (a private CA).
    - ``verify``: verify the server's certificate (turning it off is possible, not advised).
    - ``max_event_bytes``: an event whose data passes this is skipped, and reported.
    - ``max_redirects``: redirects followed per connect; more is a redirect loop.
    - ``headers``: extra request headers; an ``Authorization``, ``Cookie`` or
      ``X-API-Key`` among them is treated as a secret. Not shown in the repr.
    - ``proxy``: a forward proxy for every request (``http://user:pass@host:port``);
      ``trust_env``: else the environment's ``https_proxy``, ``http_proxy``,
      ``all_proxy`` and ``no_proxy``, read as curl reads them (``connectors.sse.proxy``).
    - ``drop_replays``: after a reconnect, drop the events that repeat a stretch of the
      last ``drop_replays`` delivered (``connectors.sse.replay``), for servers that resume
      from an acknowledgement rather than from ``Last-Event-ID``, as Obelisk does; 0: off.
    """

    connect_timeout: float = 10.0
    heartbeat_timeout: float | None = 60.0
    ca_certs: str | None = None
    verify: bool = True
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_redirects: int = 5
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    proxy: str | None = field(default=None, repr=False)
    trust_env: bool = True
    drop_replays: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not self.connect_timeout > 0:
            problems.append(f"connect_timeout must be > 0, got {self.connect_timeout}")
        if self.heartbeat_timeout is not None and not self.heartbeat_timeout > 0:
            problems.append(f"heartbeat_timeout must be > 0 or None, got {self.heartbeat_timeout}")
        if self.max_event_bytes < 1:
            problems.append(f"max_event_bytes must be at least 1, got {self.max_event_bytes}")
        if self.drop_replays < 0:
            problems.append(f"drop_replays must be >= 0, got {self.drop_replays}")
        if self.max_redirects < 0:
            problems.append(f"max_redirects must be >= 0, got {self.max_redirects}")
        if problems:
            raise ValueError("invalid ConnectOptions: " + "; ".join(problems))
