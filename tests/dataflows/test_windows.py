"""The clocks: a key's own event time, and its stream's event time closing a quiet key."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from bytewax.operators.windowing import UTC_MAX, UTC_MIN

from dataflows.times import micros
from dataflows.windows import IdleCloseClock, StreamTimes, WorkerStreamTimes

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LATENESS = timedelta(seconds=2)
IDLE = timedelta(seconds=30)


class Item(NamedTuple):
    ts: datetime
    stream: str
    stream_time: int | None = None


def clock(times: WorkerStreamTimes, idle: timedelta | None = IDLE) -> IdleCloseClock[Item]:
    return IdleCloseClock(
        lambda i: i.ts, lambda i: i.stream, lambda i: i.stream_time, LATENESS, idle, times
    )


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_watermark_follows_the_keys_newest_reading_less_the_lateness() -> None:
    logic = clock(WorkerStreamTimes()).build(None)
    assert logic.on_item(Item(at(10), "s")) == (at(10), at(8))
    assert logic.on_item(Item(at(5), "s")) == (at(5), at(8))  # older: the watermark holds
    assert logic.on_notify() == at(8)
    assert logic.on_eof() == UTC_MAX


def test_the_streams_time_moves_a_quiet_keys_watermark() -> None:
    views = WorkerStreamTimes()
    times = views.here()
    logic = clock(views).build(None)
    times.advance("s", micros(at(10)))
    logic.on_item(Item(at(10), "s"))
    # The key says nothing more; its stream moves on.
    times.advance("s", micros(at(41)))
    assert logic.on_notify() == at(9)  # its own 10 - 2 is more
    times.advance("s", micros(at(50)))
    assert logic.on_notify() == at(18)  # 50 - 2 - 30
    times.advance("t", micros(at(500)))  # another stream moves nothing here
    assert logic.on_notify() == at(18)


def test_an_item_is_judged_by_the_stream_time_it_came_with_and_moves_the_steps_view() -> None:
    views = WorkerStreamTimes()
    times = views.here()
    logic = clock(views).build(None)
    # The stream was at 50 s when this reading came: 50 - 2 - 30 = 18 s, past its own 8 s.
    assert logic.on_item(Item(at(10), "s", micros(at(50)))) == (at(10), at(18))
    assert times.get("s") == micros(at(50))
    # A reading that came earlier in the stream, handed over later, is judged by its own.
    other = clock(views).build(None)
    assert other.on_item(Item(at(10), "s", micros(at(12)))) == (at(10), at(8))
    assert other.on_notify() == at(18)  # a notification reads the step's view


def test_each_worker_closes_a_quiet_key_on_its_own_view_of_the_stream() -> None:
    """Key k on this worker, j on another. The stream's rows have reached j's worker up to
    100 s; k's worker has read them to 1 s, and k's next reading (2 s) is on its way. A
    view shared by the workers would stand at 100 s as k is woken, close k's window
    [0 s, 10 s) and make that reading late. k's worker judges by what it has read."""
    views = WorkerStreamTimes()
    k = clock(views).build(None)
    k.on_item(Item(at(1), "s", micros(at(1))))

    def other_worker() -> None:
        j = clock(views).build(None)
        assert j.on_item(Item(at(100), "s", micros(at(100)))) == (at(100), at(98))
        assert j.on_notify() == at(98)

    worker = threading.Thread(target=other_worker)
    worker.start()
    worker.join()
    assert k.on_notify() == at(-1)  # its own 1 - 2; the stream's 1 - 2 - 30 is less
    assert views.here().get("s") == micros(at(1))
    assert k.on_item(Item(at(2), "s", micros(at(2)))) == (at(2), at(0))  # on time


def test_a_quiet_key_is_woken_when_its_stream_should_have_moved_far_enough() -> None:
    views = WorkerStreamTimes()
    times = views.here()
    logic = clock(views).build(None)
    logic.on_item(Item(at(10), "s"))
    times.advance("s", micros(at(12)))
    before = datetime.now(UTC)
    wake = logic.to_system_utc(at(20))  # a window closing at 20 s
    assert wake is not None
    # 20 + 2 + 30 - 12 = 40 s of stream time to go, at the wall clock's pace.
    assert before + timedelta(seconds=40) <= wake <= datetime.now(UTC) + timedelta(seconds=40)
    times.advance("s", micros(at(51.9)))
    soon = logic.to_system_utc(at(20))
    assert soon is not None and soon - datetime.now(UTC) <= timedelta(seconds=1)


def test_without_idle_close_there_are_no_wake_ups_and_the_stream_does_not_count() -> None:
    views = WorkerStreamTimes()
    times = views.here()
    logic = clock(views, idle=None).build(None)
    logic.on_item(Item(at(10), "s"))
    times.advance("s", micros(at(1000)))
    assert logic.on_notify() == at(8)
    assert logic.to_system_utc(at(20)) is None


def test_the_stream_time_never_runs_ahead_of_the_wall_clock() -> None:
    times = StreamTimes()
    times.advance("s", micros(datetime.now(UTC) + timedelta(days=1)))
    stamp = times.get("s")
    assert stamp is not None and stamp <= micros(datetime.now(UTC))
    times.advance("s", micros(at(0)))  # and never back
    assert times.get("s") == stamp


def test_resumes_from_its_snapshot_and_from_the_clock_it_replaced() -> None:
    views = WorkerStreamTimes()
    times = views.here()
    logic = clock(views).build(None)
    logic.on_item(Item(at(10), "s"))
    again = clock(views).build(logic.snapshot())
    assert again.on_notify() == at(8)
    times.advance("s", micros(at(100)))
    assert again.on_notify() == at(68)  # it remembers its stream

    class OldState:  # Bytewax's EventClock state, as snapshots from before hold it
        watermark_base = at(8)

    assert clock(views).build(OldState()).on_notify() == at(8)
    assert clock(views).build(None).on_notify() == UTC_MIN


def test_timestamps_at_the_start_of_time_do_not_overflow() -> None:
    logic = clock(WorkerStreamTimes()).build(None)
    assert logic.on_item(Item(UTC_MIN, "s")) == (UTC_MIN, UTC_MIN)
