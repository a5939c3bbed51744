"""What every job shares on the way in: settings, streams to readings and dead letters, the summary.

``read_stream`` gives a job its readings and dead letters from the configured streams
(or from an embedded simulator when ``SSE_URL`` is unset); ``settings`` loads settings
and turns a bad one into a clear message and exit status 2. Outputs are ``outputs.py``'s.
"""

from __future__ import annotations

import atexit
import gc
import json
import logging
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from types import TracebackType
from typing import TypeVar

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.operators import KeyedStream

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.source import SSESource, StreamItem
from connectors.sse import SSEError, Subscription, subscribe
from connectors.sse.client import SubscriptionStats
from dataflows.config import ConfigError, DemoConfig, JobConfig, load_config
from dataflows.readings import (
    PARSERS,
    DeadLetter,
    FormatParser,
    Reading,
    ReadingRow,
    parse_by_key,
    parse_item,
)
from dataflows.windows import iso

__all__ = [
    "RunSummary",
    "job_config",
    "late_letter",
    "read_stream",
    "read_stream_by_key",
    "settings",
    "setup_process",
    "start_job",
]

T = TypeVar("T")

log = logging.getLogger("dataflows")


class RunSummary:
    """Counters across the workers of this process, logged once when the process exits."""

    def __init__(self, job: str) -> None:
        self._job = job
        self._lock = threading.Lock()
        self.events = 0
        self.reconnects = 0
        self.readings = 0
        self.dead_letters: Counter[str] = Counter()
        self._started = time.monotonic()

    def stream_closed(self, name: str, stats: SubscriptionStats) -> None:
        with self._lock:
            self.events += stats.events + stats.oversized
            self.reconnects += stats.reconnects

    def count(self, readings: int, dead: Iterable[str]) -> None:
        with self._lock:
            self.readings += readings
            self.dead_letters.update(dead)

    def line(self) -> str:
        with self._lock:
            dead = ", ".join(f"{reason} {n}" for reason, n in sorted(self.dead_letters.items()))
            return (
                f"{self._job} summary: {self.events} events, {self.readings} readings, "
                f"{sum(self.dead_letters.values())} dead letters ({dead or 'none'}), "
                f"{self.reconnects} reconnects, {time.monotonic() - self._started:.1f} s"
                + (f", peak RSS {peak / 2**20:.0f} MiB" if (peak := peak_rss_bytes()) else "")
            )

    def log(self) -> None:
        log.info("%s", self.line())


def peak_rss_bytes(pid: int | None = None) -> int | None:
    """A process's peak resident set size (this one's by default), from /proc (Linux);
    None where there is no VmHWM or the process has gone.

    Not ``ru_maxrss``: that also counts the parent's pages between fork and exec, so a job
    started from a large process would report the parent's size.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# The cyclic garbage collector's first-generation threshold. A job makes a few tuples per
# reading and frees them by reference counting within the batch; at Python's default of
# 700 the collector ran every few hundred readings and took about a tenth of a job's CPU
# (a quarter in a two-process cluster, where unpickling makes more objects). Cycles are
# rare here (the traceback of a rejected event) and are still collected, after 50,000
# allocations rather than 700.
GC_THRESHOLD = (50_000, 20, 20)


def setup_process() -> None:
    """Logging to stderr, SIGTERM (Kubernetes, systemd) stopping the job like Ctrl+C, and
    the garbage collector's thresholds."""
    gc.set_threshold(*GC_THRESHOLD)
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        # UTC ISO 8601, so log lines line up with the event times in the output.
        formatter = logging.Formatter(
            "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S",
        )
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
        logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(), handlers=[handler])
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _report_stream_failure


