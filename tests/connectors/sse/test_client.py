"""subscribe() against real servers on 127.0.0.1: every failure kind, exact ids and headers."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.sse import (
    RetryPolicy,
    SSEConnectionError,
    SSEContentTypeError,
    SSEEvent,
    SSEHTTPError,
    SSERetryExhausted,
    subscribe,
)
from tests.helpers.servers import (
    StartScripted,
    StartSim,
    Step,
    free_port,
    sse_head,
    status_head,
)
from tests.helpers.sse_cases import RULES
from tests.helpers.streams import FAST_RETRY, ids_of, resumed_from, unpaced


# -- the happy path ------------------------------------------------------------------
def test_reads_every_event_once_and_ends_on_204(simulator: StartSim) -> None:
    sim = simulator(unpaced())
    events = list(subscribe(sim.url, retry=FAST_RETRY))
    assert ids_of(events) == list(range(40))
    assert [e.data for e in events] == [sim.event_data(n) for n in range(40)]
    first = sim.requests[0].headers
    assert first["Accept"] == "text/event-stream"
    assert first["Cache-Control"] == "no-cache"
    assert "Last-Event-ID" not in first
    # The stream ends with a close, then a resume at the end that gets 204.
    assert resumed_from(sim) == [None, "39"]
    assert [r.status for r in sim.requests] == [200, 204]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "read-to-close"])
@pytest.mark.parametrize("mid_event", [False, True], ids=["between-events", "mid-event"])
def test_resumes_after_drops_with_nothing_lost_or_doubled(
    simulator: StartSim, chunked: bool, mid_event: bool
) -> None:
    sim = simulator(
        unpaced(Faults(drop_every=7, drop_mid_event=mid_event, end_after=40), chunked=chunked)
    )
    sub = subscribe(sim.url, retry=FAST_RETRY)
    events = list(sub)
    assert ids_of(events) == list(range(40))
    assert resumed_from(sim) == [None, "6", "13", "20", "27", "34", "39"]
    assert sub.stats.reconnects == 6
    assert sub.stats.events == 40
    # The log says how each connection ended; the last one is the stream's normal end.
    # A chunked body cut anywhere lacks its final chunk, so urllib3 sees it end early.
    cut = {
        (True, True): "connection lost mid-response (Response ended prematurely)",
        (True, False): "connection lost mid-response (Response ended prematurely)",
        (False, True): "the server closed the connection in the middle of an event",
        (False, False): "the server ended the response",
    }[(chunked, mid_event)]
    assert sub.stats.reconnect_reasons.get(cut, 0) >= 5


def test_starts_from_a_given_last_event_id(simulator: StartSim) -> None:
    sim = simulator(unpaced())
    events = list(subscribe(sim.url, last_event_id="30", retry=FAST_RETRY))
    assert ids_of(events) == list(range(31, 40))
    assert resumed_from(sim)[0] == "30"


def test_an_event_is_yielded_as_soon_as_its_blank_line_arrives(scripted: StartScripted) -> None:
    hold = threading.Event()
    server = scripted(
        [
            [
                Step(sse_head() + b"id: 1\ndata: first\n\n", wait=hold),
                Step(b"id: 2\ndata: second\n\n"),
            ]
        ]
    )
    sub = subscribe(server.url, retry=FAST_RETRY)
    # The server holds the connection open after one event; a client that waited for a
    # buffer to fill would block here until the 10 s wait runs out.
    assert next(sub) == SSEEvent("message", "first", "1")
    assert not hold.is_set()
    hold.set()
    assert next(sub) == SSEEvent("message", "second", "2")
    sub.close()


def test_an_event_in_a_chunk_is_yielded_before_the_next_chunk(simulator: StartSim) -> None:
    sim = simulator(
        SimulatorConfig(sequence=SequenceSpec(sensors=2, rate=4), faults=Faults(end_after=3))
    )
    sub = subscribe(sim.url, retry=FAST_RETRY)
    first = next(sub)
    # Paced at 4 events/s, the second event is not yet written when the first arrives.
    assert first.id == "0"
    assert 1 not in sim.sent_ids
    assert ids_of(list(sub)) == [1, 2]


def test_reads_newline_delimited_json(simulator: StartSim) -> None:
    sim = simulator(unpaced(Faults(end_after=12), body="ndjson"))
    sub = subscribe(sim.url, retry=RetryPolicy(max_attempts=0))
    events: list[SSEEvent] = []
    # NDJSON has no ids to resume from: the simulator starts over on each connection,
    # so read one connection's worth and stop.
    for event in sub:
        events.append(event)
        if len(events) == 12:
            sub.close()
    assert [e.data for e in events] == [sim.event_data(n) for n in range(12)]
    assert {e.event for e in events} == {"message"}


# -- statuses ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(simulator: StartSim, status: int) -> None:
    sim = simulator(unpaced(Faults(statuses=(status, status), end_after=5)))
    events = list(subscribe(sim.url, retry=FAST_RETRY))
    assert ids_of(events) == list(range(5))
    assert [r.status for r in sim.requests] == [status, status, 200, 204]


def test_retry_after_sets_the_delay(simulator: StartSim, caplog: pytest.LogCaptureFixture) -> None:
    sim = simulator(unpaced(Faults(statuses=(503,), retry_after=0.3, end_after=3)))
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    started = time.monotonic()
    policy = RetryPolicy(initial_delay=0.01, max_delay=1.0, jitter=0.0)
    events = list(subscribe(sim.url, retry=policy))
    assert ids_of(events) == [0, 1, 2]
    assert time.monotonic() - started >= 0.3
    assert "reconnecting in 0.30 s (attempt 1): HTTP 503 (Retry-After 0.3 s)" in caplog.text


def test_retry_after_is_capped_by_the_policy(
    scripted: StartScripted, caplog: pytest.LogCaptureFixture
) -> None:
    server = scripted([[Step(status_head(429, "Retry-After: 3600\r\n"))], [Step(status_head(204))]])
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    assert list(subscribe(server.url, retry=FAST_RETRY)) == []
    assert "reconnecting in 0.05 s (attempt 1): HTTP 429 (Retry-After 3600 s)" in caplog.text


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
def test_client_errors_are_fatal_at_once(
    simulator: StartSim, scripted: StartScripted, status: int
) -> None:
    server = scripted([[Step(status_head(status))]])
    with pytest.raises(SSEHTTPError) as raised:
        list(subscribe(server.url, retry=FAST_RETRY))
    assert raised.value.status == status
    assert f"HTTP {status}" in str(raised.value)
    assert server.url in str(raised.value)
    assert len(server.requests) == 1


def test_the_error_body_is_quoted(scripted: StartScripted) -> None:
    body = b'{"error": "token expired"}'
    head = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    server = scripted([[Step(head + body)]])
    with pytest.raises(SSEHTTPError, match="token expired") as raised:
        list(subscribe(server.url))
    assert "check the token" in str(raised.value)


def test_a_wrong_content_type_names_what_came(scripted: StartScripted) -> None:
    server = scripted(
        [[Step(sse_head(content_type="text/html; charset=utf-8") + b"<html>login</html>")]]
    )
    with pytest.raises(SSEContentTypeError, match="'text/html; charset=utf-8'") as raised:
        list(subscribe(server.url))
    assert raised.value.content_type == "text/html; charset=utf-8"
    assert "<html>login</html>" in str(raised.value)


def test_content_type_parameters_are_accepted(scripted: StartScripted) -> None:
    server = scripted(
        [
            [Step(sse_head(content_type="Text/Event-Stream ; charset=UTF-8") + b"data: a\n\n")],
            [Step(status_head(204))],
        ]
    )
    assert [e.data for e in subscribe(server.url, retry=FAST_RETRY)] == ["a"]


def test_204_on_the_first_request_ends_without_events(scripted: StartScripted) -> None:
    server = scripted([[Step(status_head(204))]])
    assert list(subscribe(server.url)) == []


# -- the transport -------------------------------------------------------------------
def test_a_stall_longer_than_the_heartbeat_timeout_reconnects(simulator: StartSim) -> None:
    sim = simulator(unpaced(Faults(stall_after=5, stall_seconds=5, end_after=10)))
    sub = subscribe(sim.url, heartbeat_timeout=0.3, retry=FAST_RETRY)
    assert ids_of(list(sub)) == list(range(10))
    assert resumed_from(sim) == [None, "4", "9"]
    assert any("heartbeat timeout" in reason for reason in sub.stats.reconnect_reasons)


def test_pings_keep_a_quiet_stream_alive(simulator: StartSim) -> None:
    # Two events a second, a ping every 0.1 s: a 0.35 s heartbeat timeout never fires.
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=2, rate=2), faults=Faults(end_after=3), ping_interval=0.1
        )
    )
    sub = subscribe(sim.url, heartbeat_timeout=0.35, retry=FAST_RETRY)
    assert ids_of(list(sub)) == [0, 1, 2]
    assert sub.stats.reconnects == 1  # only the end of the stream
    assert resumed_from(sim) == [None, "2"]


def test_connection_refused_until_the_server_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    caplog.set_level(logging.WARNING, logger="connectors.sse.client")
    sim = SensorSimulator(unpaced(Faults(end_after=5), port=port))
    timer = threading.Timer(0.4, sim.start)
    timer.start()
    try:
        events = list(subscribe(f"http://127.0.0.1:{port}/stream", retry=FAST_RETRY))
    finally:
        timer.join()
        sim.stop()
    assert ids_of(events) == list(range(5))
    assert "refused" in caplog.text.lower()


def test_retry_caps_raise_with_the_last_failure() -> None:
    port = free_port()
    policy = RetryPolicy(initial_delay=0.01, max_delay=0.01, jitter=0.0, max_attempts=3)
    with pytest.raises(
        SSERetryExhausted,
        match=r"gave up after 3 reconnect attempts in a row .*RetryPolicy\.max_attempts=3",
    ) as raised:
        list(subscribe(f"http://127.0.0.1:{port}/stream", retry=policy))
    assert raised.value.attempts == 3
    assert "refused" in raised.value.last_reason.lower()


def test_the_time_cap_raises() -> None:
    port = free_port()
    policy = RetryPolicy(initial_delay=0.05, max_delay=0.05, jitter=0.0, max_elapsed=0.3)
    started = time.monotonic()
    with pytest.raises(SSERetryExhausted, match="max_elapsed"):
        list(subscribe(f"http://127.0.0.1:{port}/stream", retry=policy))
    assert time.monotonic() - started < 5


def test_retry_field_and_id_carry_over_reconnects(
    scripted: StartScripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    server = scripted(
        [
            [Step(sse_head() + b"retry: 250\nid: 5\ndata: a\n\nid: 9\n\n")],
            [Step(sse_head() + b": nothing this time\n\n")],
            [Step(sse_head() + b"data: b\n\n")],
            [Step(status_head(204))],
        ]
    )
    events = list(subscribe(server.url, retry=RetryPolicy(initial_delay=5, jitter=0.0)))
    assert events == [SSEEvent("message", "a", "5", 250), SSEEvent("message", "b", "9", 250)]
    # The id-only event moved the last event ID to 9; the retry field set the delay.
    assert [r.get("last-event-id") for r in server.requests] == [None, "9", "9", "9"]
    assert "reconnecting in 0.25 s (attempt 1)" in caplog.text
    assert "reconnecting in 0.50 s (attempt 2)" in caplog.text


def test_a_connection_that_delivered_an_event_resets_the_backoff(
    scripted: StartScripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    # Cut after one event each time, as a proxy cuts long requests: never a growing wait.
    worked = [Step(sse_head() + b"id: 1\ndata: a\n\n")]
    nothing = [Step(sse_head())]
    server = scripted([worked, worked, worked, nothing, nothing, worked, [Step(status_head(204))]])
    policy = RetryPolicy(initial_delay=0.01, max_delay=1.0, jitter=0.0, max_attempts=3)
    assert len(list(subscribe(server.url, retry=policy))) == 4
    delays = [
        (r.getMessage().split("reconnecting in ")[1].split(":")[0], r.levelname)
        for r in caplog.records
        if "reconnecting in" in r.getMessage()
    ]
    # Three ends after an event, two connects in a row without one (growing), then an
    # event again; the third attempt in a row is within max_attempts=3, which counts
    # attempts since the last event.
    assert delays == [
        ("0.01 s (attempt 1)", "INFO"),
        ("0.01 s (attempt 1)", "INFO"),
        ("0.01 s (attempt 1)", "INFO"),
        ("0.02 s (attempt 2)", "INFO"),
        ("0.04 s (attempt 3)", "INFO"),
        ("0.01 s (attempt 1)", "INFO"),
    ]


def test_a_fault_is_a_warning_and_a_clean_end_is_not(
    scripted: StartScripted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="connectors.sse.client")
    server = scripted(
        [
            [Step(sse_head() + b"id: 1\ndata: a\n\nid: 2\ndata: cut")],
            [Step(sse_head() + b"id: 2\ndata: b\n\n")],
            [Step(status_head(204))],
        ]
    )
    assert len(list(subscribe(server.url, retry=FAST_RETRY))) == 2
    levels = {r.getMessage().split(": ", 2)[-1]: r.levelname for r in caplog.records}
    cut = "the server closed the connection in the middle of an event; resuming after event '1'"
    assert levels[cut] == "WARNING"
    assert levels["the server ended the response; resuming after event '2'"] == "INFO"


def test_close_from_another_thread_wakes_a_blocked_read(scripted: StartScripted) -> None:
    server = scripted([[Step(sse_head() + b"data: a\n\n", sleep=30)]])
    sub = subscribe(server.url, heartbeat_timeout=60)
    assert next(sub).data == "a"
    threading.Timer(0.2, sub.close).start()
    started = time.monotonic()
    assert list(sub) == []
    assert time.monotonic() - started < 5
    assert sub.closed


# -- redirects -----------------------------------------------------------------------
def test_a_same_origin_redirect_keeps_credentials(scripted: StartScripted) -> None:
    server = scripted(
        [
            [Step(status_head(307, "Location: /moved\r\n"))],
            [Step(sse_head() + b"data: a\n\n")],
            [Step(status_head(204))],
        ]
    )
    events = list(subscribe(server.url, bearer_token="s3cret-bearer", retry=FAST_RETRY))
    assert [e.data for e in events] == ["a"]
    assert server.request_lines[1] == "GET /moved HTTP/1.1"
    assert server.requests[1]["authorization"] == "Bearer s3cret-bearer"
    # Reconnects go to the URL subscribed to, as a browser's EventSource does.
    assert server.request_lines[2] == "GET /stream HTTP/1.1"


@pytest.mark.parametrize("other", ["localhost", "127.0.0.1"], ids=["other-host", "other-port"])
def test_a_cross_origin_redirect_drops_authorization(scripted: StartScripted, other: str) -> None:
    target = scripted([[Step(sse_head() + b"data: a\n\n")], [Step(status_head(204))]])
    other_host = target.url.replace("127.0.0.1", other)
    redirect = scripted([[Step(status_head(302, f"Location: {other_host}\r\n"))]])
    events = list(subscribe(redirect.url, bearer_token="s3cret-bearer", retry=FAST_RETRY))
    assert [e.data for e in events] == ["a"]
    assert redirect.requests[0]["authorization"] == "Bearer s3cret-bearer"
    assert "authorization" not in target.requests[0]


def test_a_redirect_loop_is_fatal(scripted: StartScripted) -> None:
    loop = scripted([[Step(status_head(307, "Location: /stream\r\n"))]])
    with pytest.raises(SSEConnectionError, match="redirect"):
        list(subscribe(loop.url, max_redirects=3))
    assert len(loop.requests) == 4


# -- arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "127.0.0.1:8000/stream", "http:///stream"])
def test_a_bad_url_is_refused_up_front(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        subscribe(url)


def test_bearer_and_basic_together_are_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        subscribe("http://127.0.0.1:1/s", bearer_token="a", basic_auth=("u", "p"))


# -- the spec rules through a real socket, a byte per write --------------------------
@pytest.mark.parametrize(("stream", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rules_hold_over_a_socket_written_a_byte_at_a_time(
    scripted: StartScripted, stream: bytes, expected: list[SSEEvent]
) -> None:
    bytewise = [Step(stream[i : i + 1], sleep=0.0005) for i in range(len(stream))]
    server = scripted([[Step(sse_head()), *bytewise], [Step(status_head(204))]])
    assert list(subscribe(server.url, retry=FAST_RETRY)) == expected
