"""The msgspec decoders read exactly what orjson and the checked parsers read: the same
readings, or the same dead letter's reason, for events made odd in every way (types,
missing and repeated fields, escapes, big numbers, text around the JSON), and they do
read the usual events themselves rather than hand everything over."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulator.sequence import SequenceSpec, payload
from connectors.sse import SSEEvent
from connectors.vendors import VENDOR_FORMATS
from dataflows.fast_formats import NO_FAST, fast_decode, fast_kind_for
from dataflows.formats import PARSERS, Reject
from dataflows.readings import DeadLetter, parse_item

_odd_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -0.0, 2**53 + 1, 1e308, -1e-320, 1_767_225_600_000, 1_767_225_600]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(
        ["", "::number", "t::json", "2026-01-01T00:00:00Z", "2026-01-01 00:00", "\ud800"]
    ),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_usual = {
    "flat": {
        "sensor_id": "s-1",
        "metric": "temperature",
        "ts": "2026-01-01T00:00:00.250Z",
        "value": 21.5,
    },
    "obelisk": {
        "timestamp": 1_767_225_600_250,
        "dataset": "d",
        "metric": "temperature::number",
        "value": 21.5,
        "source": "s-1",
    },
    "dt": {
        "result": {
            "event": {
                "eventId": "e1",
                "targetName": "projects/p/devices/d1",
                "eventType": "humidity",
                "data": {
                    "humidity": {
                        "temperature": 22.1,
                        "relativeHumidity": 40,
                        "updateTime": "2026-01-01T00:00:00.250Z",
                    }
                },
                "timestamp": "2026-01-01T00:00:00.300Z",
            }
        }
    },
}


# Values a usual event may carry: any number, any name, a time in every accepted form.
_numbers = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**64), 2**64))
_names = st.text(min_size=1, max_size=8)
_times = st.one_of(
    st.builds(
        lambda moment, zone: moment.isoformat() + zone,
        st.datetimes(),
        st.sampled_from(["Z", "", "+02:00", "-00:30"]),
    ),
    st.integers(0, 4_000_000_000_000),
    st.floats(0, 4e12),
)


_varied = {
    "flat": {"sensor_id": _names, "metric": _names, "ts": _times, "value": _numbers},
    "obelisk": {"source": _names, "timestamp": _times, "value": _numbers},
    "dt": {"temperature": _numbers, "relativeHumidity": _numbers, "updateTime": _times},
}


@st.composite
def _events(draw: st.DrawFn, fmt: str) -> str:
    """An event of ``fmt`` as text: the usual one with varied values, odd things done to it."""
    body: Any = json.loads(json.dumps(_usual[fmt]))
    holder = body
    if fmt == "dt":
        holder = body["result"]["event"]
        block = holder["data"]["humidity"]
        for name, values in _varied["dt"].items():
            block[name] = draw(values)
        if draw(st.booleans()):
            holder = block
        if draw(st.integers(0, 5)) == 0:
            holder["eventType"] = draw(st.sampled_from(["ping", "temperature", "", "motion", 3]))
    else:
        for name, values in _varied[fmt].items():
            holder[name] = draw(values)
    for name in list(holder):
        roll = draw(st.integers(0, 7))
        if roll == 0:
            del holder[name]
        elif roll == 1:
            holder[name] = draw(_odd_values)
    text = json.dumps(body, ensure_ascii=draw(st.booleans()))
    roll = draw(st.integers(0, 9))
    if roll == 0:  # a field twice: JSON parsers keep the last
        name = draw(st.sampled_from(sorted(_usual[fmt]) or ["x"]))
        text = text[:-1] + f', "{name}": ' + json.dumps(draw(_odd_values)) + "}"
    elif roll == 1:
        text = draw(st.sampled_from(["  ", "\n", "x", "{}", "]"])) + text
    elif roll == 2:
        text += draw(st.sampled_from(["  ", "\n", "x", "{}", ","]))
    elif roll == 3:
        text = f"[{text}]"
    elif roll == 4:  # a key by which auto tells the formats apart, where it is not usual
        # Its first letter escaped or not: the same key to a JSON parser, other text.
        foreign = draw(st.sampled_from(["result", "sensor_id", "source", "metric"]))
        if draw(st.booleans()):
            foreign = f"\\u{ord(foreign[0]):04x}{foreign[1:]}"
        text = f'{{"{foreign}": {json.dumps(draw(_odd_values))}, {text[1:]}'

    return text


def _checked(fmt: str, text: str) -> object:
    try:
        body = orjson.loads(text)
    except ValueError:
        return "invalid_json"
    try:
        return PARSERS[fmt](body, "message")  # type: ignore[index]
    except Reject as reject:
        return reject.reason


def _as_read(fmt: str, text: str) -> object:
    """What the jobs make of it (``parse_item``: the fast decoder first)."""
    out = parse_item(("s", SSEEvent(data=text)), PARSERS[fmt])  # type: ignore[index]
    if len(out) == 1 and isinstance(out[0], DeadLetter):
        return out[0].reason
    # With each value's type: 3 == 3.0, and a value must be a float whichever path read it.
    return [(r.sensor_id, r.metric, r.ts, r.value, type(r.value)) for r in out]  # type: ignore[union-attr]


def _readings_of(checked: object) -> object:
    from dataflows.times import from_micros

    if isinstance(checked, list):
        return [(s, m, from_micros(ts), v, type(v)) for s, m, ts, v in checked]
    return checked


@settings(max_examples=1200, deadline=None)
@given(data=st.data(), fmt=st.sampled_from(VENDOR_FORMATS), auto=st.booleans())
def test_the_fast_decoders_read_what_the_checked_parsers_read(
    data: st.DataObject, fmt: str, auto: bool
) -> None:
    """Each format's events read as that format, and as ``auto`` reads them."""
    text = data.draw(_events(fmt), label="event")
    reader = "auto" if auto else fmt
    assert _as_read(reader, text) == _readings_of(_checked(reader, text))


