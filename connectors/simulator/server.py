"""The loopback sensor server: serves a SequenceSpec as SSE (or NDJSON), with faults on demand.

It resumes from ``Last-Event-ID`` (event n is a pure function of n), keeps a log of the
requests it got and the events it wrote whole, and runs in a thread on a free port, so
tests and the demo can start one in-process. With ``SimulatorConfig.obelisk`` it is an
Obelisk too: the Catalog's GraphQL endpoint and the streams registered there
(``connectors.simulator.obelisk``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import socket
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from connectors.obelisk_catalog import CATALOG_PATH, STREAMS_PATH
from connectors.obelisk_catalog import TOKEN_PATH as OBELISK_TOKEN_PATH
from connectors.simulator.oauth2 import TOKEN_PATH, OAuth2Server, TokenIssuer
from connectors.simulator.obelisk import (
    HEARTBEAT,
    PREAMBLE,
    REPLACED,
    ObeliskCatalog,
    ObeliskConfig,
    ObeliskStream,
)
from connectors.simulator.sequence import (
    ExpectedReading,
    SequenceSpec,
    dt_event_type,
    expected_readings,
    obelisk_dataset,
    obelisk_event,
    payload,
    ping_payload,
)
from connectors.sse.redact import Redactor

__all__ = ["Faults", "RequestRecord", "SensorSimulator", "SimulatorConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Faults:
    """What goes wrong, and when. Every fault is deterministic, so tests can predict it.

    - ``drop_every``: close each connection after that many events (``drop_mid_event``:
      after writing the first half of the next one).
    - ``statuses``: answer the first connections with these statuses, in order, with
      ``Retry-After: retry_after`` when it is set.
    - ``stall_after``/``stall_seconds``: on the first streaming connection, go silent
      after that many events for that long (longer than a client's heartbeat timeout).
    - ``malformed_every``: events with ``n % k == k - 1`` carry cut-off JSON.
    - ``invalid_utf8_every``: such events carry a Latin-1 byte in an extra text field
      (``"note":"caf\\xe9"``); a correct client reads U+FFFD there and the reading stays.
    - ``oversized_every``: such events carry ``oversized_bytes`` of padding, to go over a
      client's event size limit. Malformed wins over oversized, oversized over invalid.
    - ``trickle_seconds``: write the body one byte at a time, pausing this long between.
    - ``end_after``: the stream has that many events; then it closes, and a request
      resuming at its end gets 204.
    - ``hold_after``: after that many events the connection stays open, sending only
      pings, until the server stops (a stream with nothing new to say).
    - ``pause_after``/``pause_seconds``: on the first streaming connection, after that
      many events send only pings for that long, then go on (a quiet spell).
    """

    drop_every: int = 0
    drop_mid_event: bool = False
    statuses: tuple[int, ...] = ()
    retry_after: float | None = None
    stall_after: int | None = None
    stall_seconds: float = 0.0
    malformed_every: int = 0
    invalid_utf8_every: int = 0
    oversized_every: int = 0
    oversized_bytes: int = 4096
    trickle_seconds: float = 0.0
    end_after: int | None = None
    hold_after: int | None = None
    pause_after: int | None = None
    pause_seconds: float = 0.0

    def malformed(self, n: int) -> bool:
        return _every(self.malformed_every, n)

    def oversized(self, n: int) -> bool:
        return not self.malformed(n) and _every(self.oversized_every, n)

    def invalid_utf8(self, n: int) -> bool:
        return not self.lost(n) and _every(self.invalid_utf8_every, n)

    def lost(self, n: int) -> bool:
        """Whether event ``n`` carries no reading a client can read."""
        return self.malformed(n) or self.oversized(n)


def _every(k: int, n: int) -> bool:
    return k > 0 and n % k == k - 1


@dataclass(frozen=True)
class SimulatorConfig:
    """How the server serves: address, pacing, body framing, auth it requires, faults.

    ``pace`` sends events at ``sequence.rate`` per second of wall time (``pace_rate``
    per second, when set: a day of event time served in minutes); without it the server
    writes as fast as the socket takes. ``chunked`` uses HTTP/1.1 chunked bodies,
    one chunk per ``events_per_write`` events; otherwise a read-to-close body.
    ``line_end`` ends every SSE line (LF, CRLF or CR); ``bom`` starts each body with one.
    ``oauth2`` serves a token endpoint at ``token_url`` and makes the stream take only the
    tokens it issued, ending a stream when the token it was opened with expires.
    ``content_encoding`` compresses each body (flushed at every write, so events arrive
    when sent): ``gzip``, ``deflate`` (zlib), ``raw-deflate`` (sent as ``deflate``, as some
    servers do), or ``br``, named but sent as it is (a coding clients must refuse).
    ``obelisk`` serves Obelisk's Catalog and the streams created there (format obelisk),
    with the token endpoint at Obelisk's path as well.
    """

    sequence: SequenceSpec = field(default_factory=SequenceSpec)
    faults: Faults = field(default_factory=Faults)
    host: str = "127.0.0.1"
    port: int = 0
    pace: bool = True
    pace_rate: float | None = None
    ping_interval: float = 5.0
    chunked: bool = True
    events_per_write: int = 1
    retry_ms: int | None = None
    body: Literal["sse", "ndjson"] = "sse"
    content_type: str | None = None
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    query_token: str | None = None
    oauth2: OAuth2Server | None = None
    line_end: Literal["\n", "\r\n", "\r"] = "\n"
    bom: bool = False
    content_encoding: Literal["gzip", "deflate", "raw-deflate", "br"] | None = None
    obelisk: ObeliskConfig | None = None

    def __post_init__(self) -> None:
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the simulator serves on loopback only, not {self.host!r}")
        if self.events_per_write < 1:
            raise ValueError("events_per_write must be at least 1")
        if self.obelisk is not None and self.sequence.format != "obelisk":
            raise ValueError("an Obelisk simulator serves SequenceSpec(format='obelisk')")


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    simulator: SensorSimulator


class SensorSimulator:
    """A running simulator; use as a context manager or call ``start()``/``stop()``."""

    def __init__(
        self, config: SimulatorConfig | None = None, catalog: ObeliskCatalog | None = None
    ) -> None:
        """``catalog``: with ``config.obelisk``, an Obelisk's catalog to serve, streams
        and their subscriptions included (they outlive a server, as Obelisk's outlive a
        restart of its streaming service); a new one when None."""
        self.config = config or SimulatorConfig()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Cleared by hold(): every stream sends only pings from event _hold_at (None: at
        # once) until release().
        self._flowing = threading.Event()
        self._flowing.set()
        self._hold_at: int | None = None
        self._requests: list[RequestRecord] = []
        self._sent_ids: list[int] = []
        self._connections = 0
        self._streams = 0
        self._sockets: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = self.config.port
        config = self.config
        self.tokens = TokenIssuer(config.oauth2) if config.oauth2 is not None else None
        self.catalog: ObeliskCatalog | None = catalog
        if config.obelisk is not None and catalog is None:
            spec = config.sequence
            datasets = dict.fromkeys(obelisk_dataset(spec, i) for i in range(spec.sensors))
            self.catalog = ObeliskCatalog(config.obelisk, tuple(datasets))
        self._redactor = Redactor(
            [
                config.bearer_token or "",
                config.query_token or "",
                *(config.basic_auth or ())[1:],
                *(config.oauth2.secrets() if config.oauth2 else ()),
            ]
        )

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> SensorSimulator:
        self._stop.clear()
        server = _Server((self.config.host, self._port), _Handler)
        server.simulator = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        log.info("simulator serving %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and cut every open stream; ``start()`` again serves the same port."""
        self._stop.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def hold(self, at: int | None = None) -> None:
        """Hold every stream, open or opened from now on, at its next event (or at event
        ``at``): it sends only pings until ``release()``, then goes on at its pace from
        there. A test's cue: a client that takes its time to start gets the whole paced
        stream all the same, and one that falls behind finds the stream not yet ended."""
        self._hold_at = at
        self._flowing.clear()

    def release(self) -> None:
        """Let held streams go on."""
        self._flowing.set()

    def _holds(self, n: int) -> bool:
        """Whether a stream at event ``n`` is held."""
        at = self._hold_at
        return not self._flowing.is_set() and (at is None or n >= at)

    def __enter__(self) -> SensorSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests read -------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/stream"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self._port}{TOKEN_PATH}"

    @property
    def base_url(self) -> str:
        """The server's root: an Obelisk's ``OBELISK_URL``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def sent_ids(self) -> list[int]:
        """Ids of the events written whole, in the order written, across connections."""
        with self._lock:
            return list(self._sent_ids)

    def expected_readings(self, ids: Iterable[int]) -> list[ExpectedReading]:
        """The readings the events with these ids carried (none for malformed or oversized)."""
        spec, faults = self.config.sequence, self.config.faults
        return [r for n in ids if not faults.lost(n) for r in expected_readings(spec, n)]

    def event_data(self, n: int) -> str:
        """The ``data`` of event ``n`` as a correct client decodes it."""
        return self.event_bytes(n).decode("utf-8", "replace")

    def event_bytes(self, n: int) -> bytes:
        """The ``data`` of event ``n`` as the server writes it."""
        faults = self.config.faults
        text = payload(self.config.sequence, n)
        if faults.malformed(n):
            return text[: len(text) // 2].encode()
        if faults.oversized(n):
            return f'{text[:-1]},"pad":"{"x" * faults.oversized_bytes}"}}'.encode()
        if faults.invalid_utf8(n):
            return text[:-1].encode() + b',"note":"caf\xe9"}'
        return text.encode()

    # -- used by the handler ---------------------------------------------------------
    def _record(self, handler: BaseHTTPRequestHandler, status: int) -> None:
        record = RequestRecord(handler.path, dict(handler.headers.items()), status)
        with self._lock:
            self._requests.append(record)

    def _next_connection(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections - 1

    def _next_stream(self) -> int:
        with self._lock:
            self._streams += 1
            return self._streams - 1

    def _sent(self, ids: list[int]) -> None:
        with self._lock:
            self._sent_ids.extend(ids)

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        # Request lines hold the query token the server checks: mask it like the client does.
        log.debug("simulator: %s", self.server.simulator._redactor.text(format % args))

    def do_GET(self) -> None:
        sim = self.server.simulator
        sim._track(self.connection, True)
        try:
            self._serve(sim)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
            self.close_connection = True
        finally:
            sim._track(self.connection, False)

    def do_POST(self) -> None:
        sim = self.server.simulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 16))
        path = urlsplit(self.path).path
        if sim.catalog is not None and path == CATALOG_PATH:
            self._catalog(sim, sim.catalog, body)
            return
        token_paths = (TOKEN_PATH, OBELISK_TOKEN_PATH) if sim.catalog else (TOKEN_PATH,)
        if sim.tokens is None or path not in token_paths:
            self._answer(sim, 404, {})
            return
        status, answer = sim.tokens.answer(
            body, self.headers.get("Authorization", ""), sim.base_url + path
        )
        self._json(sim, status, answer)

    def _catalog(self, sim: SensorSimulator, catalog: ObeliskCatalog, body: bytes) -> None:
        """Obelisk's Catalog API: GraphQL over POST, for a valid bearer token."""
        if not self._may_read(sim):
            self._json(sim, 401, {"error": "Unauthorized"})
            return
        try:
            document = json.loads(body)
        except ValueError:
            self._json(sim, 400, {"errors": [{"message": "the body is not JSON"}]})
            return
        self._json(sim, 200, catalog.execute(document))

    def _json(self, sim: SensorSimulator, status: int, answer: object) -> None:
        content = json.dumps(answer).encode()
        sim._record(self, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _answer(self, sim: SensorSimulator, status: int, headers: dict[str, str]) -> None:
        sim._record(self, status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authorized(self, config: SimulatorConfig) -> bool:
        got = self.headers.get("Authorization", "")
        if config.bearer_token is not None and got != f"Bearer {config.bearer_token}":
            return False
        if config.basic_auth is not None:
            token = base64.b64encode(":".join(config.basic_auth).encode()).decode()
            if got != f"Basic {token}":
                return False
        if config.query_token is not None:
            query = parse_qs(urlsplit(self.path).query)
            if query.get("token") != [config.query_token]:
                return False
        return True

    def _token_expiry(self, tokens: TokenIssuer) -> float | None:
        """When the bearer token of this request expires; None if it is not one we issued."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return tokens.expires_at(token) if scheme.lower() == "bearer" else None

    def _may_read(self, sim: SensorSimulator) -> bool:
        """The request's credentials are good: a live token of ours, or the configured ones."""
        expiry = self._token_expiry(sim.tokens) if sim.tokens is not None else None
        refused = sim.tokens is not None and (expiry is None or expiry <= time.monotonic())
        return not refused and self._authorized(sim.config)

    def _serve(self, sim: SensorSimulator) -> None:
        config, faults = sim.config, sim.config.faults
        connection = sim._next_connection()
        expiry = self._token_expiry(sim.tokens) if sim.tokens is not None else None
        if not self._may_read(sim):
            self._answer(sim, 401, {"WWW-Authenticate": 'Bearer realm="sensorwax"'})
            return
        if connection < len(faults.statuses):
            status = faults.statuses[connection]
            headers = {}
            if faults.retry_after is not None:
                headers["Retry-After"] = f"{faults.retry_after:g}"
            self._answer(sim, status, headers)
            return
        if sim.catalog is not None:
            self._serve_obelisk(sim, sim.catalog, expiry)
            return
        last_id = self.headers.get("Last-Event-ID", "").strip()
        first = int(last_id) + 1 if last_id.isdigit() else 0
        end = faults.end_after
        wanted = _event_types(self.path) if config.sequence.format == "dt" else None
        if end is not None and (
            first >= end
            # Filtered by event type, nothing wanted is left: the end as well.
            or (
                wanted
                and all(dt_event_type(config.sequence, i) not in wanted for i in range(first, end))
            )
        ):
            self._answer(sim, 204, {})
            return
        sim._record(self, 200)
        self._stream(sim, first, sim._next_stream(), expiry, wanted)

    def _serve_obelisk(
        self, sim: SensorSimulator, catalog: ObeliskCatalog, expiry: float | None
    ) -> None:
        """``GET /api/v3/data/streams/<id>``: a registered stream, from its subscription."""
        path, _, query = self.path.partition("?")
        stream_id = path.removeprefix(STREAMS_PATH + "/")
        if not path.startswith(STREAMS_PATH + "/") or "/" in stream_id:
            self._json(sim, 404, {"error": f"no such path {path}"})
            return
        if "text/event-stream" not in self.headers.get("Accept", ""):
            message = "To start an SSE stream, you must specify 'Accept: text/event-stream'"
            self._json(sim, 406, {"error": message})
            return
        stream = catalog.stream(stream_id)
        if stream is None:
            self._json(sim, 404, {"error": f"Stream {stream_id} not found"})
            return
        backlog = parse_qs(query).get("receiveBacklog") == ["true"]
        spec, end = sim.config.sequence, sim.config.faults.end_after
        with catalog.lock:
            session, first = stream.connect(backlog)
        try:
            if end is not None and not any(
                stream.wants(obelisk_event(spec, i)) for i in range(first, end)
            ):
                self._answer(sim, 204, {})
                return
            sim._record(self, 200)
            self._stream(sim, first, sim._next_stream(), expiry, obelisk=(stream, session))
        finally:
            with catalog.lock:
                if stream.session == session:
                    stream.connected = False

    def _stream(
        self,
        sim: SensorSimulator,
        first: int,
        stream_no: int,
        expiry: float | None = None,
        wanted: frozenset[str] | None = None,
        obelisk: tuple[ObeliskStream, int] | None = None,
    ) -> None:
        """Stream from event ``first``; ``wanted``: DT's event_types filter, if any;
        ``obelisk``: the Obelisk stream and session served (its filter and fields)."""
        config, faults, spec = sim.config, sim.config.faults, sim.config.sequence
        self._obelisk = obelisk
        sse = config.body == "sse"
        self.send_response(200)
        default_type = "text/event-stream; charset=utf-8" if sse else "application/x-ndjson"
        self.send_header("Content-Type", config.content_type or default_type)
        self.send_header("Cache-Control", "no-cache")
        if config.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        coding = config.content_encoding
        self._compressor = None
        if coding is not None:
            self.send_header("Content-Encoding", "deflate" if coding == "raw-deflate" else coding)
            bits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
            if coding in bits or coding == "raw-deflate":
                self._compressor = zlib.compressobj(wbits=bits.get(coding, -zlib.MAX_WBITS))
        self.end_headers()
        ping_interval = _ping_interval(self.path, config.ping_interval)
        if sse and config.bom:
            self._write(b"\xef\xbb\xbf")
        if sse and config.retry_ms is not None:
            self._write(f"retry: {config.retry_ms}\n\n".encode().replace(b"\n", self._eol))
        if obelisk is not None:
            self._write(PREAMBLE)
        started = time.monotonic()
        last_write = started
        n = first
        sent_here = 0
        end = faults.end_after
        while not sim._stop.is_set():
            if obelisk is not None and obelisk[0].session != obelisk[1]:
                self._write(REPLACED)  # removed, ended, or replaced by a newer session
                self._finish()
                return
            if (end is not None and n >= end) or (
                expiry is not None and time.monotonic() >= expiry
            ):
                if obelisk is not None and end is not None and n >= end:
                    assert sim.catalog is not None
                    with sim.catalog.lock:  # in time, all that was sent is acknowledged
                        obelisk[0].acknowledge_all()
                # As the vendors do: the stream ends when the token it was opened with does.
                self._finish()
                return
            if sim._holds(n):
                held_since = time.monotonic()
                while sim._holds(n):  # a hold(at) after a release moves the hold on
                    if sim._stop.wait(0.01):
                        return
                    if time.monotonic() - last_write >= ping_interval:
                        self._write(self._ping(spec, sse))
                        last_write = time.monotonic()
                started += time.monotonic() - held_since  # the pacing goes on from here
                continue  # the end, the expiry and the session, looked at again
            if faults.hold_after is not None and n >= faults.hold_after:
                while not sim._stop.wait(ping_interval):
                    self._write(self._ping(spec, sse))
                return
            if faults.drop_every and sent_here >= faults.drop_every:
                if faults.drop_mid_event:
                    whole = self._frame(sim, n, sse)
                    self._write(whole[: len(whole) // 2])
                self.close_connection = True
                return
            if (
                stream_no == 0
                and faults.stall_after is not None
                and sent_here == faults.stall_after
            ):
                sim._stop.wait(faults.stall_seconds)
                self.close_connection = True
                return
            if (
                stream_no == 0
                and faults.pause_after is not None
                and sent_here == faults.pause_after
            ):
                quiet_until = time.monotonic() + faults.pause_seconds
                while (left := quiet_until - time.monotonic()) > 0:
                    if sim._stop.wait(min(left, ping_interval)):
                        return
                    if time.monotonic() - last_write >= ping_interval:
                        self._write(self._ping(spec, sse))
                        last_write = time.monotonic()
                started += faults.pause_seconds  # the pacing goes on from here
            count = config.events_per_write
            pause_at = faults.pause_after if stream_no == 0 else None
            if pause_at is not None and sent_here < pause_at:
                count = min(count, pause_at - sent_here)
            if end is not None:
                count = min(count, end - n)
            if faults.drop_every:
                count = min(count, faults.drop_every - sent_here)
            if faults.hold_after is not None:
                count = min(count, faults.hold_after - n)
            hold_at = sim._hold_at
            if hold_at is not None and n < hold_at and not sim._flowing.is_set():
                count = min(count, hold_at - n)
            if stream_no == 0 and faults.stall_after is not None and sent_here < faults.stall_after:
                count = min(count, faults.stall_after - sent_here)
            if config.pace:
                due = started + (sent_here + count - 1) / (config.pace_rate or spec.rate)
                while (wait := due - time.monotonic()) > 0:
                    if time.monotonic() - last_write >= ping_interval:
                        self._write(self._ping(spec, sse))
                        last_write = time.monotonic()
                    nap = min(wait, max(ping_interval - (time.monotonic() - last_write), 0.001))
                    if expiry is not None:
                        nap = min(nap, max(expiry - time.monotonic(), 0.001))
                    if sim._stop.wait(nap):
                        return
            ids = list(range(n, n + count))
            if wanted is not None:  # DT's event_types filter: the other events are not sent
                ids = [i for i in ids if dt_event_type(spec, i) in wanted]
            if obelisk is not None:  # the stream's datasets and metrics
                ids = [i for i in ids if obelisk[0].wants(obelisk_event(spec, i))]
            if ids:  # an empty chunk would end the body
                self._write(b"".join(self._frame(sim, i, sse) for i in ids))
                last_write = time.monotonic()
                sim._sent(ids)
                if obelisk is not None:
                    assert sim.catalog is not None  # an Obelisk stream comes from its catalog
                    with sim.catalog.lock:
                        if obelisk[0].session == obelisk[1]:  # a replaced one's do not count
                            obelisk[0].acknowledge(ids)
            n += count
            sent_here += count

    @property
    def _eol(self) -> bytes:
        return self.server.simulator.config.line_end.encode()

    def _frame(self, sim: SensorSimulator, n: int, sse: bool) -> bytes:
        obelisk = getattr(self, "_obelisk", None)
        if obelisk is not None:  # no ids: Obelisk resumes by its subscription
            return b"data: %s\n\n" % self._obelisk_data(sim, obelisk[0], n)
        data = sim.event_bytes(n)
        if sse:
            eol = self._eol
            return b"id: %d%sdata: %s%s%s" % (n, eol, data, eol, eol)
        return data + b"\n"

    def _obelisk_data(self, sim: SensorSimulator, stream: ObeliskStream, n: int) -> bytes:
        event = obelisk_event(sim.config.sequence, n)
        shown = stream.body(event)
        if shown == event:  # as the sequence writes it, faults and all
            return sim.event_bytes(n)
        return json.dumps(shown, separators=(",", ":")).encode()

    def _ping(self, spec: SequenceSpec, sse: bool) -> bytes:
        if getattr(self, "_obelisk", None) is not None:
            return HEARTBEAT
        eol = self._eol if sse else b"\n"
        if spec.format == "dt":
            text = ping_payload(spec, int(time.time() * 1000)).encode()
            return b"data: %s%s%s" % (text, eol, eol) if sse else text + eol
        return b": ping" + eol + eol if sse else eol

    def _write(self, data: bytes) -> None:
        sim = self.server.simulator
        trickle = sim.config.faults.trickle_seconds
        if not trickle:
            self._send(data)
            return
        for i in range(len(data)):
            self._send(data[i : i + 1])
            self.wfile.flush()
            if sim._stop.wait(trickle):
                return

    def _send(self, data: bytes) -> None:
        compressor = getattr(self, "_compressor", None)
        if compressor is not None:
            data = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self.server.simulator.config.chunked:
            data = b"%x\r\n%s\r\n" % (len(data), data)
        self.wfile.write(data)

    def _finish(self) -> None:
        compressor = getattr(self, "_compressor", None)
        if compressor is not None:
            tail = compressor.flush()
            self._compressor = None
            self._send(tail)
        if self.server.simulator.config.chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


def _event_types(path: str) -> frozenset[str] | None:
    """Disruptive Technologies' ``?event_types=temperature&event_types=touch`` filter."""
    values = parse_qs(urlsplit(path).query).get("event_types")
    return frozenset(values) if values else None


def _ping_interval(path: str, default: float) -> float:
    """Disruptive Technologies lets the client set the ping interval: ``?ping_interval=10s``."""
    values = parse_qs(urlsplit(path).query).get("ping_interval")
    if not values:
        return default
    text = values[0].removesuffix("s")
    try:
        return max(float(text), 0.05)
    except ValueError:
        return default
