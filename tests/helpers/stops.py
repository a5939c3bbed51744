"""A stop signal at a chosen line: the job's handler raises (``JobInterrupted``) between
any two lines the main thread runs, and a sink must leave what it wrote whole whichever
line that is."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


class Stopped(BaseException):
    """What the job's signal handler raises, at a line of our choosing."""


@contextmanager
def stop_at_line(filename: str, count: int) -> Iterator[None]:
    """Raises ``Stopped`` at the ``count``-th line run in ``filename`` inside the block
    (a line event also comes as a ``with`` block exits, before its ``__exit__``)."""
    seen = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        nonlocal seen
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            seen += 1
            if seen == count:
                raise Stopped
        return trace

    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(None)


def stopped(filename: str, count: int, run: Callable[[], object]) -> bool:
    """Runs ``run`` with a stop at its ``count``-th line in ``filename``: True if the
    stop landed, False if ``run`` ended first (every line was tried by then)."""
    try:
        with stop_at_line(filename, count):
            run()
    except Stopped:
        return True
    return False
