"""The benchmark runner: ``python -m benchmarks.run [--quick]`` prints one table and writes
``benchmarks/results.md``. Every figure is the median of several runs (min and max beside
it); every comparison is a ratio measured in the same run. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import platform
import re
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy
import orjson
import sseclient

from benchmarks import notebooks, outputs
from benchmarks.stream_server import FLAT_EPOCH, SHAPES, StreamServer, Warm, body, frame, spec
from connectors.simulator.sequence import SequenceSpec, payload
from connectors.sse import RetryPolicy, SSEEvent, iter_events, subscribe
from dataflows import native
from dataflows.fast_formats import NO_FAST, fast_kind_for
from dataflows.formats import PARSERS
from dataflows.readings import _parse_event
from dataflows.run_stats import peak_rss_bytes
from dataflows.times import EPOCH

ROOT = Path(__file__).resolve().parent.parent
# The job as issue 25 found it: every format and fleet row runs it beside today's.
BEFORE_COMMIT = "95a5bce"
_exported: dict[str, Path] = {}


def before_root(commit: str = BEFORE_COMMIT) -> Path:
    """``commit``'s tree, exported from git once a run into a temporary directory."""
    if commit not in _exported:
        tmp = Path(tempfile.mkdtemp(prefix=f"sensorwax-{commit}-"))
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        _exported[commit] = tmp
    return _exported[commit]


@dataclass
class Row:
    section: str
    name: str
    unit: str
    runs: list[float]
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def cells(self) -> list[str]:
        return [
            self.section,
            self.name,
            f"{self.median:,.0f}" if self.median >= 100 else f"{self.median:,.3g}",
            f"{min(self.runs):,.0f} - {max(self.runs):,.0f}"
            if self.median >= 100
            else f"{min(self.runs):.3g} - {max(self.runs):.3g}",
            self.unit,
            self.note,
        ]


def repeat(times: int, measure: Callable[[], float]) -> list[float]:
    return [measure() for _ in range(times)]


def ratio(a: Row, b: Row) -> str:
    return f"{a.median / b.median:.2f}x {b.name}"


