"""The main job: sensor readings to per-(sensor, metric) event-time tumbling window aggregates.

Run: ``python -m bytewax.run dataflows.sensor_stats`` (settings in the README). Each
window gives one JSON record: sensor_id, metric, window_start, window_end, count, mean,
min, max. Readings later than LATENESS become dead letters with reason ``late``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source

from connectors.source import StreamItem
from dataflows.aggregates import late_reading
from dataflows.config import JobConfig, load_config
from dataflows.key_groups import Emitted, GroupWindows, LateKeyRow, Window, window_mean
from dataflows.outputs import write_dead_letters, write_record_lists
from dataflows.pipeline import late_letter, read_stream_by_group
from dataflows.readings import split_key
from dataflows.run_stats import RunStats
from dataflows.runtime import job_flow, start_job
from dataflows.times import iso
from dataflows.windows import window_start

__all__ = ["WindowRecords", "build_flow"]

log = logging.getLogger(__name__)


class WindowRecords:
    """A group's closed windows to records, a list at a time (a fleet writes one per
    reading, and a list is one item for the runtime to hand on)."""

    def __init__(self, length: timedelta) -> None:
        self._length = length
        # Window bounds as text, per window id: a fleet closes thousands with the same.
        self._bounds: dict[int, tuple[str, str]] = {}

    def _bounds_of(self, window_id: int) -> tuple[str, str]:
        if len(self._bounds) > 4096:
            self._bounds.clear()
        start = window_start(window_id, self._length)
        bounds = self._bounds[window_id] = (iso(start), iso(start + self._length))
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

    def __call__(self, item: tuple[str, Emitted]) -> list[dict[str, Any]]:
        record = self.record
        return [record(key, window) for key, window in item[1].windows]


def _late_rows(item: tuple[str, Emitted]) -> list[LateKeyRow]:
    return item[1].late


def build_flow(
    job: JobConfig, stats: RunStats | None = None, source: Source[StreamItem] | None = None
) -> Dataflow:
    """The job's dataflow; ``source`` replaces the SSE source (the benchmarks' baselines)."""
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
            stats.window_times,
        ),
    )
    records = op.map("records", emitted, WindowRecords(length))
    late = op.map(
        "late_letter",
        op.map("late_reading", op.flat_map("late_rows", emitted, _late_rows), late_reading),
        partial(late_letter, lateness=lateness, stats=stats),
    )
    write_record_lists("aggregates_out", records, "aggregates", job.output, stats)
    write_dead_letters(dead, job.output, stats, late=late)
    return flow


def _main_flow() -> Dataflow:
    stats, job = start_job("sensor_stats", load_config)
    return build_flow(job, stats)


__getattr__ = job_flow(__name__, _main_flow)
