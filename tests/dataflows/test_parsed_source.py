"""The source with the parse inside it: batches parsed, snapshots with the stream's time,
and a resume from a snapshot either of its own or of the source before it."""

from __future__ import annotations

from bytewax.testing import TestingSource

from dataflows.parsed_source import ParsedSource
from dataflows.windows import StreamTimes

PART = "iterable"  # TestingSource's one partition


def _parse(times: StreamTimes) -> ParsedSource[int, str]:
    def parse(batch: list[int]) -> list[str]:
        for n in batch:  # as the job's parse does: the stream's time moves with its items
            times.advance(PART, n)
        return [f"item {n}" for n in batch]

    return ParsedSource(TestingSource([10, 20, 30, 40], batch_size=2), parse, times)


def test_each_batch_is_parsed_and_the_snapshot_holds_the_streams_time_after_it() -> None:
    times = StreamTimes()
    part = _parse(times).build_part("step", PART, None)
    assert part.snapshot() == {"source": 0, "stream_time": None}
    assert part.next_batch() == ["item 10", "item 20"]
    assert part.snapshot() == {"source": 2, "stream_time": 20}


def test_a_resume_goes_on_from_the_streams_time_in_the_snapshot() -> None:
    times = StreamTimes()
    part = _parse(times).build_part("step", PART, {"source": 2, "stream_time": 25})
    assert times.get(PART) == 25
    assert part.next_batch() == ["item 30", "item 40"]
    assert part.snapshot() == {"source": 4, "stream_time": 40}


def test_a_snapshot_of_the_source_alone_from_before_is_resumed_from() -> None:
    times = StreamTimes()
    part = _parse(times).build_part("step", PART, 2)
    assert times.get(PART) is None
    assert part.next_batch() == ["item 30", "item 40"]
