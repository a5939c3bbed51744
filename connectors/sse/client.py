"""subscribe(): one event stream over urllib3, kept alive across every failure it can survive.

The request, the status and content-type rules and the read loop live here; parsing is
``parser.py``'s, credentials ``auth.py``'s, transport settings ``options.py``'s, and
whether and when to reconnect ``retry.py``'s: this module only asks. Every message goes
through a ``redact.Redactor``. urllib3's own retries are off except for redirects.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from io import BufferedIOBase
from itertools import chain
from types import EllipsisType
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import (
    HTTPError,
    MaxRetryError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
    SSLError,
)

from connectors.sse.auth import Auth, PreparedRequest
from connectors.sse.chunked import ChunkedBody
from connectors.sse.encoding import decoded, unsupported_encoding
from connectors.sse.errors import (
    SSEConnectionError,
    SSEContentEncodingError,
    SSEContentTypeError,
    SSEHTTPError,
    SSERetryExhausted,
)
from connectors.sse.options import ConnectOptions
from connectors.sse.parser import (
    DecodedEvent,
    NDJSONParser,
    OversizedEvent,
    SSEEvent,
    SSEParser,
)
from connectors.sse.proxy import pool_manager, proxy_for
from connectors.sse.redact import Redactor, redact_logs
from connectors.sse.replay import ReplayFilter
from connectors.sse.retry import Outcome, RetryPolicy, parse_retry_after
from connectors.sse.tokens import AccessToken, TokenEndpointUnavailable, TokenProvider

__all__ = ["Subscription", "SubscriptionLike", "SubscriptionStats", "subscribe"]

log = logging.getLogger(__name__)

# The urllib3 modules that log request lines (with their query strings): a filter on a
# logger sees only its own records, so each gets the redaction filter.
_URLLIB3_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.connection",
    "urllib3.response",
    "urllib3.util.retry",
)
_READ_SIZE = 65536
_SSE_TYPES = frozenset({"text/event-stream"})
_NDJSON_TYPES = frozenset({"application/x-ndjson", "application/json", "application/jsonl"})
# "408, 429 and 5xx retry"; other 4xx are the client's mistake and do not change on retry.
_RETRY_STATUSES = frozenset({408, 429})
_ERROR_BODY_BYTES = 512
_CLEAN_END = "the server ended the response"

Item = SSEEvent | OversizedEvent
_T = TypeVar("_T", ConnectOptions, Auth)


@dataclass
class SubscriptionStats:
    """Counters a subscription keeps, for summaries and tests."""

    connects: int = 0
    reconnects: int = 0
    events: int = 0
    oversized: int = 0
    bytes_received: int = 0
    token_fetches: int = 0
    # Events a server sent again after a reconnect, dropped (ConnectOptions.drop_replays).
    replayed: int = 0
    reconnect_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Reconnect:
    """One connection that ended and the reconnect after it, as ``on_reconnect`` gets it.

    ``at`` is the wall time (seconds since the epoch) the connection ended; ``last_event_id``
    is the id the next connection resumes after (empty: the server sent no ids); ``clean``
    says the response ended at an event boundary, as streams end, rather than by a fault.
    """

    at: float
    reason: str
    last_event_id: str
    delay: float
    attempt: int
    clean: bool


class _Reconnect(Exception):
    """This connection is over; try again (after ``retry_after`` seconds if given)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _StreamEnded(Exception):
    """The server said 204: there is nothing more to read, ever."""


