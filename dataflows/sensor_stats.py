"""The main job: sensor readings to per-(sensor, metric) event-time tumbling window aggregates.

Run: ``python -m bytewax.run dataflows.sensor_stats`` (settings in the README). Each
window gives one JSON record: sensor_id, metric, window_start, window_end, count, mean,
min, max. Readings later than LATENESS become dead letters with reason ``late``.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache, partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators.windowing import fold_window

from connectors.source import StreamItem
from dataflows.aggregates import WindowStats, add_reading, merge_stats, new_stats
from dataflows.config import JobConfig
from dataflows.outputs import write_dead_letters, write_records
from dataflows.pipeline import (
    RunSummary,
    job_config,
    late_letter,
    read_stream,
    start_job,
)
from dataflows.readings import reading_key, split_key
from dataflows.windows import event_time_clock, iso, tumbling, window_start

__all__ = ["build_flow"]


def window_record(item: tuple[str, tuple[int, WindowStats]], length: timedelta) -> dict[str, Any]:
    key, (window_id, stats) = item
    sensor_id, metric = split_key(key)
    start = window_start(window_id, length)
    return {
        "sensor_id": sensor_id,
        "metric": metric,
        "window_start": iso(start),
        "window_end": iso(start + length),
        "count": stats.count,
        "mean": stats.mean,
        "min": stats.minimum,
        "max": stats.maximum,
    }


def build_flow(
    job: JobConfig, summary: RunSummary | None = None, source: Source[StreamItem] | None = None
) -> Dataflow:
    """The job's dataflow; ``source`` replaces the SSE source (the benchmarks' baselines)."""
    summary = summary or RunSummary("sensor_stats")
    length, lateness = job.window.length, job.window.lateness
    flow = Dataflow("sensor_stats")
    readings, dead = read_stream(flow, job, summary, source)
    keyed = op.key_on("key", readings, reading_key)
    windows = fold_window(
        "window",
        keyed,
        event_time_clock(lateness),
        tumbling(length),
        new_stats,
        add_reading,
        merge_stats,
    )
    records = op.map("record", windows.down, partial(window_record, length=length))
    late = op.map("late", windows.late, partial(late_letter, lateness=lateness, summary=summary))
    write_records("aggregates_out", records, "aggregates", job.output)
    write_dead_letters(dead, job.output, late=late)
    return flow


@cache
def _main_flow() -> Dataflow:
    summary = start_job("sensor_stats")
    return build_flow(job_config(), summary)


def __getattr__(name: str) -> Dataflow:
    # ``flow`` is built on first use (as ``bytewax.run`` asks for it), so importing this
    # module for its functions starts no simulator and reads no settings.
    if name == "flow":
        return _main_flow()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
