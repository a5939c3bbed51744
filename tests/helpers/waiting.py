"""Waiting for a condition, never for a fixed time: CI runs on a busy 2-core machine."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_for", "wait_until_steady"]


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float = 60, poll: float = 0.005
) -> None:
    """Return once ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(poll)


def wait_until_steady(
    count: Callable[[], int], what: str, *, most: int, over: float, timeout: float = 60
) -> tuple[int, int]:
    """Return ``(before, after)`` once ``count()`` grew by at most ``most`` over ``over``
    seconds; fail naming ``what`` if it never does within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    before = count()
    while True:
        time.sleep(over)
        after = count()
        if after - before <= most:
            return before, after
        grew = after - before
        assert time.monotonic() < deadline, (
            f"timed out after {timeout:g} s waiting for {what}: still {grew} in {over:g} s"
        )
        before = after
