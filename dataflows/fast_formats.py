"""The usual event of each vendor format, decoded by msgspec straight into typed structs.

msgspec decodes and type-checks an event's JSON in one pass in C, skipping the fields a
reading does not use, where ``orjson.loads`` builds every value as a Python object and
the format's checks then look at each. A struct (``event_shapes.py``) accepts only the
usual shape; any other event (a field missing, null or of another type, a ping, a batch
array, malformed JSON) makes the decoder return None, and ``dataflows.readings`` reads
the event again with orjson and the checked parsers of ``dataflows.formats``, which name
the dead letter's reason. So the readings are the same either way, by construction and by the
tests (``tests/dataflows/test_fast_formats.py`` holds the two paths equal on events made
odd in every way hypothesis finds), and what msgspec accepts it accepts as orjson does:
no NaN, no lone surrogates, no trailing text.

A decoder takes the event's data and its SSE event type and returns the readings, None
for "not the usual shape", or raises ``Reject`` exactly where the checked parser would.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from dataflows.event_shapes import AutoFlat, AutoObelisk, DtEnvelope, Flat, Obelisk
from dataflows.formats import (
    DT_STATES,
    PARSERS,
    FormatParser,
    Parsed,
    dt_block_readings,
    timestamp_micros,
)

__all__ = ["NO_FAST", "fast_decode", "fast_kind_for"]


# UnicodeEncodeError: a str with a lone surrogate (SSE data never has one: it is decoded
# with replacement), which orjson refuses as invalid JSON.
_NOT_USUAL: Final = (msgspec.ValidationError, msgspec.DecodeError, UnicodeEncodeError)
_flat: Final = msgspec.json.Decoder(Flat).decode
_obelisk: Final = msgspec.json.Decoder(Obelisk).decode
_dt: Final = msgspec.json.Decoder(DtEnvelope).decode
_auto_flat: Final = msgspec.json.Decoder(AutoFlat).decode
_auto_obelisk: Final = msgspec.json.Decoder(AutoObelisk).decode
_UNSET: Final = msgspec.UNSET


def fast_flat(data: str, event_type: str) -> Parsed | None:
    try:
        event = _flat(data)
    except _NOT_USUAL:
        return None
    return _flat_readings(event)


def _flat_readings(event: Flat) -> Parsed | None:
    # Compiled, a struct's field typed float is taken out of its object and put in a new
    # one for the reading; read through Any, the reading holds the decoder's own.
    fields: Any = event
    sensor: str = fields.sensor_id
    metric: str = fields.metric
    if not sensor or not metric:
        return None
    reading: Any = (sensor, metric, timestamp_micros(fields.ts), fields.value)
    return [reading]


def fast_obelisk(data: str, event_type: str) -> Parsed | None:
    try:
        event = _obelisk(data)
    except _NOT_USUAL:
        return None
    return _obelisk_readings(event)


def _obelisk_readings(event: Obelisk) -> Parsed | None:
    fields: Any = event  # as in _flat_readings
    source: str = fields.source
    metric: str = fields.metric
    name, _, kind = metric.partition("::")
    if not source or not name or (kind and kind != "number"):
        return None
    reading: Any = (source, name, timestamp_micros(fields.timestamp, unit="ms"), fields.value)
    return [reading]


def fast_dt(data: str, event_type: str) -> Parsed | None:
    try:
        event = _dt(data).result.event
    except _NOT_USUAL:
        return None
    kind = event.eventType
    if not kind or kind == "ping" or kind in DT_STATES:
        return None
    block = event.data.get(kind)
    if type(block) is not dict:
        return None
    return dt_block_readings(kind, event.targetName, block, event.timestamp)


def fast_auto(data: str, event_type: str) -> Parsed | None:
    """``parse_auto``'s choice, by the key that decides it: ``result`` (DT), else
    ``sensor_id`` (flat), else Obelisk. Looking for the key in the text only picks which
    decoder to try; a body that has another format's key (written with an escape, say)
    goes to the checked path, as ``parse_auto`` would give it to that format."""
    if '"result"' in data:
        return fast_dt(data, event_type)
    try:
        if '"sensor_id"' in data:
            flat = _auto_flat(data)
            return _flat_readings(flat) if flat.result is _UNSET else None
        obelisk = _auto_obelisk(data)
    except _NOT_USUAL:
        return None
    if obelisk.result is not _UNSET or obelisk.sensor_id is not _UNSET:
        return None
    return _obelisk_readings(obelisk)


# Each decoder by a number, which the compiled readings pass to ``fast_decode``: there a
# call by name is a C call, where one through the function object went by Python's
# calling convention, about 0.1 us an event.
NO_FAST: Final = 0
_FLAT: Final = 1
_DT: Final = 2
_OBELISK: Final = 3
_AUTO: Final = 4
_KIND_BY_PARSER: Final[dict[FormatParser, int]] = {
    PARSERS["flat"]: _FLAT,
    PARSERS["dt"]: _DT,
    PARSERS["obelisk"]: _OBELISK,
    PARSERS["auto"]: _AUTO,
}


def fast_kind_for(parser: FormatParser) -> int:
    """The number of the fast decoder that goes with a format's parser (``NO_FAST``: a
    parser of the caller's own)."""
    return _KIND_BY_PARSER.get(parser, NO_FAST)


def fast_decode(kind: int, data: str, event_type: str) -> Parsed | None:
    """The readings of an event by decoder ``kind`` (``fast_kind_for``), or None: not the
    usual shape, or no decoder."""
    if kind == _FLAT:
        return fast_flat(data, event_type)
    if kind == _DT:
        return fast_dt(data, event_type)
    if kind == _OBELISK:
        return fast_obelisk(data, event_type)
    if kind == _AUTO:
        return fast_auto(data, event_type)
    return None
