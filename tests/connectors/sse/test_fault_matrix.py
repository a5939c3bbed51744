"""The fault matrix: every way a stream fails, each run with every way of passing a secret.

Each fault asserts the exact events that come out (or the exact fatal error), against a
real server on 127.0.0.1. Each runs three times, with a bearer token, basic auth and a
token query parameter, with DEBUG logging on; afterwards no captured log line, exception
text (the whole printed traceback) or repr holds the secret. docs/guarantees.md's fault matrix
table lists these rows. What the job makes of the data faults (dead letters, output
files, and how the job stops on a fatal one) is checked by the job tests at the end.
"""

from __future__ import annotations

import base64
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.sse import (
    SSEConnectionError,
    SSEContentTypeError,
    SSEError,
    SSEEvent,
    SSEHTTPError,
    Subscription,
    subscribe,
)
from tests.helpers.oracle import (
    assert_same_aggregates,
    expected_aggregates,
    load_aggregates,
    read_records,
    run_job,
    sent_readings,
)
from tests.helpers.secrets import PASSWORD, SECRET, WAYS, assert_clean
from tests.helpers.servers import (
    ScriptedServer,
    StartScripted,
    StartSim,
    Step,
    free_port,
    sse_head,
    status_head,
    tls_context,
)
from tests.helpers.streams import FAST_RETRY, ids_of, resumed_from

AUTH_WAYS = ["bearer", "basic", "query"]


@dataclass
class Case:
    """One fault run with one way of passing a secret; collects texts to check for it."""

    way: str
    start_simulator: StartSim
    start_scripted: StartScripted
    ca: trustme.CA
    tmp_path: Path
    subscriptions: list[Subscription] = field(default_factory=list)
    error_texts: list[str] = field(default_factory=list)

    def sim(self, faults: Faults, *, start: bool = True, **config: object) -> SensorSimulator:
        """A simulator requiring this case's credentials, serving unpaced."""
        settings = SimulatorConfig(
            sequence=SequenceSpec(sensors=5),
            faults=faults,
            pace=False,
            **{**WAYS[self.way][2], **config},  # type: ignore[arg-type]
        )
        return self.start_simulator(settings) if start else SensorSimulator(settings)

    def scripted(self, scripts: list[list[Step]], tls: bool = False) -> ScriptedServer:
        return self.start_scripted(scripts, tls_context(self.ca) if tls else None)

    def subscribe(self, url: str, *, wrong: bool = False, **options: object) -> Subscription:
        credentials = WAYS[self.way][1 if wrong else 0]
        sub = subscribe(url, retry=FAST_RETRY, **{**credentials, **options})  # type: ignore[arg-type]
        self.subscriptions.append(sub)
        return sub

    def read(self, url: str, **options: object) -> list[SSEEvent]:
        return list(self.subscribe(url, **options))

    def fatal(self, error: type[SSEError], url: str, **options: object) -> SSEError:
        with pytest.raises(error) as raised:
            self.read(url, **options)
        self.error_texts.append("".join(traceback.format_exception(raised.value)))
        return raised.value

    def assert_credentials_sent(self, server: ScriptedServer, index: int = 0) -> None:
        """The secret was in play: the scripted server got it the way this case passes it."""
        if self.way == "query":
            assert f"token={SECRET}" in server.request_lines[index]
        else:
            assert server.requests[index]["authorization"] == self.authorization

    @property
    def authorization(self) -> str:
        if self.way == "basic":
            return "Basic " + base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
        return f"Bearer {SECRET}"


# -- the rows of the matrix ----------------------------------------------------------
FAULTS: dict[str, Callable[[Case], None]] = {}


def fault(name: str) -> Callable[[Callable[[Case], None]], Callable[[Case], None]]:
    def register(check: Callable[[Case], None]) -> Callable[[Case], None]:
        FAULTS[name] = check
        return check

    return register


def _drops(chunked: bool, mid_event: bool) -> Callable[[Case], None]:
    def check(case: Case) -> None:
        sim = case.sim(
            Faults(drop_every=7, drop_mid_event=mid_event, end_after=30), chunked=chunked
        )
        events = case.read(sim.url)
        assert ids_of(events) == list(range(30))
        assert [e.data for e in events] == [sim.event_data(n) for n in range(30)]
        assert resumed_from(sim) == [None, "6", "13", "20", "27", "29"]

    return check