def subscribe(
    url: str,
    *,
    last_event_id: str | None = None,
    retry: RetryPolicy | None = None,
    options: ConnectOptions | None = None,
    auth: Auth | None = None,
    rng: random.Random | None = None,
    logger: logging.Logger | None = None,
    headers: Mapping[str, str] | None = None,
    heartbeat_timeout: float | EllipsisType | None = ...,
    connect_timeout: float | None = None,
    ca_certs: str | None = None,
    verify: bool | None = None,
    max_event_bytes: int | None = None,
    max_redirects: int | None = None,
    bearer_token: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    query_token: str | None = None,
    query_token_param: str | None = None,
    token_provider: TokenProvider | None = None,
    on_reconnect: Callable[[Reconnect], None] | None = None,
) -> Subscription:
    """Subscribe to an event stream; iterate the result for each event, once, in order.

    It reconnects on refused or reset connections, end of body, 408/429/5xx (honouring
    ``Retry-After``) and ``heartbeat_timeout`` seconds without a byte, resuming with
    ``Last-Event-ID``, after the delay ``retry`` decides. It ends on 204 and raises an
    ``SSEError`` for what retrying cannot mend: other 4xx, a wrong content type, TLS
    failures, a redirect loop, or the policy's caps.

    Transport settings come as ``options`` (``ConnectOptions``) and credentials as
    ``auth`` (``Auth``); each keyword of the same name as one of their fields overrides
    it. Credentials never appear in logs, errors or reprs; ``logger`` (default: this
    module's) and urllib3's loggers get a filter that masks them. ``on_reconnect`` is
    called in the reading thread each time a connection has ended, before the next one,
    so every event of the ended connection has been delivered by then.
    """
    transport = {
        "headers": headers,
        "heartbeat_timeout": heartbeat_timeout,
        "connect_timeout": connect_timeout,
        "ca_certs": ca_certs,
        "verify": verify,
        "max_event_bytes": max_event_bytes,
        "max_redirects": max_redirects,
    }
    credentials = {
        "bearer_token": bearer_token,
        "basic_auth": basic_auth,
        "query_token": query_token,
        "query_token_param": query_token_param,
        "token_provider": token_provider,
    }
    return Subscription(
        url,
        options=_with_given(options or ConnectOptions(), transport),
        auth=_with_given(auth or Auth(), credentials),
        retry=retry or RetryPolicy(),
        last_event_id=last_event_id,
        rng=rng,
        logger=logger,
        on_reconnect=on_reconnect,
    )


def _with_given(base: _T, keywords: dict[str, Any]) -> _T:
    # None (and ... for heartbeat_timeout, where None means "wait forever") is "not given".
    given = {k: v for k, v in keywords.items() if v is not None and v is not ...}
    return replace(base, **given) if given else base


class SubscriptionLike(Protocol):
    """What a source reads: a ``Subscription``, or a ``remote.RemoteSubscription``."""

    url: str
    stats: SubscriptionStats
    last_event_id: str

    @property
    def closed(self) -> bool: ...

    @property
    def connected(self) -> bool: ...

    def close(self) -> None: ...

    def batches(self) -> Iterator[Sequence[Item | DecodedEvent]]: ...


