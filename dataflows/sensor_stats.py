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
from bytewax.operators import KeyedStream
from bytewax.operators.windowing import fold_window

from connectors.source import StreamItem
from dataflows.aggregates import (
    LateRow,
    Partial,
    PreAggregate,
    WindowStats,
    add_partial,
    late_reading,
    merge_stats,
    new_stats,
    newest_of,
    partial_stream,
)
from dataflows.config import JobConfig, load_config
from dataflows.outputs import write_dead_letters, write_records
from dataflows.pipeline import late_letter, read_stream_by_key
from dataflows.readings import split_key
from dataflows.run_stats import RunStats, counted
from dataflows.runtime import job_flow, start_job
from dataflows.times import iso
from dataflows.windows import IdleCloseClock, tumbling, window_start

__all__ = ["build_flow"]

log = logging.getLogger(__name__)


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


def _is_partial(item: tuple[str, Partial | LateRow]) -> bool:
    return isinstance(item[1], Partial)


def _late_partial_rows(item: tuple[str, tuple[int, Partial]]) -> list[tuple[str, LateRow]]:
    # The stream's event time moved between PreAggregate and the window operator (a
    # reading older than the stream by about IDLE_CLOSE): each reading is a late letter.
    key, (window_id, late) = item
    return [(key, (window_id, row)) for row in late.rows]


def build_flow(
    job: JobConfig, stats: RunStats | None = None, source: Source[StreamItem] | None = None
) -> Dataflow:
    """The job's dataflow; ``source`` replaces the SSE source (the benchmarks' baselines)."""
    stats = stats or RunStats("sensor_stats")
    length, lateness = job.window.length, job.window.lateness
    flow = Dataflow("sensor_stats")
    groups, dead = read_stream_by_key(flow, job, stats, source)
    # Batch-level: each batch's readings of a key become one partial per window, with
    # per-reading lateness kept exact (see aggregates.PreAggregate).
    idle_close = job.window.idle_close
    pre = op.stateful_batch(
        "pre_aggregate", groups, partial(PreAggregate, length, lateness, idle_close)
    )
    split = op.branch("is_partial", pre, _is_partial)
    partials: KeyedStream[Partial] = split.trues  # type: ignore[assignment]
    late_rows: KeyedStream[LateRow] = split.falses  # type: ignore[assignment]
    windows = fold_window(
        "window",
        partials,
        IdleCloseClock(newest_of, partial_stream, lateness, idle_close),
        tumbling(length),
        partial(counted, new_stats, stats),
        add_partial,
        merge_stats,
    )
    records = op.map("record", windows.down, partial(window_record, length=length))
    all_late = op.merge(
        "late_rows", late_rows, op.flat_map("late_partial", windows.late, _late_partial_rows)
    )
    late = op.map(
        "late_letter",
        op.map("late_reading", all_late, late_reading),
        partial(late_letter, lateness=lateness, stats=stats),
    )
    write_records("aggregates_out", records, "aggregates", job.output, stats)
    write_dead_letters(dead, job.output, stats, late=late)
    return flow


def _main_flow() -> Dataflow:
    stats, job = start_job("sensor_stats", load_config)
    return build_flow(job, stats)


__getattr__ = job_flow(__name__, _main_flow)
