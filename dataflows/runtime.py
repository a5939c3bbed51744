"""Process set-up for a job: logging, the garbage collector, signals, the error hook, the
demo simulator, the run summary, and each job's lazily built ``flow``.

Settings come from ``config.py``; a wrong one ends the process with its message and exit
status 2 (``settings``).
"""

from __future__ import annotations

import atexit
import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache, partial
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from bytewax.dataflow import Dataflow

from connectors.sse import SSEError
from connectors.sse.redact import redact_logs
from dataflows import metrics
from dataflows.config import (
    ConfigError,
    DemoConfig,
    RuntimeConfig,
    load_config,
    load_runtime_config,
    settings_in_effect,
)
from dataflows.native import chosen
from dataflows.outputs import prepare_output
from dataflows.recovery_store import forget_snapshots_past_resume
from dataflows.run_record import RunRecord
from dataflows.run_stats import RunStats, StatsNow

if TYPE_CHECKING:
    from connectors.simulator import SimulatorConfig

__all__ = [
    "GC_THRESHOLD",
    "demo_simulator_config",
    "job_flow",
    "settings",
    "setup_process",
    "start_demo_simulator",
    "start_job",
    "status_line",
]

T = TypeVar("T")

log = logging.getLogger("dataflows")


# The cyclic garbage collector's first-generation threshold. A job makes a few tuples per
# reading and frees them by reference counting within the batch; at Python's default of
# 700 the collector ran every few hundred readings and took about a tenth of a job's CPU
# (a quarter in a two-process cluster, where unpickling makes more objects). Cycles are
# rare here (the traceback of a rejected event) and are still collected, after 50,000
# allocations rather than 700.
GC_THRESHOLD = (50_000, 20, 20)


def setup_process(runtime: RuntimeConfig) -> None:
    """Logging to stderr (secrets masked), SIGTERM (Kubernetes, systemd) stopping the job
    like Ctrl+C, the error hook, and the garbage collector's thresholds."""
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
        # On the handler, the filter sees every logger's records, Bytewax's included.
        redact_logs((), [handler])
        logging.basicConfig(level=runtime.log_level, handlers=[handler])
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupt)
        signal.signal(signal.SIGTERM, _interrupt)
    if sys.excepthook is sys.__excepthook__ and not runtime.traceback:
        sys.excepthook = _report_stop


