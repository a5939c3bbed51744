"""SSESource: a Bytewax input with one partition per stream URL, resumable by event id.

Each partition runs ``subscribe`` in a reader thread (or reads there what a
``RemoteSubscription``'s process sends) that appends events to a pending list;
``next_batch`` takes what has accumulated without ever blocking. When the pending
events passed ``max_pending_bytes`` of stream, the reader waits, so TCP pushes back on
the server and memory stays bounded however slow the dataflow is. The resume state is
the id of the last event handed to the dataflow, so recovery resumes the stream with
``Last-Event-ID``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.sse import OversizedEvent, SSEEvent
from connectors.sse.client import SubscriptionLike, SubscriptionStats
from connectors.sse.parser import DecodedEvent

__all__ = ["SSESource", "StreamItem"]

log = logging.getLogger(__name__)

# What the source emits: the partition (stream) name and the event, or the marker of an
# event skipped for its size, which the dataflow turns into a dead letter, or (from a
# reader process that decodes, SSE_READER=process) what the decode made of either.
StreamItem = tuple[str, SSEEvent | OversizedEvent | DecodedEvent]


@dataclass(frozen=True)
class _End:
    """The stream ended normally (204)."""


@dataclass(frozen=True)
class _Failed:
    """The reader thread stopped on an error the dataflow must not outlive."""

    error: BaseException


_IDLE_POLL = timedelta(milliseconds=10)
_WAIT_POLL = 0.1


class _SSEPartition(StatefulSourcePartition[StreamItem, str]):
    """Reader thread -> pending list (bounded in bytes) -> ``next_batch``.

    The reader appends each network read's events; ``next_batch`` takes all that has
    accumulated (up to ``batch_size``) without waiting for more, so batches grow when
    the dataflow is behind and stay small, and prompt, when it keeps up.
    """

    def __init__(
        self,
        name: str,
        subscription: SubscriptionLike,
        *,
        batch_size: int,
        max_pending_bytes: int,
        on_close: Callable[[str, SubscriptionStats], None] | None,
        on_end: Callable[[str], None] | None,
    ) -> None:
        self._name = name
        self._sub = subscription
        self._batch_size = batch_size
        self._max_pending_bytes = max_pending_bytes
        self._ready = threading.Condition()
        self._pending: list[StreamItem] = []
        self._pending_bytes = 0
        self._outcome: _End | _Failed | None = None
        self._last_id = subscription.last_event_id
        self._awake: datetime | None = None
        self._ended = False
        self._on_close = on_close
        self._on_end = on_end
        self._thread = threading.Thread(
            target=self._read, name=f"sse-reader {subscription.url}", daemon=True
        )
        self._thread.start()

    def _read(self) -> None:
        name, sub, ready = self._name, self._sub, self._ready
        stats = sub.stats
        outcome: _End | _Failed = _End()
        try:
            seen = stats.bytes_received
            for batch in sub.batches():
                size = stats.bytes_received - seen
                seen = stats.bytes_received
                items = [(name, item) for item in batch]
                with ready:
                    # A full buffer holds the reader, and TCP holds the server.
                    while self._pending_bytes >= self._max_pending_bytes and not sub.closed:
                        ready.wait(_WAIT_POLL)
                    if sub.closed:
                        return
                    self._pending += items
                    self._pending_bytes += size
        except BaseException as exc:  # handed to the dataflow thread, which raises it
            outcome = _Failed(exc)
        with ready:
            self._outcome = outcome

    def next_batch(self) -> list[StreamItem]:
        if self._ended:
            self._end()
        with self._ready:
            pending = self._pending
            if len(pending) <= self._batch_size:
                out, self._pending = pending, []
                self._pending_bytes = 0
            else:
                out = pending[: self._batch_size]
                del pending[: self._batch_size]
                self._pending_bytes = (
                    self._pending_bytes * len(pending) // (len(pending) + len(out))
                )
            outcome = self._outcome if not self._pending else None
            self._ready.notify()
        if isinstance(outcome, _Failed):
            self._sub.close()
            raise outcome.error
        if out:
            self._last_id = out[-1][1].id
            self._awake = None
            self._ended = isinstance(outcome, _End)
        elif isinstance(outcome, _End):
            self._end()
        else:
            # Nothing yet: come back shortly rather than have the runtime poll in a loop.
            self._awake = datetime.now(UTC) + _IDLE_POLL
        return out

    def _end(self) -> NoReturn:
        if self._on_end is not None:
            self._on_end(self._name)
        raise StopIteration

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> str:
        return self._last_id

    def close(self) -> None:
        self._sub.close()
        self._thread.join(timeout=5)
        stats = self._sub.stats
        log.info(
            "%s: %d events, %d oversized, %d connects, %d reconnects",
            self._sub.url,
            stats.events,
            stats.oversized,
            stats.connects,
            stats.reconnects,
        )
        if self._on_close is not None:
            self._on_close(self._name, stats)


class SSESource(FixedPartitionedSource[StreamItem, str]):
    """One partition per stream; ``subscribe_to(url, last_event_id)`` opens each.

    ``streams`` maps a stable partition name (it keys the recovery state) to a URL.
    ``batch_size`` caps the items ``next_batch`` returns; ``max_pending_bytes`` caps the
    stream bytes read but not yet handed to the dataflow (then the reader waits). 2 MiB
    holds ~18,000 typical events, several full batches, so the dataflow never starves;
    held as Python objects it is ~20 MiB, the most a backlog adds to the peak RSS.
    ``on_close(name, stats)`` is called as a partition closes, ``on_end(name)`` when its
    stream ended as streams end (a 204), not by a failure.
    """

    def __init__(
        self,
        streams: dict[str, str],
        subscribe_to: Callable[[str, str | None], SubscriptionLike],
        *,
        batch_size: int = 5000,
        max_pending_bytes: int = 2 << 20,
        on_close: Callable[[str, SubscriptionStats], None] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> None:
        if not streams:
            raise ValueError("SSESource needs at least one stream")
        self._streams = dict(streams)
        self._subscribe_to = subscribe_to
        self._batch_size = batch_size
        self._max_pending_bytes = max_pending_bytes
        self._on_close = on_close
        self._on_end = on_end

    def list_parts(self) -> list[str]:
        return list(self._streams)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> _SSEPartition:
        last_event_id = resume_state if isinstance(resume_state, str) and resume_state else None
        if last_event_id:
            log.info("%s: resuming after event %r", for_part, last_event_id)
        subscription = self._subscribe_to(self._streams[for_part], last_event_id)
        return _SSEPartition(
            for_part,
            subscription,
            batch_size=self._batch_size,
            max_pending_bytes=self._max_pending_bytes,
            on_close=self._on_close,
            on_end=self._on_end,
        )
