"""Where each stream broke: its reconnects, each with the stream's event time at the break.

The client reports a reconnect from its reading thread once every event of the ended
connection has been handed on (``subscribe(on_reconnect=...)``), with the id of the last
one. The intake may or may not have read that event yet: if it has, the stream's event
time now is the time at the break; if not, the break waits for the batch that holds the
event, and gets the stream's event time as of that event. Either way it is exact, and
nothing here runs per event unless a break is waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from connectors.source import StreamItem
from connectors.sse import Reconnect
from dataflows.readings import Marks, Watched
from dataflows.windows import StreamTimes

__all__ = ["Break", "StreamBreaks"]

# A long run behind a proxy that cuts every minute reconnects 1,440 times a day: keep the
# most recent ones, plenty for a notebook.
_KEPT = 10_000


@dataclass
class Break:
    """One reconnect of ``stream``; ``event_time`` (microseconds since the epoch) is the
    stream's event time (its newest reading) once the events before the break were read;
    None before the stream's first reading, or while the job has not read them yet."""

    stream: str
    reconnect: Reconnect
    event_time: int | None = None


class StreamBreaks:
    def __init__(self, times: StreamTimes) -> None:
        self._times = times
        self._lock = threading.Lock()
        self._breaks: deque[Break] = deque(maxlen=_KEPT)
        # Per stream, breaks waiting for the intake to read their last event, by its id
        # (several: a reconnect that failed before any event, then another).
        self._waiting: dict[str, dict[str, list[Break]]] = {}
        # Per stream, the id of the last event the intake has read.
        self._last_read: dict[str, str] = {}

    def reconnected(self, stream: str, reconnect: Reconnect) -> None:
        """``subscribe``'s ``on_reconnect`` for ``stream``."""
        with self._lock:
            found = Break(stream, reconnect)
            last = reconnect.last_event_id
            if not last or self._last_read.get(stream) == last:
                # Read already (or no ids to wait for): the stream's time is the break's.
                found.event_time = self._times.get(stream)
            else:
                self._waiting.setdefault(stream, {}).setdefault(last, []).append(found)
            self._breaks.append(found)

    def watched(self) -> Watched:
        """Per stream, the last event ids of the breaks waiting to be read: the intake
        notes the stream's event time at each (``readings.parse_by_key``'s ``marks``)."""
        if not self._waiting:  # the usual case, without the lock: nothing waits
            return {}
        with self._lock:
            return {stream: set(waiting) for stream, waiting in self._waiting.items()}

    def read(
        self,
        items: list[StreamItem],
        newest: dict[str, int],
        watched: Watched,
        marks: Marks,
        stamp_of: Callable[[StreamItem], int | None],
    ) -> None:
        """The intake has read ``items``, whose newest reading per stream is ``newest``,
        noting in ``marks`` the stream's event time at each event of ``watched`` it read:
        moves each stream's event time on, and gives each waiting break its time. A break
        reported after ``watched`` was taken (its event may be in this batch) is looked
        for in ``items``, with ``stamp_of`` giving an item's newest reading time."""
        with self._lock:
            if self._waiting:
                self._settle(items, watched, marks, stamp_of)
            for stream, stamp in newest.items():
                self._times.advance(stream, stamp)
            if not items:
                return
            if items[0][0] == items[-1][0]:  # a batch of one partition, as it usually is
                self._last_read[items[-1][0]] = items[-1][1].id
            else:
                for stream, event in items:
                    self._last_read[stream] = event.id

    def _settle(
        self,
        items: list[StreamItem],
        watched: Watched,
        marks: Marks,
        stamp_of: Callable[[StreamItem], int | None],
    ) -> None:
        for (stream, event_id), stream_time in marks.items():
            for found in self._waiting.get(stream, {}).pop(event_id, []):
                found.event_time = stream_time
        unwatched = {
            stream: waiting.keys() - watched.get(stream, set())
            for stream, waiting in self._waiting.items()
        }
        if any(unwatched.values()):
            self._scan(items, {s: ids for s, ids in unwatched.items() if ids}, stamp_of)
        for stream in [s for s, waiting in self._waiting.items() if not waiting]:
            del self._waiting[stream]

    def _scan(
        self,
        items: list[StreamItem],
        unwatched: dict[str, set[str]],
        stamp_of: Callable[[StreamItem], int | None],
    ) -> None:
        """The stream's event time at each event of ``unwatched`` in ``items``, reading
        the stream's items again up to it (rare: a break reported mid-batch)."""
        stream_time: dict[str, int | None] = {}
        for item in items:
            stream, event = item
            ids = unwatched.get(stream)
            if not ids:
                continue
            now = stream_time.get(stream, self._times.get(stream))
            stamp = stamp_of(item)
            if stamp is not None and (now is None or stamp > now):
                now = stamp
            stream_time[stream] = now
            if event.id in ids:
                ids.discard(event.id)
                for found in self._waiting[stream].pop(event.id):
                    found.event_time = now

    def breaks(self) -> list[Break]:
        with self._lock:
            return list(self._breaks)
