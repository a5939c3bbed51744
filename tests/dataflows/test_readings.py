"""Vendor formats to readings and dead letters."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulator import SequenceSpec, expected_readings, payload
from connectors.simulator.dt_events import DT_EVERY
from connectors.simulator.sequence import is_backfilled
from connectors.source import StreamItem
from connectors.sse import DecodedEvent, OversizedEvent, SSEEvent
from connectors.vendors import DT_EVENT_TYPES
from dataflows.formats import PARSERS, VENDOR_FORMATS, Reject, _dt_checked, _dt_usual
from dataflows.readings import (
    DeadLetter,
    Reading,
    decoded_columns,
    parse_by_key,
    parse_in_order,
    parse_item,
)
from tests.helpers.stream_times import T0, flat_items, stream_events, times_at


def parse(data: object, fmt: str = "auto", event: str = "message") -> list[Reading | DeadLetter]:
    text = data if isinstance(data, str) else json.dumps(data)
    return parse_item(("s1", SSEEvent(event, text, "7")), PARSERS[fmt])


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(VENDOR_FORMATS),
    n=st.integers(0, 10**6),
    seed=st.integers(0, 99),
    sensors=st.integers(1, 40),
    dt_events=st.sampled_from(["readings", "every"]),
    samples=st.sampled_from([0, 1, 2, 15, 30]),
    backfill_every=st.sampled_from([0, 1, 3]),
)
def test_every_simulated_event_reads_back_as_its_readings(
    fmt: str, n: int, seed: int, sensors: int, dt_events: str, samples: int, backfill_every: int
) -> None:
    spec = SequenceSpec(
        sensors=sensors,
        format=fmt,  # type: ignore[arg-type]
        seed=seed,
        dt_events=dt_events,  # type: ignore[arg-type]
        samples=samples,
        backfill_every=backfill_every,
    )
    for parser in (fmt, "auto"):
        got = parse(payload(spec, n), parser)
        assert [
            (r.sensor_id, r.metric, int(r.ts.timestamp() * 1000), r.value)
            for r in got
            if isinstance(r, Reading)
        ] == [tuple(r) for r in expected_readings(spec, n)]
        if is_backfilled(spec, n):
            assert [(type(r), r.reason) for r in got] == [(DeadLetter, "backfilled")]
        else:
            assert all(isinstance(r, Reading) for r in got)


def test_the_simulators_every_mix_is_every_dt_event_type() -> None:
    assert sorted(DT_EVERY) == sorted(DT_EVENT_TYPES)


# DT's own events: the SDK's test fixtures (disruptive-technologies/python-client,
# tests/api_responses.py: event_history_each_type and the stream events) and, for the
# types they lack, the shapes of DT's event documentation; each with what it reads as.
_DT_FIXTURES: list[tuple[str, dict[str, object], list[tuple[str, float]]]] = [
    ("touch", {"touch": {"updateTime": "2019-05-16T08:13:15.361624Z"}}, []),
    (
        "temperature",
        {"temperature": {"value": 24.9, "updateTime": "2019-05-16T08:15:18.318751Z"}},
        [("temperature", 24.9)],
    ),
    (
        "objectPresent",
        {"objectPresent": {"state": "NOT_PRESENT", "updateTime": "2019-05-16T08:37:10.711412Z"}},
        [("objectPresent", 0.0)],
    ),
    (
        "humidity",
        {
            "humidity": {
                "temperature": 22.45,
                "relativeHumidity": 17,
                "updateTime": "2019-05-16T06:13:46.369000Z",
            }
        },
        [("humidity.temperature", 22.45), ("humidity.relativeHumidity", 17.0)],
    ),
    (
        "objectPresentCount",
        {"objectPresentCount": {"total": 4176, "updateTime": "2019-05-16T08:23:43.209000Z"}},
        [("objectPresentCount", 4176.0)],
    ),
    (
        "touchCount",
        {"touchCount": {"total": 469, "updateTime": "2019-05-16T08:25:21.604000Z"}},
        [("touchCount", 469.0)],
    ),
    (
        "waterPresent",
        {"waterPresent": {"state": "PRESENT", "updateTime": "2019-05-16T08:43:16.266000Z"}},
        [("waterPresent", 1.0)],
    ),
    (
        "networkStatus",
        {
            "networkStatus": {
                "signalStrength": 45,
                "rssi": -83,
                "updateTime": "2019-05-16T08:21:21.076013Z",
                "cloudConnectors": [
                    {"id": "bdkjbo2v0000uk377c4g", "signalStrength": 45, "rssi": -83}
                ],
                "transmissionMode": "LOW_POWER_STANDARD_MODE",
            }
        },
        [("networkStatus.signalStrength", 45.0), ("networkStatus.rssi", -83.0)],
    ),
    (
        "batteryStatus",
        {"batteryStatus": {"percentage": 100, "updateTime": "2019-05-16T08:21:21.076013Z"}},
        [("batteryStatus", 100.0)],
    ),
    (
        "labelsChanged",
        {
            "added": {"label-key": "label-value"},
            "modified": {"label-key": "new-label-value"},
            "removed": ["remove-key1", "remove-key2"],
        },
        [],
    ),
    (
        "connectionStatus",
        {
            "connectionStatus": {
                "connection": "ETHERNET",
                "available": ["CELLULAR", "ETHERNET"],
                "updateTime": "2019-05-16T08:21:21.076013Z",
            }
        },
        [],
    ),
    (
        "ethernetStatus",
        {
            "ethernetStatus": {
                "macAddress": "f0:b5:b7:00:0a:08",
                "ipAddress": "10.0.0.1",
                "errors": [],
                "updateTime": "2019-05-16T08:21:21.076013Z",
            }
        },
        [],
    ),
    (
        "cellularStatus",
        {
            "cellularStatus": {
                "signalStrength": 80,
                "errors": [],
                "updateTime": "2019-05-16T08:21:21.076013Z",
            }
        },
        [("cellularStatus", 80.0)],
    ),
    ("ping", None, []),  # the SDK's stream_ping: "data": null
    ("co2", {"co2": {"ppm": 456, "updateTime": "2019-05-16T08:21:21Z"}}, [("co2", 456.0)]),
    (
        "pressure",
        {"pressure": {"pascal": 101325, "updateTime": "2019-05-16T08:21:21Z"}},
        [("pressure", 101325.0)],
    ),
    (
        "motion",
        {"motion": {"state": "MOTION_DETECTED", "updateTime": "2019-05-16T08:21:21Z"}},
        [("motion", 1.0)],
    ),
    (
        "deskOccupancy",
        {
            "deskOccupancy": {
                "state": "NOT_OCCUPIED",
                "remarks": [],
                "updateTime": "2019-05-16T08:21:21Z",
            }
        },
        [("deskOccupancy", 0.0)],
    ),
    (
        "contact",
        {"contact": {"state": "CLOSED", "updateTime": "2019-05-16T08:21:21Z"}},
        [("contact", 0.0)],
    ),
    (
        "probeWireStatus",
        {"probeWireStatus": {"state": "THREE_WIRE", "updateTime": "2019-05-16T08:21:21Z"}},
        [],
    ),
]


def test_the_fixtures_cover_every_dt_event_type() -> None:
    assert sorted(kind for kind, _, _ in _DT_FIXTURES) == sorted([*DT_EVENT_TYPES, "ping"])


@pytest.mark.parametrize(("kind", "data", "readings"), _DT_FIXTURES, ids=lambda v: str(v)[:20])
def test_each_dt_event_type_reads_as_its_readings(
    kind: str, data: dict[str, object], readings: list[tuple[str, float]]
) -> None:
    event = {
        "eventId": "01",
        "targetName": "projects/project_id/devices/device_id",
        "eventType": kind,
        "data": data,
        "timestamp": "2019-05-16T08:30:00Z",
    }
    for fmt in ("dt", "auto"):
        got = parse({"result": {"event": event}}, fmt)
        assert all(isinstance(r, Reading) for r in got), got
        assert [(r.metric, r.value) for r in got if isinstance(r, Reading)] == readings
        assert {r.sensor_id for r in got if isinstance(r, Reading)} <= {"device_id"}


def test_dt_samples_are_readings_at_their_own_times_and_value_is_not_read_twice() -> None:
    # DT: the first sample is the event's value and time; newest first.
    samples = [
        {"value": 21.5, "sampleTime": "2026-01-01T00:15:00Z"},
        {"value": 21.25, "sampleTime": "2026-01-01T00:10:00Z"},
        {"value": 21.0, "sampleTime": "2026-01-01T00:05:00Z"},
    ]
    block = {"value": 21.5, "updateTime": "2026-01-01T00:15:00Z", "samples": samples}
    body = {
        "result": {
            "event": {
                "eventId": "e",
                "targetName": "projects/p/devices/d",
                "eventType": "temperature",
                "data": {"temperature": block},
                "timestamp": "2026-01-01T00:15:01Z",
            }
        }
    }
    got = parse(body, "dt")
    assert [(r.ts.minute, r.value) for r in got if isinstance(r, Reading)] == [
        (5, 21.0),
        (10, 21.25),
        (15, 21.5),
    ]
    block["isBackfilled"] = True
    (letter,) = parse(body, "dt")
    assert isinstance(letter, DeadLetter) and letter.reason == "backfilled"
    block["isBackfilled"] = False
    assert len(parse(body, "dt")) == 3


def test_an_unknown_dt_state_is_a_dead_letter_naming_it() -> None:
    event = {
        "eventId": "e",
        "targetName": "projects/p/devices/d",
        "eventType": "contact",
        "data": {"contact": {"state": "AJAR", "updateTime": "2026-01-01T00:00:00Z"}},
    }
    (letter,) = parse({"result": {"event": event}}, "dt")
    assert isinstance(letter, DeadLetter) and letter.reason == "invalid_value"
    assert "AJAR" in letter.detail and "OPEN or CLOSED" in letter.detail


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-01-01T00:00:00Z", T0),
        ("2026-01-01T01:00:00+01:00", T0),
        ("2026-01-01T00:00:00", T0),  # no offset: read as UTC
        (1767225600, T0),
        (1767225600.0, T0),
        (1767225600000, T0),
    ],
)
def test_flat_timestamps_in_every_accepted_form(ts: object, expected: datetime) -> None:
    (reading,) = parse({"sensor_id": "a", "metric": "t", "ts": ts, "value": 1})
    assert isinstance(reading, Reading)
    assert reading.ts == expected
    assert reading.ts.tzinfo is not None


def test_flat_metric_defaults_to_the_event_type() -> None:
    (reading,) = parse({"sensor_id": "a", "ts": 0, "value": 2.5}, "flat", event="humidity")
    assert isinstance(reading, Reading)
    assert (reading.metric, reading.value, reading.event_id, reading.stream) == (
        "humidity",
        2.5,
        "7",
        "s1",
    )


@pytest.mark.parametrize(
    ("data", "fmt", "reason"),
    [
        ('{"sensor_id": "a", "ts"', "auto", "invalid_json"),
        ([1, 2], "auto", "unknown_format"),
        ({"hello": 1}, "auto", "unknown_format"),
        ({"sensor_id": "a", "ts": 0, "value": 1}, "flat", "missing_field"),
        ({"sensor_id": "a", "metric": "t", "value": 1}, "flat", "missing_field"),
        ({"sensor_id": "a", "metric": "t", "ts": 0}, "flat", "missing_field"),
        ({"sensor_id": "a", "metric": "t", "ts": 0, "value": "12"}, "flat", "invalid_value"),
        ({"sensor_id": "a", "metric": "t", "ts": 0, "value": True}, "flat", "invalid_value"),
        ({"sensor_id": "", "metric": "t", "ts": 0, "value": 1}, "flat", "invalid_value"),
        (
            {"sensor_id": "a", "metric": "t", "ts": "yesterday", "value": 1},
            "flat",
            "invalid_timestamp",
        ),
        ({"sensor_id": "a", "metric": "t", "ts": 1e300, "value": 1}, "flat", "invalid_timestamp"),
        ({"result": {}}, "dt", "unknown_format"),
        ({"source": "a", "metric": "t::number", "value": 1}, "obelisk", "missing_field"),
    ],
)
def test_what_cannot_be_read_becomes_a_dead_letter(data: object, fmt: str, reason: str) -> None:
    (letter,) = parse(data, fmt)
    assert isinstance(letter, DeadLetter)
    assert letter.reason == reason
    assert (letter.event_id, letter.stream) == ("7", "s1")
    assert letter.data == (data if isinstance(data, str) else json.dumps(data))


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e400", "-1e400"])
def test_non_finite_values_are_dead_letters(value: str) -> None:
    # Not JSON (RFC 8259 has no NaN or Infinity, and 1e400 is no double): invalid_json,
    # with the raw data kept.
    data = f'{{"sensor_id": "a", "metric": "t", "ts": 0, "value": {value}}}'
    (letter,) = parse(data, "flat")
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.data) == ("invalid_json", data)


def test_huge_integers_are_read_as_floats() -> None:
    (reading,) = parse(
        '{"sensor_id": "a", "metric": "t", "ts": 0, "value": 123456789012345678901234567890}'
    )
    assert isinstance(reading, Reading) and reading.value == 1.2345678901234568e29


def test_dt_pings_and_non_numeric_events_give_nothing() -> None:
    ping = {
        "result": {"event": {"eventType": "ping", "data": {}, "timestamp": "2026-01-01T00:00:00Z"}}
    }
    touch = {
        "result": {
            "event": {
                "eventType": "touch",
                "targetName": "projects/p/devices/d1",
                "data": {"touch": {"updateTime": "2026-01-01T00:00:00Z"}},
                "timestamp": "2026-01-01T00:00:00Z",
            }
        }
    }
    assert parse(ping, "dt") == []
    assert parse(touch, "dt") == []


def test_obelisk_non_numeric_metrics_give_nothing_and_arrays_give_each() -> None:
    assert (
        parse({"source": "a", "metric": "note::string", "value": "hi", "timestamp": 0}, "obelisk")
        == []
    )
    batch = [
        {"source": "a", "metric": "t::number", "value": 1, "timestamp": 1767225600000},
        {"source": "b", "metric": "t::number", "value": 2, "timestamp": 1767225600000},
    ]
    got = parse(batch, "obelisk")
    assert [(r.sensor_id, r.value, r.ts) for r in got if isinstance(r, Reading)] == [
        ("a", 1.0, T0),
        ("b", 2.0, T0),
    ]


@settings(max_examples=100, deadline=None)
@given(
    fmt=st.sampled_from(VENDOR_FORMATS),
    parser=st.sampled_from(["own", "auto"]),
    start=st.integers(0, 10**6),
    odd=st.lists(st.sampled_from(["ok", "cut", "oversized", "not an object"]), max_size=30),
)
def test_a_reader_processs_decoded_events_read_as_the_events_do(
    fmt: str, parser: str, start: int, odd: list[str]
) -> None:
    spec = SequenceSpec(sensors=7, format=fmt, dt_events="every", samples=2, backfill_every=3)  # type: ignore[arg-type]
    events: list[SSEEvent | OversizedEvent] = []
    for k, kind in enumerate(odd or ["ok"]):
        n, data = start + k, payload(spec, start + k)
        if kind == "oversized":
            events.append(OversizedEvent(str(n), 1024))
        else:
            body = {"cut": data[: len(data) // 2], "not an object": "[1, 2]"}.get(kind, data)
            events.append(SSEEvent("message", body, str(n)))
    name = fmt if parser == "own" else "auto"
    # As the pipe carries them, and the job's end of it makes them events again.
    ids, values = pickle.loads(pickle.dumps(decoded_columns(name, "s1", events)))  # type: ignore[arg-type]
    decoded = [DecodedEvent(i, v) for i, v in zip(ids, values, strict=True)]
    assert ids == [e.id for e in events]
    raw: list[StreamItem] = [("s1", e) for e in events]
    read: list[StreamItem] = [("s1", d) for d in decoded]
    for parse_batch in (parse_by_key, parse_in_order):
        assert parse_batch(read, PARSERS[name], lambda _: None) == parse_batch(  # type: ignore[operator]
            raw, PARSERS[name], lambda _: None
        )
    assert [parse_item(item, PARSERS[name]) for item in read] == [
        parse_item(item, PARSERS[name]) for item in raw
    ]


def test_an_oversized_event_is_a_dead_letter() -> None:
    (letter,) = parse_item(("s1", OversizedEvent("42", 1024)), PARSERS["auto"])
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.event_id) == ("oversized", "42")
    assert json.loads(letter.to_json())["reason"] == "oversized"


@settings(max_examples=200, deadline=None)
@given(stream_events, st.lists(st.integers(1, 8), max_size=20))
def test_each_reading_carries_its_streams_event_time_whatever_the_batching(
    sent: list[tuple[str, int | None]], cuts: list[int]
) -> None:
    items = flat_items(sent)
    # The rule: a stream's event time is its newest reading so far; a dead letter gets the
    # one before it.
    expected = times_at(sent)

    for parse_batch in ("by_key", "in_order"):
        times: dict[str, int] = {}
        got: dict[str, int | None] = {}
        at = 0
        for size in [*cuts, len(items)]:
            batch, at = items[at : at + size], at + size
            if parse_batch == "by_key":
                keyed, dead, after = parse_by_key(batch, PARSERS["flat"], times.get)
                got.update((row[2], row[4]) for rows in keyed.values() for row in rows)
            else:
                out, dead, after = parse_in_order(batch, PARSERS["flat"], times.get)
                got.update((r.event_id, r.stream_time) for r in out if isinstance(r, Reading))
            got.update((letter.event_id, letter.stream_time) for letter in dead)
            times.update(after)
        assert got == expected


def test_a_stream_time_never_runs_ahead_of_the_wall_clock() -> None:
    ahead = datetime.now(UTC).timestamp() + 86_400
    event = SSEEvent("reading", json.dumps({"sensor_id": "x", "ts": ahead, "value": 1.0}), "1")
    keyed, _, after = parse_by_key([("s1", event)], PARSERS["flat"], lambda _: None)
    ((row,),) = keyed.values()
    assert row[4] <= int(datetime.now(UTC).timestamp() * 1e6) < row[0]
    assert after == {"s1": row[4]}


# DT events as servers send them, each with a few odd things done to it: containers of
# the wrong type, pings, fields missing, null or of another type, numbers as text or
# flags, bookkeeping fields, a "value" beside other numbers.
_dt_odd_values = st.sampled_from([None, "", "21.5", True, False, [1.0], {}, 0, -0.0, 2**63 - 1])
_dt_stamps = st.sampled_from(
    ["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:01Z", "yesterday", 1767225600, None, [], ""]
)
_dt_samples = [
    {"value": 22.87, "sampleTime": "2026-01-01T00:00:00.001Z"},
    {"value": 22.5, "sampleTime": "2025-12-31T23:59:00Z"},
]
_dt_blocks = {
    "temperature": {"value": 22.87, "samples": _dt_samples},
    "humidity": {"temperature": 23.63, "relativeHumidity": 51.4},
    "co2": {"ppm": 456},
    "networkStatus": {"signalStrength": 45, "rssi": -83, "cloudConnectors": []},
    "objectPresent": {"state": "PRESENT"},
}


@st.composite
def _dt_bodies(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(sorted(_dt_blocks)))
    block: dict[str, object] = {**_dt_blocks[kind], "updateTime": "2026-01-01T00:00:00.001Z"}
    event: dict[str, object] = {
        "eventId": "ev1",
        "targetName": "projects/p/devices/d1",
        "eventType": kind,
        "data": {kind: block},
        "timestamp": "2026-01-01T00:00:00.002Z",
    }
    odd = st.integers(0, 9).map(lambda k: k == 5)  # each odd thing about one time in ten
    for name in list(block):
        if draw(odd):
            block[name] = draw(st.one_of(_dt_odd_values, _dt_stamps))
        if draw(odd):
            del block[name]
    for name in ("value", "samples", "isBackfilled", "sampleTime", "state"):
        if draw(odd):
            block[name] = draw(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), _dt_odd_values))
    samples = block.get("samples")
    if isinstance(samples, list) and draw(odd):  # one sample made odd
        odd_sample = draw(
            st.sampled_from(
                [None, 3, {}, {"value": "1"}, {"sampleTime": 0}, {"value": 1, "sampleTime": ""}]
            )
        )
        block["samples"] = [odd_sample, *samples[1:]]
    if draw(odd):
        block["isBackfilled"] = True
    for name, values in (
        ("eventType", st.sampled_from(["ping", "", "touch", 5, None, ["temperature"]])),
        ("targetName", st.sampled_from(["d2", "projects/p/devices/", "", 3, None, ["d"]])),
        ("timestamp", _dt_stamps),
        ("data", st.sampled_from([None, [], "x", {}, {"ping": {}}])),
    ):
        if draw(odd):
            event[name] = draw(values)
        if draw(odd):
            del event[name]
    shape = draw(st.integers(0, 19))
    inner: object = event if shape else draw(st.sampled_from([None, [], "event"]))
    result: object = {"event": inner} if shape != 1 else [inner]
    return {"result": result} if shape != 2 else result


def _dt_outcome(read: Callable[[object], object], body: object) -> object:
    try:
        return read(body)
    except Reject as reject:
        return ("Reject", reject.reason)


@settings(max_examples=600, deadline=None)
@given(body=_dt_bodies())
def test_the_dt_fast_path_reads_what_the_checked_path_reads(body: object) -> None:
    # Through orjson, as events are: the fast path relies on the types it gives.
    body = orjson.loads(orjson.dumps(body))
    quick = _dt_outcome(_dt_usual, body)
    if quick is not None:  # None hands the event to the checked path
        assert quick == _dt_outcome(_dt_checked, body)
    assert _dt_outcome(lambda b: PARSERS["dt"](b, "message"), body) == _dt_outcome(
        _dt_checked, body
    )
