"""Vendor formats to readings and dead letters."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulator import SequenceSpec, expected_readings, payload
from connectors.sse import OversizedEvent, SSEEvent
from dataflows.formats import PARSERS, VENDOR_FORMATS, Reject, _dt_checked, _dt_usual
from dataflows.readings import DeadLetter, Reading, parse_by_key, parse_in_order, parse_item


def parse(data: object, fmt: str = "auto", event: str = "message") -> list[Reading | DeadLetter]:
    text = data if isinstance(data, str) else json.dumps(data)
    return parse_item(("s1", SSEEvent(event, text, "7")), PARSERS[fmt])


T0 = datetime(2026, 1, 1, tzinfo=UTC)


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(VENDOR_FORMATS), n=st.integers(0, 10**6), seed=st.integers(0, 99))
def test_every_simulated_event_reads_back_as_its_readings(fmt: str, n: int, seed: int) -> None:
    spec = SequenceSpec(sensors=7, format=fmt, seed=seed)  # type: ignore[arg-type]
    for parser in (fmt, "auto"):
        got = parse(payload(spec, n), parser)
        assert [
            (r.sensor_id, r.metric, int(r.ts.timestamp() * 1000), r.value)
            for r in got
            if isinstance(r, Reading)
        ] == [tuple(r) for r in expected_readings(spec, n)]
        assert all(isinstance(r, Reading) for r in got)


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


def test_an_oversized_event_is_a_dead_letter() -> None:
    (letter,) = parse_item(("s1", OversizedEvent("42", 1024)), PARSERS["auto"])
    assert isinstance(letter, DeadLetter)
    assert (letter.reason, letter.event_id) == ("oversized", "42")
    assert json.loads(letter.to_json())["reason"] == "oversized"


# (stream, timestamp in ms, or None for an event that is not JSON)
stream_events = st.lists(
    st.tuples(st.sampled_from(["s1", "s2"]), st.one_of(st.none(), st.integers(0, 60_000))),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(stream_events, st.lists(st.integers(1, 8), max_size=20))
def test_each_reading_carries_its_streams_event_time_whatever_the_batching(
    sent: list[tuple[str, int | None]], cuts: list[int]
) -> None:
    base = int(T0.timestamp() * 1000)
    items = [
        (
            stream,
            SSEEvent(
                "reading",
                "{not json"
                if ms is None
                else json.dumps({"sensor_id": f"x{n % 3}", "ts": base + ms, "value": 1.0}),
                str(n),
            ),
        )
        for n, (stream, ms) in enumerate(sent)
    ]
    # The rule: a stream's event time is its newest reading so far; a dead letter gets the
    # one before it.
    expected: dict[str, int | None] = {}
    newest: dict[str, int] = {}
    for n, (stream, ms) in enumerate(sent):
        if ms is not None:
            newest[stream] = max(newest.get(stream, 0), (base + ms) * 1000)
        expected[str(n)] = newest.get(stream)

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
_dt_blocks = {
    "temperature": {"value": 22.87},
    "humidity": {"temperature": 23.63, "relativeHumidity": 51.4},
    "co2": {"ppm": 456},
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
    for name in ("value", "samples", "isBackfilled", "sampleTime"):
        if draw(odd):
            block[name] = draw(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), _dt_odd_values))
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
