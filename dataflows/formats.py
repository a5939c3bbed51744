"""The vendor formats' parsers: an event's decoded JSON to readings.

- ``flat``: ``{"sensor_id", "metric", "ts", "value"}``; ``metric`` defaults to the SSE
  event type unless it is ``message``; ``ts`` RFC 3339 (no offset: UTC), or epoch seconds
  or milliseconds.
- ``dt``: the Disruptive Technologies envelope ``{"result": {"event": ...}}``: the device
  id from ``targetName``, the metric from ``eventType``, values and time from the typed
  ``data`` block; ``ping`` and non-numeric events give no reading.
- ``obelisk``: Obelisk metric events: sensor from ``source``, metric without its
  ``::number`` suffix, ``timestamp`` in ms; non-numeric metrics give no reading.
- ``auto``: tells them apart event by event.

A format returns ``(sensor_id, metric, time, value)`` tuples, or raises ``Reject`` with the
dead letter's reason; it never sees SSE, streams or windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from types import FunctionType
from typing import Any, Final, Literal, TypeGuard

from connectors.vendors import VENDOR_FORMATS, VendorFormat
from dataflows.times import EPOCH, MICROSECOND

__all__ = [
    "DT_STATES",
    "FORMATS",
    "PARSERS",
    "PLAIN_FIRST",
    "VENDOR_FORMATS",
    "Format",
    "FormatParser",
    "Parsed",
    "Reject",
    "VendorFormat",
    "dt_block_readings",
    "dt_metric",
    "plain_utc_micros",
    "timestamp_micros",
]

# The formats a server can send (``connectors.vendors``); a job also takes "auto".
Format = Literal["auto", VendorFormat]
FORMATS: tuple[Format, ...] = ("auto", *VENDOR_FORMATS)


class Reject(Exception):
    """Raised inside a format parser; becomes a dead letter with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# A parser gets the decoded JSON, the SSE event type, and returns (sensor, metric, time,
# value), the time in whole microseconds since the epoch (UTC): windows are integer
# arithmetic on it, and a number never becomes a datetime only to be turned back.
Parsed = list[tuple[str, str, int, float]]
FormatParser = Callable[[Any, str], Parsed]

# A tuple, not ``int | float``: that expression builds a union object at every call.
_NUMBER: Final = (int, float)
# Epoch numbers above this are milliseconds (after 1973 in ms).
_MS_THRESHOLD: Final = 100_000_000_000


_MIN_MICROS: Final = (datetime.min.replace(tzinfo=UTC) - EPOCH) // MICROSECOND
_MAX_MICROS: Final = (datetime.max.replace(tzinfo=UTC) - EPOCH) // MICROSECOND


# Minute starts in microseconds, by their text ("2026-12-07T17:02"): a stream's times
# share a few at a time, so the usual timestamp is its seconds and digits added to one.
_MINUTES: Final[dict[str, int]] = {}
_MAX_MINUTES: Final = 4096


def plain_utc_micros(text: str) -> int | None:
    """``text`` in microseconds when it has the usual shape, YYYY-MM-DDTHH:MM:SS, then a
    fraction of 1-6 digits or none, then ``Z`` or ``+00:00``; else None, for
    ``datetime.fromisoformat`` to read. The same as it gives: it pads a fraction with
    zeros and reads those offsets as UTC (3.11 and 3.12)."""
    size = len(text)
    if size < 20 or text[16] != ":":
        return None
    if text[size - 1] == "Z":
        end = size - 1
    elif size >= 25 and text.endswith("+00:00"):
        end = size - 6
    else:
        return None
    head = text[:16]
    minute = _MINUTES.get(head)
    if minute is None:
        minute = _minute_micros(head)
        if minute is None:
            return None
    # Digit by digit: compiled, these are integer steps, where slices and int() are calls.
    tens, ones = ord(text[17]) - 48, ord(text[18]) - 48
    if not (0 <= tens <= 5 and 0 <= ones <= 9):
        return None
    stamp = minute + (tens * 10 + ones) * 1_000_000
    if end != 19:
        # fromisoformat reads "07." as 07 and cuts a seventh digit off: left to it.
        if text[19] != "." or not 21 <= end <= 26:
            return None
        scale = 100_000
        for at in range(20, end):
            digit = ord(text[at]) - 48
            if not 0 <= digit <= 9:
                return None
            stamp += digit * scale
            scale //= 10
    return stamp


