"""The benchmark runner: ``python -m benchmarks.run [--quick]`` prints one table and writes
``benchmarks/results.md``. Every figure is the median of several runs (min and max beside
it); every comparison is a ratio measured in the same run. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sseclient

from benchmarks.stream_server import SPEC, StreamServer
from connectors.simulator.sequence import payload
from connectors.sse import RetryPolicy, iter_events, subscribe

ROOT = Path(__file__).resolve().parent.parent


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
def stream_bytes(n: int, variant: str) -> bytes:
    frames = []
    for i in range(n):
        data = payload(SPEC, i)
        if variant == "multi-line":
            half = len(data) // 2
            frames.append(f"id: {i}\ndata: {data[:half]}\ndata: {data[half:]}\n\n")
        else:
            frames.append(f"id: {i}\ndata: {data}\n\n")
    text = "".join(frames)
    return (text.replace("\n", "\r\n") if variant == "CRLF" else text).encode()


def chunks_of(data: bytes, size: int = 65536) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def time_events(count_events: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = count_events()
    return count / (time.perf_counter() - started)


def parser_rows(variant: str, n: int, repeats: int) -> list[Row]:
    """iter_events and sseclient-py over the same bytes, in 64 KiB pieces."""
    data = stream_bytes(n, variant)
    pieces = chunks_of(data)

    def ours() -> int:
        return sum(1 for _ in iter_events(pieces))

    def theirs() -> int:
        return sum(1 for _ in sseclient.SSEClient(iter(pieces)).events())

    ours_row = Row(
        "2 parser",
        f"iter_events, {variant}",
        "events/s",
        repeat(repeats, lambda: time_events(ours)),
    )
    theirs_row = Row(
        "2 parser",
        f"sseclient-py, {variant}",
        "events/s",
        repeat(repeats, lambda: time_events(theirs)),
    )
    ours_row.note = ratio(ours_row, theirs_row)
    mb = Row(
        "2 parser",
        f"iter_events, {variant}",
        "MB/s",
        [r * len(data) / n / 1e6 for r in ours_row.runs],
    )
    return [ours_row, mb, theirs_row]


# -- 3. subscribe() over HTTP --------------------------------------------------------
def subscription_rate(url: str, n: int) -> float:
    started = time.perf_counter()
    count = sum(1 for _ in subscribe(url, retry=RetryPolicy(initial_delay=0.0, jitter=0.0)))
    elapsed = time.perf_counter() - started
    assert count == n, (count, n)
    return n / elapsed


# -- 4. end to end -------------------------------------------------------------------
def run_flow(
    target: str, url: str, out: Path, *extra: str, processes: int = 1
) -> tuple[float, int]:
    """(seconds, peak RSS in KiB of the largest process) for one run of a dataflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSE_", "SIM_", "OUTPUT"))}
    env.update(
        {
            "SSE_URL": url,
            "BENCH_URL": url,
            "OUTPUT": str(out),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    started = time.perf_counter()
    if processes == 1:
        cmds = [[sys.executable, "-m", "bytewax.run", target, *extra]]
    else:
        addresses = ";".join(f"127.0.0.1:{_free_port()}" for _ in range(processes))
        cmds = [
            [sys.executable, "-m", "bytewax.run", target, "-i", str(i), "-a", addresses]
            for i in range(processes)
        ]
    procs = [
        subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for cmd in cmds
    ]
    peak = 0
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peak = max(peak, usage.ru_maxrss)
        if proc.returncode != 0:
            assert proc.stderr is not None
            raise RuntimeError(f"{target} failed: {proc.stderr.read().decode()[-2000:]}")
    return time.perf_counter() - started, peak


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def net_rate(
    server: StreamServer,
    target: str,
    n: int,
    repeats: int,
    *extra: str,
    processes: int = 1,
    streams: int = 1,
) -> tuple[list[float], int]:
    """Net events/s over n events per stream, start-up (a 1-event run) subtracted."""
    rates, peak = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            startup, _ = run_flow(
                target,
                ",".join([server.url(1)] * 1),
                Path(tmp) / f"s{k}",
                *extra,
                processes=processes,
            )
            urls = ",".join(server.url(n) + f"&s={s}" for s in range(streams))
            seconds, rss = run_flow(target, urls, Path(tmp) / f"r{k}", *extra, processes=processes)
            rates.append(n * streams / max(seconds - startup, 1e-3))
            peak = max(peak, rss)
    return rates, peak


# -- the table -----------------------------------------------------------------------
def main(argv: Iterable[str] | None = None) -> int:
    args = _args(argv)
    quick = args.quick
    repeats = 2 if quick else 5
    n_parse = 20_000 if quick else 100_000
    n_http = 20_000 if quick else 200_000
    n_e2e = 20_000 if quick else 200_000
    rows: list[Row] = []

    warm = [(n_http, "small"), (n_http, "large"), (n_http, "close"), (1, "small"), (n_e2e, "small")]
    with StreamServer(warm) as server:
        socket_ceiling(server.port, 1, "small")  # waits until the server has its bytes ready

        for framing in ("small", "close"):
            runs = [socket_ceiling(server.port, n_http, framing) for _ in range(repeats)]
            rows.append(Row("1 socket", f"raw recv, {framing}", "MB/s", [r[0] for r in runs]))
            rows.append(Row("1 socket", f"raw recv, {framing}", "events/s", [r[1] for r in runs]))

        for variant in ("LF", "CRLF", "multi-line"):
            rows += parser_rows(variant, n_parse, repeats)
        for framing, label in (
            ("small", "chunked, one event a chunk"),
            ("large", "chunked, 64 KiB chunks"),
            ("close", "read-to-close"),
        ):
            url = server.url(n_http, framing)
            runs = [subscription_rate(url, n_http) for _ in range(repeats)]
            rows.append(Row("3 subscribe", label, "events/s", runs))

        e2e_repeats = 1 if quick else 3
        ours_rates, ours_rss = net_rate(server, "dataflows.sensor_stats", n_e2e, e2e_repeats)
        ours = Row(
            "4 end to end",
            "sensor_stats",
            "events/s",
            ours_rates,
            f"peak RSS {ours_rss / 1024:.0f} MiB",
        )
        example = Row(
            "4 end to end",
            "baseline: Bytewax example (aiohttp-sse-client + batch_async)",
            "events/s",
            net_rate(server, "benchmarks.baselines:example()", n_e2e, e2e_repeats)[0],
        )
        classic_n = max(n_e2e // 10, 2000)
        classic = Row(
            "4 end to end",
            "baseline: classic (sseclient-py, one event a batch)",
            "events/s",
            net_rate(server, "benchmarks.baselines:classic()", classic_n, e2e_repeats)[0],
            f"over {classic_n:,} events",
        )
        ours.note += f"; {ratio(ours, example)}, {ratio(ours, classic)}"
        rows += [ours, example, classic]
        two_workers = Row(
            "4 end to end",
            "sensor_stats -w 2, two streams",
            "events/s",
            net_rate(server, "dataflows.sensor_stats", n_e2e, e2e_repeats, "-w", "2", streams=2)[0],
        )
        two_procs = Row(
            "4 end to end",
            "sensor_stats, 2 processes, two streams",
            "events/s",
            net_rate(server, "dataflows.sensor_stats", n_e2e, e2e_repeats, processes=2, streams=2)[
                0
            ],
        )
        two_procs.note = ratio(two_procs, ours)
        two_workers.note = ratio(two_workers, ours)
        rows += [two_workers, two_procs]

    table = _table(rows)
    print(table)
    if not quick:
        _write_results(table)
    return 0


def _args(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="sensorwax benchmarks"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke-sized run (not written to results.md)"
    )
    return parser.parse_args(list(argv) if argv is not None else None)


def _table(rows: list[Row]) -> str:
    header = ["section", "what", "median", "min - max", "unit", "compared"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def _write_results(table: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        f"# Benchmark results\n\n{stamp}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}. "
        f"Produced by `make bench` (`python -m benchmarks.run`).\n\n{table}\n"
    )
    (ROOT / "benchmarks" / "results.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main())
