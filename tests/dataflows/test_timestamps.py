"""The usual timestamp text read without datetime (``plain_utc_micros``) gives exactly
what ``datetime.fromisoformat`` gives, and leaves to it every text it does not read: texts
of the usual shape with each part made odd (digits of other scripts, a seventh fraction
digit, a leap second, an impossible date, other offsets and separators). Epoch numbers
are read as ``datetime`` reads them, each kind on its own path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.sse import SSEEvent
from dataflows import native
from dataflows.formats import PARSERS, PLAIN_FIRST, Reject, plain_utc_micros, timestamp_micros
from dataflows.readings import DeadLetter, parse_item
from dataflows.times import EPOCH, MICROSECOND


def example_each(texts: list[str]) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    def add(test: Callable[[str], None]) -> Callable[[str], None]:
        for text in texts:
            test = example(text)(test)
        return test

    return add


def _reference(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND


_ZONES = ["Z", "+00:00", "", "z", "-00:00", "+01:00", "+0000", "+00:00:00", " Z", "ZZ"]
# What a character is changed to: digits (an impossible date, a leap second), other
# scripts' digits, separators and signs.
_ODD = "0123456789\u0661\u00b2\u0663 _+-.,:/TtZz"


@st.composite
def _near_usual(draw: st.DrawFn) -> str:
    """A time in the usual shape with none, one or two characters changed, inserted or
    removed, and any of a few zones."""
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1)))
    places = draw(st.integers(0, 9))
    fraction = f"{moment.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:places]
    zone = draw(st.sampled_from(["Z", "Z", "+00:00", *_ZONES]))
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
        f"{moment.minute:02d}:{moment.second:02d}{'.' if places else ''}{fraction}{zone}"
    )
    for _ in range(draw(st.integers(0, 2))):
        # The separators and the seconds' digits, often: where the shape is decided.
        at = draw(st.one_of(st.integers(0, len(text) - 1), st.sampled_from([4, 10, 16, 17, 19])))
        change = draw(st.sampled_from(["replace", "insert", "remove"]))
        char = draw(st.sampled_from(_ODD))
        if change == "replace":
            text = text[:at] + char + text[at + 1 :]
        elif change == "insert":
            text = text[:at] + char + text[at:]
        else:
            text = text[:at] + text[at + 1 :]
    return text


_EDGES = [
    "2026-12-07T17:02:60Z",
    "2026-12-07T17:02:0:Z",
    "2026-12-07T17:02:/0Z",
    "2026-12-07T24:00:00Z",
    "2026-02-29T00:00:00Z",
    "2024-02-29T23:59:59.999999Z",
    "2026-12-07T17:02:07.1234567Z",
    "2026-12-07T17:02:07.Z",
    "2026-12-07T17:02:07,5Z",
    "2026-12-07T17:02:07z",
    "2026-12-07T17:02:07-00:00",
    "2026-12-07T17:02:07+0000",
    "2026-12-07t17:02:07Z",
    "2026-12-07 17:02:07Z",
    "2026-1\u0662-07T17:02:07Z",
    "2026-12-07T17:02:0\u0667Z",
    "2026-12-07T17:02:07.1\u0662Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999+00:00",
]


@settings(max_examples=3000, deadline=None)
@given(_near_usual())
@example_each(_EDGES)
def test_the_plain_path_reads_what_fromisoformat_reads_or_leaves_it(text: str) -> None:
    plain = plain_utc_micros(text)
    if plain is not None:
        assert plain == _reference(text)


@settings(max_examples=500, deadline=None)
@given(_near_usual())
@example_each(_EDGES)
def test_timestamp_micros_is_fromisoformat_or_an_invalid_timestamp(text: str) -> None:
    expected = _reference(text)
    try:
        assert timestamp_micros(text) == expected
    except Reject as rejected:
        assert expected is None
        assert rejected.reason == "invalid_timestamp"


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    st.sampled_from(["Z", "+00:00"]),
)
def test_every_time_in_the_usual_shape_is_read_by_the_plain_path(
    moment: datetime, timespec: str, zone: str
) -> None:
    text = moment.isoformat(timespec=timespec) + zone
    # The text's own precision: isoformat cuts the digits timespec leaves out.
    shown = datetime.fromisoformat(text[: -len(zone)]).replace(tzinfo=UTC)
    assert plain_utc_micros(text) == (shown - EPOCH) // MICROSECOND == _reference(text)


def test_more_minutes_than_are_remembered_still_read_right() -> None:
    # 6,000 distinct minutes, twice: more than the minutes kept, so they are forgotten.
    minutes = [datetime(2026, 1, 1, tzinfo=UTC).timestamp() + 60 * n for n in range(6000)]
    for _ in range(2):
        for start in minutes:
            moment = datetime.fromtimestamp(start + 7.25, UTC)
            text = moment.isoformat().replace("+00:00", "Z")
            assert plain_utc_micros(text) == int(start + 7.25) * 1_000_000 + 250_000


def test_the_compiled_form_reads_the_usual_shape_first_and_the_pure_form_does_not() -> None:
    assert native.chosen().compiled == PLAIN_FIRST


def _epoch_reference(value: float, unit: str) -> int | None:
    ms = unit == "ms" or (unit == "auto" and abs(value) >= 100_000_000_000)
    try:
        if type(value) is int:
            moment = EPOCH + (timedelta(milliseconds=value) if ms else timedelta(seconds=value))
        else:
            moment = datetime.fromtimestamp(value / 1000 if ms else value, UTC)
    except (OverflowError, ValueError, OSError):
        return None
    return (moment - EPOCH) // MICROSECOND


@settings(max_examples=1000, deadline=None)
@given(
    st.one_of(
        st.integers(-(2**63), 2**63),
        st.integers(-(10**13), 10**13),
        st.floats(-1e13, 1e13, allow_nan=False),
        st.sampled_from([0, -1, 99_999_999_999, 100_000_000_000, 253402300799, -62135596800]),
    ),
    st.sampled_from(["auto", "ms"]),
)
def test_epoch_numbers_are_read_as_datetime_reads_them(value: float, unit: str) -> None:
    expected = _epoch_reference(value, unit)
    try:
        assert timestamp_micros(value, unit=unit) == expected
    except Reject as rejected:
        assert expected is None
        assert rejected.reason == "invalid_timestamp"


def test_an_integer_too_big_for_a_float_is_a_time_out_of_range() -> None:
    # It once raised OverflowError (math.isfinite of the int), which stopped the job.
    data = '{"sensor_id": "a", "metric": "t", "ts": 1' + "0" * 400 + ', "value": 1}'
    (letter,) = parse_item(("s", SSEEvent(data=data, id="1")), PARSERS["flat"])
    assert isinstance(letter, DeadLetter)
    assert letter.reason == "invalid_timestamp"
    assert "out of range" in letter.detail
