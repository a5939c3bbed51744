"""Features for models: per-(sensor, metric) event-time sliding windows, one row per window.

Run: ``python -m bytewax.run dataflows.features``. Windows are FEATURE_WINDOW long and
start every FEATURE_STEP from the UTC epoch, holding readings with
``window_start <= ts < window_end``. Columns: see ``feature_math``. With OUTPUT a
directory the rows go to ``OUTPUT/features/`` as hourly JSON Lines part files (by
window start), else stdout.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators.windowing import SlidingWindower, fold_window

from dataflows.config import FeatureConfig, JobConfig, load_config, load_feature_config
from dataflows.feature_math import (
    FEATURE_COLUMNS,
    FeatureState,
    add_to_features,
    feature_values,
    new_features,
)
from dataflows.outputs import write_dead_letters, write_records
from dataflows.pipeline import late_letter, read_stream
from dataflows.readings import Reading, reading_key, split_key
from dataflows.run_stats import RunStats, counted
from dataflows.runtime import job_flow, start_job
from dataflows.times import EPOCH, iso
from dataflows.windows import (
    IdleCloseClock,
    reading_stream,
    reading_stream_time,
    reading_ts,
    window_id_of,
    window_start,
)

__all__ = ["COLUMNS", "build_flow"]

COLUMNS = ("sensor_id", "metric", "window_start", "window_end", *FEATURE_COLUMNS)


def feature_row(
    item: tuple[str, tuple[int, FeatureState]], features: FeatureConfig
) -> dict[str, Any]:
    key, (window_id, state) = item
    sensor_id, metric = split_key(key)
    start = window_start(window_id, features.step)
    return {
        "sensor_id": sensor_id,
        "metric": metric,
        "window_start": iso(start),
        "window_end": iso(start + features.length),
        **feature_values(state),
    }


def _last_window_of(item: tuple[str, tuple[int, Reading]], step: timedelta) -> bool:
    # A late reading is reported once per window it missed; keep one: its latest window.
    _, (window_id, reading) = item
    return window_id == window_id_of(reading.ts, step)


def _never_merged(a: FeatureState, b: FeatureState) -> FeatureState:
    raise RuntimeError("sliding windows never merge")


def build_flow(job: JobConfig, features: FeatureConfig, stats: RunStats | None = None) -> Dataflow:
    stats = stats or RunStats("features")
    flow = Dataflow("features")
    readings, dead = read_stream(flow, job, stats)
    keyed = op.key_on("key", readings, reading_key)
    windows = fold_window(
        "window",
        keyed,
        IdleCloseClock(
            reading_ts,
            reading_stream,
            reading_stream_time,
            job.window.lateness,
            job.window.idle_close,
            stats.window_times,
        ),
        SlidingWindower(length=features.length, offset=features.step, align_to=EPOCH),
        partial(counted, partial(new_features, features.ewma_span), stats),
        add_to_features,
        _never_merged,
    )
    rows = op.map("row", windows.down, partial(feature_row, features=features))
    late_once = op.filter("late_once", windows.late, partial(_last_window_of, step=features.step))
    late = op.map(
        "late", late_once, partial(late_letter, lateness=job.window.lateness, stats=stats)
    )
    window = job.window
    settle = features.length + window.lateness + (window.idle_close or timedelta(0))
    write_records(
        "features_out",
        rows,
        "features",
        job.output,
        stats,
        time_field="window_start",
        settle=settle,
    )
    write_dead_letters(dead, job.output, stats, settle=settle, late=late)
    return flow


def _main_flow() -> Dataflow:
    stats, (job, features) = start_job("features", _settings)
    return build_flow(job, features, stats)


def _settings() -> tuple[JobConfig, FeatureConfig]:
    return load_config(), load_feature_config()


__getattr__ = job_flow(__name__, _main_flow)
