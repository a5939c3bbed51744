"""The window fold: exact mean whatever the order or merging; pre-aggregation equal to
windowing reading by reading."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from dataflows.aggregates import (
    Partial,
    PreAggregate,
    add_reading,
    exact_parts,
    late_reading,
    merge_stats,
    new_stats,
    stats_of,
)
from dataflows.readings import Reading, key_of
from dataflows.times import from_micros, micros
from dataflows.windows import StreamTimes

values = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60)


def _reading(v: float) -> Reading:
    return Reading("s", "m", datetime(2026, 1, 1, tzinfo=UTC), v, "1", "x")


@given(values, st.randoms(use_true_random=False), st.integers(0, 60))
def test_mean_is_correctly_rounded_in_any_order_and_split(
    vs: list[float], rnd: object, cut: int
) -> None:
    shuffled = list(vs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    left, right = new_stats(), new_stats()
    for v in shuffled[:cut]:
        add_reading(left, _reading(v))
    for v in shuffled[cut:]:
        add_reading(right, _reading(v))
    merged = (
        merge_stats(left, right) if cut and cut < len(vs) else (left if cut >= len(vs) else right)
    )
    assert merged.count == len(vs)
    assert merged.mean == math.fsum(vs) / len(vs)
    assert (merged.minimum, merged.maximum) == (min(vs), max(vs))
    assert pickle.loads(pickle.dumps(merged)) == merged


# Any float whose sums stay in the float range (past it, see exact_parts).
finite = st.floats(-1e300, 1e300, allow_nan=False)


@given(st.lists(finite, max_size=60))
def test_exact_parts_sum_exactly_to_the_values(vs: list[float]) -> None:
    # Fractions are exact: the parts lose nothing.
    parts = exact_parts(vs)
    assert sum(map(Fraction, parts), Fraction(0)) == sum(map(Fraction, vs), Fraction(0))
    assert len(parts) <= 40


@given(values, values)
def test_batches_at_once_merge_to_the_correctly_rounded_mean(
    a: list[float], b: list[float]
) -> None:
    merged = merge_stats(stats_of(a), stats_of(b))
    one_by_one = new_stats()
    for v in a + b:
        add_reading(one_by_one, _reading(v))
    assert merged.mean == one_by_one.mean == math.fsum(a + b) / len(a + b)
    assert (merged.count, merged.minimum, merged.maximum) == (len(a + b), min(a + b), max(a + b))


# One key's readings: timestamps in microseconds with disorder (on a half-second grid too,
# so some fall exactly on a window edge or the lateness cut-off), any values.
stamps = st.one_of(st.integers(0, 60).map(lambda k: k * 500_000), st.integers(0, 30_000_000))
rows = st.lists(
    st.tuples(stamps, st.floats(-1e6, 1e6, allow_nan=False)),
    min_size=1,
    max_size=80,
)


@given(rows, st.lists(st.integers(1, 10), max_size=20), st.integers(0, 80), st.booleans())
def test_pre_aggregation_gives_what_reading_by_reading_windowing_gives(
    stamped: list[tuple[int, float]], cuts: list[int], resume_at: int, old_snapshot: bool
) -> None:
    length, lateness = timedelta(seconds=5), timedelta(seconds=2)
    all_rows = [(ts, v, str(n), "x") for n, (ts, v) in enumerate(stamped)]
    # Reading by reading: late when more than the lateness older than the newest before.
    expected_windows: dict[int, list[float]] = {}
    expected_late, newest = [], None
    for ts, v, event_id, _ in all_rows:
        if newest is not None and ts < newest - 2_000_000:
            expected_late.append((ts // 5_000_000, event_id))
            continue
        newest = ts if newest is None else max(newest, ts)
        expected_windows.setdefault(ts // 5_000_000, []).append(v)

    # The same rows in batches of lists, the logic rebuilt from its snapshot once on the way.
    batches, i = [], 0
    for size in [*cuts, len(all_rows)]:
        batch = all_rows[i : i + size]
        batches.append([batch[: len(batch) // 2], batch[len(batch) // 2 :]])
        i += size
    logic, got_windows, got_late, seen = PreAggregate(length, lateness, None, None), {}, [], 0
    for batch in batches:
        if seen >= resume_at:
            state = logic.snapshot()
            if old_snapshot and state is not None:
                state = from_micros(state)  # as saved before rows held microseconds
            logic, resume_at = PreAggregate(length, lateness, None, state), len(all_rows) + 1
        out, _ = logic.on_batch(pickle.loads(pickle.dumps(batch)))
        seen += sum(map(len, batch))
        partials = [x for x in out if isinstance(x, Partial)]
        assert [p.newest for p in partials] == sorted(p.newest for p in partials)
        for p in partials:
            merged = got_windows.get(p.window_id)
            got_windows[p.window_id] = p.stats if merged is None else merge_stats(merged, p.stats)
        got_late += [(x[0], x[1][2]) for x in out if not isinstance(x, Partial)]
    assert got_late == expected_late
    assert sorted(got_windows) == sorted(expected_windows)
    for window_id, vs in expected_windows.items():
        stats = got_windows[window_id]
        assert (stats.count, stats.mean) == (len(vs), math.fsum(vs) / len(vs))
        assert (stats.minimum, stats.maximum) == (min(vs), max(vs))


def test_a_late_row_becomes_a_reading_of_its_key() -> None:
    stamp = micros(datetime(2026, 1, 1, 0, 0, 1, 250_000, tzinfo=UTC))
    key, (window_id, reading) = late_reading((key_of("s-1", "temp"), (7, (stamp, 2.5, "9", "a"))))
    assert key == key_of("s-1", "temp") and window_id == 7
    assert reading == Reading(
        "s-1", "temp", datetime(2026, 1, 1, 0, 0, 1, 250_000, tzinfo=UTC), 2.5, "9", "a"
    )


def test_a_reading_older_than_its_stream_by_lateness_and_idle_close_is_late() -> None:
    times = StreamTimes()
    second = 1_000_000
    logic = PreAggregate(
        timedelta(seconds=10), timedelta(seconds=2), timedelta(seconds=30), None, times
    )
    times.advance("s", 100 * second)
    # The key's first readings: 69 s is past 100 - 2 - 30 = 68 s; 67.5 s is not (by its
    # own rule, 69 - 2 = 67 s, it would be on time).
    out, _ = logic.on_batch([[(69 * second, 1.0, "1", "s"), (67_500_000, 2.0, "2", "s")]])
    partials = [x for x in out if isinstance(x, Partial)]
    assert [(p.window_id, p.stats.count, p.stream) for p in partials] == [(6, 1, "s")]
    assert [x for x in out if not isinstance(x, Partial)] == [(6, (67_500_000, 2.0, "2", "s"))]
    # Without idle close, only the key's own readings count.
    own = PreAggregate(timedelta(seconds=10), timedelta(seconds=2), None, None, times)
    out, _ = own.on_batch([[(69 * second, 1.0, "1", "s"), (67_500_000, 2.0, "2", "s")]])
    assert all(isinstance(x, Partial) for x in out)
