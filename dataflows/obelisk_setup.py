"""Obelisk's own set-up: a stream found by name in the Catalog, or created there, then read.

Given ``OBELISK_URL``, ``OBELISK_DATASETS`` (and ``OBELISK_METRICS``) and the client's
credentials, the job looks for its stream (``OBELISK_STREAM``) among the account's active
streams and creates it when there is none, so a restart reads the same stream and
Obelisk's subscription goes on where it stopped. A stream of that name that reads other
datasets or metrics, or leaves out a field a reading needs, is refused rather than read.
Settings are read in ``dataflows.config``; the Catalog's operations are
``connectors.obelisk_catalog``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from connectors.obelisk_catalog import CatalogStream, ObeliskCatalog, ObeliskCatalogError
from connectors.sse.retry import Outcome

if TYPE_CHECKING:
    from dataflows.config import StreamConfig

__all__ = [
    "OBELISK_ALL_NUMBERS",
    "OBELISK_REPLAY_EVENTS",
    "OBELISK_STREAM",
    "OBELISK_URL",
    "ObeliskSetup",
    "catalog_of",
    "stream_resolver",
    "usable_stream",
]

log = logging.getLogger("dataflows")

OBELISK_URL = "https://obelisk.ilabt.imec.be"
OBELISK_STREAM = "sensorwax"
# Every metric of type number: the only metrics that carry readings.
OBELISK_ALL_NUMBERS = "*::number"
# Obelisk acknowledges what it streamed every two seconds or so, and a reconnect with
# receiveBacklog starts again from there: the events of those seconds come twice. The
# client recognises a replay within the last this many events (a few MiB of history).
OBELISK_REPLAY_EVENTS = 50_000


@dataclass(frozen=True)
class ObeliskSetup:
    """An Obelisk, the stream the job reads there, and the client that reads it
    (``OBELISK_*``)."""

    url: str
    client_id: str
    secret: str = field(repr=False)
    stream: str = OBELISK_STREAM
    datasets: tuple[str, ...] = ()
    metrics: tuple[str, ...] = (OBELISK_ALL_NUMBERS,)
    filter: Any = None

    @property
    def partition(self) -> str:
        """The job's name for the stream (it keys recovery state): the same across a
        stream removed and created anew."""
        return f"obelisk:{self.stream}"


def catalog_of(setup: ObeliskSetup, stream: StreamConfig) -> ObeliskCatalog:
    """The Catalog of ``setup``'s Obelisk, with the stream's token provider and transport."""
    provider = stream.auth.token_provider
    if provider is None:  # config.py always gives Obelisk its client credentials
        raise ValueError("an Obelisk stream needs a token provider")
    options = stream.options
    return ObeliskCatalog(
        setup.url,
        provider,
        ca_certs=options.ca_certs,
        verify=options.verify,
        timeout=options.connect_timeout,
        proxy=options.proxy,
        trust_env=options.trust_env,
    )


def usable_stream(setup: ObeliskSetup, catalog: ObeliskCatalog) -> CatalogStream:
    """The account's stream named ``setup.stream``, created when there is none; raises
    ObeliskCatalogError when the one there does not read what the settings say."""
    found = catalog.find_stream(setup.stream)
    if found is None:
        created = catalog.create_stream(setup.stream, setup.datasets, setup.metrics, setup.filter)
        log.info(
            "created Obelisk stream %s (%s): datasets %s, metrics %s",
            created.id,
            created.name,
            ",".join(created.datasets),
            ",".join(created.metrics) or "all",
        )
        return created
    reasons = found.unfit()
    if set(found.datasets) != set(setup.datasets):
        reasons.append(f"it reads the datasets {','.join(found.datasets)}")
    if set(found.metrics) != set(setup.metrics):
        reasons.append(f"it reads the metrics {','.join(found.metrics) or 'all'}")
    if reasons:
        raise ObeliskCatalogError(
            f"Obelisk stream {found.name!r} ({found.id}) is not the stream these settings "
            f"ask for: {'; '.join(reasons)}. Remove it (python -m dataflows.obelisk "
            f"remove-stream {found.id}) or set OBELISK_STREAM to another name"
        )
    log.info("reading Obelisk stream %s (%s), as registered before", found.id, found.name)
    return found


def stream_resolver(setup: ObeliskSetup, stream: StreamConfig) -> Callable[[str], str]:
    """For the source: the job's name for the stream to the URL to read, found or created
    on first use (in the worker that reads it); a Catalog that cannot be reached or is
    overloaded is tried again with the stream's retry policy."""
    catalog = catalog_of(setup, stream)
    lock = threading.Lock()
    resolved: dict[str, str] = {}

    def resolve(name: str) -> str:
        with lock:
            if name not in resolved:
                found = _with_retries(lambda: usable_stream(setup, catalog), stream)
                resolved[name] = catalog.stream_url(found.id)
            return resolved[name]

    return resolve


def _with_retries(call: Callable[[], CatalogStream], stream: StreamConfig) -> CatalogStream:
    """``call``, tried again after a transient Catalog failure with the stream's own
    backoff and caps (``SSE_RETRY_*``), as a reconnect is."""
    backoff = stream.retry.start()
    while True:
        try:
            return call()
        except ObeliskCatalogError as exc:
            if not exc.transient:
                raise
            delay, backoff = backoff.after(Outcome(str(exc), at=time.monotonic()))
            log.warning("%s; trying again in %.2f s (attempt %d)", exc, delay, backoff.failures)
            time.sleep(delay)
