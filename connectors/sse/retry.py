"""RetryPolicy: when to reconnect, as a frozen dataclass and a pure delay function."""

from __future__ import annotations

import email.utils
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["RetryPolicy", "parse_retry_after"]

_SECONDS = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, based on the server's ``retry:`` when it sent one.

    ``attempt`` counts reconnects since the last stable connection (one that stayed up
    ``reset_after`` seconds): the first reconnect waits about the base delay, each further
    one ``multiplier`` times longer, up to ``max_delay``. Jitter takes up to ``jitter`` of
    the delay away at random, so many clients do not reconnect in step.
    """

    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    reset_after: float = 60.0
    # Bounds for a server's retry: field, so a stream cannot ask for a hot loop or a day.
    min_server_delay: float = 0.1
    max_server_delay: float = 60.0
    max_attempts: int | None = None
    max_elapsed: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.initial_delay >= 0:
            problems.append(f"initial_delay must be >= 0, got {self.initial_delay}")
        if not self.max_delay >= self.initial_delay:
            problems.append(f"max_delay ({self.max_delay}) must be >= initial_delay")
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
        """The first reconnect's delay: the stream's ``retry:`` (clamped), else ours."""
        if server_retry_ms is None:
            return self.initial_delay
        return min(max(server_retry_ms / 1000.0, self.min_server_delay), self.max_server_delay)

    def delay(self, attempt: int, *, server_retry_ms: int | None, rng: random.Random) -> float:
        """Seconds to wait before reconnect number ``attempt`` (1 for the first)."""
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