@given(
    fmt=st.sampled_from(VENDOR_FORMATS),
    n=st.integers(0, 10**6),
    samples=st.sampled_from([0, 3]),
)
def test_the_usual_events_are_read_by_the_fast_decoders_themselves(
    fmt: str, n: int, samples: int
) -> None:
    spec = SequenceSpec(format=fmt, samples=samples)  # type: ignore[arg-type]
    text = payload(spec, n)
    for reader in (fmt, "auto"):
        # What the jobs call: the format's decoder by its number.
        kind = fast_kind_for(PARSERS[reader])  # type: ignore[index]
        quick = fast_decode(kind, text, "message")
        assert quick is not None
        checked = _checked(reader, text)
        assert quick == checked
        assert [list(map(type, r)) for r in quick] == [list(map(type, r)) for r in checked]
    assert fast_decode(NO_FAST, text, "message") is None
    assert fast_kind_for(lambda body, event_type: []) == NO_FAST


@pytest.mark.parametrize("fmt", VENDOR_FORMATS)
@pytest.mark.parametrize("foreign", ["result", "sensor_id", "source", "metric"])
@pytest.mark.parametrize("escaped", [False, True])
@pytest.mark.parametrize("value", ["x", {"event": {}}, None])
def test_auto_reads_a_usual_event_with_another_formats_key_as_the_checked_parser(
    fmt: str, foreign: str, escaped: bool, value: object
) -> None:
    """``auto`` decides by which keys are there: a decoder must refuse a body that has a
    key making it another format, however the key is written."""
    key = f"\\u{ord(foreign[0]):04x}{foreign[1:]}" if escaped else foreign
    text = f'{{"{key}": {json.dumps(value)}, {json.dumps(_usual[fmt])[1:]}'
    assert _as_read("auto", text) == _readings_of(_checked("auto", text))
