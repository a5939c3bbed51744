"""Per-window aggregates: count, mean, min and max, with an exactly rounded mean.

The sum is kept as Shewchuk's non-overlapping partials (the algorithm behind
``math.fsum``), so the mean is the correctly rounded sum over the count whatever the
order the readings arrived in or the windows were merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dataflows.readings import Reading

__all__ = ["WindowStats", "add_reading", "merge_stats", "new_stats"]


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
