"""The whole reconnect decision: RetryPolicy (settings) and Backoff (where a stream stands).

A subscription asks ``Backoff.after(outcome)`` each time a connection ends or fails; the
answer is the delay before the next connect and the Backoff to ask next time, or
``SSERetryExhausted`` when a cap is reached. Nothing here touches a socket or a clock:
the caller passes the time, so every rule is tested as a pure function.

The rules, in the order they apply:

- A connection that delivered at least one event resets the backoff: the reconnect after
  it waits the base delay (the server's ``retry:``, else ``initial_delay``) with jitter,
  as a browser's EventSource waits its reconnection time after a connection that worked.
  The base delay is the floor, so a server that sends one event and drops each time
  cannot make a hot loop.
- Each further attempt in a row that delivers nothing waits ``multiplier`` times longer,
  up to ``max_delay``.
- A server's ``Retry-After`` sets that one delay, capped at ``max_delay``.
- ``max_attempts`` and ``max_elapsed`` count failures in a row since the last event, so a
  healthy stream cut every minute by a proxy never reaches them.
"""

from __future__ import annotations

import email.utils
import math
import random
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from connectors.sse.errors import SSERetryExhausted

__all__ = ["Backoff", "Outcome", "RetryPolicy", "parse_retry_after"]

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before reconnecting, and when to give up.

    - ``initial_delay``: the base delay when the server sent no ``retry:``.
    - ``max_delay``: no computed delay (nor ``Retry-After``) waits longer.
    - ``multiplier``: growth per failed attempt in a row.
    - ``jitter``: up to this share of each delay is taken away at random, so many clients
      do not reconnect in step.
    - ``min_server_delay``/``max_server_delay``: bounds for a server's ``retry:``, so a
      stream cannot ask for a hot loop or a day.
    - ``max_attempts``/``max_elapsed``: give up after this many failed attempts in a row,
      or this many seconds of failing in a row (None: never).
    - ``attempts_setting``/``elapsed_setting``: what the user called the two caps, for
      the message when one is reached (a job names its environment variables).
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    min_server_delay: float = 0.1
    max_server_delay: float = 60.0
    max_attempts: int | None = None
    max_elapsed: float | None = None
    attempts_setting: str = field(default="RetryPolicy.max_attempts", compare=False)
    elapsed_setting: str = field(default="RetryPolicy.max_elapsed", compare=False)

    def __post_init__(self) -> None:
        problems = []
        if not self.initial_delay >= 0:
            problems.append(f"initial_delay must be >= 0, got {self.initial_delay}")
        if not self.max_delay >= self.initial_delay:
            problems.append(
                f"max_delay ({self.max_delay:g}) must be >= initial_delay ({self.initial_delay:g})"
            )
        if not self.multiplier >= 1:
            problems.append(f"multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            problems.append(f"jitter must be between 0 and 1, got {self.jitter}")
        if not 0 <= self.min_server_delay <= self.max_server_delay:
            problems.append("min_server_delay must be >= 0 and <= max_server_delay")
        if self.max_attempts is not None and self.max_attempts < 0:
            problems.append(f"max_attempts must be >= 0 or None, got {self.max_attempts}")
        if self.max_elapsed is not None and self.max_elapsed < 0:
            problems.append(f"max_elapsed must be >= 0 or None, got {self.max_elapsed}")
        if problems:
            raise ValueError("invalid RetryPolicy: " + "; ".join(problems))

    def base_delay(self, server_retry_ms: int | None) -> float:
        """The delay after a connection that worked: the stream's ``retry:`` (clamped),
        else ``initial_delay``."""
        if server_retry_ms is None:
            return self.initial_delay
        return min(max(server_retry_ms / 1000.0, self.min_server_delay), self.max_server_delay)

    def delay(self, attempt: int, *, server_retry_ms: int | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt`` in a row (1 for the first)."""
        if attempt < 1:
            raise ValueError(f"attempt counts from 1, got {attempt}")
        base = self.base_delay(server_retry_ms)
        # Cap the exponent so a long outage cannot overflow the float.
        growth = self.multiplier ** min(attempt - 1, 64)
        capped = min(base * growth, max(self.max_delay, base))
        return capped * (1.0 - self.jitter * rng.random())

    def retry_after_delay(self, retry_after: float) -> float:
        """A server's ``Retry-After`` sets that one delay, but never past ``max_delay``."""
        return min(max(retry_after, 0.0), self.max_delay)

    def start(self, rng: random.Random | None = None) -> Backoff:
        """The backoff of a stream that has not failed yet."""
        return Backoff(self, rng or random.Random())


@dataclass(frozen=True)
class Outcome:
    """How one connection attempt ended.

    ``delivered`` counts the events it handed over; ``clean`` is a response the server
    ended at an event boundary (not a fault); ``retry_after`` is a ``Retry-After`` header;
    ``server_retry_ms`` is the ``retry:`` in force; ``at`` is a monotonic time in seconds.
    """

    reason: str
    at: float
    delivered: int = 0
    clean: bool = False
    retry_after: float | None = None
    server_retry_ms: int | None = None


@dataclass(frozen=True)
class Backoff:
    """Where a stream stands: failed attempts in a row since its last event, and since when.

    ``after`` is the only way forward; a Backoff never changes.
    """

    policy: RetryPolicy
    rng: random.Random = field(repr=False, compare=False)
    failures: int = 0
    failing_since: float | None = None

    def after(self, outcome: Outcome) -> tuple[float, Backoff]:
        """Seconds to wait before the next connect, and the state to ask next time (its
        ``failures`` is that attempt's number in a row); raises ``SSERetryExhausted``
        when the next attempt would pass a cap."""
        policy = self.policy
        if outcome.delivered > 0:
            # The connection worked: this reconnect is the first of a new run.
            failures, since = 1, outcome.at
        else:
            failures = self.failures + 1
            since = outcome.at if self.failing_since is None else self.failing_since
        if outcome.retry_after is not None:
            delay = policy.retry_after_delay(outcome.retry_after)
        else:
            delay = policy.delay(failures, server_retry_ms=outcome.server_retry_ms, rng=self.rng)
        if policy.max_attempts is not None and failures > policy.max_attempts:
            raise SSERetryExhausted(
                f"gave up after {failures - 1} reconnect attempts in a row without an event "
                f"({policy.attempts_setting}={policy.max_attempts}); "
                f"last failure: {outcome.reason}",
                attempts=failures - 1,
                last_reason=outcome.reason,
            )
        elapsed = outcome.at - since + delay
        if policy.max_elapsed is not None and elapsed > policy.max_elapsed:
            raise SSERetryExhausted(
                f"gave up reconnecting after {policy.max_elapsed:g} s without an event "
                f"({policy.elapsed_setting}); last failure: {outcome.reason}",
                attempts=failures - 1,
                last_reason=outcome.reason,
            )
        return delay, replace(self, failures=failures, failing_since=since)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date; else None."""
    if value is None:
        return None
    value = value.strip()
    # RFC 9110 says whole seconds; decimal seconds are read too, being harmless.
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None
