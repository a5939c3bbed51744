"""Event-time windows: the clock, tumbling windows aligned to the UTC epoch, window bounds.

The watermark of a key is the newest timestamp seen for that key minus the lateness, and
it moves only with event time. So whether a reading is late depends on the readings
before it alone, not on how fast the dataflow runs, how a replay is batched or how long
a reconnect took; and an idle stream never wakes the worker. A key's windows close when
its readings move past ``window_end + lateness``, or when the input ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from bytewax.operators.windowing import EventClock, TumblingWindower

from dataflows.readings import Reading
from dataflows.times import EPOCH

__all__ = [
    "event_time_clock",
    "reading_ts",
    "tumbling",
    "window_id_of",
    "window_start",
]

V = TypeVar("V")


def reading_ts(reading: Reading) -> datetime:
    return reading.ts


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