for _framing, _chunked in (("chunked", True), ("read-to-close", False)):
    for _where, _mid in (("between events", False), ("mid-event", True)):
        fault(f"dropped {_where}, {_framing}")(_drops(_chunked, _mid))


def _status(status: int, retry_after: float | None = None) -> Callable[[Case], None]:
    def check(case: Case) -> None:
        sim = case.sim(Faults(statuses=(status,), retry_after=retry_after, end_after=5))
        assert ids_of(case.read(sim.url)) == list(range(5))
        assert [r.status for r in sim.requests] == [status, 200, 204]

    return check


for _code in (500, 502, 408, 429):
    fault(f"HTTP {_code}")(_status(_code))
fault("HTTP 503 with Retry-After")(_status(503, retry_after=0.05))


@fault("stall longer than the heartbeat timeout")
def _stall(case: Case) -> None:
    sim = case.sim(Faults(stall_after=3, stall_seconds=5, end_after=6))
    sub = case.subscribe(sim.url, heartbeat_timeout=0.3)
    assert ids_of(list(sub)) == list(range(6))
    assert resumed_from(sim) == [None, "2", "5"]
    assert any("heartbeat timeout" in reason for reason in sub.stats.reconnect_reasons)


@fault("trickle, one byte every 2 ms")
def _trickle(case: Case) -> None:
    sim = case.sim(Faults(trickle_seconds=0.002, end_after=3))
    # Every byte restarts the heartbeat clock: a slow stream is not a dead one.
    sub = case.subscribe(sim.url, heartbeat_timeout=0.25)
    events = list(sub)
    assert ids_of(events) == [0, 1, 2]
    assert [e.data for e in events] == [sim.event_data(n) for n in range(3)]
    assert sub.stats.reconnects == 1  # only the end of the stream


@fault("connection refused, then the server comes back")
def _refused(case: Case) -> None:
    port = free_port()
    sim = case.sim(Faults(end_after=5), start=False, port=port)
    comeback = threading.Timer(0.3, sim.start)
    comeback.start()
    try:
        url = f"http://127.0.0.1:{port}/stream"
        sub = case.subscribe(url)
        assert ids_of(list(sub)) == list(range(5))
    finally:
        comeback.join()
        sim.stop()
    assert any("refused" in reason.lower() for reason in sub.stats.reconnect_reasons)


@fault("204 No Content")
def _no_content(case: Case) -> None:
    sim = case.sim(Faults(end_after=0))
    assert case.read(sim.url) == []
    assert [r.status for r in sim.requests] == [204]


@fault("401 (wrong credentials): fatal")
def _unauthorized(case: Case) -> None:
    sim = case.sim(Faults(end_after=5))
    error = case.fatal(SSEHTTPError, sim.url, wrong=True)
    assert isinstance(error, SSEHTTPError) and error.status == 401
    assert "HTTP 401" in str(error) and "check the" in str(error)
    assert len(sim.requests) == 1


@fault("403: fatal")
def _forbidden(case: Case) -> None:
    body = b'{"error": "no access to project"}'
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    server = case.scripted([[Step(head + body)]])
    error = case.fatal(SSEHTTPError, server.url)
    assert isinstance(error, SSEHTTPError) and error.status == 403
    assert "no access to project" in str(error)
    assert len(server.requests) == 1
    case.assert_credentials_sent(server)


@fault("wrong content type: fatal")
def _content_type(case: Case) -> None:
    sim = case.sim(Faults(end_after=5), content_type="text/html; charset=utf-8")
    error = case.fatal(SSEContentTypeError, sim.url)
    assert "'text/html; charset=utf-8'" in str(error)


@fault("malformed JSON")
def _malformed(case: Case) -> None:
    # The transport passes the data on untouched; the job makes it a dead letter.
    sim = case.sim(Faults(malformed_every=3, end_after=9))
    events = case.read(sim.url)
    assert [e.data for e in events] == [sim.event_data(n) for n in range(9)]
    for n in (2, 5, 8):
        with pytest.raises(json.JSONDecodeError):
            json.loads(events[n].data)


@fault("event over the size limit")
def _oversized(case: Case) -> None:
    sim = case.sim(Faults(oversized_every=3, oversized_bytes=3000, end_after=9))
    sub = case.subscribe(sim.url, max_event_bytes=2000)
    events = list(sub)
    assert ids_of(events) == [0, 1, 3, 4, 6, 7]
    assert [e.data for e in events] == [sim.event_data(n) for n in ids_of(events)]
    assert sub.stats.oversized == 3