class JobInterrupted(BaseException):
    """Ctrl+C or SIGTERM. Not a KeyboardInterrupt: Bytewax lets that one through as it is
    when it lands inside some steps, and Python then ends the process as killed by SIGINT
    rather than with status 1; not an Exception, so no ``except Exception`` swallows it."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise JobInterrupted(signal.Signals(signum).name)


def _report_stop(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """A stream that cannot go on (401, TLS, a redirect loop...) ends the job with its
    message in one log line, and so does Ctrl+C or SIGTERM: Bytewax wraps either in a
    runtime error whose traceback says nothing a user can act on. (A signal that lands
    between Bytewax's steps reads "signal received", one that lands inside a step "error
    calling ...": the same stop either way.) Any other error keeps its full traceback."""
    cause: BaseException | None = error
    interrupted = False
    while cause is not None and not isinstance(cause, SSEError):
        interrupted = interrupted or isinstance(cause, JobInterrupted | KeyboardInterrupt)
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        log.error("stopped: %s (SENSORWAX_TRACEBACK=1 prints the traceback)", cause)
    elif interrupted:
        log.warning(
            "stopped: interrupted by a signal (Ctrl+C or SIGTERM); with recovery (-r), "
            "a restart continues from the last snapshot"
        )
    else:
        sys.__excepthook__(kind, error, trace)


def start_job(name: str, load: Callable[[], T]) -> tuple[RunStats, T]:
    """Set up the process for a job and load its settings (a mistake ends the process
    with exit status 2 and nothing else); then its summary is logged at exit, its metrics
    registered, and its status line started."""
    runtime = settings(load_runtime_config)
    setup_process(runtime)
    loaded = settings(load)
    output = settings(load_config).output
    settings(partial(prepare_output, name, output))
    if output.recovery is not None:
        forget_snapshots_past_resume(output.recovery)
    stats = RunStats(name)
    atexit.register(lambda: log.info("%s", stats.summary_line()))
    record = _run_record(name, stats)
    log.info("%s: the hot modules are %s", name, chosen().describe())
    metrics.register(stats)
    if runtime.status_every is not None:
        _StatusLine(stats, runtime.status_every.total_seconds(), record).start()
    return stats, loaded


def _run_record(name: str, stats: RunStats) -> RunRecord | None:
    """With OUTPUT a directory, the job's run record there, written now and at exit."""
    directory = settings(load_config).output.directory  # every job reads OUTPUT alike
    if directory is None:
        return None
    record = RunRecord(stats, directory, settings_in_effect(name), datetime.now(UTC))
    record.write()
    atexit.register(record.write, True)
    return record


class _StatusLine(threading.Thread):
    """Every ``every`` seconds, one line of how the job is doing, on stderr."""

    def __init__(self, stats: RunStats, every: float, record: RunRecord | None = None) -> None:
        super().__init__(name="status line", daemon=True)
        self._stats = stats
        self._every = every
        self._record = record

    def run(self) -> None:
        before = self._stats.now()
        while True:
            time.sleep(self._every)
            now = self._stats.now()
            log.info("%s", status_line(before, now))
            before = now
            if self._record is not None:
                self._record.write()  # a job that is killed still leaves what it did


def status_line(before: StatsNow, now: StatsNow) -> str:
    """What changed since ``before``, and where the job stands."""
    elapsed = max(now.seconds - before.seconds, 1e-9)
    dead = ", ".join(f"{reason} {n}" for reason, n in sorted(now.dead_letters.items()))
    lags = [s.lag for s in now.streams if s.lag is not None]
    return (
        f"status: {(now.events - before.events) / elapsed:.0f} events/s, "
        f"{now.readings} readings, {sum(now.dead_letters.values())} dead letters"
        f"{f' ({dead})' if dead else ''}, {now.reconnects} reconnects, "
        f"lag {f'{max(lags):.1f} s' if lags else 'unknown'}, {now.open_windows} open windows"
    )


def job_flow(module: str, build: Callable[[], Dataflow]) -> Callable[[str], Dataflow]:
    """A job module's ``__getattr__``: its ``flow`` is built by ``build`` on first use, as
    ``bytewax.run`` asks for it, so importing the module for its functions starts no
    simulator and reads no settings."""
    built = cache(build)

    def module_getattr(name: str) -> Dataflow:
        if name == "flow":
            return built()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return module_getattr


def settings(load: Callable[[], T]) -> T:
    """Run a settings loader; on a mistake, print the message and exit with status 2."""
    try:
        return load()
    except ConfigError as exc:
        print(f"sensorwax: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def demo_anomalies(demo: DemoConfig) -> dict[str, Any]:
    """Where the demo's anomalies fall, as parts of its event time: sensor 0 spikes at a
    quarter of the way for a tenth of it, sensor 3 is stuck from 40% to 70%, sensor 2
    goes quiet at 30% (each when there is such a sensor). The default alert rules raise
    an alert for each of them and for nothing else."""
    span_ms = demo.events * 1000 / demo.rate
    return {
        "spike_sensor": 0,
        "spike_after_ms": int(span_ms * 0.25),
        "spike_for_ms": int(span_ms * 0.10),
        "stuck_sensor": 3 if demo.sensors > 3 else None,
        "stuck_after_ms": int(span_ms * 0.40),
        "stuck_for_ms": int(span_ms * 0.30),
        "quiet_sensor": 2 if demo.sensors > 2 else None,
        "quiet_after_ms": int(span_ms * 0.30),
    }


def demo_simulator_config(demo: DemoConfig) -> SimulatorConfig:
    """What the embedded simulator serves for these settings: a test that sets
    ``SIM_START`` knows every event the job is sent."""
    # Imported here: a job reading a real stream never needs the simulator, and every
    # job process would pay for loading it at its start.
    from connectors.simulator import Faults, SequenceSpec, SimulatorConfig

    start_ms = int(demo.start.timestamp() * 1000) if demo.start else int(time.time()) * 1000
    return SimulatorConfig(
        sequence=SequenceSpec(
            sensors=demo.sensors,
            rate=demo.rate,
            seed=demo.seed,
            start_ms=start_ms,
            format=demo.format,
            **(demo_anomalies(demo) if demo.anomalies else {}),
        ),
        faults=Faults(
            drop_every=demo.drop_every,
            drop_mid_event=True,
            malformed_every=demo.malformed_every,
            end_after=demo.events,
        ),
    )


def start_demo_simulator(demo: DemoConfig) -> str:
    """Serve the demo sensors on 127.0.0.1 until the process exits; returns the URL."""
    from connectors.simulator import SensorSimulator

    simulator = SensorSimulator(demo_simulator_config(demo)).start()
    atexit.register(simulator.stop)
    log.info(
        "SSE_URL is unset: serving %d simulated sensors (%d events, %s) at %s",
        demo.sensors,
        demo.events,
        demo.format,
        simulator.url,
    )
    return simulator.url
