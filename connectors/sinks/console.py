"""Console sinks: each item a line on stdout or stderr (at-least-once across a restart)."""

from __future__ import annotations

import sys
from typing import TextIO

from bytewax.connectors.stdio import StdOutSink
from bytewax.outputs import DynamicSink, StatelessSinkPartition

__all__ = ["StdErrSink", "StdOutSink"]


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