def _report_stream_failure(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """A stream that cannot go on (401, TLS, a redirect loop...) ends the job with its
    message in one log line; Bytewax wraps it in a runtime error whose traceback says
    nothing a user can act on. Any other error keeps its full traceback."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, SSEError):
        cause = cause.__cause__ or cause.__context__
    if cause is None or os.environ.get("SENSORWAX_TRACEBACK"):
        sys.__excepthook__(kind, error, trace)
        return
    log.error("stopped: %s (SENSORWAX_TRACEBACK=1 prints the traceback)", cause)


def start_job(name: str) -> RunSummary:
    """Set up the process for a job and return its summary, logged when the process exits."""
    setup_process()
    summary = RunSummary(name)
    atexit.register(summary.log)
    return summary


def settings(load: Callable[[], T]) -> T:
    """Run a settings loader; on a mistake, print the message and exit with status 2."""
    try:
        return load()
    except ConfigError as exc:
        print(f"sensorwax: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def job_config() -> JobConfig:
    """The shared settings from the environment (streams, windows, output, simulator)."""
    return settings(load_config)


def _start_demo_simulator(demo: DemoConfig) -> str:
    config = SimulatorConfig(
        sequence=SequenceSpec(
            sensors=demo.sensors,
            rate=demo.rate,
            seed=demo.seed,
            start_ms=int(time.time()) * 1000,
            format=demo.format,
        ),
        faults=Faults(
            drop_every=demo.drop_every,
            drop_mid_event=True,
            malformed_every=demo.malformed_every,
            end_after=demo.events,
        ),
    )
    simulator = SensorSimulator(config).start()
    atexit.register(simulator.stop)
    log.info(
        "SSE_URL is unset: serving %d simulated sensors (%d events, %s) at %s",
        demo.sensors,
        demo.events,
        demo.format,
        simulator.url,
    )
    return simulator.url


def sse_source(job: JobConfig, summary: RunSummary) -> SSESource:
    """The configured streams (or the demo simulator) as one SSE source, a partition each."""
    stream = job.stream
    streams = stream.stream_names()
    if job.demo is not None:
        streams = {"simulator": _start_demo_simulator(job.demo)}

    def open_stream(url: str, last_event_id: str | None) -> Subscription:
        return subscribe(
            url,
            last_event_id=last_event_id,
            retry=stream.retry,
            options=stream.options,
            auth=stream.auth,
        )

    return SSESource(streams, open_stream, on_close=summary.stream_closed)


def _parse_batch(
    items: list[StreamItem], parser: FormatParser, summary: RunSummary
) -> list[Reading | DeadLetter]:
    out: list[Reading | DeadLetter] = []
    for item in items:
        out.extend(parse_item(item, parser))
    dead = [x.reason for x in out if isinstance(x, DeadLetter)]
    summary.count(len(out) - len(dead), dead)
    return out


def read_stream(
    flow: Dataflow, job: JobConfig, summary: RunSummary, source: Source[StreamItem] | None = None
) -> tuple[Stream[Reading], Stream[DeadLetter]]:
    """The configured streams (or ``source``) as readings, and dead letters for the rest."""
    return _read_parsed(flow, job, summary, source, _parse_batch)


def _read_parsed(
    flow: Dataflow,
    job: JobConfig,
    summary: RunSummary,
    source: Source[StreamItem] | None,
    parse_batch: Callable[..., list[T | DeadLetter]],
) -> tuple[Stream[T], Stream[DeadLetter]]:
    """The source's batches through ``parse_batch``, split into what it made and dead letters."""
    items = op.input("sse", flow, source if source is not None else sse_source(job, summary))
    parser = PARSERS[job.stream.format]
    parsed = op.flat_map_batch("parse", items, partial(parse_batch, parser=parser, summary=summary))
    split = op.branch("is_parsed", parsed, _is_parsed)
    return split.trues, split.falses  # type: ignore[return-value]


def _is_parsed(item: object) -> bool:
    return not isinstance(item, DeadLetter)


def _parse_batch_by_key(
    items: list[StreamItem], parser: FormatParser, summary: RunSummary
) -> list[tuple[str, list[ReadingRow]] | DeadLetter]:
    groups, dead = parse_by_key(items, parser)
    summary.count(sum(map(len, groups.values())), [x.reason for x in dead])
    return [*groups.items(), *dead]


def read_stream_by_key(
    flow: Dataflow, job: JobConfig, summary: RunSummary, source: Source[StreamItem] | None = None
) -> tuple[KeyedStream[list[ReadingRow]], Stream[DeadLetter]]:
    """Like ``read_stream``, with each batch's readings grouped by ``key_of``: one item
    per key and batch (``ReadingRow`` s in arrival order) rather than one per reading, so
    the steps after it pay the runtime's cost per item a few times a batch, and readings
    that go to another process are cheap to pickle."""
    return _read_parsed(flow, job, summary, source, _parse_batch_by_key)


def late_letter(
    item: tuple[str, tuple[int, Reading]], lateness: timedelta, summary: RunSummary
) -> str:
    """A reading the window dropped as late, as a dead letter line."""
    _, (_, reading) = item
    summary.count(0, ["late"])
    data = json.dumps(
        {
            "sensor_id": reading.sensor_id,
            "metric": reading.metric,
            "ts": iso(reading.ts),
            "value": reading.value,
        },
        separators=(",", ":"),
    )
    detail = f"more than {lateness.total_seconds():g} s older than a reading already seen"
    return DeadLetter("late", detail, data, reading.event_id, reading.stream).to_json()
