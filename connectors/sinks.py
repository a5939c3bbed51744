"""Line sinks: JSON Lines files through Bytewax's FileSink, and stdout/stderr for the console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from bytewax.connectors.files import FileSink
from bytewax.connectors.stdio import StdOutSink
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

__all__ = ["HeaderFileSink", "StdErrSink", "StdOutSink", "line_file_sink"]


def line_file_sink(path: Path) -> FileSink:
    """One file written line by line; exactly-once across recovery (it truncates to its
    snapshot on resume). Items must be ``(key, line)``; the key is ignored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileSink(path)


class HeaderFileSink(FixedPartitionedSink[str, int]):
    """Bytewax's FileSink, with ``header`` (a CSV header line) first in the file.

    The header is written when the partition starts fresh, so it is part of every snapshot
    offset: a resume truncates to a point after it and never writes it twice.
    """

    def __init__(self, path: Path, header: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = FileSink(path)
        self._header = header

    def list_parts(self) -> list[str]:
        return self._file.list_parts()

    def part_fn(self, item_key: str) -> int:
        return self._file.part_fn(item_key)

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSinkPartition[str, int]:
        part = self._file.build_part(step_id, for_part, resume_state)
        if resume_state is None:
            part.write_batch([self._header])
        return part


class _StreamPartition(StatelessSinkPartition[str]):
    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write_batch(self, items: list[str]) -> None:
        self._stream.write("".join(f"{item}\n" for item in items))
        self._stream.flush()


class StdErrSink(DynamicSink[str]):
    """Each item as a line on stderr (dead letters, beside the data on stdout)."""

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _StreamPartition:
        return _StreamPartition(sys.stderr)