class Subscription(Iterator[SSEEvent]):
    """A live subscription: an iterator of events with ``close()`` and resume state.

    ``batches()`` gives the same events a read at a time (with ``OversizedEvent`` markers
    in place of skipped events), which is what a batching consumer wants.
    ``close()`` may be called from another thread; the iteration then ends promptly.
    """

    def __init__(
        self,
        url: str,
        *,
        options: ConnectOptions,
        auth: Auth,
        retry: RetryPolicy,
        last_event_id: str | None = None,
        rng: random.Random | None = None,
        logger: logging.Logger | None = None,
        on_reconnect: Callable[[Reconnect], None] | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"an SSE URL needs http:// or https:// and a host, got {Redactor().url(url)!r}"
            )
        self._log = logger or log
        self._on_reconnect = on_reconnect
        self._options = options
        self._auth = auth
        self._stream_url = url
        self._base_headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            **options.headers,
        }
        environ = os.environ if options.trust_env else {}
        # The forward proxy, if any: its password is a secret like the stream's own.
        self.proxy = proxy_for(url, options.proxy, environ)
        self._proxy_secrets = () if self.proxy is None else self.proxy.secrets()
        # Unlike the stream's (None, or an empty tuple), so that _prepare registers both.
        self._secrets: tuple[str, ...] | None = None
        self._redactor = Redactor(self._proxy_secrets)
        self._fresh_token = False
        # As it is requested (user info moved to a header, a query token added), masked.
        self.url = self._redactor.url(self._prepare().url)
        self._policy = retry
        self._rng = rng or random.Random()
        self._timeout = urllib3.Timeout(
            connect=options.connect_timeout, read=options.heartbeat_timeout
        )
        self._retries = urllib3.Retry(
            total=None, connect=0, read=0, status=0, other=0, redirect=options.max_redirects
        )
        self._pool = pool_manager(
            url,
            self.proxy,
            verify=options.verify,
            ca_certs=options.ca_certs,
            num_pools=2,
            maxsize=1,
        )
        self.last_event_id = last_event_id or ""
        self.retry_ms: int | None = None
        self.stats = SubscriptionStats()
        self._stop = threading.Event()
        self._response_lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._events = chain.from_iterable(self._events_of(batch) for batch in self.batches())
        drop = options.drop_replays
        self._replays = ReplayFilter(drop) if drop else None

    def _prepare(self, token: AccessToken | None = None) -> PreparedRequest:
        """This connect's URL and headers; their secrets join the redaction first."""
        request = self._auth.apply(self._stream_url, self._base_headers, token)
        if request.secrets != self._secrets:
            self._secrets = request.secrets
            secrets = (*request.secrets, *self._proxy_secrets)
            self._redactor = Redactor(secrets)
            redact_logs(secrets, [self._log, *map(logging.getLogger, _URLLIB3_LOGGERS)])
        return request

    def __repr__(self) -> str:
        return (
            f"Subscription(url={self.url!r}, auth={self._auth.kind!r}, "
            f"last_event_id={self.last_event_id!r}, closed={self._stop.is_set()})"
        )

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> SSEEvent:
        return next(self._events)

    @staticmethod
    def _events_of(batch: list[Item]) -> list[SSEEvent]:
        return [item for item in batch if isinstance(item, SSEEvent)]

    def close(self) -> None:
        """Stop: the iteration ends, and a blocked read is woken up."""
        self._stop.set()
        with self._response_lock:
            response = self._response
        if response is not None:
            # Already closed or released: then nothing is blocked on it.
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                response.shutdown()

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    @property
    def connected(self) -> bool:
        """Whether a response is being read now."""
        return self._response is not None

    def batches(self) -> Iterator[list[Item]]:
        """The events, a list per network read, across reconnects, until 204 or close()."""
        backoff = self._policy.start(self._rng)
        stats = self.stats
        try:
            while not self._stop.is_set():
                delivered = stats.events + stats.oversized
                retry_after: float | None = None
                try:
                    response = self._connect()
                    reason = yield from self._read(response)
                except _StreamEnded:
                    self._log.info("%s: the server answered 204, the stream is over", self.url)
                    return
                except _Reconnect as exc:
                    reason, retry_after = exc.reason, exc.retry_after
                if self._stop.is_set():
                    return
                outcome = Outcome(
                    reason,
                    at=time.monotonic(),
                    delivered=stats.events + stats.oversized - delivered,
                    clean=reason == _CLEAN_END,
                    retry_after=retry_after,
                    server_retry_ms=self.retry_ms,
                )
                try:
                    delay, backoff = backoff.after(outcome)
                except SSERetryExhausted as exc:
                    raise SSERetryExhausted(
                        f"{self.url}: {exc}", attempts=exc.attempts, last_reason=exc.last_reason
                    ) from None
                stats.reconnects += 1
                reasons = stats.reconnect_reasons
                reasons[reason] = reasons.get(reason, 0) + 1
                # A response that ended at an event boundary is how streams end; not a fault.
                self._log.log(
                    logging.INFO if outcome.clean else logging.WARNING,
                    "%s: reconnecting in %.2f s (attempt %d): %s%s",
                    self.url,
                    delay,
                    backoff.failures,
                    reason,
                    f"; resuming after event {self.last_event_id!r}" if self.last_event_id else "",
                )
                if self._on_reconnect is not None:
                    self._on_reconnect(
                        Reconnect(
                            time.time(),
                            reason,
                            self.last_event_id,
                            delay,
                            backoff.failures,
                            outcome.clean,
                        )
                    )
                if self._stop.wait(delay):
                    return
        finally:
            self._pool.clear()

    def _connect(self) -> urllib3.BaseHTTPResponse:
        started = time.monotonic()
        request = self._prepare(self._access_token(started))
        headers = request.headers
        if self.last_event_id:
            # "If the event source's last event ID string is not the empty string, set
            # (`Last-Event-ID`, last event ID string, encoded as UTF-8) in request's header list."
            headers["Last-Event-ID"] = self.last_event_id
        try:
            response = self._pool.request(
                "GET",
                request.url,
                headers=headers,
                preload_content=False,
                retries=self._retries,
                timeout=self._timeout,
            )
        except MaxRetryError as exc:
            raise self._classify_connect_failure(exc.reason) from None
        except (ProtocolError, ReadTimeoutError, OSError) as exc:
            raise _Reconnect(self._describe(exc)) from None
        except HTTPError as exc:
            raise self._classify_connect_failure(exc) from None
        status = response.status
        if status == 200:
            content_type = response.headers.get("Content-Type", "")
            mime = content_type.split(";", 1)[0].strip().lower()
            encoding = response.headers.get("Content-Encoding", "")
            if (mime in _SSE_TYPES or mime in _NDJSON_TYPES) and unsupported_encoding(encoding):
                self._discard(response)
                raise SSEContentEncodingError(
                    f"{self.url}: the server sent the stream with Content-Encoding "
                    f"{encoding.strip()!r}, which this client does not decode (it decodes gzip "
                    "and deflate); have the server, or the proxy in between, send it "
                    "uncompressed",
                    content_encoding=encoding,
                    url=self.url,
                )
            if mime in _SSE_TYPES or mime in _NDJSON_TYPES:
                self.stats.connects += 1
                via = "" if self.proxy is None else f" through the proxy {self.proxy.url}"
                self._log.info("%s: connected (%s)%s", self.url, mime, via)
                return response
            snippet = self._error_body(response)
            raise SSEContentTypeError(
                f"{self.url}: expected Content-Type text/event-stream but the server sent "
                f"{content_type or 'no Content-Type'!r}{snippet}; check the URL points at the "
                "stream endpoint",
                content_type=content_type,
                url=self.url,
            )
        if status == 204:
            self._discard(response)
            # "Clients will reconnect if the connection is closed; a client can be told to
            # stop reconnecting using the HTTP 204 No Content response code."
            raise _StreamEnded
        token = request.token
        if status == 401 and token is not None and token.fetched_at < started:
            # The token was fetched before this connect and may have expired on the
            # server's clock: one fresh token, at once. A fresh one refused is fatal.
            self._discard(response)
            self._fresh_token = True
            raise _Reconnect("HTTP 401 with an access token fetched earlier", retry_after=0.0)
        if status in _RETRY_STATUSES or 500 <= status <= 599:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            self._discard(response)
            detail = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
            raise _Reconnect(f"HTTP {status}{detail}", retry_after)
        snippet = self._error_body(response)
        raise SSEHTTPError(
            f"{self.url}: HTTP {status} {response.reason or ''}".rstrip()
            + snippet
            + _status_advice(status, fetched_token=token is not None),
            status=status,
            url=self.url,
        )

    def _access_token(self, now: float) -> AccessToken | None:
        provider = self._auth.token_provider
        if provider is None:
            return None
        try:
            token = provider.access_token(fresh=self._fresh_token)
        except TokenEndpointUnavailable as exc:
            raise _Reconnect(self._redactor.text(str(exc))) from None
        self._fresh_token = False
        if token.fetched_at >= now:
            self.stats.token_fetches += 1
        return token

    def _read(self, response: urllib3.BaseHTTPResponse) -> Generator[list[Item], None, str]:
        """Yield the events of one response; return why it ended."""
        mime = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        parser_type = SSEParser if mime in _SSE_TYPES else NDJSONParser
        parser = parser_type(
            last_event_id=self.last_event_id,
            retry=self.retry_ms,
            max_event_bytes=self._options.max_event_bytes,
        )
        with self._response_lock:
            self._response = response
        stats = self.stats
        oversized_seen = 0
        replays = self._replays
        if replays is not None:
            replays.reconnected()
        try:
            if self._stop.is_set():
                return "closed"
            encoding = response.headers.get("Content-Encoding", "")
            for chunk in decoded(self._chunks(response), encoding):
                stats.bytes_received += len(chunk)
                items = parser.feed(chunk)
                self.last_event_id = parser.last_event_id
                self.retry_ms = parser.retry
                if items and replays is not None:
                    items = replays.admit(items)
                    if replays.dropped > stats.replayed:
                        self._log.info(
                            "%s: dropped %d events the server sent again after the reconnect",
                            self.url,
                            replays.dropped - stats.replayed,
                        )
                        stats.replayed = replays.dropped
                if items:
                    oversized = parser.oversized - oversized_seen
                    oversized_seen = parser.oversized
                    stats.oversized += oversized
                    stats.events += len(items) - oversized
                    yield items
            # A read-to-close body cut mid-event looks like its end; the parser can tell.
            if parser.unfinished:
                return "the server closed the connection in the middle of an event"
            return _CLEAN_END
        except (ProtocolError, ReadTimeoutError, OSError, HTTPError) as exc:
            if self._stop.is_set():
                return "closed"
            raise _Reconnect(self._describe(exc)) from None
        except zlib.error as exc:  # a compressed body cut or corrupt: read it again
            raise _Reconnect(f"the compressed body is corrupt ({exc})") from None
        finally:
            with self._response_lock:
                self._response = None
            response.close()
            response.release_conn()

    @staticmethod
    def _chunks(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        if getattr(response, "chunked", False):
            raw = getattr(getattr(response, "_fp", None), "fp", None)
            if raw is not None and hasattr(raw, "read1"):
                yield from _dechunked(raw)
                return
            # One yield per HTTP chunk, as soon as it is complete.
            yield from response.read_chunked(_READ_SIZE, decode_content=False)
            return
        # read1 returns what has arrived, where read(n) would wait for n bytes.
        while chunk := response.read1(_READ_SIZE, decode_content=False):
            yield chunk

    def _classify_connect_failure(self, reason: Exception | None) -> Exception:
        if isinstance(reason, SSLError) or isinstance(
            getattr(reason, "__context__", None), ssl.SSLError
        ):
            return SSEConnectionError(
                f"{self.url}: TLS failed: {self._describe(reason)}; if the server uses a "
                "private CA, pass ca_certs= (SSE_CA_BUNDLE) with its certificate"
            )
        if isinstance(reason, ResponseError):
            return SSEConnectionError(
                f"{self.url}: {self._describe(reason)} (more than the allowed redirects; "
                "is there a redirect loop?)"
            )
        return _Reconnect(self._describe(reason))

    def _describe(self, exc: BaseException | None) -> str:
        if exc is None:
            return "unknown failure"
        if isinstance(exc, ReadTimeoutError):
            return f"no data for {self._timeout.read_timeout} s (heartbeat timeout)"
        text = str(exc) or type(exc).__name__
        cause = exc.__context__ or exc.__cause__
        if isinstance(exc, ProtocolError) and isinstance(cause, OSError):
            text = f"connection lost ({type(cause).__name__})"
        elif isinstance(exc, ProtocolError):
            first = exc.args[0] if exc.args else None
            detail = first if isinstance(first, str) else type(exc).__name__
            text = f"connection lost mid-response ({detail})"
        return self._redactor.text(text)

    @staticmethod
    def _discard(response: urllib3.BaseHTTPResponse) -> None:
        # Close rather than drain: an error body could be endless.
        response.close()
        response.release_conn()

    def _error_body(self, response: urllib3.BaseHTTPResponse) -> str:
        try:
            body = response.read(_ERROR_BODY_BYTES)
        except (HTTPError, OSError):
            body = b""
        finally:
            self._discard(response)
        text = " ".join(body.decode("utf-8", "replace").split())
        return f" (body: {self._redactor.text(text)!r})" if text else ""


def _dechunked(raw: BufferedIOBase) -> Iterator[bytes]:
    """A chunked body straight from the connection's buffered socket file: what each
    read brings, however many HTTP chunks that is (servers send one per event).

    Errors become urllib3's, as its own ``read_chunked`` raises them.
    """
    body = ChunkedBody()
    while not body.ended:
        try:
            received = raw.read1(_READ_SIZE)
        except TimeoutError as exc:
            raise ReadTimeoutError(None, None, "Read timed out.") from exc  # type: ignore[arg-type]
        except ssl.SSLError as exc:
            raise SSLError(exc) from exc
        except OSError as exc:
            raise ProtocolError(f"Connection broken: {exc!r}", exc) from exc
        if not received:
            raise ProtocolError("Response ended prematurely")
        if piece := body.feed(received):
            yield piece
        if body.error is not None:
            raise body.error


def _status_advice(status: int, *, fetched_token: bool) -> str:
    refused = (
        "it refused a token fetched just now: check the token endpoint's credentials and scope"
        if fetched_token
        else "check the token or user/password you gave"
    )
    advice = {
        401: f"; the server wants credentials: {refused}",
        403: "; the credentials were refused for this stream: check their scope",
        404: "; no stream at this URL: check the path and the project or device id",
        407: "; the forward proxy wants credentials: give them in its URL "
        "(http://user:password@host:port)",
    }
    return advice.get(status, "; a client error that retrying will not change")
