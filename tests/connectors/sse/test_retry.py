"""The reconnect decision (RetryPolicy, Backoff) and Retry-After parsing: pure, seeded, exact."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from connectors.sse import RetryPolicy, SSERetryExhausted
from connectors.sse.retry import Outcome, parse_retry_after


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


def _outcome(at: float, delivered: int = 0, **kwargs: object) -> Outcome:
    return Outcome("cut", at=at, delivered=delivered, **kwargs)  # type: ignore[arg-type]


def _run(policy: RetryPolicy, outcomes: list[Outcome]) -> list[tuple[float, int]]:
    backoff = policy.start(random.Random(0))
    waits = []
    for outcome in outcomes:
        delay, backoff = backoff.after(outcome)
        waits.append((delay, backoff.failures))
    return waits


def test_a_connection_that_delivered_events_resets_to_the_base_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=30.0, jitter=0.0)
    waits = _run(
        policy,
        [_outcome(0, 137), _outcome(1, 137), _outcome(2), _outcome(3), _outcome(4, 1), _outcome(5)],
    )
    assert waits == [(1.0, 1), (1.0, 1), (2.0, 2), (4.0, 3), (1.0, 1), (2.0, 2)]


def test_the_servers_retry_is_the_floor_after_a_connection_that_worked() -> None:
    # A stream cut every 137 events with retry: 20 waits 20 ms every time, not longer.
    policy = RetryPolicy(jitter=0.0, min_server_delay=0.01)
    outcomes = [_outcome(t, 137, server_retry_ms=20) for t in range(15)]
    assert _run(policy, outcomes) == [(0.02, 1)] * 15


def test_jitter_stays_within_its_share_of_the_base_after_every_good_connection() -> None:
    policy = RetryPolicy(initial_delay=2.0, jitter=0.5)
    waits = _run(policy, [_outcome(t, 1) for t in range(200)])
    assert all(1.0 < delay <= 2.0 for delay, _ in waits)
    assert len({delay for delay, _ in waits}) > 100


def test_retry_after_sets_one_delay_and_still_counts_the_attempt() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=30.0, jitter=0.0)
    waits = _run(policy, [_outcome(0, retry_after=7.0), _outcome(1), _outcome(2, retry_after=99)])
    assert waits == [(7.0, 1), (2.0, 2), (30.0, 3)]


def test_max_attempts_counts_failures_in_a_row_since_the_last_event() -> None:
    policy = RetryPolicy(initial_delay=1.0, jitter=0.0, max_attempts=2)
    # A healthy stream cut a thousand times never reaches the cap.
    assert len(_run(policy, [_outcome(t, 5) for t in range(1000)])) == 1000
    backoff = policy.start(random.Random(0))
    _, backoff = backoff.after(_outcome(0, 5))
    _, backoff = backoff.after(_outcome(1))
    with pytest.raises(SSERetryExhausted, match=r"after 2 reconnect attempts") as raised:
        backoff.after(Outcome("HTTP 503", at=2))
    assert raised.value.attempts == 2
    assert raised.value.last_reason == "HTTP 503"


def test_max_elapsed_counts_from_the_end_of_the_last_connection_that_worked() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=1.0, jitter=0.0, max_elapsed=10.0)
    backoff = policy.start(random.Random(0))
    for t in range(0, 105, 5):  # an event on every connection: no time cap applies
        _, backoff = backoff.after(_outcome(t, 1))
    _, backoff = backoff.after(_outcome(104))  # 4 s failing + 1 s wait
    _, backoff = backoff.after(_outcome(109))  # 9 s failing + 1 s wait: still within 10 s
    with pytest.raises(SSERetryExhausted, match="after 10 s"):
        backoff.after(_outcome(110))  # 10 s failing + 1 s wait


def test_the_caps_are_named_as_the_user_named_them() -> None:
    policy = RetryPolicy(
        max_attempts=0, attempts_setting="SSE_RETRY_MAX_ATTEMPTS", elapsed_setting="X"
    )
    with pytest.raises(SSERetryExhausted, match=r"\(SSE_RETRY_MAX_ATTEMPTS=0\)"):
        policy.start().after(_outcome(0))
    policy = RetryPolicy(max_elapsed=0, elapsed_setting="SSE_RETRY_MAX_ELAPSED")
    with pytest.raises(SSERetryExhausted, match=r"\(SSE_RETRY_MAX_ELAPSED\)"):
        policy.start().after(_outcome(0))


def test_a_backoff_never_changes() -> None:
    backoff = RetryPolicy().start(random.Random(0))
    _, later = backoff.after(_outcome(0))
    assert (backoff.failures, backoff.failing_since) == (0, None)
    assert (later.failures, later.failing_since) == (1, 0)
