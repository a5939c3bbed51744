"""Per-window aggregates: count, mean, min and max, with an exactly rounded mean; and the
batch-level pre-aggregation that feeds them to the window operator a partial at a time.

The sum is kept as Shewchuk's non-overlapping partials (the algorithm behind
``math.fsum``), so the mean is the correctly rounded sum over the count whatever the
order the readings arrived in or the windows were merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import chain

from bytewax.operators import StatefulBatchLogic

from dataflows.readings import Reading
from dataflows.windows import window_id_of

__all__ = [
    "LateReading",
    "Partial",
    "PreAggregate",
    "WindowStats",
    "add_partial",
    "add_reading",
    "merge_stats",
    "new_stats",
    "newest_of",
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
    merged = WindowStats(a.count + b.count, min(a.minimum, b.minimum), max(a.maximum, b.maximum))
    for x in (*a.partials, *b.partials):
        _add_exact(merged.partials, x)
    return merged


@dataclass
class Partial:
    """One batch's readings of one key in one window, already folded.

    ``newest`` is the newest timestamp among them: the time the window operator sees.
    """

    window_id: int
    newest: datetime
    stats: WindowStats


LateReading = tuple[int, Reading]  # (window id, reading), as Bytewax reports late items


class PreAggregate(StatefulBatchLogic[list[Reading], "Partial | LateReading", datetime | None]):
    """Per key, lists of readings in (a list per source batch), one ``Partial`` per
    window touched out.

    It applies the lateness rule of ``windows.event_time_clock`` reading by reading, in
    arrival order (a reading more than ``lateness`` older than the newest reading before
    it is late, and is passed on as ``(window_id, reading)``), so every count and value stays what
    per-reading windowing gives. The partials leave sorted by ``newest``: the window
    operator's watermark before a partial is then at most ``partial.newest - lateness``
    (the newest reading seen so far, less the lateness), so it never finds one late, and
    it closes windows exactly when it would have with the readings themselves.
    """

    def __init__(self, length: timedelta, lateness: timedelta, newest: datetime | None) -> None:
        self._length = length
        self._lateness = lateness
        self._newest = newest

    def on_batch(self, values: list[list[Reading]]) -> tuple[list[Partial | LateReading], bool]:
        length, lateness = self._length, self._lateness
        newest = self._newest
        groups: dict[int, Partial] = {}
        late: list[Partial | LateReading] = []
        for reading in chain.from_iterable(values):
            ts = reading.ts
            if newest is not None:
                if ts < newest - lateness:
                    late.append((window_id_of(ts, length), reading))
                    continue
                if ts > newest:
                    newest = ts
            else:
                newest = ts
            window_id = window_id_of(ts, length)
            partial = groups.get(window_id)
            if partial is None:
                partial = groups[window_id] = Partial(window_id, ts, WindowStats())
            elif ts > partial.newest:
                partial.newest = ts
            add_reading(partial.stats, reading)
        self._newest = newest
        partials: list[Partial] = sorted(groups.values(), key=newest_of)
        return [*partials, *late], self.RETAIN

    def snapshot(self) -> datetime | None:
        return self._newest


def newest_of(partial: Partial) -> datetime:
    """The time the window operator sees for a partial."""
    return partial.newest


def add_partial(stats: WindowStats, partial: Partial) -> WindowStats:
    return merge_stats(stats, partial.stats)
