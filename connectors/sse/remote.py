"""RemoteSubscription: ``subscribe()`` run in a process of its own, read like a Subscription.

A job's reader thread shares the interpreter lock with the dataflow: the socket reads,
the chunk framing and the SSE parser take about a third of a busy job's CPU. In a child
process they run on another core, and the job only unpickles each read's events (with
``decode``, what the job's own decode made of them: the jobs decode there too). The
child gets the subscription's settings (pickled: the retry policy, transport options
and credentials, a token provider without its pool or cached token) and sends back, in
one ordered pipe, each read's events with the subscription's counters, its reconnects
(for ``on_reconnect``), its log records (handled by the job's own loggers, so they are
formatted, filtered and masked as the job's are), and its end or its error.

The child ends when the job closes the subscription, or dies: it watches the pipe the
job holds open, so a killed job leaves no reader behind. Backpressure is the pipe's: a
job that stops reading stops the child, whose socket then holds the server.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from connectors.sse.auth import Auth
from connectors.sse.client import Item, Reconnect, Subscription, SubscriptionStats, subscribe
from connectors.sse.errors import SSEConnectionError, SSEError
from connectors.sse.options import ConnectOptions
from connectors.sse.parser import DecodedEvent, SSEEvent
from connectors.sse.retry import RetryPolicy

__all__ = ["Decode", "RemoteSubscription"]

# A read's items as two columns: their ids, and what the decode made of each (one per
# item, in order). Columns, not a DecodedEvent per item: the child made one per event,
# then took them apart again to pickle them, 0.5 of its 1.7 us a flat event past the
# parser.
Decode = Callable[[list[Item]], tuple[list[str], Sequence[object]]]

log = logging.getLogger(__name__)

# The loggers whose levels the child takes from the job's (and those set below them), so
# that it sends only the records the job would keep.
_LEVELS_OF = ("connectors", "urllib3")
_CLOSE_WAIT = 5.0
# The items sent as columns, rebuilt from them by tuple.__new__.
_NAMED_TUPLES = frozenset({SSEEvent, DecodedEvent})


@dataclass(frozen=True)
class _Params:
    url: str
    last_event_id: str | None
    retry: RetryPolicy | None
    options: ConnectOptions | None
    auth: Auth | None
    levels: dict[str, int]
    decode: Decode | None


@dataclass(frozen=True)
class _State:
    """The child's subscription as of a message."""

    stats: SubscriptionStats
    last_event_id: str
    retry_ms: int | None
    connected: bool


