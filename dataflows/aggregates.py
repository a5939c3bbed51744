"""Per-window aggregates: count, mean, min and max, with an exactly rounded mean.

The sum is kept as a few floats whose exact sum is the exact sum of the readings
(``exact_parts`` for a batch at once, Shewchuk's partials, the algorithm behind
``math.fsum``, for one reading at a time), so the mean is the correctly rounded sum over
the count whatever the order the readings arrived in or the windows were merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dataflows.readings import Reading, ReadingRow, split_key
from dataflows.times import from_micros

__all__ = [
    "LateReading",
    "LateRow",
    "WindowStats",
    "add_reading",
    "exact_parts",
    "late_reading",
    "merge_stats",
    "new_stats",
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


LateReading = tuple[int, Reading]  # (window id, reading), as Bytewax reports late items
LateRow = tuple[int, ReadingRow]  # the same, before the key is put back


def late_reading(item: tuple[str, LateRow]) -> tuple[str, LateReading]:
    key, (window_id, (stamp, value, event_id, stream, stream_time)) = item
    sensor_id, metric = split_key(key)
    reading = Reading(sensor_id, metric, from_micros(stamp), value, event_id, stream, stream_time)
    return key, (window_id, reading)
