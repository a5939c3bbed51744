"""Reading, DeadLetter and the key they are grouped by, and events turned into them.

An SSE event gives zero or more readings through its vendor format (``formats.py``);
anything that cannot be read becomes a dead letter with a reason, never an exception.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, NamedTuple, cast

import orjson

from connectors.source import StreamItem
from connectors.sse import OversizedEvent, SSEEvent
from connectors.sse.parser import DecodedEvent
from dataflows.fast_formats import fast_decode, fast_kind_for
from dataflows.formats import PARSERS, Format, FormatParser, Parsed, Reject
from dataflows.times import from_micros, iso

__all__ = [
    "DeadLetter",
    "Marks",
    "Reading",
    "ReadingRow",
    "Watched",
    "decoded_columns",
    "key_of",
    "parse_by_key",
    "parse_in_order",
    "parse_item",
    "reading_key",
    "split_key",
]

_KEY_SEP: Final = "\x1f"  # cannot appear in a JSON-decoded id from any vendor we model
# Compiled, a module's name that is not Final is looked up in its globals at each use,
# and so is a class imported from a module that is not compiled: these are read per event.
_DECODED: Final = DecodedEvent
_OVERSIZED: Final = OversizedEvent


class Reading(NamedTuple):
    """One number from one sensor at one moment; ``ts`` is timezone-aware UTC.

    A named tuple: a job builds one per reading, and a frozen dataclass takes several
    times as long to build.
    """

    sensor_id: str
    metric: str
    ts: datetime
    value: float
    event_id: str
    stream: str
    # The stream's event time with this reading (microseconds; see ``parse_by_key``),
    # which the idle rule judges it by; None where no stream time applies.
    stream_time: int | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What could not become a reading, and why; ``data`` is the raw event data."""

    reason: str
    detail: str
    data: str
    event_id: str
    stream: str
    # The stream's event time when it came (its newest reading before it, microseconds),
    # which places it among the windows; None before the stream's first reading.
    stream_time: int | None = None

    def __reduce__(self) -> tuple[type[DeadLetter], tuple[str, str, str, str, str, int | None]]:
        # A reader process sends them. Compiled, the class has no __setstate__, and
        # pickle's default sets each field, which a frozen class refuses.
        fields = (self.reason, self.detail, self.data, self.event_id, self.stream)
        return (DeadLetter, (*fields, self.stream_time))

    def to_json(self, job: str | None = None) -> str:
        """The dead letter as a JSON line; ``job`` names the job that wrote it, so that
        several jobs' dead letters in one ``OUTPUT`` can be told apart."""
        stream_time = None if self.stream_time is None else iso(from_micros(self.stream_time))
        return json.dumps(
            {
                "reason": self.reason,
                "detail": self.detail,
                "event_id": self.event_id,
                "stream": self.stream,
                "stream_time": stream_time,
                "data": self.data,
                "job": job,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def parse_item(item: StreamItem, parser: FormatParser) -> list[Reading | DeadLetter]:
    """One source item to its readings, or to one dead letter."""
    stream, event = item
    parsed = _parse_event(event, stream, parser, fast_kind_for(parser))
    if isinstance(parsed, DeadLetter):
        return [parsed]
    return [Reading(s, m, from_micros(ts), v, event.id, stream) for s, m, ts, v in parsed]


# Per stream, event ids whose stream time a caller wants (the last event before each
# reconnect), filled in as (stream, id) -> the stream's event time once that event is read.
Watched = dict[str, set[str]]
Marks = dict[tuple[str, str], int | None]


def parse_in_order(
    items: list[StreamItem],
    parser: FormatParser,
    before: Callable[[str], int | None],
    watch: Watched | None = None,
    marks: Marks | None = None,
) -> tuple[list[Reading | DeadLetter], list[DeadLetter], dict[str, int]]:
    """A batch of source items to its readings and dead letters in arrival order, the dead
    letters alone, and each stream's event time after it: as ``parse_by_key``, with
    each reading's ``stream_time`` set."""
    out: list[Reading | DeadLetter] = []
    dead: list[DeadLetter] = []
    times: dict[str, int | None] = {}
    now = time.time_ns() // 1000
    fast = fast_kind_for(parser)
    for stream, event in items:
        stream_time = times[stream] if stream in times else before(stream)
        parsed = _parse_event(event, stream, parser, fast)
        if isinstance(parsed, DeadLetter):
            letter = replace(parsed, stream_time=stream_time)
            dead.append(letter)
            out.append(letter)
        else:
            for s, m, ts, v in parsed:
                if stream_time is None or ts > stream_time:
                    stream_time = _moved_to(stream_time, ts, now)
                out.append(Reading(s, m, from_micros(ts), v, event.id, stream, stream_time))
        times[stream] = stream_time
        if watch and marks is not None and event.id in watch.get(stream, ()):
            # The first time: an event sent again later is not the one before the break.
            marks.setdefault((stream, event.id), stream_time)
    return out, dead, {stream: t for stream, t in times.items() if t is not None}


def _moved_to(stream_time: int | None, ts: int, now: int) -> int:
    """A stream's event time once a reading newer than it came: the reading's time, but
    never ahead of the wall clock, so a sensor whose clock runs ahead cannot close
    everyone's windows."""
    if ts <= now:
        return ts
    return now if stream_time is None or stream_time < now else stream_time


# A reading whose key is known, as a plain tuple: (timestamp in microseconds since the
# epoch, value, event id, stream, the stream's event time with this reading). Readings
# cross between processes as these, and pickle takes a Reading with its datetime through
# Python code: ~3.7 us a round trip, against ~0.3 us for a row. The stream's event time
# travels with the reading so that whether the idle rule makes it late depends on the
# readings before it, not on how the stream was cut into batches.
ReadingRow = tuple[int, float, str, str, int]
_BoxedParsed = list[tuple[str, str, Any, Any]]


def parse_by_key(
    items: list[StreamItem],
    parser: FormatParser,
    before: Callable[[str], int | None],
    watch: Watched | None = None,
    marks: Marks | None = None,
) -> tuple[dict[str, list[ReadingRow]], list[DeadLetter], dict[str, int]]:
    """A batch of source items to its readings as rows grouped by ``key_of`` (in arrival
    order within a key), its dead letters, and each stream's event time after it.

    A stream's event time is its newest reading so far, starting from ``before(stream)``
    (the batches before this one) and never ahead of the wall clock. Each row carries it
    as of that reading; a dead letter's ``stream_time`` is the one before it. For each
    event of ``watch`` in the batch, ``marks`` gets the stream's event time once that
    event was read."""
    groups: dict[str, list[ReadingRow]] = {}
    dead: list[DeadLetter] = []
    times: dict[str, int | None] = {}
    # Compiled, a time or value typed int or float is taken out of its object and put in
    # a new one for the row. Typed Any (each reading's, and ``now``, which they are
    # compared with), the row holds the decoder's own objects, and a stream time moved to
    # a reading's is that reading's.
    now: Any = time.time_ns() // 1000
    current: str | None = None
    stream_time: int | None = None
    fast = fast_kind_for(parser)
    for stream, event in items:
        if stream != current:
            # A batch is usually one partition's: the stream's time lives in a local.
            if current is not None:
                times[current] = stream_time
            current = stream
            stream_time = times[stream] if stream in times else before(stream)
        parsed = _parse_event(event, stream, parser, fast)
        event_id = event.id
        if isinstance(parsed, DeadLetter):
            dead.append(replace(parsed, stream_time=stream_time))
        else:
            for sensor, metric, ts, value in cast(_BoxedParsed, parsed):
                if stream_time is None or ts > stream_time:
                    stream_time = ts if ts <= now else _moved_to(stream_time, ts, now)
                row = (ts, value, event_id, stream, stream_time)
                key = key_of(sensor, metric)
                group = groups.get(key)
                if group is None:
                    groups[key] = [row]
                else:
                    group.append(row)
        if watch and marks is not None and event_id in watch.get(stream, ()):
            # The first time: an event sent again later is not the one before the break.
            marks.setdefault((stream, event_id), stream_time)
    if current is not None:
        times[current] = stream_time
    return groups, dead, {stream: t for stream, t in times.items() if t is not None}


def decoded_columns(
    fmt: Format, stream: str, events: list[SSEEvent | OversizedEvent]
) -> tuple[list[str], list[Parsed | DeadLetter]]:
    """A read's events' ids, and their readings or dead letters, as two columns: what a
    reader process (SSE_READER=process) hands on, so that the job does not decode them."""
    parser = PARSERS[fmt]
    fast = fast_kind_for(parser)
    ids = [event.id for event in events]
    return ids, [_parse_event(event, stream, parser, fast) for event in events]


def _parse_event(
    event: SSEEvent | OversizedEvent | DecodedEvent,
    stream: str,
    parser: FormatParser,
    fast: int,
) -> Parsed | DeadLetter:
    """An event's readings: by the format's msgspec decoder when the event has the usual
    shape, else by orjson and the format's checks, which name a dead letter's reason."""
    if isinstance(event, _DECODED):
        return cast("Parsed | DeadLetter", event.decoded)
    if isinstance(event, _OVERSIZED):
        return DeadLetter(
            "oversized", f"event data over {event.limit} bytes was skipped", "", event.id, stream
        )
    try:
        quick = fast_decode(fast, event.data, event.event)
        if quick is not None:
            return quick
        try:
            body = orjson.loads(event.data)
        except ValueError as exc:
            return DeadLetter("invalid_json", str(exc), event.data, event.id, stream)
        return parser(body, event.event)
    except Reject as reject:
        return DeadLetter(reject.reason, reject.detail, event.data, event.id, stream)


def key_of(sensor_id: str, metric: str) -> str:
    """The key readings are grouped by: (sensor_id, metric) as one string."""
    return f"{sensor_id}{_KEY_SEP}{metric}"


def reading_key(reading: Reading) -> str:
    return key_of(reading.sensor_id, reading.metric)


def split_key(key: str) -> tuple[str, str]:
    sensor_id, metric = key.split(_KEY_SEP, 1)
    return sensor_id, metric