def _minute_micros(head: str) -> int | None:
    # ASCII digits only: int() would take other scripts' digits, spaces and underscores.
    fields = (head[:4], head[5:7], head[8:10], head[11:13], head[14:16])
    if head[4] + head[7] + head[10] + head[13] != "--T:" or not all(
        field.isascii() and field.isdigit() for field in fields
    ):
        return None
    try:
        year, month, day, hour, minute = map(int, fields)
        moment = datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    if len(_MINUTES) >= _MAX_MINUTES:
        _MINUTES.clear()
    stamp = _MINUTES[head] = (moment - EPOCH) // MICROSECOND
    return stamp


# Compiled (mypyc), a timestamp of the usual shape costs 0.28 us this way against 0.65 us
# by fromisoformat and a timedelta; as bytecode it would cost more, so the pure-Python
# form leaves every text to fromisoformat.
PLAIN_FIRST: Final = not isinstance(plain_utc_micros, FunctionType)


def timestamp_micros(value: Any, *, unit: str = "auto") -> int:
    """A reading's time in microseconds since the epoch: RFC 3339 text (no offset: UTC),
    or epoch seconds or milliseconds (``unit``; ``auto`` tells them apart by size)."""
    if isinstance(value, str):  # the usual case, first
        if PLAIN_FIRST:
            plain = plain_utc_micros(value)
            if plain is not None:
                return plain
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise Reject("invalid_timestamp", f"timestamp {value!r} is not RFC 3339") from None
        zone = moment.tzinfo
        # RFC 3339 requires an offset; a timestamp without one is read as UTC.
        if zone is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - EPOCH) // MICROSECOND
    if type(value) is int:  # Obelisk's epoch ms, first: an int is finite and not a bool
        stamp = value * (1000 if _in_ms(value, unit) else 1_000_000)
    elif isinstance(value, bool):
        raise Reject("invalid_timestamp", f"timestamp {value!r} is not a time")
    elif isinstance(value, _NUMBER):
        if not math.isfinite(value):
            raise Reject("invalid_timestamp", f"timestamp {value!r} is not finite")
        # As datetime.fromtimestamp rounds: whole seconds, then the fraction to the
        # nearest microsecond, half to even.
        fraction, whole = math.modf(value / 1000 if _in_ms(value, unit) else value)
        stamp = int(whole) * 1_000_000 + round(fraction * 1e6)
    else:
        raise Reject("invalid_timestamp", f"timestamp {value!r} is not a string or number")
    if not _MIN_MICROS <= stamp <= _MAX_MICROS:
        raise Reject("invalid_timestamp", f"timestamp {value!r} is out of range")
    return stamp


