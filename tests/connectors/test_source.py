"""SSESource against the simulator: order, resume state, never blocking, backpressure, endings."""

from __future__ import annotations

import time

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from connectors.source import SSESource, StreamItem
from connectors.sse import ConnectOptions, SSEEvent, SSEHTTPError, Subscription, subscribe
from connectors.sse.client import SubscriptionLike
from connectors.sse.remote import RemoteSubscription
from tests.helpers.servers import StartSim
from tests.helpers.streams import FAST_RETRY
from tests.helpers.waiting import wait_for, wait_until_steady


def _open(url: str, last_event_id: str | None) -> Subscription:
    return subscribe(url, last_event_id=last_event_id, retry=FAST_RETRY, heartbeat_timeout=5)


def _open_remote(url: str, last_event_id: str | None) -> SubscriptionLike:
    options = ConnectOptions(heartbeat_timeout=5)
    return RemoteSubscription(url, last_event_id=last_event_id, retry=FAST_RETRY, options=options)


# The stream read in a thread of this process, or in a process of its own.
READERS = {"thread": _open, "process": _open_remote}


def drain(part: object, timeout: float = 30) -> list[StreamItem]:
    items: list[StreamItem] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            items += part.next_batch()  # type: ignore[attr-defined]
        except StopIteration:
            return items
        time.sleep(0.001)
    raise AssertionError("the partition did not end")


@pytest.mark.parametrize("reader", list(READERS))
def test_emits_every_event_in_order_with_its_stream_and_ends(
    simulator: StartSim, reader: str
) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=500, drop_every=120), pace=False))
    ended: list[str] = []
    part = SSESource({"s1": sim.url}, READERS[reader], on_end=ended.append).build_part(
        "in", "s1", None
    )
    items = drain(part)
    assert [name for name, _ in items] == ["s1"] * 500
    assert [int(e.id) for _, e in items] == list(range(500))
    assert part.snapshot() == "499"
    assert ended == ["s1"]  # a 204: the stream ended as streams end
    part.close()


@pytest.mark.parametrize("reader", list(READERS))
def test_resumes_after_the_snapshot_id(simulator: StartSim, reader: str) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=50), pace=False))
    part = SSESource({"s1": sim.url}, READERS[reader]).build_part("in", "s1", "29")
    items = drain(part)
    assert [int(e.id) for _, e in items] == list(range(30, 50))
    assert sim.requests[0].headers["Last-Event-ID"] == "29"


def test_next_batch_returns_at_once_when_nothing_has_arrived(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(rate=0.2), faults=Faults(end_after=3)))
    part = SSESource({"s1": sim.url}, _open).build_part("in", "s1", None)
    deadline = time.monotonic() + 10
    while not part.next_batch() and time.monotonic() < deadline:
        pass  # first event (sent at once)
    # The next event is 5 s away: next_batch must not wait for it.
    assert part.next_batch() == []
    awake = part.next_awake()
    assert awake is not None
    part.close()


@pytest.mark.parametrize("reader", list(READERS))
def test_a_slow_dataflow_pushes_back_on_the_server(simulator: StartSim, reader: str) -> None:
    sim = simulator(
        SimulatorConfig(faults=Faults(end_after=2_000_000), pace=False, events_per_write=50)
    )
    bound = 64 * 1024
    part = SSESource(
        {"s1": sim.url}, READERS[reader], max_pending_bytes=bound, batch_size=100
    ).build_part("in", "s1", None)
    # Nobody calls next_batch: the pending events reach the bound, the reader waits, TCP
    # fills, and the server (which would write all its events in a few seconds) is held.
    wait_for(lambda: part._pending_bytes >= bound, "the pending events to reach the bound")
    first, second = wait_until_steady(
        lambda: len(sim.sent_ids), "the server to be held", most=0, over=1.0
    )
    # The bound is checked before each read's events are added: one read (64 KiB) over.
    assert part._pending_bytes <= bound + 65536
    assert second == first
    assert second < 2_000_000
    # Draining lets it go on, in batches of at most batch_size.
    batches: list[list[StreamItem]] = []
    deadline = time.monotonic() + 30
    while sum(map(len, batches)) < 5000 and time.monotonic() < deadline:
        batches.append(part.next_batch())
        time.sleep(0.001)
    assert max(len(b) for b in batches) == 100
    assert [int(e.id) for b in batches for _, e in b][:5000] == list(range(5000))
    part.close()


def test_batches_hold_what_accumulated_not_one_read(simulator: StartSim) -> None:
    # One event per HTTP chunk: a dataflow that was busy gets them all in one batch.
    sim = simulator(SimulatorConfig(faults=Faults(end_after=3000), pace=False, events_per_write=1))
    part = SSESource({"s1": sim.url}, _open, batch_size=5000).build_part("in", "s1", None)
    # The dataflow is busy elsewhere until the reader has read all 3000.
    wait_for(lambda: len(part._pending) == 3000, "the reader to read every event")
    first = part.next_batch()
    assert [int(e.id) for _, e in first] == list(range(3000))
    part.close()


@pytest.mark.parametrize("reader", list(READERS))
def test_close_stops_a_reader_blocked_on_a_full_queue_or_a_quiet_stream(
    simulator: StartSim,
    reader: str,
) -> None:
    busy = simulator(SimulatorConfig(pace=False))
    quiet = simulator(SimulatorConfig(sequence=SequenceSpec(rate=0.01)))
    for sim in (busy, quiet):
        part = SSESource({"s1": sim.url}, READERS[reader], max_pending_bytes=1024).build_part(
            "in", "s1", None
        )
        time.sleep(0.3)
        started = time.monotonic()
        part.close()
        assert not part._thread.is_alive()
        assert time.monotonic() - started < 5


@pytest.mark.parametrize("reader", list(READERS))
def test_a_fatal_error_stops_the_dataflow_with_its_message(
    simulator: StartSim, reader: str
) -> None:
    sim = simulator(SimulatorConfig(pace=False, bearer_token="t"))
    flow = Dataflow("fatal")
    ended: list[str] = []
    items = op.input("in", flow, SSESource({"s1": sim.url}, READERS[reader], on_end=ended.append))
    out: list[StreamItem] = []
    op.output("out", items, TestingSink(out))
    with pytest.raises(Exception) as raised:
        run_main(flow)
    chain = []
    error: BaseException | None = raised.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(e, SSEHTTPError) and e.status == 401 for e in chain)
    assert ended == []  # a failure is not an end of input


def test_runs_in_a_dataflow_with_several_streams(simulator: StartSim) -> None:
    sims = [
        simulator(
            SimulatorConfig(
                sequence=SequenceSpec(sensor_offset=k * 100),
                faults=Faults(end_after=300),
                pace=False,
            )
        )
        for k in range(2)
    ]
    flow = Dataflow("two")
    items = op.input("in", flow, SSESource({f"s{k}": s.url for k, s in enumerate(sims)}, _open))
    out: list[StreamItem] = []
    op.output("out", items, TestingSink(out))
    run_main(flow)
    for name in ("s0", "s1"):
        events = [e for n, e in out if n == name]
        assert [int(e.id) for e in events] == list(range(300))
        assert all(isinstance(e, SSEEvent) for e in events)
