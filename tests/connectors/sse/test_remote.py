"""RemoteSubscription against the simulator: the very events, counters and reconnects of
an in-process subscription, its errors typed, its logs through this process's loggers and
masked, tokens fetched by the child, and a child that never outlives its reader."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import types

import pytest

from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from connectors.sse import (
    Auth,
    ClientCredentials,
    ConnectOptions,
    DecodedEvent,
    Reconnect,
    RetryPolicy,
    SSEError,
    SSEHTTPError,
    SSERetryExhausted,
    subscribe,
)
from connectors.sse.client import Item
from connectors.sse.remote import RemoteSubscription
from tests.helpers.oracle import ROOT
from tests.helpers.processes import alive
from tests.helpers.secrets import assert_clean
from tests.helpers.servers import StartSim, free_port
from tests.helpers.streams import FAST_RETRY, data_lengths, ids_alone, unpaced
from tests.helpers.waiting import wait_for

FAULTS = {
    "drops mid-event": Faults(end_after=3000, drop_every=701, drop_mid_event=True),
    "statuses, oversized": Faults(
        end_after=2000, statuses=(503, 429), oversized_every=97, oversized_bytes=3000
    ),
    "invalid UTF-8, drops": Faults(end_after=2000, invalid_utf8_every=13, drop_every=500),
}


def _read_all(sub: object) -> list[Item]:
    return [item for batch in sub.batches() for item in batch]  # type: ignore[attr-defined]


@pytest.mark.parametrize("faults", list(FAULTS.values()), ids=list(FAULTS))
def test_the_same_items_counters_and_reconnects_as_in_process(
    simulator: StartSim, faults: Faults
) -> None:
    # A simulator each: its faults (the statuses) count its own connections.
    sim, twin = (simulator(unpaced(faults, events_per_write=7)) for _ in range(2))
    here: list[Reconnect] = []
    options = ConnectOptions(max_event_bytes=2048)
    local = subscribe(sim.url, on_reconnect=here.append, retry=FAST_RETRY, options=options)
    expected = _read_all(local)
    there: list[Reconnect] = []
    remote = RemoteSubscription(
        twin.url, retry=FAST_RETRY, options=options, on_reconnect=there.append
    )
    assert _read_all(remote) == expected
    for counter in ("connects", "reconnects", "events", "oversized", "reconnect_reasons"):
        assert getattr(remote.stats, counter) == getattr(local.stats, counter), counter
    assert [(r.reason, r.last_event_id) for r in there] == [
        (r.reason, r.last_event_id) for r in here
    ]
    assert remote.last_event_id == local.last_event_id == str(faults.end_after - 1)
    wait_for(lambda: not alive(remote.pid), "the child to end with its stream")


def test_a_decode_runs_in_the_child_and_its_items_come_instead(simulator: StartSim) -> None:
    faults = Faults(end_after=600, drop_every=250, oversized_every=41, oversized_bytes=3000)
    sim, twin = (simulator(unpaced(faults)) for _ in range(2))
    ids, lengths = data_lengths(
        _read_all(subscribe(sim.url, retry=FAST_RETRY, max_event_bytes=2048))  # type: ignore[arg-type]
    )
    expected = [DecodedEvent(i, n) for i, n in zip(ids, lengths, strict=True)]
    options = ConnectOptions(max_event_bytes=2048)
    remote = RemoteSubscription(twin.url, retry=FAST_RETRY, options=options, decode=data_lengths)
    got = _read_all(remote)
    assert got == expected
    assert {type(item) for item in got} == {DecodedEvent}
    assert None in [item.decoded for item in got]  # type: ignore[union-attr]


def test_a_decode_that_gives_a_value_short_is_an_error_here(simulator: StartSim) -> None:
    sim = simulator(unpaced())
    remote = RemoteSubscription(sim.url, decode=ids_alone)
    with pytest.raises(SSEError, match=r"decode gave \d+ ids and 0 values for \d+ events"):
        _read_all(remote)
    wait_for(lambda: not alive(remote.pid), "the child to end")


def test_a_decode_the_child_cannot_import_is_an_error_here(
    simulator: StartSim, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = simulator(unpaced())
    gone = types.ModuleType("sensorwax_nowhere_else")
    exec("def decode(events):\n    return events\n", gone.__dict__)
    monkeypatch.setitem(sys.modules, gone.__name__, gone)
    remote = RemoteSubscription(sim.url, decode=gone.decode)
    with pytest.raises(ModuleNotFoundError, match="sensorwax_nowhere_else"):
        _read_all(remote)
    wait_for(lambda: not alive(remote.pid), "the child to end")


def test_it_resumes_after_the_id_it_is_given(simulator: StartSim) -> None:
    sim = simulator(unpaced(Faults(end_after=100)))
    remote = RemoteSubscription(sim.url, last_event_id="59", retry=FAST_RETRY)
    assert [int(item.id) for item in _read_all(remote)] == list(range(60, 100))
    assert sim.requests[0].headers["Last-Event-ID"] == "59"


def test_a_fatal_error_arrives_typed_with_its_fields_and_no_secret(simulator: StartSim) -> None:
    sim = simulator(unpaced(bearer_token="right-token-123"))
    remote = RemoteSubscription(sim.url, auth=Auth(bearer_token="wrong-token-456"))
    with pytest.raises(SSEHTTPError) as caught:
        _read_all(remote)
    assert caught.value.status == 401
    assert caught.value.url == sim.url
    assert "HTTP 401" in str(caught.value)
    assert_clean(repr(caught.value) + str(caught.value.__dict__), ["wrong-token-456"])


def test_the_retry_policys_cap_arrives_with_its_counts() -> None:
    port = free_port()  # nobody listens: every connect is refused
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.02, jitter=0.0, max_attempts=3)
    remote = RemoteSubscription(f"http://127.0.0.1:{port}/stream", retry=policy)
    with pytest.raises(SSERetryExhausted) as caught:
        _read_all(remote)
    assert caught.value.attempts == 3
    assert "refused" in caught.value.last_reason


def test_the_childs_logs_come_through_this_processs_loggers_masked(
    simulator: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulator(unpaced(Faults(end_after=300, drop_every=100), query_token="tk-0a9b8c7d"))
    caplog.set_level(logging.INFO)
    remote = RemoteSubscription(sim.url, retry=FAST_RETRY, auth=Auth(query_token="tk-0a9b8c7d"))
    assert len(_read_all(remote)) == 300
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    client = [m for name, _, m in messages if name == "connectors.sse.client"]
    assert sum("connected (text/event-stream)" in m for m in client) == 3
    assert sum("reconnecting" in m for m in client) == 3
    assert ("connectors.sse.remote", "INFO", f"{remote.url}: read by process {remote.pid}") in (
        messages
    )
    assert_clean(str(messages) + caplog.text, ["tk-0a9b8c7d"])
    assert "token=***" in remote.url


def test_a_level_set_on_one_logger_reaches_the_child(
    simulator: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulator(unpaced(Faults(end_after=20)))
    caplog.set_level(logging.WARNING)
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    _read_all(RemoteSubscription(sim.url, retry=FAST_RETRY))
    names = {r.name for r in caplog.records}
    assert "connectors.sse.client" in names
    assert "connectors.sse.remote" not in names  # this process's own, at WARNING


def test_debug_records_stay_in_the_child_unless_this_process_wants_them(
    simulator: StartSim, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulator(unpaced(Faults(end_after=20)))
    caplog.set_level(logging.WARNING)
    _read_all(RemoteSubscription(sim.url, retry=FAST_RETRY))
    assert not [r for r in caplog.records if r.name.startswith(("connectors", "urllib3"))]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    _read_all(RemoteSubscription(sim.url, retry=FAST_RETRY))
    assert [r for r in caplog.records if r.name.startswith("urllib3")]


def test_a_token_provider_goes_to_the_child_without_its_token(simulator: StartSim) -> None:
    secret = "cs-5e1f0a9b3d7c"
    config = SimulatorConfig(
        sequence=SequenceSpec(sensors=3),
        faults=Faults(end_after=200, drop_every=80),
        pace=False,
        oauth2=OAuth2Server(clients={"sensorwax": secret}, token_lifetime=3600),
    )
    sim = simulator(config)
    provider = ClientCredentials(sim.token_url, "sensorwax", secret)
    provider.access_token()  # cached here: the child must fetch its own, once
    remote = RemoteSubscription(sim.url, retry=FAST_RETRY, auth=Auth(token_provider=provider))
    assert len(_read_all(remote)) == 200
    assert remote.stats.token_fetches == 1
    assert len(sim.tokens.issued) == 2  # type: ignore[union-attr]
    assert_clean(repr(remote), [secret, *sim.tokens.issued])  # type: ignore[union-attr]


def test_settings_that_cannot_go_to_a_process_are_named(simulator: StartSim) -> None:
    sim = simulator(unpaced())
    provider = ClientCredentials(sim.token_url, "id", "cs-1f2e3d", clock=lambda: 0.0)
    with pytest.raises(SSEError, match=r"cannot go to a reader process .*SSE_READER=thread"):
        RemoteSubscription(sim.url, auth=Auth(token_provider=provider))


def test_close_ends_the_iteration_and_the_child(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(sensors=2, rate=50)))
    remote = RemoteSubscription(sim.url, retry=FAST_RETRY)
    got: list[Item] = []
    reader = threading.Thread(target=lambda: got.extend(_read_all(remote)))
    reader.start()
    wait_for(lambda: remote.stats.events >= 5, "the first events")
    remote.close()
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert remote.closed and not alive(remote.pid)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_a_reader_that_dies_takes_its_child_along(simulator: StartSim, signum: int) -> None:
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(sensors=2, rate=20)))
    script = (
        "import sys\n"
        "from connectors.sse.remote import RemoteSubscription\n"
        "sub = RemoteSubscription(sys.argv[1])\n"
        "print(sub.pid, flush=True)\n"
        "for batch in sub.batches():\n"
        "    pass\n"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", script, sim.url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    child = int(reader.stdout.readline())
    wait_for(lambda: len(sim.sent_ids) >= 3, "the child to read the stream")
    reader.send_signal(signum)
    reader.wait(timeout=20)
    wait_for(lambda: not alive(child), "the child to go with its reader")
