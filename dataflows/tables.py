"""The columns of each kind of record, for the Delta tables (``OUTPUT_FORMAT=delta``):
the fields of the JSON lines the jobs write, typed (UTC timestamps, int64 counts, float64
values, strings). Every table is partitioned by ``date``, the UTC date of the time the
kind's hour folders go by."""

from __future__ import annotations

import pyarrow as pa

from dataflows.feature_math import FEATURE_COLUMNS

__all__ = ["TABLE_SCHEMAS"]

_TIME = pa.timestamp("us", tz="UTC")
_KEY = [pa.field("sensor_id", pa.string()), pa.field("metric", pa.string())]
_WINDOW = [pa.field("window_start", _TIME), pa.field("window_end", _TIME)]

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "aggregates": pa.schema(
        [
            *_KEY,
            *_WINDOW,
            pa.field("count", pa.int64()),
            pa.field("mean", pa.float64()),
            pa.field("min", pa.float64()),
            pa.field("max", pa.float64()),
        ]
    ),
    "features": pa.schema(
        [
            *_KEY,
            *_WINDOW,
            *[
                pa.field(name, pa.int64() if name == "count" else pa.float64())
                for name in FEATURE_COLUMNS
            ],
        ]
    ),
    "alerts": pa.schema(
        [
            *_KEY,
            pa.field("rule", pa.string()),
            pa.field("state", pa.string()),
            pa.field("ts", _TIME),
            *[pa.field(name, pa.float64()) for name in ("value", "limit", "rate", "gap_seconds")],
            # Since 0.3: the episode as its readings show it (a table made before gets
            # them added, connectors.sinks.delta.open_table).
            pa.field("onset", _TIME),
            pa.field("peak", pa.float64()),
            pa.field("ended", _TIME),
        ]
    ),
    "dead_letters": pa.schema(
        [
            pa.field("reason", pa.string()),
            pa.field("detail", pa.string()),
            pa.field("event_id", pa.string()),
            pa.field("stream", pa.string()),
            pa.field("stream_time", _TIME),
            pa.field("data", pa.string()),
            # Since 0.3: the job that wrote it, as several jobs may share one OUTPUT.
            pa.field("job", pa.string()),
        ]
    ),
}
