"""The way in, shared by every job: the SSE source, events to readings and dead letters.

``read_stream`` gives a job its readings and dead letters from the configured streams
(or from the embedded simulator when ``SSE_URL`` is unset). Process set-up is
``runtime.py``'s, outputs are ``outputs.py``'s.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import FixedPartitionedSource, Source
from bytewax.operators import KeyedStream

from connectors.source import SSESource, StreamItem
from connectors.sse import subscribe
from connectors.sse.client import SubscriptionLike
from connectors.sse.remote import RemoteSubscription
from dataflows.config import JobConfig
from dataflows.formats import PARSERS, FormatParser
from dataflows.key_groups import KeyGroups, KeyRows
from dataflows.obelisk_setup import stream_resolver
from dataflows.parsed_source import ParsedSource
from dataflows.readings import (
    DeadLetter,
    Marks,
    Reading,
    Watched,
    decoded_columns,
    parse_by_key,
    parse_in_order,
    parse_item,
)
from dataflows.run_stats import RunStats
from dataflows.runtime import start_demo_simulator
from dataflows.times import iso, micros

__all__ = ["FormatWatch", "late_letter", "read_stream", "read_stream_by_group", "sse_source"]

log = logging.getLogger("dataflows")

T = TypeVar("T")


def sse_source(job: JobConfig, stats: RunStats) -> SSESource:
    """The configured streams (or the demo simulator) as one SSE source, a partition each."""
    stream = job.stream
    streams = stream.stream_names()
    if job.demo is not None:
        streams = {"simulator": start_demo_simulator(job.demo)}

    names = {url: name for name, url in streams.items()}
    # An Obelisk stream's URL is the Catalog's answer, asked for by the worker reading it.
    resolve = (
        (lambda url: url) if stream.obelisk is None else stream_resolver(stream.obelisk, stream)
    )

    def open_stream(url: str, last_event_id: str | None) -> SubscriptionLike:
        open_one: Callable[..., SubscriptionLike] = subscribe
        if stream.reader == "process":
            # The events' decode runs in the reader process too, beside the parser.
            decode = partial(decoded_columns, stream.format, names[url])
            open_one = partial(RemoteSubscription, decode=decode)
        subscription = open_one(
            resolve(url),
            last_event_id=last_event_id,
            retry=stream.retry,
            options=stream.options,
            auth=stream.auth,
            on_reconnect=partial(stats.breaks.reconnected, names[url]),
        )
        stats.stream_opened(names[url], subscription)
        return subscription

    return SSESource(streams, open_stream, on_end=stats.stream_ended)


class FormatWatch:
    """Warns once per stream when its first events were all dead letters of one reason:
    almost always ``SSE_FORMAT`` naming another format than the stream sends."""

    FIRST_EVENTS = 100
    FIRST_SECONDS = 60.0

    def __init__(self, format_name: str) -> None:
        self._format = format_name
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, Counter[str], float]] = {}
        self._done: set[str] = set()

    def observe(self, items: list[StreamItem], dead: list[DeadLetter]) -> None:
        # A batch comes from one partition: once its stream is judged, nothing to count.
        if not items or (items[0][0] in self._done and items[-1][0] in self._done):
            return
        events = Counter(name for name, _ in items)
        with self._lock:
            for stream, count in events.items():
                if stream in self._done:
                    continue
                seen, reasons, since = self._seen.get(stream, (0, Counter(), time.monotonic()))
                reasons.update(letter.reason for letter in dead if letter.stream == stream)
                seen += count
                self._seen[stream] = (seen, reasons, since)
                if seen >= self.FIRST_EVENTS or time.monotonic() - since >= self.FIRST_SECONDS:
                    self._done.add(stream)
                    self._judge(stream, seen, reasons)

    def _judge(self, stream: str, seen: int, reasons: Counter[str]) -> None:
        if len(reasons) == 1 and sum(reasons.values()) >= seen:
            (reason,) = reasons
            log.warning(
                "%s: the first %d events were all dead letters (%s): is SSE_FORMAT=%s right "
                "for this stream? It takes auto, flat, dt or obelisk",
                stream,
                seen,
                reason,
                self._format,
            )


@dataclass
class _Intake:
    """The parse step: events to readings (or rows by key) and dead letters, counted, with
    each stream's event time moved on and the format watched."""

    parser: FormatParser
    stats: RunStats
    watch: FormatWatch
    groups: KeyGroups

    def readings(self, items: list[StreamItem]) -> list[Reading | DeadLetter]:
        watched = self.stats.breaks.watched()
        marks: Marks = {}
        out, dead, newest = parse_in_order(items, self.parser, self.stats.times.get, watched, marks)
        self._account(items, len(out) - len(dead), dead, newest, watched, marks)
        return out

    def rows_by_group(
        self, items: list[StreamItem]
    ) -> list[tuple[str, list[KeyRows]] | DeadLetter]:
        # The breaks waiting for their last event: the parse notes the stream's time at
        # each, rather than the events being read again to find it.
        watched = self.stats.breaks.watched()
        marks: Marks = {}
        keyed, dead, newest = parse_by_key(items, self.parser, self.stats.times.get, watched, marks)
        self._account(items, sum(map(len, keyed.values())), dead, newest, watched, marks)
        return [*self.groups.of(keyed, newest), *dead]

    def _account(
        self,
        items: list[StreamItem],
        readings: int,
        dead: list[DeadLetter],
        newest: dict[str, int],
        watched: Watched,
        marks: Marks,
    ) -> None:
        self.stats.count(readings, [letter.reason for letter in dead])
        self.stats.breaks.read(items, newest, watched, marks, self._stamp_of)
        self.watch.observe(items, dead)

    def _stamp_of(self, item: StreamItem) -> int | None:
        # Only for a break reported while its batch was being read: read the event again.
        stamps = [micros(r.ts) for r in parse_item(item, self.parser) if isinstance(r, Reading)]
        return max(stamps) if stamps else None


