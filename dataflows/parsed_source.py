"""The streams' source with the parse inside it, its snapshot carrying each stream's time.

The parse step works out each stream's event time (``RunStats.times``: its newest
reading) and stamps every reading and dead letter with it. A restart must go on from the
time the stream had at the event it resumes after, or the letters before its first
reading again have none, and land in the wall clock's hour. As a step of its own, the
parse may not have read all that the source handed on when the source's snapshot is
taken, so the snapshot could not hold that time. Here each partition parses its batch
before it hands it on, so at a snapshot the stream's time is the one after its last
event, and the snapshot holds both: ``{"source": its own state, "stream_time": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypedDict, TypeVar

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from dataflows.windows import StreamTimes

__all__ = ["ParsedSource", "ParsedState"]

In = TypeVar("In")
Out = TypeVar("Out")


class ParsedState(TypedDict):
    """A partition's snapshot: the source's own, and its stream's event time then."""

    source: Any
    stream_time: int | None


class _ParsedPartition(StatefulSourcePartition[Out, ParsedState], Generic[In, Out]):
    def __init__(
        self,
        inner: StatefulSourcePartition[In, Any],
        name: str,
        parse: Callable[[list[In]], list[Out]],
        times: StreamTimes,
    ) -> None:
        self._inner = inner
        self._name = name
        self._parse = parse
        self._times = times

    def next_batch(self) -> list[Out]:
        batch = self._inner.next_batch()
        items = batch if isinstance(batch, list) else list(batch)
        return self._parse(items) if items else []

    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    def snapshot(self) -> ParsedState:
        return {"source": self._inner.snapshot(), "stream_time": self._times.get(self._name)}

    def close(self) -> None:
        self._inner.close()


class ParsedSource(FixedPartitionedSource[Out, ParsedState], Generic[In, Out]):
    """``source``'s partitions, each batch through ``parse``; ``times``: the streams'
    event times the parse moves on (one stream a partition, named as the partition)."""

    def __init__(
        self,
        source: FixedPartitionedSource[In, Any],
        parse: Callable[[list[In]], list[Out]],
        times: StreamTimes,
    ) -> None:
        self._source = source
        self._parse = parse
        self._times = times

    def list_parts(self) -> list[str]:
        return self._source.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: ParsedState | Any
    ) -> _ParsedPartition[In, Out]:
        inner_state = resume_state
        if isinstance(resume_state, dict) and resume_state.keys() == {"source", "stream_time"}:
            inner_state = resume_state["source"]
            if resume_state["stream_time"] is not None:
                self._times.advance(for_part, resume_state["stream_time"])
        # Otherwise a snapshot from before the parse was here: the source's state alone.
        inner = self._source.build_part(step_id, for_part, inner_state)
        return _ParsedPartition(inner, for_part, self._parse, self._times)
