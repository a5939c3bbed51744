"""Events a server sends again after a reconnect, recognised and dropped.

Some servers resume a stream from the last event the client *acknowledged* rather than
from ``Last-Event-ID``: Obelisk's ``receiveBacklog=true`` reads a durable subscription
that it acknowledges every two seconds or so, so a new connection starts with up to a few
seconds of events the client already has. Such a replay is a stretch of the events
delivered last, and it runs up to the very last one. ``ReplayFilter`` holds the events of
a new connection while they match such a stretch of the last ``keep`` delivered; once the
stretch reaches the last event delivered, the held events are dropped as replays; when
an event stops matching first, the held ones were new after all and go through.

Only for streams whose events are unique (a sensor's reading names its time): a stream
that repeats a payload on purpose would lose the repeats that happen to follow a
reconnect. A replay longer than ``keep`` events is not recognised and goes through.
"""

from __future__ import annotations

from collections import deque

from connectors.sse.parser import OversizedEvent, SSEEvent

__all__ = ["ReplayFilter"]

Item = SSEEvent | OversizedEvent


class ReplayFilter:
    """Drops the replayed start of each new connection (see the module's docstring)."""

    def __init__(self, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self._delivered: deque[tuple[str, str]] = deque(maxlen=keep)
        self._history: list[tuple[str, str]] = []
        self._held: list[Item] = []
        self._starts: list[int] = []
        self._matching = False
        self.dropped = 0

    def reconnected(self) -> None:
        """A new connection begins: its first events may be a replay."""
        # Held when the last connection ended: they matched, so they were replays too.
        self.dropped += len(self._held)
        self._held = []
        self._matching = bool(self._delivered)
        self._history = list(self._delivered) if self._matching else []

    def admit(self, items: list[Item]) -> list[Item]:
        """What to deliver of one read's events."""
        if not self._matching:
            self._delivered.extend((i.event, i.data) for i in items if isinstance(i, SSEEvent))
            return items
        out: list[Item] = []
        for at, item in enumerate(items):
            if not isinstance(item, SSEEvent):
                self._release(out, items[at:])
                break
            key = (item.event, item.data)
            offset = len(self._held)
            history = self._history
            if offset == 0:
                starts = [j for j, seen in enumerate(history) if seen == key]
            else:
                starts = [j for j in self._starts if history[j + offset] == key]
            if not starts:
                self._release(out, items[at:])
                break
            self._held.append(item)
            self._starts = starts
            if any(j + offset + 1 == len(history) for j in starts):
                # The stretch reaches the last event delivered: all of it came again.
                self.dropped += len(self._held)
                self._held = []
                self._stop_matching()
                out.extend(self._record(items[at + 1 :]))
                break
        return out

    def _release(self, out: list[Item], rest: list[Item]) -> None:
        out.extend(self._record(self._held))
        out.extend(self._record(rest))
        self._held = []
        self._stop_matching()

    def _stop_matching(self) -> None:
        self._matching = False
        self._history = []
        self._starts = []

    def _record(self, items: list[Item]) -> list[Item]:
        self._delivered.extend((i.event, i.data) for i in items if isinstance(i, SSEEvent))
        return items