def read_stream(
    flow: Dataflow, job: JobConfig, stats: RunStats, source: Source[StreamItem] | None = None
) -> tuple[Stream[Reading], Stream[DeadLetter]]:
    """The configured streams (or ``source``) as readings, and dead letters for the rest."""
    intake = _intake(job, stats)
    return _read_parsed(flow, job, stats, source, intake.readings)


def read_stream_by_group(
    flow: Dataflow, job: JobConfig, stats: RunStats, source: Source[StreamItem] | None = None
) -> tuple[KeyedStream[list[KeyRows]], Stream[DeadLetter]]:
    """Like ``read_stream``, with each batch's readings as rows by key (in arrival order),
    gathered by key group (``key_groups.py``): one item per group and batch rather than
    one per reading, so the steps after it pay the runtime's cost per item a few times a
    batch whatever the fleet size, and readings that go to another process are cheap to
    pickle."""
    intake = _intake(job, stats)
    return _read_parsed(flow, job, stats, source, intake.rows_by_group)


def _intake(job: JobConfig, stats: RunStats) -> _Intake:
    parser, watch = PARSERS[job.stream.format], FormatWatch(job.stream.format)
    groups = KeyGroups(job.window.key_groups, marks=job.window.idle_close is not None)
    return _Intake(parser, stats, watch, groups)


def _read_parsed(
    flow: Dataflow,
    job: JobConfig,
    stats: RunStats,
    source: Source[StreamItem] | None,
    parse_batch: Callable[[list[StreamItem]], list[T | DeadLetter]],
) -> tuple[Stream[T], Stream[DeadLetter]]:
    """The source's batches through ``parse_batch``, split into what it made and dead letters."""
    source = source if source is not None else sse_source(job, stats)
    if isinstance(source, FixedPartitionedSource):
        # Parsed in the source, so that its snapshots hold each stream's time.
        parsed = op.input("sse", flow, ParsedSource(source, parse_batch, stats.times))
    else:
        parsed = op.flat_map_batch("parse", op.input("sse", flow, source), parse_batch)
    split = op.branch("is_parsed", parsed, _is_parsed)
    return split.trues, split.falses  # type: ignore[return-value]


def _is_parsed(item: object) -> bool:
    return not isinstance(item, DeadLetter)


def late_letter(
    item: tuple[str, tuple[int, Reading]], lateness: timedelta, stats: RunStats
) -> DeadLetter:
    """A reading the window dropped as late, as a dead letter at its stream's time."""
    _, (_, reading) = item
    stats.count(0, ["late"])
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
    return DeadLetter("late", detail, data, reading.event_id, reading.stream, reading.stream_time)