def _in_ms(value: Any, unit: str) -> bool:
    # Any, not float (which mypy takes int | float to mean): compiled, a float parameter
    # would turn an int too big for a float into an error rather than a time out of range.
    return unit == "ms" or (unit == "auto" and abs(value) >= _MS_THRESHOLD)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, _NUMBER):
        raise Reject("invalid_value", f"{what} {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise Reject("invalid_value", f"{what} {value!r} is not finite")
    return number


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise Reject("missing_field", f"no {key!r}")
    if not isinstance(value, str) or not value:
        raise Reject("invalid_value", f"{key} {value!r} is not a non-empty string")
    return value


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Reject("unknown_format", f"expected a JSON object, got {type(body).__name__}")
    return body


def _plain_number(value: object) -> TypeGuard[int | float]:
    """A JSON number that ``_number`` takes as it is: a finite float, or an int."""
    # finite: inf - inf and nan - nan are nan
    return (type(value) is float and value - value == 0.0) or type(value) is int


def parse_flat(body: Any, event_type: str) -> Parsed:
    if type(body) is dict:
        # The usual reading (strings, a number, a time) without a call per field; anything
        # else goes through the checks below, which name the problem.
        sensor, metric, ts, value = (
            body.get("sensor_id"),
            body.get("metric"),
            body.get("ts"),
            body.get("value"),
        )
        if (
            type(sensor) is str
            and sensor
            and type(metric) is str
            and metric
            and ts is not None
            and _plain_number(value)
        ):
            return [(sensor, metric, timestamp_micros(ts), float(value))]
    obj = _object(body)
    sensor = _text(obj, "sensor_id")
    if "metric" in obj:
        metric = _text(obj, "metric")
    elif event_type != "message":
        metric = event_type
    else:
        raise Reject("missing_field", "no 'metric' and the SSE event type is 'message'")
    if "ts" not in obj:
        raise Reject("missing_field", "no 'ts'")
    if "value" not in obj:
        raise Reject("missing_field", "no 'value'")
    return [(sensor, metric, timestamp_micros(obj["ts"]), _number(obj["value"], "value"))]


# DT fields that are bookkeeping, not measurements.
_DT_SKIP: Final = frozenset({"updateTime", "samples", "sampleTime", "isBackfilled"})
# DT's two-state events: the state that reads 1, and the one that reads 0.
DT_STATES: Final[dict[str, tuple[str, str]]] = {
    "objectPresent": ("PRESENT", "NOT_PRESENT"),
    "waterPresent": ("PRESENT", "NOT_PRESENT"),
    "motion": ("MOTION_DETECTED", "NO_MOTION_DETECTED"),
    "deskOccupancy": ("OCCUPIED", "NOT_OCCUPIED"),
    "contact": ("OPEN", "CLOSED"),
}


def dt_metric(event_type: str, field: str, only: bool) -> str:
    """The one naming rule for DT readings: the event type, qualified by the field when
    the event carries several numbers (``temperature``, ``batteryStatus``,
    ``humidity.relativeHumidity``, ``networkStatus.rssi``)."""
    return event_type if only else f"{event_type}.{field}"


def parse_dt(body: Any, event_type: str) -> Parsed:
    quick = _dt_usual(body)
    return _dt_checked(body) if quick is None else quick


def _dt_checked(body: Any) -> Parsed:
    """A DT event read field by field, each problem named: what ``_dt_usual`` passes on."""
    result = _object(body).get("result")
    event = result.get("event") if isinstance(result, dict) else None
    if not isinstance(event, dict):
        raise Reject("unknown_format", "no result.event object")
    kind = _text(event, "eventType")
    data = event.get("data")
    block = data.get(kind) if isinstance(data, dict) else None
    if kind == "ping" or not isinstance(block, dict):
        return []  # keep-alives, labelsChanged and the like carry no reading
    if block.get("isBackfilled") is True:
        # Stored on the sensor while it was offline and sent long after: older than any
        # window still open, so kept whole here for a batch job, never windowed.
        raise Reject("backfilled", f"a backfilled {kind} event (isBackfilled)")
    samples = block.get("samples")
    if isinstance(samples, list) and samples:
        return _dt_samples(event, kind, samples)
    numbers = {
        k: v
        for k, v in block.items()
        if k not in _DT_SKIP and isinstance(v, _NUMBER) and not isinstance(v, bool)
    }
    states = DT_STATES.get(kind)
    if states is not None:
        state = block.get("state")
        if state not in states:
            raise Reject("invalid_value", f"{kind} state {state!r} is not {' or '.join(states)}")
        numbers = {"state": 1.0 if state == states[0] else 0.0}
    if not numbers:
        return []  # touch, connectionStatus and the like: events, but not measurements
    device = _dt_device(event)
    stamp = block.get("updateTime", event.get("timestamp"))
    if stamp is None:
        raise Reject("missing_field", "no updateTime or timestamp")
    ts = timestamp_micros(stamp)
    only = len(numbers) == 1
    return [
        (device, dt_metric(kind, name, only), ts, _number(v, name)) for name, v in numbers.items()
    ]


def _dt_device(event: dict[str, Any]) -> str:
    device = _text(event, "targetName").rsplit("/", 1)[-1]
    if not device:
        raise Reject("invalid_value", "targetName has no device id")
    return device


def _dt_samples(event: dict[str, Any], kind: str, samples: list[Any]) -> Parsed:
    """DT's inter-heartbeat samples: every value measured since the previous heartbeat,
    newest first, the first equal to the event's own ``value`` (so that one is not read
    again). Each is a reading at its own ``sampleTime``, given oldest first: in time
    order, no sample is behind the one before it."""
    device = _dt_device(event)
    readings = []
    # An index loop, not reversed(): mypyc (dataflows/native.py) fails on reversed() of
    # a list[Any].
    for i in range(len(samples) - 1, -1, -1):
        sample = samples[i]
        if not isinstance(sample, dict):
            raise Reject("invalid_value", f"a {kind} sample {sample!r} is not an object")
        if "sampleTime" not in sample or "value" not in sample:
            raise Reject("missing_field", f"a {kind} sample without sampleTime or value")
        ts = timestamp_micros(sample["sampleTime"])
        readings.append((device, kind, ts, _number(sample["value"], "sample value")))
    return readings


def _dt_usual(body: Any) -> Parsed | None:
    """A measurement event in the usual shape, read without the checks; None for anything
    else (a ping, a missing or odd field), which ``_dt_checked`` reads with them.

    Plain loops and indexing rather than comprehensions and ``get``: this runs for every
    event, and a comprehension is a call of its own. orjson gives only dicts, lists,
    strings, numbers, booleans and None, and indexing any of those but a dict by a string
    raises TypeError, so a lookup by a string that succeeds went through dicts."""
    try:
        event = body["result"]["event"]
        kind, target = event["eventType"], event["targetName"]
        if type(kind) is not str or type(target) is not str or not kind or kind == "ping":
            return None
        block = event["data"][kind]
    except (KeyError, TypeError):
        return None
    if type(block) is not dict or kind in DT_STATES:
        return None  # two-state events: the checked path reads them
    return dt_block_readings(kind, target, block, event.get("timestamp"))


def dt_block_readings(
    kind: str, target: str, block: dict[str, Any], event_time: Any
) -> Parsed | None:
    """The readings of a measurement event's ``data`` block (of type ``kind``, the event's
    ``timestamp`` ``event_time``) in the usual shape, or None for the checked path."""
    if "isBackfilled" in block and block["isBackfilled"] is True:
        return None  # backfill: the checked path makes it a dead letter
    if "samples" in block:
        return _dt_usual_samples(kind, target, block["samples"])
    values: list[tuple[str, float]] = []
    for name, value in block.items():
        # _plain_number inlined; bookkeeping fields are strings or flags, so the type
        # test goes first.
        if ((type(value) is float and value - value == 0.0) or type(value) is int) and (
            name not in _DT_SKIP
        ):
            values.append((name, value))
    if not values:
        return None
    device = target.rpartition("/")[2]
    stamp = block.get("updateTime", event_time)
    if not device or stamp is None:
        return None
    ts = timestamp_micros(stamp)
    if len(values) == 1:
        return [(device, kind, ts, float(values[0][1]))]
    return [(device, f"{kind}.{name}", ts, float(value)) for name, value in values]


def _dt_usual_samples(kind: str, target: str, samples: Any) -> Parsed | None:
    """``_dt_samples`` without the checks, for the usual list of sample objects."""
    device = target.rpartition("/")[2]
    if type(samples) is not list or not samples or not device:
        return None
    readings: Parsed = []
    try:
        for i in range(len(samples) - 1, -1, -1):
            sample = samples[i]
            value = sample["value"]
            if not ((type(value) is float and value - value == 0.0) or type(value) is int):
                return None
            readings.append((device, kind, timestamp_micros(sample["sampleTime"]), float(value)))
    except (KeyError, TypeError):
        return None
    return readings


def parse_obelisk(body: Any, event_type: str) -> Parsed:
    if type(body) is dict:
        # The usual metric event without a call per field; anything else is checked below.
        metric, source, ts = body.get("metric"), body.get("source"), body.get("timestamp")
        value = body.get("value")
        if type(metric) is str and type(source) is str and source and ts is not None:
            name, _, kind = metric.partition("::")
            if name and (not kind or kind == "number") and _plain_number(value):
                return [(source, name, timestamp_micros(ts, unit="ms"), float(value))]
    if isinstance(body, list):  # some deployments batch metric events in one array
        return [r for item in body for r in parse_obelisk(item, event_type)]
    obj = _object(body)
    name, _, kind = _text(obj, "metric").partition("::")
    if kind and kind != "number":
        return []  # ::json, ::string and other non-numeric metrics carry no reading
    if "timestamp" not in obj:
        raise Reject("missing_field", "no 'timestamp'")
    if "value" not in obj:
        raise Reject("missing_field", "no 'value'")
    return [
        (
            _text(obj, "source"),
            name,
            timestamp_micros(obj["timestamp"], unit="ms"),
            _number(obj["value"], "value"),
        )
    ]


def parse_auto(body: Any, event_type: str) -> Parsed:
    probe = body[0] if isinstance(body, list) and body else body
    if isinstance(probe, dict):
        if "result" in probe:
            return parse_dt(body, event_type)
        if "sensor_id" in probe:
            return parse_flat(body, event_type)
        if "source" in probe and "metric" in probe:
            return parse_obelisk(body, event_type)
    raise Reject("unknown_format", "not flat, Disruptive Technologies or Obelisk JSON")


PARSERS: dict[Format, FormatParser] = {
    "auto": parse_auto,
    "flat": parse_flat,
    "dt": parse_dt,
    "obelisk": parse_obelisk,
}