class RemoteSubscription:
    """``subscribe(url, ...)`` in a child process; ``batches()``, ``close()``, ``stats``,
    ``last_event_id``, ``url``, ``closed`` and ``connected`` as a ``Subscription`` has them.
    ``on_reconnect`` is called in the thread that iterates ``batches()``, in stream order.
    ``decode`` (picklable: a module's function, or a ``functools.partial`` of one) runs in
    the child on each read's items, and ``batches()`` then gives a ``DecodedEvent`` per
    item, of the id and the value it returns for it: work that need not share this
    process's interpreter lock either."""

    def __init__(
        self,
        url: str,
        *,
        last_event_id: str | None = None,
        retry: RetryPolicy | None = None,
        options: ConnectOptions | None = None,
        auth: Auth | None = None,
        on_reconnect: Callable[[Reconnect], None] | None = None,
        decode: Decode | None = None,
    ) -> None:
        # Built here, never read: the same checks and the same masked URL as in-process.
        local = subscribe(url, last_event_id=last_event_id, retry=retry, options=options, auth=auth)
        self.url = local.url
        self.last_event_id = local.last_event_id
        self.retry_ms: int | None = None
        self.stats = SubscriptionStats()
        self.connected = False
        self._on_reconnect = on_reconnect
        self._closed = threading.Event()
        params = _Params(url, last_event_id, retry, options, auth, _levels(), decode)
        try:
            settings = pickle.dumps(params)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SSEError(
                f"{self.url}: the stream's settings cannot go to a reader process ({exc}); "
                "read it in a thread (SSE_READER=thread)"
            ) from None
        to_child, events_out = os.pipe()
        settings_in, to_parent = os.pipe()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "connectors.sse.remote", str(events_out), str(settings_in)],
            pass_fds=(events_out, settings_in),
            # Its output is the pipe: a job may write its records to stdout.
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(_import_path())},
        )
        os.close(events_out)
        os.close(settings_in)
        self._events = Connection(to_child, writable=False)
        # Held open for the child's life: its end of file is the child's cue to go.
        self._control = Connection(to_parent, readable=False)
        self._control.send_bytes(settings)
        self._control_lock = threading.Lock()
        log.info("%s: read by process %d", self.url, self._process.pid)

    @property
    def pid(self) -> int:
        """The reading process's."""
        return self._process.pid

    def __repr__(self) -> str:
        return (
            f"RemoteSubscription(url={self.url!r}, pid={self.pid}, "
            f"last_event_id={self.last_event_id!r}, closed={self.closed})"
        )

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        """Stop the child; ``batches()`` then ends."""
        self._closed.set()
        with self._control_lock:
            if not self._control.closed:
                self._control.close()
        try:
            self._process.wait(_CLOSE_WAIT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def batches(self) -> Iterator[list[Item] | list[DecodedEvent]]:
        """The events (or what ``decode`` made of them), a list per network read of the
        child, until 204 or close()."""
        events, new = self._events, tuple.__new__
        try:
            while True:
                try:
                    kind, payload, state = pickle.loads(events.recv_bytes())
                except (EOFError, OSError):
                    if self.closed:
                        return
                    raise SSEConnectionError(
                        f"{self.url}: the reader process ended without a word "
                        f"(exit status {self._process.wait()})"
                    ) from None
                if state is not None:
                    self._take(state)
                if kind == "events":
                    # Columns, made named tuples again here: a few lists pickle in a
                    # seventh of the time the named tuples take (about 1.1 us an event).
                    cls, columns = payload
                    yield [new(cls, fields) for fields in zip(*columns, strict=True)]
                elif kind == "items":
                    yield payload
                elif kind == "log":
                    _handle(payload)
                elif kind == "reconnect":
                    if self._on_reconnect is not None:
                        self._on_reconnect(payload)
                elif kind == "end":
                    return
                else:
                    raise payload
        finally:
            self.close()
            events.close()

    def _take(self, state: _State) -> None:
        # In place: whoever holds ``stats`` sees the counters move, as with a Subscription.
        vars(self.stats).update(vars(state.stats))
        self.last_event_id = state.last_event_id
        self.retry_ms = state.retry_ms
        self.connected = state.connected


def _levels() -> dict[str, int]:
    """The job's levels for the loggers a subscription writes to, root's first."""
    levels = {"": logging.getLogger().getEffectiveLevel()}
    levels |= {name: logging.getLogger(name).getEffectiveLevel() for name in _LEVELS_OF}
    for name, logger in logging.root.manager.loggerDict.items():
        if isinstance(logger, logging.Logger) and logger.level and name.startswith(_LEVELS_OF):
            levels[name] = logger.level
    return levels


def _import_path() -> list[str]:
    # The child imports this package from where the job did, installed or not.
    here = str(Path(__file__).resolve().parents[2])
    given = os.environ.get("PYTHONPATH", "")
    return [here, *(given.split(os.pathsep) if given else [])]


def _handle(fields: dict[str, Any]) -> None:
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


class _Sender:
    """The child's side of the pipe: one message at a time, whichever thread sends."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.subscription: Subscription | None = None

    def send(self, kind: str, payload: object) -> None:
        sub = self.subscription
        state = (
            None
            if sub is None
            else _State(sub.stats, sub.last_event_id, sub.retry_ms, sub.connected)
        )
        message = pickle.dumps((kind, payload, state), pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self._connection.send_bytes(message)

    def error(self, exc: BaseException) -> None:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            exc = SSEError(f"{type(exc).__name__}: {exc}")
        self.send("error", exc)


class _Forward(logging.Handler):
    """Log records to the job, their message already formatted (and masked by the
    subscription's filters, which ran before any handler)."""

    def __init__(self, sender: _Sender) -> None:
        super().__init__()
        self._sender = sender

    def emit(self, record: logging.LogRecord) -> None:
        fields = dict(record.__dict__)
        fields["msg"], fields["args"] = record.getMessage(), None
        if record.exc_info:
            fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
        fields["exc_info"] = None
        try:
            self._sender.send("log", fields)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            self.handleError(record)


def _watch(control: Connection) -> None:
    # The job closed its end, or died: either way nobody reads this stream any more.
    with contextlib.suppress(EOFError, OSError):
        control.recv_bytes()
    os._exit(0)


def _serve(events_fd: int, control_fd: int) -> None:
    sender = _Sender(Connection(events_fd, readable=False))
    control = Connection(control_fd, writable=False)
    logging.getLogger().addHandler(_Forward(sender))
    try:
        # In the try: a decode whose module cannot be imported here is the job's error.
        params: _Params = pickle.loads(control.recv_bytes())
        threading.Thread(target=_watch, args=(control,), name="job watch", daemon=True).start()
        for name, level in params.levels.items():
            logging.getLogger(name).setLevel(level)
        sub = subscribe(
            params.url,
            last_event_id=params.last_event_id,
            retry=params.retry,
            options=params.options,
            auth=params.auth,
            on_reconnect=lambda reconnect: sender.send("reconnect", reconnect),
        )
        sender.subscription = sub
        decode = params.decode
        for batch in sub.batches():
            if decode is not None:
                ids, decoded = decode(batch)
                if len(ids) != len(decoded) or len(ids) != len(batch):
                    raise SSEError(
                        f"the reader's decode gave {len(ids)} ids and {len(decoded)} "
                        f"values for {len(batch)} events: it must give one of each per event"
                    )
                sender.send("events", (DecodedEvent, (ids, decoded)))
                continue
            items: list[Any] = batch
            kinds = {type(item) for item in items}
            if len(kinds) == 1 and (cls := kinds.pop()) in _NAMED_TUPLES:
                sender.send("events", (cls, tuple(map(list, zip(*items, strict=True)))))
            else:  # an oversized event's marker among the events, or nothing
                sender.send("items", items)
        sender.send("end", None)
    except BaseException as exc:
        sender.error(exc)


def main(argv: list[str]) -> None:
    """The child: ``python -m connectors.sse.remote EVENTS_FD CONTROL_FD``."""
    # The job decides when its reader stops: Ctrl+C reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As in a job (dataflows/runtime.py): a parser makes objects by the thousand and
    # reference counting frees them; the collector at 700 would run every few reads.
    gc.set_threshold(50_000, 20, 20)
    with contextlib.suppress(BrokenPipeError, EOFError):  # then the job is gone
        _serve(int(argv[1]), int(argv[2]))
    os._exit(0)


if __name__ == "__main__":
    # Through the module by its name, so what the child pickles names its classes there.
    from connectors.sse import remote

    remote.main(sys.argv)
