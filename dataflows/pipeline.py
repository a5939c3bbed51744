"""The way in, shared by every job: the SSE source, events to readings and dead letters.

``read_stream`` gives a job its readings and dead letters from the configured streams
(or from the embedded simulator when ``SSE_URL`` is unset). Process set-up is
``runtime.py``'s, outputs are ``outputs.py``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from operator import itemgetter
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream

from connectors.source import SSESource, StreamItem
from connectors.sse import Subscription, subscribe
from dataflows.config import JobConfig
from dataflows.formats import PARSERS, FormatParser
from dataflows.readings import DeadLetter, Reading, ReadingRow, parse_by_key, parse_item
from dataflows.runtime import RunSummary, start_demo_simulator
from dataflows.times import iso, micros
from dataflows.windows import STREAM_TIMES

__all__ = ["late_letter", "read_stream", "read_stream_by_key", "sse_source"]

T = TypeVar("T")

_STAMP = itemgetter(0)


def sse_source(job: JobConfig, summary: RunSummary) -> SSESource:
    """The configured streams (or the demo simulator) as one SSE source, a partition each."""
    stream = job.stream
    streams = stream.stream_names()
    if job.demo is not None:
        streams = {"simulator": start_demo_simulator(job.demo)}

    def open_stream(url: str, last_event_id: str | None) -> Subscription:
        return subscribe(
            url,
            last_event_id=last_event_id,
            retry=stream.retry,
            options=stream.options,
            auth=stream.auth,
        )

    return SSESource(streams, open_stream, on_close=summary.stream_closed)


def _parse_batch(
    items: list[StreamItem], parser: FormatParser, summary: RunSummary
) -> list[Reading | DeadLetter]:
    out: list[Reading | DeadLetter] = []
    for item in items:
        out.extend(parse_item(item, parser))
    dead = [x.reason for x in out if isinstance(x, DeadLetter)]
    summary.count(len(out) - len(dead), dead)
    newest: dict[str, datetime] = {}
    for x in out:
        if isinstance(x, Reading) and (x.stream not in newest or x.ts > newest[x.stream]):
            newest[x.stream] = x.ts
    for stream, ts in newest.items():
        STREAM_TIMES.advance(stream, micros(ts))
    return out


def read_stream(
    flow: Dataflow, job: JobConfig, summary: RunSummary, source: Source[StreamItem] | None = None
) -> tuple[Stream[Reading], Stream[DeadLetter]]:
    """The configured streams (or ``source``) as readings, and dead letters for the rest."""
    return _read_parsed(flow, job, summary, source, _parse_batch)


def _read_parsed(
    flow: Dataflow,
    job: JobConfig,
    summary: RunSummary,
    source: Source[StreamItem] | None,
    parse_batch: Callable[..., list[T | DeadLetter]],
) -> tuple[Stream[T], Stream[DeadLetter]]:
    """The source's batches through ``parse_batch``, split into what it made and dead letters."""
    items = op.input("sse", flow, source if source is not None else sse_source(job, summary))
    parser = PARSERS[job.stream.format]
    parsed = op.flat_map_batch("parse", items, partial(parse_batch, parser=parser, summary=summary))
    split = op.branch("is_parsed", parsed, _is_parsed)
    return split.trues, split.falses  # type: ignore[return-value]


def _is_parsed(item: object) -> bool:
    return not isinstance(item, DeadLetter)


def _parse_batch_by_key(
    items: list[StreamItem], parser: FormatParser, summary: RunSummary
) -> list[tuple[str, list[ReadingRow]] | DeadLetter]:
    groups, dead = parse_by_key(items, parser)
    summary.count(sum(map(len, groups.values())), [x.reason for x in dead])
    newest: dict[str, int] = {}
    for rows in groups.values():
        # A key's rows come from one stream (a key in several streams counts for the last).
        stream, stamp = rows[-1][3], max(map(_STAMP, rows))
        if stamp > newest.get(stream, stamp - 1):
            newest[stream] = stamp
    for stream, stamp in newest.items():
        STREAM_TIMES.advance(stream, stamp)
    return [*groups.items(), *dead]


def read_stream_by_key(
    flow: Dataflow, job: JobConfig, summary: RunSummary, source: Source[StreamItem] | None = None
) -> tuple[KeyedStream[list[ReadingRow]], Stream[DeadLetter]]:
    """Like ``read_stream``, with each batch's readings grouped by ``key_of``: one item
    per key and batch (``ReadingRow`` s in arrival order) rather than one per reading, so
    the steps after it pay the runtime's cost per item a few times a batch, and readings
    that go to another process are cheap to pickle."""
    return _read_parsed(flow, job, summary, source, _parse_batch_by_key)


def late_letter(
    item: tuple[str, tuple[int, Reading]], lateness: timedelta, summary: RunSummary
) -> str:
    """A reading the window dropped as late, as a dead letter line."""
    _, (_, reading) = item
    summary.count(0, ["late"])
    data = json.dumps(
        {
            "sensor_id": reading.sensor_id,
            "metric": reading.metric,
            "ts": iso(reading.ts),
            "value": reading.value,
        },
        separators=(",", ":"),
    )
    detail = f"more than {lateness.total_seconds():g} s older than a reading already seen"
    return DeadLetter("late", detail, data, reading.event_id, reading.stream).to_json()
