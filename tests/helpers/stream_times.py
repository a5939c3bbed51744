"""Batches of flat events over two streams, some not JSON, and each event's stream time
as the rule gives it: for the properties on stream event time (readings, breaks)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import strategies as st

from connectors.source import StreamItem
from connectors.sse import SSEEvent

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# (stream, timestamp in ms after T0, or None for an event that is not JSON)
stream_events = st.lists(
    st.tuples(st.sampled_from(["s1", "s2"]), st.one_of(st.none(), st.integers(0, 60_000))),
    max_size=60,
)


def flat_items(sent: list[tuple[str, int | None]]) -> list[StreamItem]:
    """The events as a source gives them: event n has id str(n)."""
    base = int(T0.timestamp() * 1000)
    return [
        (
            stream,
            SSEEvent(
                "reading",
                "{not json"
                if ms is None
                else json.dumps({"sensor_id": f"x{n % 3}", "ts": base + ms, "value": 1.0}),
                str(n),
            ),
        )
        for n, (stream, ms) in enumerate(sent)
    ]


def times_at(sent: list[tuple[str, int | None]]) -> dict[str, int | None]:
    """By event id: its stream's event time once it was read, the stream's newest reading
    so far in microseconds (None before any)."""
    base = int(T0.timestamp() * 1000)
    at: dict[str, int | None] = {}
    newest: dict[str, int] = {}
    for n, (stream, ms) in enumerate(sent):
        if ms is not None:
            newest[stream] = max(newest.get(stream, 0), (base + ms) * 1000)
        at[str(n)] = newest.get(stream)
    return at
