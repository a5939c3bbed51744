"""Each reconnect gets its stream's event time at the last event before it, however the
events were batched and whenever the reader reported it: before the intake took the
batch holding that event (the parse notes the time there), or while it was parsing it
(the batch is read again for it)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sse import Reconnect, SSEEvent
from dataflows.formats import PARSERS
from dataflows.readings import Marks, Reading, parse_by_key, parse_in_order, parse_item
from dataflows.stream_breaks import StreamBreaks
from dataflows.times import micros
from dataflows.windows import StreamTimes
from tests.helpers.stream_times import flat_items, stream_events, times_at

PARSER = PARSERS["flat"]


def _stamp_of(item: tuple[str, SSEEvent]) -> int | None:
    stamps = [micros(r.ts) for r in parse_item(item, PARSER) if isinstance(r, Reading)]
    return max(stamps) if stamps else None


@settings(max_examples=300, deadline=None)
@given(
    sent=stream_events,
    cuts=st.lists(st.integers(1, 8), max_size=20),
    picks=st.lists(st.tuples(st.integers(0, 59), st.booleans(), st.integers(0, 3)), max_size=6),
    by_key=st.booleans(),
)
def test_each_break_gets_its_streams_time_at_its_last_event(
    sent: list[tuple[str, int | None]],
    cuts: list[int],
    picks: list[tuple[int, bool, int]],
    by_key: bool,
) -> None:
    items = flat_items(sent)
    batches, at = [], 0
    for size in [*cuts, len(items)]:
        batches.append(items[at : at + size])
        at += size
    batch_of = {item[1].id: k for k, batch in enumerate(batches) for item in batch}
    expected = times_at(sent)  # the stream's time at each event
    # A break after event n, reported `early` batches before the one holding n (or while
    # that batch is parsed: `during`).
    reports: dict[tuple[int, bool], list[str]] = {}
    for n, during, early in picks:
        if n < len(items):
            k = batch_of[str(n)]
            when = (k, True) if during else (max(k - early, 0), False)
            reports.setdefault(when, []).append(str(n))
    breaks = StreamBreaks(StreamTimes())
    reported: list[str] = []

    def report(when: tuple[int, bool]) -> None:
        for event_id in reports.get(when, []):
            stream = items[int(event_id)][0]
            breaks.reconnected(stream, Reconnect(time.time(), "test", event_id, 0.1, 1, True))
            reported.append(event_id)

    for k, batch in enumerate(batches):
        report((k, False))
        watched = breaks.watched()
        report((k, True))
        marks: Marks = {}
        if by_key:
            _, _, after = parse_by_key(batch, PARSER, breaks._times.get, watched, marks)
        else:
            _, _, after = parse_in_order(batch, PARSER, breaks._times.get, watched, marks)
        breaks.read(batch, after, watched, marks, _stamp_of)
    # Every break, those after the same event too (a reconnect that failed, then another).
    got = [(b.reconnect.last_event_id, b.event_time) for b in breaks.breaks()]
    assert got == [(event_id, expected[event_id]) for event_id in reported]
    assert not breaks.watched()  # nothing left waiting