@fault("invalid UTF-8")
def _invalid_utf8(case: Case) -> None:
    sim = case.sim(Faults(invalid_utf8_every=2, end_after=6))
    events = case.read(sim.url)
    assert ids_of(events) == list(range(6))
    notes = [json.loads(e.data).get("note") for e in events]
    assert notes == [None, "caf\ufffd"] * 3


@fault("BOM and CRLF line ends")
def _bom_crlf(case: Case) -> None:
    # A BOM starts every body, so also the ones after each drop.
    sim = case.sim(Faults(drop_every=4, end_after=10), bom=True, line_end="\r\n")
    events = case.read(sim.url)
    assert ids_of(events) == list(range(10))
    assert [e.data for e in events] == [sim.event_data(n) for n in range(10)]


@fault("CR line ends")
def _cr(case: Case) -> None:
    sim = case.sim(Faults(end_after=6), line_end="\r")
    assert [e.data for e in case.read(sim.url)] == [sim.event_data(n) for n in range(6)]


@fault("redirect to another host: no Authorization there")
def _cross_origin(case: Case) -> None:
    target = case.scripted([[Step(sse_head() + b"id: 1\ndata: a\n\n")], [Step(status_head(204))]])
    elsewhere = target.url.replace("127.0.0.1", "localhost")
    redirect = case.scripted([[Step(status_head(307, f"Location: {elsewhere}\r\n"))]])
    assert [e.data for e in case.read(redirect.url)] == ["a"]
    case.assert_credentials_sent(redirect)
    for request, line in zip(target.requests, target.request_lines, strict=True):
        assert "authorization" not in request
        assert SECRET not in line
    # Reconnects go back to the URL subscribed to, with the credentials.
    assert len(redirect.requests) == 2
    case.assert_credentials_sent(redirect, 1)


@fault("redirect loop: fatal")
def _redirect_loop(case: Case) -> None:
    loop = case.scripted([[Step(status_head(307, "Location: /stream\r\n"))]])
    error = case.fatal(SSEConnectionError, loop.url, max_redirects=3)
    assert "redirect" in str(error)
    assert len(loop.requests) == 4


@fault("TLS, self-signed: refused by default, accepted with the CA bundle")
def _tls(case: Case) -> None:
    stream = [[Step(sse_head() + b"id: 1\ndata: secure\n\n")], [Step(status_head(204))]]
    server = case.scripted(stream, tls=True)
    error = case.fatal(SSEConnectionError, server.url)
    assert "TLS failed" in str(error) and "ca_certs" in str(error)
    bundle = case.tmp_path / "ca.pem"
    case.ca.cert_pem.write_to_path(str(bundle))
    assert [e.data for e in case.read(server.url, ca_certs=str(bundle))] == ["secure"]
    case.assert_credentials_sent(server, len(server.requests) - 2)


