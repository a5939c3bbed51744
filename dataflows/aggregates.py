"""Per-window aggregates: count, mean, min and max, with an exactly rounded mean; and the
batch-level pre-aggregation that feeds them to the window operator a partial at a time.

The sum is kept as a few floats whose exact sum is the exact sum of the readings
(``exact_parts`` for a batch at once, Shewchuk's partials, the algorithm behind
``math.fsum``, for one reading at a time), so the mean is the correctly rounded sum over
the count whatever the order the readings arrived in or the windows were merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain

from bytewax.operators import StatefulBatchLogic

from dataflows.readings import Reading, ReadingRow, split_key
from dataflows.times import duration_micros, from_micros, micros
from dataflows.windows import STREAM_TIMES, StreamTimes

__all__ = [
    "LateReading",
    "LateRow",
    "Partial",
    "PreAggregate",
    "WindowStats",
    "add_partial",
    "add_reading",
    "exact_parts",
    "late_reading",
    "merge_stats",
    "new_stats",
    "newest_of",
    "partial_stream",
    "stats_of",
]


@dataclass
class WindowStats:
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf
    partials: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return math.fsum(self.partials) / self.count


def _add_exact(partials: list[float], x: float) -> None:
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


def exact_parts(values: list[float]) -> list[float]:
    """A few floats whose exact sum is the exact sum of ``values``.

    ``math.fsum`` rounds the exact sum correctly; what it leaves out is itself an exact
    sum (the values less the parts so far), rounded again, until nothing is left. The
    residual shrinks by 2**-53 a round, so this takes a few rounds, each in C, where
    adding the values one by one in Python costs a loop per value. A sum past the float
    range (values near 1e308) cannot be held in floats: the parts then hold an infinity,
    as with one-by-one addition, and the mean is not finite.
    """
    parts: list[float] = []
    rest = list(values)
    try:
        while part := math.fsum(rest):
            parts.append(part)
            rest.append(-part)
    except OverflowError:
        parts = []
        for x in values:
            _add_exact(parts, x)
    return parts


def new_stats() -> WindowStats:
    return WindowStats()


def add_reading(stats: WindowStats, reading: Reading) -> WindowStats:
    value = reading.value
    stats.count += 1
    if value < stats.minimum:
        stats.minimum = value
    if value > stats.maximum:
        stats.maximum = value
    _add_exact(stats.partials, value)
    return stats


def merge_stats(a: WindowStats, b: WindowStats) -> WindowStats:
    return WindowStats(
        a.count + b.count,
        min(a.minimum, b.minimum),
        max(a.maximum, b.maximum),
        exact_parts([*a.partials, *b.partials]),
    )


def stats_of(values: list[float]) -> WindowStats:
    """The stats of one or more values at once."""
    return WindowStats(len(values), min(values), max(values), exact_parts(values))


@dataclass
class Partial:
    """One batch's readings of one key in one window, already folded.

    ``newest`` is the newest timestamp among them: the time the window operator sees.
    """

    window_id: int
    newest: datetime
    stats: WindowStats
    stream: str
    # The rows themselves: should the window operator still find the partial late (its
    # stream moved on between the two steps), each becomes a late dead letter.
    rows: list[ReadingRow]


LateReading = tuple[int, Reading]  # (window id, reading), as Bytewax reports late items
LateRow = tuple[int, ReadingRow]  # the same, before the key is put back


def late_reading(item: tuple[str, LateRow]) -> tuple[str, LateReading]:
    key, (window_id, (stamp, value, event_id, stream)) = item
    sensor_id, metric = split_key(key)
    reading = Reading(sensor_id, metric, from_micros(stamp), value, event_id, stream)
    return key, (window_id, reading)


class PreAggregate(StatefulBatchLogic[list[ReadingRow], "Partial | LateRow", int | None]):
    """Per key, rows of readings in (a list per source batch), one ``Partial`` per window
    touched out.

    It applies the lateness rule of ``windows.IdleCloseClock`` reading by reading, in
    arrival order (a reading more than ``lateness`` older than the newest reading before
    it, or more than ``lateness + idle_close`` older than its stream's event time, is
    late, and is passed on as ``(window_id, row)``), so every count and value stays what
    per-reading windowing gives. The partials leave sorted by ``newest``: the window
    operator's watermark before a partial is then at most ``partial.newest - lateness``
    (the newest reading seen so far, less the lateness), so it never finds one late for
    the key's own readings, and it closes windows exactly when it would have with the
    readings themselves.

    Times are whole microseconds since the epoch here (rows carry them so), which makes
    the window of a reading one integer division.
    """

    def __init__(
        self,
        length: timedelta,
        lateness: timedelta,
        idle_close: timedelta | None,
        newest: int | datetime | None,
        times: StreamTimes = STREAM_TIMES,
    ) -> None:
        self._length = duration_micros(length)
        self._lateness = duration_micros(lateness)
        self._idle_back = None if idle_close is None else duration_micros(lateness + idle_close)
        self._times = times
        # A snapshot from before rows held microseconds holds a datetime.
        self._newest = micros(newest) if isinstance(newest, datetime) else newest

    def on_batch(self, values: list[list[ReadingRow]]) -> tuple[list[Partial | LateRow], bool]:
        length, lateness = self._length, self._lateness
        newest = self._newest
        stream = values[0][0][3] if values and values[0] else ""
        floor = None if self._idle_back is None else self._times.cutoff(stream, self._idle_back)
        bounds = [
            b for b in (None if newest is None else newest - lateness, floor) if b is not None
        ]
        cutoff = max(bounds) if bounds else None
        # Per window touched: the rows, and the newest timestamp among them.
        groups: dict[int, tuple[list[ReadingRow], list[int]]] = {}
        late: list[Partial | LateRow] = []
        # The window of the reading before: readings mostly fall in the same one.
        start = end = 0
        rows_in: list[ReadingRow] = []
        newest_in: list[int] = []
        for row in chain.from_iterable(values):
            ts = row[0]
            if cutoff is not None and ts < cutoff:
                late.append((ts // length, row))
                continue
            if newest is None or ts > newest:
                newest = ts
                if cutoff is None or ts - lateness > cutoff:
                    cutoff = ts - lateness
            if not start <= ts < end:
                window_id = ts // length
                start = window_id * length
                end = start + length
                group = groups.get(window_id)
                if group is None:
                    group = groups[window_id] = ([], [ts])
                rows_in, newest_in = group
            rows_in.append(row)
            if ts > newest_in[0]:
                newest_in[0] = ts
        self._newest = newest
        partials = [
            Partial(
                window_id,
                from_micros(newest_in[0]),
                stats_of([row[1] for row in rows_in]),
                stream,
                rows_in,
            )
            for window_id, (rows_in, newest_in) in groups.items()
        ]
        partials.sort(key=newest_of)
        return [*partials, *late], self.RETAIN

    def snapshot(self) -> int | None:
        return self._newest


def partial_stream(partial: Partial) -> str:
    return partial.stream


def newest_of(partial: Partial) -> datetime:
    """The time the window operator sees for a partial."""
    return partial.newest


def add_partial(stats: WindowStats, partial: Partial) -> WindowStats:
    return merge_stats(stats, partial.stats)
