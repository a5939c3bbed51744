"""RetryPolicy's delay function and Retry-After parsing: pure, seeded, exact."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from connectors.sse import RetryPolicy
from connectors.sse.retry import parse_retry_after


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=10.0, jitter=0.0)
    rng = random.Random(1)
    delays = [policy.delay(a, server_retry_ms=None, rng=rng) for a in range(1, 7)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_takes_up_to_its_share_away_reproducibly() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=100.0, jitter=0.5)
    rng, rng_again = random.Random(42), random.Random(42)
    first = [policy.delay(a, server_retry_ms=None, rng=rng) for a in range(1, 6)]
    again = [policy.delay(a, server_retry_ms=None, rng=rng_again) for a in range(1, 6)]
    assert first == again
    draws = random.Random(42)
    assert first == [2 ** (a - 1) * (1 - 0.5 * draws.random()) for a in range(1, 6)]
    for attempt, delay in enumerate(first, start=1):
        assert 0.5 * 2 ** (attempt - 1) < delay <= 2 ** (attempt - 1)


def test_server_retry_is_the_base_clamped_to_bounds() -> None:
    policy = RetryPolicy(jitter=0.0, max_delay=30.0, min_server_delay=0.1, max_server_delay=20.0)
    rng = random.Random(0)
    assert policy.delay(1, server_retry_ms=2500, rng=rng) == 2.5
    assert policy.delay(2, server_retry_ms=2500, rng=rng) == 5.0
    assert policy.delay(1, server_retry_ms=0, rng=rng) == 0.1
    assert policy.delay(1, server_retry_ms=3_600_000, rng=rng) == 20.0


def test_huge_attempt_counts_do_not_overflow() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=30.0, jitter=0.0)
    assert policy.delay(10_000, server_retry_ms=None, rng=random.Random(0)) == 30.0


def test_retry_after_is_capped_by_the_maximum_delay() -> None:
    policy = RetryPolicy(max_delay=30.0)
    assert policy.retry_after_delay(5.0) == 5.0
    assert policy.retry_after_delay(3600.0) == 30.0
    assert policy.retry_after_delay(-3.0) == 0.0


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now=now) == 7.0
    assert parse_retry_after(" 120 ", now=now) == 120.0
    assert parse_retry_after("0.5", now=now) == 0.5
    assert parse_retry_after("Mon, 23 Nov 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Mon, 23 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 2}, "jitter"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_elapsed": -1}, "max_elapsed"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_named(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().delay(0, server_retry_ms=None, rng=random.Random(0))
