"""Retention: the hour folders of a kind older than a span of event time, removed."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from connectors.sinks.layout import HOUR_MICROS, hour_folder, hour_of_folder

__all__ = ["HourExpiry", "Removed"]

Removed = Callable[[str, int], None]
"""Told of each partition removed (its folder, relative: ``date=.../hour=...`` or
``date=...``) and how many files it held."""


class HourExpiry:
    """Removes, under ``directory``, every hour folder whose hour ended ``keep`` or more
    before the event time it is given; and a date folder left empty."""

    def __init__(self, directory: Path, keep: timedelta, on_removed: Removed) -> None:
        self._directory = directory
        self._keep = keep // timedelta(microseconds=1)
        self._on_removed = on_removed
        self._done_before: int | None = None

    def __call__(self, now: int | None) -> None:
        if now is None:
            return
        before = (now - self._keep) // HOUR_MICROS  # hours before this one have expired
        if self._done_before is not None and before <= self._done_before:
            return  # nothing new has expired since the last look
        self._done_before = before
        for folder in sorted(self._directory.glob("date=*/hour=*")):
            hour = hour_of_folder(folder)
            if hour is None or hour >= before:
                continue
            files = sum(1 for path in folder.iterdir() if path.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            self._on_removed(hour_folder(hour), files)
            # Unless the date has other hours still.
            with contextlib.suppress(OSError):
                folder.parent.rmdir()
