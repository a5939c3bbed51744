"""Event-time windows: the clocks, tumbling windows aligned to the UTC epoch, window bounds.

The watermark of a key is the newest timestamp seen for that key minus the lateness, and
it moves only with event time. So whether a reading is late depends on the readings
before it, not on how fast the dataflow runs, how a replay is batched or how long a
reconnect took. A key's windows close when its readings move past
``window_end + lateness``, when the input ends, or (``IdleCloseClock``) when its
stream's event time has moved ``idle_close`` past that: a sensor that goes quiet still
gets its last windows written.

A stream's event time is the newest reading time the job has seen from it in this run
(``StreamTimes``, one per run: ``RunStats.times``), never ahead of the wall clock, so one
sensor with its clock set a day ahead cannot close everyone's windows. Event time rather
than wall time: a replay after a reconnect brings old readings in order, and a wall-clock
rule would close windows that those readings still belong to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from bytewax.operators.windowing import (
    UTC_MAX,
    UTC_MIN,
    Clock,
    ClockLogic,
    EventClock,
    TumblingWindower,
)

from dataflows.readings import Reading
from dataflows.times import EPOCH, duration_micros, from_micros, micros

__all__ = [
    "IdleCloseClock",
    "StreamTimes",
    "WorkerStreamTimes",
    "event_time_clock",
    "reading_stream_time",
    "reading_ts",
    "tumbling",
    "window_id_of",
    "window_start",
]

V = TypeVar("V")


def reading_ts(reading: Reading) -> datetime:
    return reading.ts


def reading_stream(reading: Reading) -> str:
    return reading.stream


def reading_stream_time(reading: Reading) -> int | None:
    return reading.stream_time


class StreamTimes:
    """Each stream's event time (microseconds): the newest reading time seen, capped at
    the wall clock; it only moves forward. Safe to share between the workers of a process.
    One per run, never per process: a second run in the same process on a stream of the
    same URL (a port the system gave out again) would otherwise start where the first
    ended, and take its first readings for late."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: dict[str, int] = {}

    def advance(self, stream: str, stamp: int) -> None:
        times = self._times
        if stamp <= times.get(stream, stamp - 1):
            return  # most calls: nothing new, and no need to read the clock
        stamp = min(stamp, micros(datetime.now(UTC)))
        if stamp > times.get(stream, stamp - 1):
            with self._lock:
                if stamp > times.get(stream, stamp - 1):
                    times[stream] = stamp

    def get(self, stream: str) -> int | None:
        return self._times.get(stream)

    def slowest(self) -> int | None:
        """The event time of the stream furthest behind; None before any reading."""
        times = list(self._times.values())
        return min(times) if times else None

    def cutoff(self, stream: str, back: int) -> int | None:
        """The idle rule, for every step that applies it: ``back`` microseconds (lateness
        plus idle close) before the stream's event time; None before its first reading."""
        stamp = self._times.get(stream)
        return None if stamp is None else stamp - back


class WorkerStreamTimes:
    """A ``StreamTimes`` for each worker (thread) of the process: what that worker's step
    has read of each stream. The rows of a stream reach a worker in the stream's order,
    so a worker's view never runs ahead of a row still on its way to it; a view shared
    with a worker further on would, and close a quiet key's window before that row came.
    One per run, as ``StreamTimes``."""

    def __init__(self) -> None:
        self._local = threading.local()

    def here(self) -> StreamTimes:
        """The calling worker's view, made on its first call."""
        times: StreamTimes | None = getattr(self._local, "times", None)
        if times is None:
            times = self._local.times = StreamTimes()
        return times


_UTC_MIN_MICROS = micros(UTC_MIN)

# A quiet key is woken at most this often while a window of it waits for its stream.
_MIN_WAKE_SECONDS = 1.0


def _frozen_now() -> datetime:
    # Bytewax adds (now - now at the newest item) to the watermark; a constant "now"
    # keeps the watermark in event time alone.
    return EPOCH


def _never(_close_at: datetime) -> None:
    # No wake-ups to close windows on system time: only readings (or the end) move them.
    return None


def event_time_clock(lateness: timedelta, ts_getter: Callable[[V], datetime]) -> EventClock[V]:
    return EventClock(
        ts_getter=ts_getter,
        wait_for_system_duration=lateness,
        now_getter=_frozen_now,
        to_system_utc=_never,
    )