@pytest.mark.parametrize("way", AUTH_WAYS)
@pytest.mark.parametrize("name", FAULTS)
def test_fault(
    name: str,
    way: str,
    simulator: StartSim,
    scripted: StartScripted,
    ca: trustme.CA,
    tmp_path: Path,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    case = Case(way, simulator, scripted, ca, tmp_path)
    FAULTS[name](case)
    texts = [debug_logs.text, *case.error_texts, *(repr(s) for s in case.subscriptions)]
    for text in texts:
        assert_clean(text, [SECRET, PASSWORD])
    assert case.subscriptions, "the row subscribed"


# -- what the job writes through the data faults -------------------------------------
JOB_SECRETS = {
    "bearer": ({"SSE_BEARER_TOKEN": SECRET}, {"bearer_token": SECRET}),
    "basic": ({"SSE_BASIC_AUTH": f"ada:{PASSWORD}"}, {"basic_auth": ("ada", PASSWORD)}),
    "query": ({"SSE_QUERY_TOKEN": SECRET}, {"query_token": SECRET}),
}


@pytest.mark.slow
@pytest.mark.parametrize("way", AUTH_WAYS)
def test_job_secrets_through_data_faults(simulator: StartSim, tmp_path: Path, way: str) -> None:
    """The job, with DEBUG logs, through drops, every retried status, a stall, malformed,
    oversized and invalid UTF-8 events over CRLF with a BOM: exact windows and dead
    letters, and no secret in its output, its logs or any file it wrote; wrong
    credentials stop it, also cleanly."""
    env, required = JOB_SECRETS[way]
    events = 900
    faults = Faults(
        drop_every=211,
        drop_mid_event=True,
        statuses=(503, 500, 502, 408, 429),
        retry_after=0.05,
        stall_after=150,
        stall_seconds=5,
        malformed_every=97,
        oversized_every=89,
        oversized_bytes=3000,
        invalid_utf8_every=13,
        end_after=events,
    )
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=50),
            faults=faults,
            pace=False,
            events_per_write=3,
            bom=True,
            line_end="\r\n",
            **required,  # type: ignore[arg-type]
        )
    )
    settings = {
        "SSE_URL": sim.url,
        "SSE_MAX_EVENT_BYTES": "2000",
        "SSE_HEARTBEAT_TIMEOUT": "300ms",
        "SSE_RETRY_INITIAL": "10ms",
        "SSE_RETRY_MAX": "50ms",
        "LOG_LEVEL": "DEBUG",
        **env,
    }
    run = run_job("dataflows.sensor_stats", OUTPUT=str(tmp_path), **settings)
    assert run.returncode == 0, run.stderr

    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    got = load_aggregates(read_records(tmp_path, "aggregates"))
    assert_same_aggregates(got, expected)
    letters = [json.loads(x) for x in read_records(tmp_path, "dead_letters")]
    by_reason = {
        reason: sorted(int(d["event_id"]) for d in letters if d["reason"] == reason)
        for reason in {d["reason"] for d in letters}
    }
    assert by_reason == {
        "invalid_json": [n for n in range(events) if faults.malformed(n)],
        "oversized": [n for n in range(events) if faults.oversized(n)],
    }
    assert "HTTP 503" in run.stderr and "GET /stream" in run.stderr  # DEBUG was on
    assert "heartbeat timeout" in run.stderr

    wrong = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(tmp_path / "wrong"),
        **{**settings, **{k: v + "-x" for k, v in env.items()}},
    )
    assert wrong.returncode != 0
    assert "HTTP 401" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    for text in [run.stdout, run.stderr, wrong.stdout, wrong.stderr, *written]:
        assert_clean(text, [SECRET, PASSWORD])


def _fatal_servers(case: Case) -> dict[str, tuple[str, str]]:
    """Per fatal fault: (URL, what the job's one-line message must say)."""
    body = b'{"error": "no access"}'
    forbidden = case.scripted(
        [[Step(f"HTTP/1.1 403 Forbidden\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)]]
    )
    html = case.sim(Faults(end_after=5), content_type="text/html")
    loop = case.scripted([[Step(status_head(307, "Location: /stream\r\n"))]])
    tls = case.scripted([[Step(sse_head() + b"data: a\n\n")]], tls=True)
    return {
        "403": (forbidden.url, "HTTP 403 Forbidden"),
        "content type": (html.url, "'text/html'"),
        "redirect loop": (loop.url, "redirect"),
        "self-signed TLS": (tls.url, "TLS failed"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("way", AUTH_WAYS)
def test_job_fatal_faults_stop_it_cleanly_with_no_secret(
    simulator: StartSim,
    scripted: StartScripted,
    ca: trustme.CA,
    tmp_path: Path,
    way: str,
) -> None:
    """403, a wrong content type, a redirect loop and an untrusted certificate, through
    the job with DEBUG logs: exit 1, one line naming the cause, no traceback, no secret."""
    env, _ = JOB_SECRETS[way]
    case = Case(way, simulator, scripted, ca, tmp_path)
    for fault_name, (url, says) in _fatal_servers(case).items():
        out = tmp_path / fault_name.replace(" ", "_")
        run = run_job(
            "dataflows.sensor_stats",
            SSE_URL=url,
            OUTPUT=str(out),
            LOG_LEVEL="DEBUG",
            timeout=60,
            **env,
        )
        assert run.returncode == 1, (fault_name, run.stderr[-2000:])
        stopped = [line for line in run.stderr.splitlines() if "ERROR dataflows: stopped: " in line]
        assert len(stopped) == 1 and says in stopped[0], (fault_name, run.stderr[-2000:])
        assert "Traceback" not in run.stderr, fault_name
        written = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()]
        for text in [run.stdout, run.stderr, *written]:
            assert_clean(text, [SECRET, PASSWORD])
