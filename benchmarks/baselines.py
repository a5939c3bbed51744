"""Baselines: the SSE patterns Bytewax users write, whole, computing the main job's windows;
and the main job as it wrote its aggregates before hourly part files.

- ``classic``: the classic Bytewax SSE pattern: sseclient-py over a urllib3 response,
  one event per ``next_batch``, ``json.loads`` in the source.
- ``example``: Bytewax's current example pattern (``examples/wikistream.py``):
  aiohttp-sse-client's ``EventSource`` as an async generator, batched by
  ``bytewax.inputs.batch_async`` (0.25 s / 1000), then ``op.map(json.loads)``.

After the source both go reading by reading, as those patterns do: each event to its
reading, ``key_on`` the sensor and metric, and ``fold_window`` over event-time tumbling
windows with the same clock, lateness, exact mean and records as ``sensor_stats``, which
writes the same aggregates file (the benchmark checks that it does). What they leave
out is what the main job adds around it: dead letters, resume, reconnects.

- ``single_file``: ``sensor_stats`` itself, its aggregates into one file through
  Bytewax's ``FileSink`` (one writer, exactly once by truncation on resume), as every
  release before hourly part files did: the output layer's baseline.

Run: ``BENCH_URL=... python -m bytewax.run "benchmarks.baselines:classic()"`` (or
``example()``, ``single_file()``) with the main job's settings (``OUTPUT``, ``WINDOW``...).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
import sseclient
import urllib3
from aiohttp_sse_client.client import EventSource  # type: ignore[import-untyped]
from bytewax.connectors.files import FileSink
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition, batch_async
from bytewax.operators.windowing import fold_window

from dataflows import sensor_stats
from dataflows.aggregates import WindowStats, add_reading, merge_stats, new_stats
from dataflows.config import JobConfig, load_config
from dataflows.formats import PARSERS, FormatParser
from dataflows.outputs import HourLines, write_records
from dataflows.readings import Reading, reading_key
from dataflows.run_stats import RunStats
from dataflows.sensor_stats import WindowRecords
from dataflows.times import from_micros
from dataflows.windows import event_time_clock, reading_ts, tumbling

STREAM = "bench"


def _url() -> str:
    return os.environ["BENCH_URL"]


class _ClassicPartition(StatefulSourcePartition[Any, None]):
    def __init__(self) -> None:
        response = urllib3.PoolManager().request(
            "GET", _url(), preload_content=False, headers={"Accept": "text/event-stream"}
        )
        self._events: Iterator[Any] = iter(sseclient.SSEClient(response).events())

    def next_batch(self) -> list[Any]:
        event = next(self._events)  # blocks; StopIteration at the end ends the partition
        return [json.loads(event.data)]

    def snapshot(self) -> None:
        return None


async def _sse_agen(url: str) -> AsyncIterator[str]:
    try:
        async with EventSource(url) as source:
            async for event in source:
                yield event.data
    except ConnectionAbortedError as exc:
        # EventSource reconnects when the body ends and raises on the 204 that follows:
        # the one change made to the pattern, so that the stream can end.
        if "204" not in str(exc):
            raise


class _ExamplePartition(StatefulSourcePartition[Any, None]):
    def __init__(self) -> None:
        self._batcher = batch_async(_sse_agen(_url()), timedelta(seconds=0.25), 1000)

    def next_batch(self) -> list[Any]:
        return next(self._batcher)

    def snapshot(self) -> None:
        return None


class _OnePartition(FixedPartitionedSource[Any, None]):
    def __init__(self, kind: type[StatefulSourcePartition[Any, None]]) -> None:
        self._kind = kind

    def list_parts(self) -> list[str]:
        return [STREAM]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSourcePartition[Any, None]:
        return self._kind()


def _readings(body: Any, parser: FormatParser) -> list[Reading]:
    # The job's own format parsers, so both read the same readings from every format.
    return [
        Reading(sensor, metric, from_micros(ts), value, "", STREAM)
        for sensor, metric, ts, value in parser(body, "message")
    ]


def _windows(job: JobConfig, bodies: Stream[Any]) -> None:
    """Reading by reading to the main job's aggregate records."""
    length, lateness = job.window.length, job.window.lateness
    readings = op.flat_map("reading", bodies, partial(_readings, parser=PARSERS[job.stream.format]))
    keyed = op.key_on("key", readings, reading_key)
    windows = fold_window(
        "window",
        keyed,
        event_time_clock(lateness, reading_ts),
        tumbling(length),
        new_stats,
        add_reading,
        merge_stats,
    )
    records = op.map("record", windows.down, partial(_record, records=WindowRecords(length)))
    write_records(
        "aggregates_out",
        records,
        "aggregates",
        job.output,
        RunStats("baseline"),
        time_field="window_start",
        settle=job.window.length + job.window.lateness,
    )


def _record(item: tuple[str, tuple[int, WindowStats]], records: WindowRecords) -> dict[str, Any]:
    key, (window_id, stats) = item
    window = (window_id, stats.count, stats.minimum, stats.maximum, tuple(stats.partials))
    return records.record(key, window)


def _joined(batch: list[HourLines]) -> list[tuple[str, str]]:
    lines = [line for item in batch for hour in sorted(item) for line in item[hour]]
    return [("", "\n".join(lines))] if lines else []


def single_file() -> Dataflow:
    job = load_config()
    assert job.output.directory is not None, "single_file() writes to an OUTPUT directory"
    path = job.output.directory / "aggregates" / "aggregates.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(lines: Stream[HourLines]) -> None:
        op.output("aggregates_out", op.flat_map_batch("joined", lines, _joined), FileSink(path))

    return sensor_stats.build_flow(job, RunStats("sensor_stats"), write_aggregates=write)


def classic() -> Dataflow:
    flow = Dataflow("classic")
    _windows(load_config(), op.input("sse", flow, _OnePartition(_ClassicPartition)))
    return flow


def example() -> Dataflow:
    flow = Dataflow("example")
    events = op.input("sse", flow, _OnePartition(_ExamplePartition))
    _windows(load_config(), op.map("load_json", events, json.loads))
    return flow