def tumbling(length: timedelta) -> TumblingWindower:
    return TumblingWindower(length=length, align_to=EPOCH)


def window_start(window_id: int, step: timedelta) -> datetime:
    """Start of window ``window_id`` of windows starting every ``step`` from the epoch."""
    return EPOCH + window_id * step


def window_id_of(ts: datetime, step: timedelta) -> int:
    """The newest window holding ``ts``, of windows starting every ``step`` from the epoch."""
    return (ts - EPOCH) // step


@dataclass
class _IdleClockLogic(ClockLogic[V, tuple[datetime, str | None]]):
    clock: IdleCloseClock[V]
    # The view of the worker the key is on (``WorkerStreamTimes.here``).
    times: StreamTimes
    watermark: datetime
    stream: str | None

    def before_batch(self) -> None:
        pass

    def on_item(self, value: V) -> tuple[datetime, datetime]:
        clock = self.clock
        ts = clock.ts_getter(value)
        stream = self.stream = clock.stream_getter(value)
        own = ts - clock.lateness if ts - UTC_MIN > clock.lateness else UTC_MIN
        watermark = max(self.watermark, own)
        stream_time = clock.stream_time_getter(value)
        if clock.idle_close is not None and stream_time is not None:
            # Judged by the stream time it came with, whatever the batching; the step's
            # view of the stream moves on with it, for the keys that went quiet.
            self.times.advance(stream, stream_time)
            idle = stream_time - duration_micros(clock.lateness + clock.idle_close)
            if idle > _UTC_MIN_MICROS and from_micros(idle) > watermark:
                watermark = from_micros(idle)
        self.watermark = watermark
        return ts, watermark

    def on_notify(self) -> datetime:
        self.watermark = max(self.watermark, self._idle_watermark())
        return self.watermark

    def on_eof(self) -> datetime:
        return UTC_MAX

    def to_system_utc(self, timestamp: datetime) -> datetime | None:
        clock = self.clock
        if clock.idle_close is None:
            return None  # only readings (or the end) close windows: no wake-ups
        now = datetime.now(UTC)
        stamp = None if self.stream is None else self.times.get(self.stream)
        if stamp is None:
            return now + clock.idle_close
        # When the stream will have moved far enough, if it keeps pace with the clock.
        due = timestamp + clock.lateness + clock.idle_close - from_micros(stamp)
        return now + max(due, min(clock.idle_close / 4, timedelta(seconds=_MIN_WAKE_SECONDS)))

    def snapshot(self) -> tuple[datetime, str | None]:
        return self.watermark, self.stream

    def _idle_watermark(self) -> datetime:
        clock = self.clock
        if clock.idle_close is None or self.stream is None:
            return UTC_MIN
        cut = self.times.cutoff(self.stream, duration_micros(clock.lateness + clock.idle_close))
        return UTC_MIN if cut is None or cut < _UTC_MIN_MICROS else from_micros(cut)


@dataclass(frozen=True)
class IdleCloseClock(Clock[V, tuple[datetime, str | None]], Generic[V]):
    """Event time per key, with the stream's event time closing a quiet key's windows.

    The watermark of a key is the larger of its newest reading less ``lateness`` and its
    stream's event time less ``lateness`` and ``idle_close`` (None: only the key's own
    readings count, as ``event_time_clock``). A window closes when the watermark passes
    its end; a reading older than the watermark is late. An item's stream time is the one
    it came with (``stream_time_getter``); a quiet key's is its worker's view in
    ``times``: each stream's event time as far as this step on that worker has read it,
    moved on by the items of every key there.
    """

    ts_getter: Callable[[V], datetime]
    stream_getter: Callable[[V], str]
    stream_time_getter: Callable[[V], int | None]
    lateness: timedelta
    idle_close: timedelta | None
    times: WorkerStreamTimes

    def build(self, resume_state: Any) -> _IdleClockLogic[V]:
        # Bytewax builds a key's logic on the worker the key is on.
        times = self.times.here()
        if isinstance(resume_state, tuple):
            watermark, stream = resume_state
            return _IdleClockLogic(self, times, watermark, stream)
        # A snapshot of the event_time_clock this replaced, or none.
        base = getattr(resume_state, "watermark_base", UTC_MIN)
        return _IdleClockLogic(self, times, base, None)
