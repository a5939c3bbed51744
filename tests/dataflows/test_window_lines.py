"""The job's aggregate lines: the very text of the record each window stands for, written
with orjson as the baselines write it, for any key and any numbers."""

from __future__ import annotations

import json
from datetime import timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.aggregates import exact_parts
from dataflows.key_groups import Emitted, Window
from dataflows.readings import key_of
from dataflows.sensor_stats import WindowLines, WindowRecords

LENGTH = timedelta(seconds=10)

# Ids as vendors send them, and any text besides (quotes, backslashes, control
# characters, astral code points); a sensor id never holds the key separator, and no id
# holds a lone surrogate (orjson reads none from an event).
ids = st.one_of(
    st.sampled_from(["sensor-001", "bf3nm7rj8g0g00cqvbdg", 'a"b', "\\", "température"]),
    st.text(
        st.characters(blacklist_characters="\x1f", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=12,
    ),
)
numbers = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e-7, 123456789.125, -2.5e-300, 1.7976931348623157e308]),
    st.floats(allow_nan=False, allow_infinity=False),
)


def window_of(window_id: int, values: list[float]) -> Window:
    parts = tuple(exact_parts(values))
    return (window_id, len(values), min(values), max(values), parts)


@settings(max_examples=400)
@given(
    sensor=ids,
    metric=ids,
    window_id=st.integers(0, 400_000_000),
    values=st.lists(numbers.filter(lambda v: abs(v) < 1e300), min_size=1, max_size=5),
)
def test_a_line_is_the_text_of_its_record(
    sensor: str, metric: str, window_id: int, values: list[float]
) -> None:
    key, window = key_of(sensor, metric), window_of(window_id, values)
    record = WindowRecords(LENGTH).record(key, window)
    lines = WindowLines(LENGTH)
    # Twice: the second time from the texts kept for the key and the window.
    for _ in range(2):
        line = lines.line(key, window)
        assert line == orjson.dumps(record).decode()
        assert json.loads(line) == record


def test_one_reading_of_minus_zero_has_a_mean_of_zero() -> None:
    # Its exact parts are none, so the mean is 0.0 while the minimum and maximum are -0.0.
    window = window_of(5, [-0.0])
    line = WindowLines(LENGTH).line(key_of("s", "m"), window)
    assert line.endswith('"count":1,"mean":0.0,"min":-0.0,"max":-0.0}')


def test_a_batch_is_one_line_per_closed_window_in_order_by_the_hour_it_starts_in() -> None:
    # 10 s windows: ids 359 and 360 start at 00:59:50 and 01:00:00 of the epoch.
    closed = [
        (key_of("s1", "t"), window_of(359, [1.5])),
        (key_of("s2", "t"), window_of(359, [2.0, 3.0])),
        (key_of("s3", "t"), window_of(360, [4.0])),
        (key_of("s4", "t"), window_of(1, [5.0])),
    ]
    by_hour = WindowLines(LENGTH)(("0", Emitted(closed, [])))
    assert sorted(by_hour) == [0, 1]
    assert [json.loads(x)["sensor_id"] for x in by_hour[0]] == ["s1", "s2", "s4"]
    assert [json.loads(x)["sensor_id"] for x in by_hour[1]] == ["s3"]
    assert json.loads(by_hour[0][1])["mean"] == 2.5
    for hour, lines in by_hour.items():
        starts = {json.loads(line)["window_start"][:13] for line in lines}
        assert starts == {f"1970-01-01T{hour:02d}"}
