"""The main job: sensor readings to per-(sensor, metric) event-time tumbling window aggregates.

Run: ``python -m bytewax.run dataflows.sensor_stats`` (settings in the README). Each
window gives one JSON record: sensor_id, metric, window_start, window_end, count, mean,
min, max. Readings later than LATENESS become dead letters with reason ``late``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source

from connectors.sinks.layout import HOUR_MICROS
from connectors.source import StreamItem
from dataflows.aggregates import late_reading
from dataflows.config import JobConfig, load_config
from dataflows.key_groups import Emitted, GroupWindows, LateKeyRow, Window, window_mean
from dataflows.outputs import HourLines, write_dead_letters, write_hour_lines
from dataflows.pipeline import late_letter, read_stream_by_group
from dataflows.readings import split_key
from dataflows.run_stats import RunStats
from dataflows.runtime import job_flow, start_job
from dataflows.times import iso, micros
from dataflows.windows import window_start

__all__ = ["WindowLines", "WindowRecords", "build_flow"]

log = logging.getLogger(__name__)


# Window bounds as text are kept per window id (a fleet closes thousands with the same);
# past this many ids, they are made again as needed.
_MAX_WINDOW_IDS = 4096


def _bounds_text(window_id: int, length: timedelta) -> tuple[str, str]:
    start = window_start(window_id, length)
    return iso(start), iso(start + length)


class WindowRecords:
    """A closed window as its record (a dict): what the benchmarks' baselines write, the
    way a pipeline usually does; the job writes the same as text (``WindowLines``)."""

    def __init__(self, length: timedelta) -> None:
        self._length = length
        self._bounds: dict[int, tuple[str, str]] = {}

    def _bounds_of(self, window_id: int) -> tuple[str, str]:
        if len(self._bounds) > _MAX_WINDOW_IDS:
            self._bounds.clear()
        bounds = self._bounds[window_id] = _bounds_text(window_id, self._length)
        return bounds

    def record(self, key: str, window: Window) -> dict[str, Any]:
        window_id, count, minimum, maximum, _ = window
        start, end = self._bounds.get(window_id) or self._bounds_of(window_id)
        sensor_id, metric = split_key(key)
        return {
            "sensor_id": sensor_id,
            "metric": metric,
            "window_start": start,
            "window_end": end,
            "count": count,
            "mean": window_mean(window),
            "min": minimum,
            "max": maximum,
        }


# Past this many keys, the text of their fields is made again as needed: a few tenths of
# a microsecond a window, against a fleet's memory held forever.
_MAX_HEADS = 1 << 17


class WindowLines:
    """A group's closed windows as JSON lines, a list at a time: exactly the text
    ``orjson.dumps(WindowRecords.record(...))`` gives, without a dict and a dump of it per
    window (a fleet writes one per reading, and they were a sixth of its time). The
    text of a key's fields is kept per key, that of a window's bounds per window id."""

    def __init__(self, length: timedelta) -> None:
        self._length = length
        self._heads: dict[str, str] = {}
        # Per window id: the bounds as text, and the hour the window starts in.
        self._spans: dict[int, tuple[str, int]] = {}

    def _head(self, key: str) -> str:
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        sensor_id, metric = split_key(key)
        head = self._heads[key] = (
            f'{{"sensor_id":{orjson.dumps(sensor_id).decode()},'
            f'"metric":{orjson.dumps(metric).decode()},'
        )
        return head

    def _span(self, window_id: int) -> tuple[str, int]:
        if len(self._spans) > _MAX_WINDOW_IDS:
            self._spans.clear()
        start, end = _bounds_text(window_id, self._length)
        hour = micros(window_start(window_id, self._length)) // HOUR_MICROS
        span = self._spans[window_id] = (f'"window_start":"{start}","window_end":"{end}",', hour)
        return span

    def line(self, key: str, window: Window) -> str:
        span = self._spans.get(window[0]) or self._span(window[0])
        return self._line(key, window, span[0])

    def _line(self, key: str, window: Window, span: str) -> str:
        _, count, minimum, maximum, _ = window
        head = self._heads.get(key) or self._head(key)
        # orjson writes the numbers, so each is the text it writes in a record.
        if count == 1 and minimum:
            # A fleet's usual window: its one reading is its mean, minimum and maximum
            # (not for -0.0, whose mean is 0.0: the sum of no parts).
            value = orjson.dumps(minimum).decode()
            return f'{head}{span}"count":1,"mean":{value},"min":{value},"max":{value}}}'
        numbers = orjson.dumps((window_mean(window), minimum, maximum)).decode()
        mean, low, high = numbers[1:-1].split(",")
        return f'{head}{span}"count":{count},"mean":{mean},"min":{low},"max":{high}}}'

    def __call__(self, item: tuple[str, Emitted]) -> HourLines:
        """A group's closed windows as lines, by the hour each window starts in."""
        spans, line = self._spans, self._line
        by_hour: HourLines = {}
        hour, lines = -1, []
        for key, window in item[1].windows:
            span = spans.get(window[0]) or self._span(window[0])
            if span[1] != hour:
                hour = span[1]
                lines = by_hour.setdefault(hour, [])
            lines.append(line(key, window, span[0]))
        return by_hour


def _late_rows(item: tuple[str, Emitted]) -> list[LateKeyRow]:
    return item[1].late


def build_flow(
    job: JobConfig,
    stats: RunStats | None = None,
    source: Source[StreamItem] | None = None,
    write_aggregates: Callable[[Stream[HourLines]], None] | None = None,
) -> Dataflow:
    """The job's dataflow; ``source`` replaces the SSE source, ``write_aggregates`` the
    aggregates' output (the benchmarks' baselines)."""
    stats = stats or RunStats("sensor_stats")
    window = job.window
    length, lateness = window.length, window.lateness
    flow = Dataflow("sensor_stats")
    groups, dead = read_stream_by_group(flow, job, stats, source)
    # Every sensor's windows, kept in a bounded number of key groups (see key_groups.py).
    emitted = op.stateful_batch(
        "windows",
        groups,
        partial(
            GroupWindows,
            length,
            lateness,
            window.idle_close,
            stats.window_opened,
        ),
    )
    lines = op.map("records", emitted, WindowLines(length))
    late = op.map(
        "late_letter",
        op.map("late_reading", op.flat_map("late_rows", emitted, _late_rows), late_reading),
        partial(late_letter, lateness=lateness, stats=stats),
    )
    # A window's record comes once the stream is past its end, its lateness and (for a
    # quiet sensor) the idle rule.
    settle = length + lateness + (window.idle_close or timedelta(0))
    if write_aggregates is not None:
        write_aggregates(lines)
    else:
        write_hour_lines("aggregates_out", lines, "aggregates", job.output, stats, settle=settle)
    write_dead_letters(dead, job.output, stats, settle=settle, late=late)
    return flow


def _main_flow() -> Dataflow:
    stats, job = start_job("sensor_stats", load_config)
    return build_flow(job, stats)


__getattr__ = job_flow(__name__, _main_flow)
