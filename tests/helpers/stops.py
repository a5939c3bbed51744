"""A stop signal at a chosen line: the job's handler raises (``JobInterrupted``) between
any two lines the main thread runs, and a sink must leave what it wrote whole whichever
line that is."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType


class _Stopped(BaseException):
    """What the job's signal handler raises, at a line of our choosing."""


def stopped(filename: str, count: int, run: Callable[[], object]) -> bool:
    """Runs ``run`` with a stop at the ``count``-th line it runs in ``filename`` (a line
    event also comes as a ``with`` block exits, before its ``__exit__``): True if the stop
    landed, False if ``run`` ended first (every line was tried by then)."""
    seen = 0

    def trace(frame: FrameType, event: str, arg: object) -> Callable[..., object] | None:
        nonlocal seen
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            seen += 1
            if seen == count:
                raise _Stopped
        return trace

    sys.settrace(trace)
    try:
        run()
    except _Stopped:
        return True
    finally:
        sys.settrace(None)
    return False
