"""Line sinks: JSON Lines files through Bytewax's FileSink, and stdout/stderr for the console."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from bytewax.connectors.files import FileSink
from bytewax.connectors.stdio import StdOutSink
from bytewax.outputs import DynamicSink, StatelessSinkPartition

__all__ = ["StdErrSink", "StdOutSink", "line_file_sink"]


def line_file_sink(path: Path) -> FileSink:
    """One file written line by line; exactly-once across recovery (it truncates to its
    snapshot on resume). Items must be ``(key, line)``; the key is ignored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileSink(path)


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
