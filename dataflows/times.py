"""Time helpers: the epoch windows are aligned to, whole microseconds, and ISO 8601 output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "MICROSECOND", "duration_micros", "from_micros", "iso", "micros"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(ts: datetime) -> int:
    """``ts`` (timezone-aware) as whole microseconds since the epoch; exact, as a
    datetime holds whole microseconds."""
    return (ts - EPOCH) // MICROSECOND


def duration_micros(span: timedelta) -> int:
    return span // MICROSECOND


def from_micros(stamp: int) -> datetime:
    return EPOCH + timedelta(microseconds=stamp)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