# -- 1. the socket ceiling -----------------------------------------------------------
def socket_ceiling(url_port: int, n: int, framing: str) -> tuple[float, float]:
    """(MB/s, events/s) reading the response raw from the socket."""
    started = time.perf_counter()
    total = 0
    with socket.create_connection(("127.0.0.1", url_port)) as sock:
        sock.sendall(f"GET /stream?n={n}&framing={framing} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        while chunk := sock.recv(262144):
            total += len(chunk)
    elapsed = time.perf_counter() - started
    return total / elapsed / 1e6, n / elapsed


# -- 2. the parser -------------------------------------------------------------------
def stream_bytes(n: int, shape: str) -> bytes:
    return "".join(frame(shape, i, payload(spec(), i)) for i in range(n)).encode()


def chunks_of(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def time_events(count_events: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = count_events()
    return count / (time.perf_counter() - started)


def parser_rows(shape: str, n: int, repeats: int) -> list[Row]:
    """iter_events and sseclient-py over the same bytes, in 64 KiB pieces, in turn round
    after round, so that a slower spell of the machine falls on both alike."""
    data = stream_bytes(n, shape)
    pieces = chunks_of(data)

    def ours() -> int:
        return sum(1 for _ in iter_events(pieces))

    def theirs() -> int:
        return sum(1 for _ in sseclient.SSEClient(iter(pieces)).events())

    rounds = [(time_events(ours), time_events(theirs)) for _ in range(repeats)]
    ours_row = Row("2 parser", f"iter_events, {shape}", "events/s", [r[0] for r in rounds])
    theirs_row = Row("2 parser", f"sseclient-py, {shape}", "events/s", [r[1] for r in rounds])
    ours_row.note = ratio(ours_row, theirs_row)
    mb = Row(
        "2 parser",
        f"iter_events, {shape}",
        "MB/s",
        [r * len(data) / n / 1e6 for r in ours_row.runs],
    )
    return [ours_row, mb, theirs_row]


DECODE_FORMATS = (("flat", 0), ("dt", 0), ("dt", 3), ("obelisk", 0))


def decode_rows(n: int, repeats: int) -> list[Row]:
    """Events to readings, one event at a time as the jobs do it: each format's msgspec
    decoder first (what the jobs run), beside orjson and the checked parser alone (what
    they ran before it), over the same events in turn."""
    rows: list[Row] = []
    for fmt, samples in DECODE_FORMATS:
        sequence = SequenceSpec(format=fmt, samples=samples)  # type: ignore[arg-type]
        events = [SSEEvent(data=payload(sequence, k)) for k in range(n)]
        parser = PARSERS[fmt]  # type: ignore[index]
        fast = fast_kind_for(parser)

        def rate(decoder: int, events: list[SSEEvent] = events, parser: Any = parser) -> float:
            started = time.perf_counter()
            for event in events:
                _parse_event(event, "s", parser, decoder)
            return len(events) / (time.perf_counter() - started)

        rounds = [(rate(fast), rate(NO_FAST)) for _ in range(repeats)]
        label = fmt + (f", {samples} samples an event" if samples else "")
        typed = Row("2 decode", f"msgspec, {label}", "events/s", [r[0] for r in rounds])
        plain = Row("2 decode", f"orjson + checks, {label}", "events/s", [r[1] for r in rounds])
        typed.note = ratio(typed, plain)
        rows += [typed, plain]
    return rows


# -- 3. subscribe() over HTTP --------------------------------------------------------
def subscription_rate(url: str, n: int) -> float:
    started = time.perf_counter()
    count = sum(1 for _ in subscribe(url, retry=RetryPolicy(initial_delay=0.0, jitter=0.0)))
    elapsed = time.perf_counter() - started
    assert count == n, (count, n)
    return n / elapsed


# -- 4. end to end -------------------------------------------------------------------
class PeakWatcher:
    """Samples each process's VmHWM (its own peak RSS) until stopped, and its children's
    (a job's reader processes, SSE_READER=process), found every 0.2 s.

    Not ``ru_maxrss`` from ``wait4``: that also counts this runner's pages, which a child
    holds between fork and exec.
    """

    def __init__(self, pids: list[int]) -> None:
        self._pids = pids
        self._peaks = dict.fromkeys(pids, 0)
        self._children: dict[int, set[int]] = {pid: set() for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        tick = 0
        while not self._stop.wait(0.01):
            if tick % 20 == 0:
                for child, parent in _parents().items():
                    if parent in self._children:
                        self._children[parent].add(child)
            tick += 1
            for pid in [*self._pids, *(c for cs in self._children.values() for c in cs)]:
                peak = (peak_rss_bytes(pid) or 0) // 1024
                self._peaks[pid] = max(self._peaks.get(pid, 0), peak)

    def stop(self) -> int:
        """The largest process's peak with its children's peaks added, in KiB."""
        self._stop.set()
        self._thread.join()
        return max(
            self._peaks[pid] + sum(self._peaks.get(c, 0) for c in self._children[pid])
            for pid in self._pids
        )


def _parents() -> dict[int, int]:
    """Each process's parent, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def flow_env(url: str, out: str, root: Path = ROOT, **settings: str) -> dict[str, str]:
    # Without PYTHONDONTWRITEBYTECODE: start-up as users see it, from cached bytecode.
    skip = ("SSE_", "SIM_", "OUTPUT", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(
        {
            "SSE_URL": url,
            "BENCH_URL": url,
            "OUTPUT": out,
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(root),
            **settings,
        }
    )
    return env


def run_flow(
    target: str,
    url: str,
    out: str,
    *extra: str,
    processes: int = 1,
    settings: dict[str, str] | None = None,
    read_stdout: Callable[[IO[bytes]], None] | None = None,
    root: Path = ROOT,
) -> tuple[float, int]:
    """(seconds, peak RSS in KiB of the largest process) for one run of a dataflow (of
    the tree at ``root``: this one, or a commit's exported by ``before_root``)."""
    env = flow_env(url, out, root, **(settings or {}))
    started = time.perf_counter()
    if processes == 1:
        cmds = [[sys.executable, "-m", "bytewax.run", target, *extra]]
    else:
        ports = [_free_port() for _ in range(processes)]
        addresses = ";".join(f"127.0.0.1:{port}" for port in ports)
        cmds = [
            [sys.executable, "-m", "bytewax.run", target, "-i", str(i), "-a", addresses]
            for i in range(processes)
        ]
    stdout = subprocess.PIPE if read_stdout else subprocess.DEVNULL
    procs: list[subprocess.Popen[bytes]] = []
    for i, cmd in enumerate(cmds):
        if i:
            _await_listening(ports[i - 1], procs[i - 1])
        procs.append(
            subprocess.Popen(cmd, env=env, cwd=root, stdout=stdout, stderr=subprocess.PIPE)
        )
    watcher = PeakWatcher([p.pid for p in procs])
    if read_stdout is not None:
        assert procs[0].stdout is not None
        read_stdout(procs[0].stdout)
    for proc in procs:
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            watcher.stop()
            raise RuntimeError(f"{target} failed: {stderr.decode()[-2000:]}")
    seconds = time.perf_counter() - started
    return seconds, watcher.stop()


def _await_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Wait until a process of a cluster listens on its port.

    Timely's later processes connect to it, and one that finds nobody listening sleeps a
    whole second before it tries again: a random second in a run of a few seconds. The
    check reads the kernel's socket table, since connecting would be taken for a peer.
    """
    wanted = f":{port:04X} "
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        with open("/proc/net/tcp") as table:
            # Columns: sl, local_address, rem_address, st (0A is LISTEN).
            if any(
                wanted in f"{cols[1]} " and cols[3] == "0A"
                for cols in (line.split() for line in table)
            ):
                return
        time.sleep(0.005)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Timings:
    """Wall seconds of 1-event runs (start-up) and of timed runs of one configuration."""

    events: int
    startups: list[float]
    runs: list[float]
    peak_kib: int = 0
    records: int = 0  # aggregates written by the last timed run

    def rates(self) -> list[float]:
        # The median start-up: a single one varies by a few tenths of a second, as much
        # as a second of work does.
        startup = statistics.median(self.startups)
        return [self.events / max(seconds - startup, 1e-3) for seconds in self.runs]


def time_runs(
    server: StreamServer,
    target: str,
    n: int,
    repeats: int,
    *extra: str,
    processes: int = 1,
    streams: int = 1,
    into: Timings | None = None,
    warm_up: bool = True,
    settings: dict[str, str] | None = None,
    variant: dict[str, Any] | None = None,
    root: Path = ROOT,
) -> Timings:
    """``repeats`` timed runs over n events a stream, each beside a 1-event run; ``variant``
    is the stream's shape, format and fleet size (``StreamServer.url``'s keywords)."""
    timings = into or Timings(n * streams, [], [])
    kinds = {**(variant or {})}
    with tempfile.TemporaryDirectory() as tmp:

        def run(events: int, out: str) -> tuple[float, int]:
            urls = ",".join(server.url(events, stream=s, **kinds) for s in range(streams))
            return run_flow(
                target, urls, out, *extra, processes=processes, settings=settings, root=root
            )

        if warm_up:
            # Not timed: the first run after a change also compiles the modules' bytecode.
            run(1, f"{tmp}/warm")
        for k in range(repeats):
            startup, _ = run(1, f"{tmp}/s{k}")
            seconds, rss = run(n, f"{tmp}/r{k}")
            timings.startups.append(startup)
            timings.runs.append(seconds)
            timings.peak_kib = max(timings.peak_kib, rss)
            parts = aggregate_parts(Path(tmp) / f"r{k}")
            if parts:
                timings.records = sum(len(p.read_bytes().splitlines()) for p in parts)
    return timings


@dataclass(frozen=True)
class Config:
    """One dataflow run setup for ``in_turn``."""

    target: str
    events: int
    extra: tuple[str, ...] = ()
    processes: int = 1
    streams: int = 1
    settings: tuple[tuple[str, str], ...] = ()
    variant: tuple[tuple[str, Any], ...] = ()
    server: StreamServer | None = None  # another server than in_turn's (https)
    before: bool = False  # the job at BEFORE_COMMIT rather than this tree's


def in_turn(
    server: StreamServer,
    configs: list[Config],
    repeats: int,
    each_round: Callable[[], None] | None = None,
) -> list[Timings]:
    """Timings of each config, the configs taken in turn each round, so that a slower
    spell of the machine falls on all of them alike; ``each_round`` runs after each."""
    timings = [Timings(c.events * c.streams, [], []) for c in configs]
    for round_ in range(repeats):
        for config, into in zip(configs, timings, strict=True):
            time_runs(
                config.server or server,
                config.target,
                config.events,
                1,
                *config.extra,
                processes=config.processes,
                streams=config.streams,
                into=into,
                warm_up=not round_,
                settings=dict(config.settings),
                variant=dict(config.variant),
                root=before_root() if config.before else ROOT,
            )
        if each_round is not None:
            each_round()
    return timings


def end_to_end_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """sensor_stats beside the two baselines (the classic one over a tenth of the events:
    it is slow) and the decoding floor."""
    classic_n = max(n // 10, 2000)
    job, example_job, classic_job = (
        "dataflows.sensor_stats",
        "benchmarks.baselines:example()",
        "benchmarks.baselines:classic()",
    )
    for baseline in (example_job, classic_job):
        same_windows(job, baseline, server, classic_n)
    pure = (("SENSORWAX_NATIVE", "0"),)
    ours_t, example_t, classic_t, pure_t, process_t = in_turn(
        server,
        [
            Config(job, n),
            Config(example_job, n),
            Config(classic_job, classic_n),
            Config(job, n, settings=pure),
            Config(job, n, settings=PROCESS_READER),
        ],
        repeats,
    )
    ours = Row(
        "4 end to end",
        "sensor_stats",
        "events/s",
        ours_t.rates(),
        f"peak RSS {ours_t.peak_kib / 1024:.0f} MiB",
    )
    example = Row(
        "4 end to end",
        "baseline: Bytewax example (aiohttp-sse-client + batch_async, then per reading)",
        "events/s",
        example_t.rates(),
    )
    classic = Row(
        "4 end to end",
        "baseline: classic (sseclient-py, one event a batch, then per reading)",
        "events/s",
        classic_t.rates(),
        f"over {classic_n:,} events",
    )
    source = Row(
        "4 end to end",
        "sensor_stats on the pure-Python modules (SENSORWAX_NATIVE=0)",
        "events/s",
        pure_t.rates(),
        f"the row above: {native.chosen().describe()}",
    )
    ours.note += f"; {ratio(ours, example)}, {ratio(ours, classic)}, {ratio(ours, source)}"
    floor = decode_floor(n, repeats)
    bare = bare_loop(n, repeats)
    target = f"30x the classic pattern would be {30 * classic.median:,.0f} events/s"
    floor.note = f"{ratio(floor, classic)}: {target}"
    bare.note = f"{ratio(bare, classic)}, {ratio(bare, ours)}"
    process = Row("4 end to end", "sensor_stats, SSE_READER=process", "events/s", process_t.rates())
    process.note = (
        f"peak RSS {process_t.peak_kib / 1024:.0f} MiB (the job's and its reader's); "
        f"{ratio(process, ours)}, {ratio(process, bare)}"
    )
    return [ours, process, source, example, classic, floor, bare]


def tls_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """sensor_stats and the classic pattern (sseclient-py over urllib3) over https beside
    http, on the same stream, rounds in turn: what TLS costs each. The certificate is a
    throwaway CA's (trustme), trusted through SSL_CERT_FILE (and SSE_CA_BUNDLE)."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    classic_n = max(n // 10, 2000)
    job, classic_job = "dataflows.sensor_stats", "benchmarks.baselines:classic()"
    with tempfile.TemporaryDirectory() as tmp, StreamServer(tls=context) as secure:
        bundle = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(bundle))
        trust = (("SSL_CERT_FILE", str(bundle)), ("SSE_CA_BUNDLE", str(bundle)))
        configs = [
            Config(job, n),
            Config(job, n, settings=trust, server=secure),
            Config(classic_job, classic_n),
            Config(classic_job, classic_n, settings=trust, server=secure),
        ]
        names = ["sensor_stats, http", "sensor_stats, https", "classic, http", "classic, https"]
        rows = [
            Row("4 end to end", f"TLS: {name}", "events/s", t.rates())
            for name, t in zip(names, in_turn(server, configs, repeats), strict=True)
        ]
    rows[1].note = f"{ratio(rows[1], rows[0])}; {ratio(rows[1], rows[3])}"
    rows[3].note = f"{ratio(rows[3], rows[2])}; over {classic_n:,} events"
    rows[2].note = f"over {classic_n:,} events"
    return rows


def metrics_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """sensor_stats with Bytewax's metrics endpoint (and the job's metrics) on and off.

    The job's collector runs only when the endpoint is scraped; what runs per batch
    either way is the counting of records."""
    job = "dataflows.sensor_stats"
    port = str(_free_port())
    endpoint = (("BYTEWAX_DATAFLOW_API_ENABLED", "true"), ("BYTEWAX_DATAFLOW_API_PORT", port))
    on_t, off_t = in_turn(server, [Config(job, n, settings=endpoint), Config(job, n)], repeats)
    on = Row("4 end to end", "sensor_stats, metrics endpoint on", "events/s", on_t.rates())
    off = Row("4 end to end", "sensor_stats, metrics endpoint off", "events/s", off_t.rates())
    on.note = ratio(on, off)
    return [on, off]


# End-to-end variants: (label, stream shape, vendor format); the first is the best case.
E2E_VARIANTS = [
    ("flat JSON, id, data", "id, data", "flat"),
    ("flat JSON, Flask-SSE's event, data, id", "Flask-SSE: event, data, id, no space", "flat"),
    ("flat JSON, event, data, id", "event, data, id", "flat"),
    ("Disruptive Technologies envelope", "id, data", "dt"),
    ("Obelisk metric events", "id, data", "obelisk"),
    ("flat JSON, epoch ms, integer values, extra fields", "id, data", FLAT_EPOCH),
]


def format_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """sensor_stats on each stream shape and vendor format, each beside Bytewax's example
    pattern on the same stream, all taken in turn."""
    configs = []
    job = "dataflows.sensor_stats"
    for _, shape, fmt in E2E_VARIANTS:
        variant = (("shape", shape), ("fmt", fmt))
        settings = (("SSE_FORMAT", "flat" if fmt == FLAT_EPOCH else fmt),)
        for target in (job, "benchmarks.baselines:example()"):
            configs.append(Config(target, n, settings=settings, variant=variant))
        configs.append(Config(job, n, settings=settings, variant=variant, before=True))
        configs.append(Config(job, n, settings=settings + PROCESS_READER, variant=variant))
    timings = in_turn(server, configs, repeats)
    rows: list[Row] = []
    best: Row | None = None
    for k, (label, _, _) in enumerate(E2E_VARIANTS):
        ours_t, example_t, before_t, process_t = timings[4 * k : 4 * k + 4]
        ours = Row("5 shapes", f"sensor_stats, {label}", "events/s", ours_t.rates())
        example = Row("5 shapes", f"Bytewax example, {label}", "events/s", example_t.rates())
        before = Row(
            "5 shapes", f"sensor_stats at {BEFORE_COMMIT}, {label}", "events/s", before_t.rates()
        )
        best = best or ours
        ours.note = ratio(ours, example) + ("" if ours is best else f", {ratio(ours, best)}")
        ours.note += f"; {ratio(ours, before)}"
        process = _process_row("5 shapes", label, process_t, ours, before)
        rows += [ours, process, example, before]
    return rows


# Each stream read in a process of its own (connectors/sse/remote.py).
PROCESS_READER = (("SSE_READER", "process"),)


def _process_row(section: str, label: str, timings: Timings, ours: Row, before: Row) -> Row:
    """The row of a stream read with SSE_READER=process, beside the same job's own
    (a reader thread) and the job at BEFORE_COMMIT on the same stream."""
    row = Row(section, f"sensor_stats, SSE_READER=process, {label}", "events/s", timings.rates())
    peak = f"peak RSS {timings.peak_kib / 1024:.0f} MiB"
    row.note = f"{peak}; {ratio(row, ours)}; {ratio(row, before)}"
    return row


FLEETS = (50, 5_000, 20_000, 100_000)
# A fleet in the Disruptive Technologies envelope (a humidity device gives two readings).
DT_FLEET = 20_000
# The fleet whose streams are spread over two processes.
FLEET_ON_TWO = 20_000
# The output rows' fleet stream.
OUTPUT_FLEET = 20_000


def fleet_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """sensor_stats over fleets where each sensor reports once per 10 s window (50 busy
    sensors for comparison), and a fleet of DT devices: events/s, windows written/s and
    peak RSS; then the peak RSS of the largest fleet over three times the events, which
    stays flat when closed windows are freed."""
    job = "dataflows.sensor_stats"
    variants = [(("sensors", k),) for k in FLEETS] + [(("fmt", "dt"), ("sensors", DT_FLEET))]
    configs = [
        Config(job, n, variant=v, before=before, settings=settings)
        for v in variants
        for before, settings in ((False, ()), (True, ()), (False, PROCESS_READER))
    ]
    all_timings = in_turn(server, configs, repeats)
    timings, befores, processes = all_timings[0::3], all_timings[1::3], all_timings[2::3]
    rows: list[Row] = []
    names = [f"{k:,} sensors" for k in FLEETS] + [f"{DT_FLEET:,} DT devices"]
    for name, t in zip(names, timings, strict=True):
        rates = t.rates()
        row = Row(
            "6 fleets",
            f"sensor_stats, {name}",
            "events/s",
            rates,
            f"{t.records / n * statistics.median(rates):,.0f} windows written/s, "
            f"peak RSS {t.peak_kib / 1024:.0f} MiB",
        )
        rows.append(row)
    for row in rows[1:-1]:
        row.note += f"; {ratio(row, rows[0])}"
    # The DT envelope's fleet beside the flat one of the same size.
    rows[-1].note += f"; {ratio(rows[-1], rows[FLEETS.index(DT_FLEET)])}"
    before_rows, process_rows = [], []
    for row, name, t, p in zip(rows, names, befores, processes, strict=True):
        before = Row("6 fleets", f"sensor_stats at {BEFORE_COMMIT}, {name}", "events/s", t.rates())
        before.note = f"peak RSS {t.peak_kib / 1024:.0f} MiB"
        row.note += f"; {ratio(row, before)}"
        before_rows.append(before)
        process_rows.append(_process_row("6 fleets", name, p, row, before))
    rows += process_rows + before_rows
    largest = FLEETS[-1]
    memory: list[Row] = []
    for events in (n, 3 * n):
        t = time_runs(server, "dataflows.sensor_stats", events, 1, variant={"sensors": largest})
        memory.append(
            Row(
                "6 fleets",
                f"sensor_stats, {largest:,} sensors, {events:,} events",
                "MiB peak RSS",
                [t.peak_kib / 1024],
            )
        )
    growth = memory[1].median / memory[0].median - 1
    memory[1].note = f"{growth:+.1%} vs {n:,} events"
    return rows + memory


def output_rows(
    server: StreamServer, n: int, sensors: int, day: tuple[int, int], repeats: int
) -> list[Row]:
    """The job on a fleet stream with each output (hourly JSON Lines parts, Delta) beside
    the single file it wrote before (``baselines.single_file``), rounds in turn; then a
    day of a fleet's aggregates in each (``day``: sensors, minutes a window): bytes a
    row, and one hour read with pandas."""
    job, variant = "dataflows.sensor_stats", (("sensors", sensors),)
    configs = [
        Config("benchmarks.baselines:single_file()", n, variant=variant),
        Config(job, n, variant=variant),
        Config(job, n, variant=variant, settings=(("OUTPUT_FORMAT", "delta"),)),
    ]
    names = ["single file (before)", "hourly JSON Lines parts", "Delta table"]
    rows = [
        Row("7 output", f"sensor_stats, {sensors:,} sensors, {name}", "events/s", t.rates())
        for name, t in zip(names, in_turn(server, configs, repeats), strict=True)
    ]
    for row in rows[1:]:
        row.note = ratio(row, rows[0])
    day_rows = outputs.day_rows(*day)
    with tempfile.TemporaryDirectory() as tmp:
        paths = outputs.make_day(Path(tmp), *day)
        for name, path in paths.items():
            size = outputs.bytes_on_disk(path) / day_rows
            rows.append(Row("7 output", f"bytes a row, {name}", "bytes", [size], _day(*day)))
        reads = {
            name: [outputs.read_hour(name, path) for _ in range(repeats)]
            for name, path in paths.items()
        }
    first = None
    for name, runs in reads.items():
        seconds = Row(
            "7 output", f"read one hour of a day, {name}", "s", [r["seconds"] for r in runs]
        )
        peak = Row(
            "7 output",
            f"read one hour of a day, {name}",
            "MiB peak RSS",
            [r["peak_mib"] for r in runs],
        )
        seconds.note = f"{int(runs[0]['rows']):,} rows of {day_rows:,}, pandas"
        if first is None:
            first = (seconds, peak)
        else:
            seconds.note += f"; {first[0].median / seconds.median:.1f}x faster than the single file"
            peak.note = f"{peak.median / first[1].median:.2f}x the single file's"
        rows += [seconds, peak]
    return rows


def notebook_rows(day: tuple[int, int], repeats: int) -> list[Row]:
    """``sensor_analysis``'s reading and tables on a day of a fleet's aggregates (``day``:
    sensors, minutes a window), in each format, with today's notebook modules beside
    those before issue 27 (``notebooks.BEFORE``); then one hour of it with today's."""
    before = before_root(notebooks.BEFORE)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = outputs.make_day(Path(tmp), *day)
        for name in ("JSON Lines parts", "Delta"):
            output = paths[name].parent
            runs = {
                label: [notebooks.analyse(root, output) for _ in range(repeats)]
                for label, root in (("before", before), ("today", ROOT))
            }
            hour = [
                notebooks.analyse(ROOT, output, f"{outputs.DAY:%Y-%m-%d}T{outputs.HOUR:02d}:00")
                for _ in range(repeats)
            ]
            found = []
            for label, measured in (*runs.items(), ("today, one hour", hour)):
                what = f"sensor_analysis, {_day(*day)}, {name}, {label}"
                seconds = Row("8 notebooks", what, "s", [r["seconds"] for r in measured])
                peak = Row("8 notebooks", what, "MiB peak RSS", [r["peak_mib"] for r in measured])
                reading = statistics.median(r["read_seconds"] for r in measured)
                seconds.note = f"{int(measured[0]['windows']):,} windows; {reading:.1f} s reading"
                found.append((seconds, peak))
            (was, was_peak), (now, now_peak), _ = found
            now.note += f"; {was.median / now.median:.1f}x faster than before"
            now_peak.note = f"{now_peak.median / was_peak.median:.2f}x before's"
            rows += [row for pair in found for row in pair]
    return rows


def _day(sensors: int, minutes: int) -> str:
    return f"a day of {sensors:,} sensors, a {minutes}-minute window each"


def fleet_scaling_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """A 20,000-sensor fleet on one process, beside two such fleets (one a stream, each
    with its own sensors) on two processes: the key groups spread over the cluster."""
    job, variant = "dataflows.sensor_stats", (("sensors", FLEET_ON_TWO),)
    one, two = (
        Row("6 fleets", f"sensor_stats, {name}", "events/s", t.rates())
        for name, t in zip(
            (
                f"one stream of {FLEET_ON_TWO:,} sensors, one process",
                f"two streams of {FLEET_ON_TWO:,} sensors each, 2 processes",
            ),
            in_turn(
                server,
                [Config(job, n, variant=variant), Config(job, n, (), 2, 2, variant=variant)],
                repeats,
            ),
            strict=True,
        )
    )
    two.note = ratio(two, one)
    return [one, two]


def scaling_rows(server: StreamServer, n: int, repeats: int) -> list[Row]:
    """Two streams (each with its own sensors) on ``-w 2`` and on two processes, beside one
    stream on one process. ``n`` events a stream, so that start-up, which varies by a
    few tenths of a second, is a small part of each run. Each round ends with a round of
    the arithmetic control, so the rows show what the machine gave two processes too."""
    job = "dataflows.sensor_stats"
    control = ArithmeticControl()
    timings = in_turn(
        server,
        [Config(job, n), Config(job, n, ("-w", "2"), streams=2), Config(job, n, (), 2, 2)],
        repeats,
        control.run_round,
    )
    one, two_workers, two_procs = (
        Row("4 end to end", name, "events/s", t.rates())
        for name, t in zip(
            (
                f"sensor_stats, one stream of {n:,}",
                f"sensor_stats -w 2, two streams of {n:,}",
                f"sensor_stats, 2 processes, two streams of {n:,}",
            ),
            timings,
            strict=True,
        )
    )
    two_workers.note = ratio(two_workers, one)
    two_procs.note = ratio(two_procs, one)
    return [one, two_workers, two_procs, *control.rows()]


class ArithmeticControl:
    """The same plain Python loop in one process, then in two at once: what scaling the
    machine itself gives two processes at that moment (its second core is shared with
    its host). Run a round between the dataflow rounds, so both see the same spells."""

    LOOPS = 20_000_000  # about 1.5 s of one core
    CODE = f"total = 0\nfor i in range({LOOPS}):\n    total += i * i\n"

    def __init__(self) -> None:
        self.rates: dict[int, list[float]] = {1: [], 2: []}

    def run_round(self) -> None:
        for processes, rates in self.rates.items():
            started = time.perf_counter()
            procs = [subprocess.Popen([sys.executable, "-c", self.CODE]) for _ in range(processes)]
            for proc in procs:
                proc.wait()
            rates.append(processes * self.LOOPS / (time.perf_counter() - started))

    def rows(self) -> list[Row]:
        alone = Row(
            "4 end to end", "control: a plain Python loop, one process", "loops/s", self.rates[1]
        )
        pair = Row(
            "4 end to end",
            "control: the same loop in 2 processes at once",
            "loops/s",
            self.rates[2],
        )
        pair.note = f"{ratio(pair, alone)}: what this machine gave two processes meanwhile"
        return [alone, pair]


def aggregate_parts(out: Path) -> list[Path]:
    """The finished aggregate part files a job wrote under ``out``."""
    return sorted((out / "aggregates").glob("date=*/hour=*/part-*.jsonl"))


def same_windows(target: str, baseline: str, server: StreamServer, n: int) -> None:
    """Stop the benchmark if a baseline's windows differ from the job's: it would not be
    doing the same work."""
    outputs: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for flow in (target, baseline):
            run_flow(flow, server.url(n), f"{tmp}/{len(outputs)}")
            parts = aggregate_parts(Path(f"{tmp}/{len(outputs)}"))
            outputs.append(sorted(line for p in parts for line in p.read_text().splitlines()))
    if outputs[0] != outputs[1] or not outputs[0]:
        raise RuntimeError(f"{baseline} wrote other windows than {target} over {n} events")


def decode_floor(n: int, repeats: int) -> Row:
    """The most one Python process could do end to end with any design that decodes each
    event: our parser, then ``orjson.loads`` of every event's data, and nothing else
    (no HTTP, no readings, no windows, no Bytewax), over bytes already in memory."""
    pieces = chunks_of(stream_bytes(n, "id, data"))

    def parse_and_decode() -> int:
        loads, count = orjson.loads, 0
        for event in iter_events(pieces):
            loads(event.data)
            count += 1
        return count

    return Row(
        "4 end to end",
        "floor: parse and decode JSON alone, no HTTP, no dataflow",
        "events/s",
        repeat(repeats, lambda: time_events(parse_and_decode)),
    )


def bare_loop(n: int, repeats: int) -> Row:
    """The job's arithmetic as the tightest plain loop, with every check and every
    guarantee left out, over the chunked body already in memory: strip the HTTP chunk
    framing, split the lines (trusting that every event is ``id:``, ``data:``, blank),
    ``orjson.loads``, ``datetime.fromisoformat``, and count, sum, min and max in a dict
    per sensor, metric and window. No socket, no SSE parser, no Bytewax. An upper bound
    for a pure Python design, not a design: one bad event would crash it or be lost."""
    raw = body(n, "small")
    epoch, microsecond = EPOCH, timedelta(microseconds=1)
    window = 10_000_000  # the job's default WINDOW, 10 s, in microseconds

    def run() -> int:
        pieces, at, find = [], 0, raw.find
        while size := int(raw[at : (line_end := find(b"\r\n", at))], 16):
            pieces.append(raw[line_end + 2 : line_end + 2 + size])
            at = line_end + 4 + size
        loads, parse_time = orjson.loads, datetime.fromisoformat
        windows: dict[tuple[str, str, int], list[float]] = {}
        for line in b"".join(pieces).split(b"\n")[1::3]:
            event = loads(line[6:])
            value = event["value"]
            start = (parse_time(event["ts"]) - epoch) // microsecond // window
            stats = windows.get((event["sensor_id"], event["metric"], start))
            if stats is None:
                windows[event["sensor_id"], event["metric"], start] = [1, value, value, value]
            else:
                stats[0] += 1
                stats[1] += value
                if value < stats[2]:
                    stats[2] = value
                if value > stats[3]:
                    stats[3] = value
        counted = int(sum(stats[0] for stats in windows.values()))
        if counted != n:
            raise RuntimeError(f"the bare loop counted {counted} of {n} events")
        return counted

    return Row(
        "4 end to end",
        "bare loop: the job's arithmetic with no checks, no HTTP, no Bytewax",
        "events/s",
        repeat(repeats, lambda: time_events(run)),
    )


# -- 5. latency ----------------------------------------------------------------------
LATENCY_WINDOW_MS, LATENCY_LATENESS_MS = 1000, 200
# A steady stream, and one four times as busy (batches grow; no event should wait more).
LATENCY_RATES = (5_000, 20_000)


def latency_run(
    server: StreamServer, rate: float, seconds: float
) -> tuple[list[float], list[float]]:
    """(entry delays, window-close delays) in ms for one paced run of the main dataflow.

    Entry: from the server writing an event (its ``ts``) to ``next_batch`` handing it to
    Bytewax. Window close: from a window's end plus the lateness (on the server's clock,
    which stamps ``ts``) to its record arriving on the job's stdout. Only windows that
    time closes are counted: one whose end plus the lateness comes after the stream's
    last reading (a key's last window, and the one before it when the stream ends within
    the lateness of its end) is closed by the end of input, after the server's 204 to the
    reconnect, which is no measure of latency. The last reading is in the newest window,
    so a window counts when its end plus the lateness is at or before that window's start.
    """
    arrivals: list[tuple[float, bytes]] = []

    def read(stdout: IO[bytes]) -> None:
        for line in stdout:
            arrivals.append((time.time() * 1000, line))

    with tempfile.TemporaryDirectory() as tmp:
        delays_file = Path(tmp) / "delays.json"
        run_flow(
            "benchmarks.latency:flow()",
            server.url(int(rate * seconds), rate=rate),
            "-",
            settings={
                "BENCH_LATENCY_FILE": str(delays_file),
                "WINDOW": f"{LATENCY_WINDOW_MS}ms",
                "LATENESS": f"{LATENCY_LATENESS_MS}ms",
            },
            read_stdout=read,
        )
        entry = json.loads(delays_file.read_text())
    records = [(at, json.loads(line)) for at, line in arrivals]
    newest_start = max(_epoch_ms(r["window_start"]) for _, r in records)
    closes_at = [(at, _epoch_ms(r["window_end"]) + LATENCY_LATENESS_MS) for at, r in records]
    close = [at - due for at, due in closes_at if due <= newest_start]
    return entry, close


def _epoch_ms(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000


def latency_rows(server: StreamServer, rate: float, seconds: float, repeats: int) -> list[Row]:
    runs = [latency_run(server, rate, seconds) for _ in range(repeats)]
    rows = []
    for index, label in (
        (0, "server write to dataflow entry"),
        (1, "window end + lateness to record"),
    ):
        for name, q in (("p50", 50), ("p99", 99), ("max", 100)):
            values = [float(numpy.percentile(run[index], q)) for run in runs]
            note = f"{len(runs[0][index]):,} samples a run" if name == "p50" else ""
            rows.append(
                Row("5 latency", f"{label}, {name}, {rate:,.0f} events/s", "ms", values, note)
            )
    return rows


# -- 6. memory -----------------------------------------------------------------------
def peak_mib(url: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return run_flow("dataflows.sensor_stats", url, tmp)[1] / 1024


def slow_sink_peak_mib(server: StreamServer, n: int, seconds: float) -> float:
    """Peak RSS while the job's stdout is drained at 25 KiB/s and the server could flood."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bytewax.run", "dataflows.sensor_stats"],
        env=flow_env(server.url(n), "-", WINDOW="1s", LATENESS="0s"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    watcher = PeakWatcher([proc.pid])
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            proc.stdout.read1(512)  # type: ignore[attr-defined]
            time.sleep(0.02)
    finally:
        peak = watcher.stop()
        proc.kill()
        proc.wait()
    return peak / 1024


def memory_rows(server: StreamServer, small: int, big: int, repeats: int) -> list[Row]:
    small_row = Row(
        "6 memory",
        f"sensor_stats, {small:,} events",
        "MiB peak RSS",
        [peak_mib(server.url(small)) for _ in range(repeats)],
    )
    big_row = Row(
        "6 memory",
        f"sensor_stats, {big:,} events",
        "MiB peak RSS",
        [peak_mib(server.url(big)) for _ in range(repeats)],
    )
    big_row.note = f"{(big_row.median / small_row.median - 1) * 100:+.1f}% vs {small:,} events"
    slow = Row(
        "6 memory",
        f"slow sink (25 KiB/s) against {big:,} events",
        "MiB peak RSS",
        [slow_sink_peak_mib(server, big, 8.0) for _ in range(repeats)],
        "source bound: 2 MiB of unread stream, then TCP holds the server",
    )
    huge = Row(
        "6 memory",
        "one 200 MiB data: line, then an event",
        "MiB peak RSS",
        [peak_mib(server.url(1, huge_mib=200)) for _ in range(repeats)],
        "skipped past 1 MiB (SSE_MAX_EVENT_BYTES)",
    )
    return [small_row, big_row, slow, huge]


# -- where the time goes --------------------------------------------------------------
PROFILE_RATE = 250  # samples a second


def profile_table(server: StreamServer, n: int) -> str:
    """py-spy over a whole sensor_stats run (every thread, idle time left out): the
    functions where most samples were, by own time and by time including callees."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "profile.txt"
        spy = Path(sys.executable).with_name("py-spy")
        subprocess.run(
            [
                *(str(spy), "record", "-r", str(PROFILE_RATE), "-f", "raw", "-o", str(raw)),
                *("--", sys.executable, "-m", "bytewax.run", "dataflows.sensor_stats"),
            ],
            env=flow_env(server.url(n), tmp + "/out"),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        stacks = []
        for line in raw.read_text().splitlines():
            stack, _, hits = line.rpartition(" ")
            stacks.append((stack.split(";"), int(hits)))
    # Start-up (imports, building the flow) is its own share; the table is the steady state.
    startup = sum(c for frames, c in stacks if any("_locate_dataflow" in f for f in frames))
    steady = [
        (f, c)
        for f, c in stacks
        if not any("_locate_dataflow" in x for x in f) and not _WAITING.search(f[-1])
    ]
    total = sum(count for _, count in steady)
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in steady:
        own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames if _OURS.search(f)}:
            inclusive[name] += count
    lines = [
        f"py-spy, {PROFILE_RATE} samples/s over one `sensor_stats` run of {n:,} events, all "
        f"threads, idle left out: {startup + total:,} samples, {startup:,} of them start-up "
        "(imports, building the flow), left out below, as are the waits py-spy takes for "
        "work (the status line's sleep, the reader's wait for room). Own time in "
        "`run.py:<module>` is Bytewax's Rust worker loop (timely), which Python sees as one "
        "call.",
        "",
        "| own time | function | | incl. time | our function |",
        "|---|---|---|---|---|",
    ]
    rows = itertools.zip_longest(own.most_common(15), inclusive.most_common(15))
    for mine, ours in rows:
        left = f"{mine[1] / total:.1%} | `{mine[0]}`" if mine else " | "
        right = f"{ours[1] / total:.1%} | `{ours[0]}`" if ours else " | "
        lines.append(f"| {left} | | {right} |")
    return "\n".join(lines)


_OURS = re.compile(r"[ (/](connectors|dataflows)/")
# Frames that only wait, where py-spy's idle test does not see it: the status line's
# time.sleep (a C call, so its own time is the loop's) and Condition.wait.
_WAITING = re.compile(r"^(_StatusLine\.run \(.*runtime\.py|Condition\.wait \(.*threading\.py)")


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` as ``module.py:func``."""
    name, _, where = frame.partition(" (")
    return f"{Path(where.rstrip(')').rsplit(':', 1)[0]).name}:{name}"


# -- the table -----------------------------------------------------------------------
SECTIONS = (
    "socket",
    "parser",
    "subscribe",
    "e2e",
    "formats",
    "fleets",
    "scaling",
    "outputs",
    "notebooks",
    "latency",
    "memory",
    "profile",
)


def main(argv: Iterable[str] | None = None) -> int:
    args = _args(argv)
    quick = args.quick
    repeats = 2 if quick else 5
    n_parse = 20_000 if quick else 100_000
    n_http = 20_000 if quick else 200_000
    n_e2e = 20_000 if quick else 200_000
    n_big = 100_000 if quick else 1_000_000
    n_fleet = 60_000 if quick else 600_000
    rows: list[Row] = []

    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    unknown = only - set(SECTIONS)
    if unknown:
        print(f"--only: no section {', '.join(sorted(unknown))}; there are {', '.join(SECTIONS)}")
        return 2
    # The bodies built before any timing (any other is built at its untimed warm-up run).
    warm: list[Warm] = [(1, "small", 0)]
    if only & {"socket", "subscribe"}:
        warm += [(n_http, "small", 0), (n_http, "large", 0), (n_http, "close", 0)]
    if only & {"e2e", "scaling", "memory", "profile"}:
        warm += [(n_e2e, "small", 0), (n_big, "small", 0), (n_big, "small", 1)]
    if "formats" in only:
        warm += [(n_e2e, "small", 0, shape, fmt, 50) for _, shape, fmt in E2E_VARIANTS]
    if only & {"fleets", "outputs"}:
        warm += [(n_fleet, "small", 0, "id, data", "flat", k) for k in FLEETS]
        warm += [(3 * n_fleet, "small", 0, "id, data", "flat", FLEETS[-1])]
        warm += [(n_fleet, "small", 0, "id, data", "dt", DT_FLEET)]
        warm += [(n_fleet, "small", 1, "id, data", "flat", FLEET_ON_TWO)]
    profile = ""
    with StreamServer(warm) as server:
        socket_ceiling(server.port, 1, "small")  # waits until the server has its bytes ready

        if "socket" in only:
            for framing in ("small", "close"):
                runs = [socket_ceiling(server.port, n_http, framing) for _ in range(repeats)]
                rows.append(Row("1 socket", f"raw recv, {framing}", "MB/s", [r[0] for r in runs]))
                rows.append(
                    Row("1 socket", f"raw recv, {framing}", "events/s", [r[1] for r in runs])
                )
        if "parser" in only:
            parsers = [r for shape in SHAPES for r in parser_rows(shape, n_parse, repeats)]
            ours = [r for r in parsers if r.name.startswith("iter_events") and r.unit == "events/s"]
            slowest, fastest = min(ours, key=lambda r: r.median), max(ours, key=lambda r: r.median)
            slowest.note += f"; the slowest shape: {ratio(slowest, fastest)}"
            rows += parsers
            rows += decode_rows(n_parse, repeats)
        if "subscribe" in only:
            for framing, label in (
                ("small", "chunked, one event a chunk"),
                ("large", "chunked, 64 KiB chunks"),
                ("close", "read-to-close"),
            ):
                url = server.url(n_http, framing)
                rates = [subscription_rate(url, n_http) for _ in range(repeats)]
                rows.append(Row("3 subscribe", label, "events/s", rates))

        e2e_repeats = 1 if quick else 5
        if "e2e" in only:
            rows += end_to_end_rows(server, n_e2e, e2e_repeats)
            rows += tls_rows(server, n_e2e, e2e_repeats)
            rows += metrics_rows(server, n_e2e, e2e_repeats)
        if "formats" in only:
            rows += format_rows(server, n_e2e, e2e_repeats)
        if "fleets" in only:
            rows += fleet_rows(server, n_fleet, e2e_repeats)
            rows += fleet_scaling_rows(server, n_fleet, e2e_repeats)
        if "scaling" in only:
            rows += scaling_rows(server, n_big, e2e_repeats)
        if "outputs" in only:
            # A day of the fleet with 10-minute windows: 2.88 M rows (200 sensors if quick).
            day = (200, 1) if quick else (OUTPUT_FLEET, 10)
            rows += output_rows(server, n_fleet, OUTPUT_FLEET, day, 1 if quick else 3)
        if "notebooks" in only:
            # A day of 700 sensors with 1-minute windows: 1,008,000 windows (200 if quick).
            rows += notebook_rows((200, 1) if quick else (700, 1), 1 if quick else 3)
        if "latency" in only:
            for rate in LATENCY_RATES:
                rows += latency_rows(server, rate, 3 if quick else 10, 1 if quick else 3)
        if "memory" in only:
            rows += memory_rows(server, n_e2e, n_big, 1 if quick else 2)
        if "profile" in only:
            profile = profile_table(server, n_e2e)

    table = _table(rows)
    print(table)
    print(profile)
    if not quick and not args.only:
        _write_results(table, profile)
    return 0


def _args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="sensorwax benchmarks"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke-sized run (not written to results.md)"
    )
    parser.add_argument(
        "--only",
        metavar="SECTIONS",
        help=f"run these sections only, comma-separated ({', '.join(SECTIONS)}); "
        "not written to results.md",
    )
    return parser.parse_args(list(argv) if argv is not None else None)


def _table(rows: list[Row]) -> str:
    header = ["section", "what", "median", "min - max", "unit", "compared"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


BASELINES = (
    "The baselines (`benchmarks/baselines.py`) are the two patterns whole: their source, "
    "then reading by reading (`key_on`, `fold_window` with the job's clock, windows and "
    "exact mean). Before timing, each is run over the same stream as `sensor_stats` and "
    "must write the same aggregates file. End-to-end figures are net of start-up (the "
    "median of 1-event runs), and the dataflow runs compared with each other are taken in "
    "turn, round after round. Each stream carries its own 50 sensors, unless a row names "
    "another fleet size; a fleet sensor reports once per 10 s window."
)


def _write_results(table: str, profile: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# Benchmark results\n\n{stamp}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}. "
        f"Produced by `make bench` (`python -m benchmarks.run`).\n\n{BASELINES}\n\n{table}\n\n"
        f"## Where the time goes\n\n{profile}\n"
    )
    (ROOT / "benchmarks" / "results.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
