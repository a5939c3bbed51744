"""ReplayFilter: what a server that resumes from its last acknowledgement sends again is
dropped, whatever the read boundaries, and nothing new is ever held back for good."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from connectors.sse import SSEEvent
from connectors.sse.replay import ReplayFilter


def _events(first: int, end: int) -> list[SSEEvent]:
    return [SSEEvent(data=f'{{"n":{n}}}') for n in range(first, end)]


def _feed(replays: ReplayFilter, events: list[SSEEvent], cuts: list[int]) -> list[SSEEvent]:
    """``events`` as reads cut at ``cuts``; what the filter lets through."""
    out: list[SSEEvent] = []
    bounds = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    for start, end in pairwise(bounds):
        out += [e for e in replays.admit(events[start:end]) if isinstance(e, SSEEvent)]
    return out


@given(
    delivered=st.integers(0, 40),
    data=st.data(),
    new=st.integers(0, 25),
    cuts=st.lists(st.integers(0, 100), max_size=6),
)
def test_a_replay_of_any_stretch_up_to_the_last_event_is_dropped(
    delivered: int, data: st.DataObject, new: int, cuts: list[int]
) -> None:
    replays = ReplayFilter(keep=64)
    replays.reconnected()
    got = _feed(replays, _events(0, delivered), cuts)
    # The server goes on from its last acknowledgement: anywhere up to the last event.
    resume = data.draw(st.integers(0, delivered), label="resume")
    replays.reconnected()
    got += _feed(replays, _events(resume, delivered + new), cuts)
    assert got == _events(0, delivered + new)
    assert replays.dropped == delivered - resume


@given(
    delivered=st.integers(1, 30),
    data=st.data(),
    cuts=st.lists(st.integers(0, 100), max_size=4),
)
def test_a_connection_cut_in_the_middle_of_its_replay_is_dropped_too(
    delivered: int, data: st.DataObject, cuts: list[int]
) -> None:
    replays = ReplayFilter(keep=64)
    replays.reconnected()
    got = _feed(replays, _events(0, delivered), cuts)
    resume = data.draw(st.integers(0, delivered - 1), label="resume")
    cut = data.draw(st.integers(resume, delivered - 1), label="cut")
    replays.reconnected()
    got += _feed(replays, _events(resume, cut), cuts)
    # Acknowledged meanwhile, at most up to the end of the cut connection's replay.
    again = data.draw(st.integers(resume, cut), label="again")
    replays.reconnected()
    got += _feed(replays, _events(again, delivered + 5), cuts)
    assert got == _events(0, delivered + 5)


def test_new_events_that_look_like_the_start_of_a_replay_go_through() -> None:
    replays = ReplayFilter(keep=8)
    replays.reconnected()
    seen = [SSEEvent(data=d) for d in ("a", "b", "c")]
    assert replays.admit(seen) == seen
    replays.reconnected()
    # "a", "b" match the start of what was delivered but never reach its end ("c").
    fresh = [SSEEvent(data=d) for d in ("a", "b", "x", "y")]
    assert replays.admit(fresh[:2]) == []
    assert replays.admit(fresh[2:]) == fresh
    assert replays.dropped == 0


def test_a_replay_longer_than_what_is_kept_is_not_recognised() -> None:
    replays = ReplayFilter(keep=4)
    replays.reconnected()
    replays.admit(_events(0, 10))
    replays.reconnected()
    assert replays.admit(_events(2, 12)) == _events(2, 12)
    assert replays.dropped == 0
