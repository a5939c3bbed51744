"""Where part files live: hive-style hour folders, part file names, and finding them again.

A kind of record is a directory; each UTC hour of event time is a folder in it,
``date=YYYY-MM-DD/hour=HH``, which Hive, Spark, pyarrow, Polars and DuckDB read as two
partition columns. A part file is ``part-<name>-<partition>-<run>-<seq>.jsonl`` once
finished, and ``.part-...jsonl.inprogress`` while it is written: every reader named
skips a name that starts with a dot, and a ``*.jsonl`` glob does not match it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "HOUR_MICROS",
    "PartFile",
    "date_of_folder",
    "hour_folder",
    "hour_of_folder",
    "part_files",
    "seq_of",
]

HOUR_MICROS = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SUFFIX = ".jsonl"
_HIDDEN_SUFFIX = ".jsonl.inprogress"
_FOLDER = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")
_SEQ = re.compile(r"-(\d+)\.jsonl(?:\.inprogress)?$")


def hour_folder(hour: int) -> str:
    """The folder of ``hour`` (hours since the epoch, UTC), relative to the kind's directory."""
    moment = _EPOCH + timedelta(hours=hour)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


def hour_of_folder(folder: Path) -> int | None:
    """The hour a folder ``.../date=YYYY-MM-DD/hour=HH`` holds; None for any other path."""
    match = _FOLDER.search(f"{folder.parent.name}/{folder.name}")
    if match is None:
        return None
    moment = datetime.fromisoformat(match[1]).replace(hour=int(match[2]), tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(hours=1)


def date_of_folder(folder: Path) -> str | None:
    """``YYYY-MM-DD`` of a ``date=`` folder; None for any other path."""
    name = folder.name
    return name[5:] if name.startswith("date=") and len(name) == 15 else None


@dataclass(frozen=True)
class PartFile:
    """One part file: ``prefix`` names its writer (``part-<name>-<partition>-<run>``),
    ``seq`` counts that writer's files, ``hour`` is its folder's."""

    directory: Path
    prefix: str
    seq: int
    hour: int

    @property
    def visible(self) -> Path:
        return self.directory / hour_folder(self.hour) / f"{self.prefix}-{self.seq:06d}{_SUFFIX}"

    @property
    def hidden(self) -> Path:
        return (
            self.directory
            / hour_folder(self.hour)
            / (f".{self.prefix}-{self.seq:06d}{_HIDDEN_SUFFIX}")
        )


def part_files(directory: Path, prefix: str = "part-") -> Iterator[tuple[Path, bool]]:
    """Every part file under ``directory`` whose name (without the dot of an unfinished
    one) starts with ``prefix``, with whether it is finished."""
    for folder in directory.glob("date=*/hour=*"):
        for path in folder.iterdir():
            name = path.name
            if name.startswith(prefix) and name.endswith(_SUFFIX):
                yield path, True
            elif name.startswith("." + prefix) and name.endswith(_HIDDEN_SUFFIX):
                yield path, False


def seq_of(path: Path) -> int | None:
    """The sequence number in a part file's name."""
    match = _SEQ.search(path.name)
    return None if match is None else int(match[1])
