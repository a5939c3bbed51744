"""SSESource: a Bytewax input with one partition per stream URL, resumable by event id.

Each partition runs ``subscribe`` in a reader thread that fills a bounded queue with one
list per network read; ``next_batch`` drains that queue without ever blocking. A full
queue stops the reader, so TCP pushes back on the server and memory stays bounded
however slow the dataflow is. The resume state is the id of the last event handed to
the dataflow, so recovery resumes the stream with ``Last-Event-ID``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.sse import OversizedEvent, SSEEvent, Subscription
from connectors.sse.client import SubscriptionStats

__all__ = ["SSESource", "StreamItem"]

log = logging.getLogger(__name__)

# What the source emits: the partition (stream) name and the event, or the marker of an
# event skipped for its size, which the dataflow turns into a dead letter.
StreamItem = tuple[str, SSEEvent | OversizedEvent]


@dataclass(frozen=True)
class _End:
    """The stream ended normally (204)."""


@dataclass(frozen=True)
class _Failed:
    """The reader thread stopped on an error the dataflow must not outlive."""

    error: BaseException


_IDLE_POLL = timedelta(milliseconds=20)
_PUT_POLL = 0.1


class _SSEPartition(StatefulSourcePartition[StreamItem, str]):
    def __init__(
        self,
        name: str,
        subscription: Subscription,
        *,
        batch_size: int,
        queue_batches: int,
        on_close: Callable[[str, SubscriptionStats], None] | None,
    ) -> None:
        self._name = name
        self._sub = subscription
        self._batch_size = batch_size
        self._queue: queue.Queue[list[SSEEvent | OversizedEvent] | _End | _Failed] = queue.Queue(
            maxsize=queue_batches
        )
        self._last_id = subscription.last_event_id
        self._awake: datetime | None = None
        self._ended = False
        self._on_close = on_close
        self._thread = threading.Thread(
            target=self._read, name=f"sse-reader {subscription.url}", daemon=True
        )
        self._thread.start()

    def _put(self, item: list[SSEEvent | OversizedEvent] | _End | _Failed) -> bool:
        # Wait for room, but notice close() so a full queue cannot hold the thread forever.
        while not self._sub.closed:
            try:
                self._queue.put(item, timeout=_PUT_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for batch in self._sub.batches():
                if not self._put(batch):
                    return
            self._put(_End())
        except BaseException as exc:  # handed to the dataflow thread, which raises it
            self._put(_Failed(exc))

    def next_batch(self) -> list[StreamItem]:
        if self._ended:
            raise StopIteration
        name = self._name
        out: list[StreamItem] = []
        get = self._queue.get_nowait
        while len(out) < self._batch_size:
            try:
                batch = get()
            except queue.Empty:
                break
            if isinstance(batch, _End):
                self._ended = True
                break
            if isinstance(batch, _Failed):
                self._sub.close()
                raise batch.error
            out.extend([(name, item) for item in batch])
        if out:
            self._last_id = out[-1][1].id
            self._awake = None
        elif self._ended:
            raise StopIteration
        else:
            # Nothing yet: come back shortly rather than have the runtime poll in a loop.
            self._awake = datetime.now(UTC) + _IDLE_POLL
        return out

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
    ``batch_size`` caps the items ``next_batch`` returns; ``queue_batches`` caps the
    network reads held between the reader thread and the dataflow.
    """

    def __init__(
        self,
        streams: dict[str, str],
        subscribe_to: Callable[[str, str | None], Subscription],
        *,
        batch_size: int = 5000,
        queue_batches: int = 64,
        on_close: Callable[[str, SubscriptionStats], None] | None = None,
    ) -> None:
        if not streams:
            raise ValueError("SSESource needs at least one stream")
        self._streams = dict(streams)
        self._subscribe_to = subscribe_to
        self._batch_size = batch_size
        self._queue_batches = queue_batches
        self._on_close = on_close

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
            queue_batches=self._queue_batches,
            on_close=self._on_close,
        )
