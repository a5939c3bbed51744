"""The window fold: exact mean whatever the order or merging; late rows back to readings."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from dataflows.aggregates import (
    add_reading,
    exact_parts,
    late_reading,
    merge_stats,
    new_stats,
    stats_of,
)
from dataflows.readings import Reading, key_of
from dataflows.times import micros

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


def test_a_late_row_becomes_a_reading_of_its_key() -> None:
    stamp = micros(datetime(2026, 1, 1, 0, 0, 1, 250_000, tzinfo=UTC))
    row = (stamp, 2.5, "9", "a", stamp + 5)
    key, (window_id, reading) = late_reading((key_of("s-1", "temp"), (7, row)))
    assert key == key_of("s-1", "temp") and window_id == 7
    assert reading == Reading(
        "s-1", "temp", datetime(2026, 1, 1, 0, 0, 1, 250_000, tzinfo=UTC), 2.5, "9", "a", stamp + 5
    )
