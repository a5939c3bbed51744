"""Memory stays bounded: an endless data line, a flood into a slow sink, a million events.

Each runs the main job as a real process and asserts its peak resident set size (the
kernel's high-water mark, not a sample) under ``PEAK_RSS_BOUND``. What keeps it there:
the parser skips an event once it is over ``SSE_MAX_EVENT_BYTES`` (1 MiB) and keeps at
most that plus a line allowance; the source holds at most ``max_pending_bytes`` (2 MiB)
of stream the dataflow has not taken, and then stops reading, so TCP holds the server;
window state is per open window only.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig, payload
from dataflows.run_stats import peak_rss_bytes
from tests.helpers.oracle import ROOT, bytewax_run_cmd, job_env, read_records, run_job
from tests.helpers.servers import (
    StartScripted,
    StartSim,
    Step,
    sse_head,
    status_head,
)
from tests.helpers.waiting import wait_until_steady

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
# The job's peak RSS, whatever the stream does. Measured on the development machine: 38 MiB
# through a 200 MiB line, 47 MiB against a slow sink, 44 MiB for a million events (with an
# 8 MiB pending bound they were 91, 67 and 98). A 200 MB line held in memory, or an
# unbounded queue, would go far over the bound.
PEAK_RSS_BOUND = 96 * MIB


def run_with_peak_rss(module: str, timeout: float = 240, **settings: str) -> tuple[int, str, int]:
    """Run a job to its end; return its exit code, stderr, and peak RSS in bytes.

    The peak is the one the job's summary line reports (its own VmHWM when it exits): the
    kernel's ``ru_maxrss`` for a child would also count this test process's pages, which
    the child held between fork and exec.
    """
    run = run_job(module, timeout=timeout, **settings)
    peaks = re.findall(r"summary: .*, peak RSS (\d+) MiB", run.stderr)
    assert peaks, run.stderr
    return run.returncode, run.stderr, int(peaks[-1]) * MIB


def test_an_endless_data_line_is_skipped_in_bounded_memory(
    scripted: StartScripted, tmp_path: Path
) -> None:
    # 200 MiB of one data line, no newline; then a good event; then the stream ends.
    block = b"x" * MIB
    good = payload(SequenceSpec(sensors=1), 0).encode()
    server = scripted(
        [
            [
                Step(sse_head() + b"data: "),
                *[Step(block)] * 200,
                Step(b"\n\nid: 1\ndata: " + good + b"\n\n"),
            ],
            [Step(status_head(204))],
        ]
    )
    code, stderr, peak = run_with_peak_rss(
        "dataflows.sensor_stats", SSE_URL=server.url, OUTPUT=str(tmp_path)
    )
    assert code == 0, stderr
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"
    letters = [json.loads(x) for x in read_records(tmp_path, "dead_letters")]
    assert [d["reason"] for d in letters] == ["oversized"]
    (record,) = [json.loads(x) for x in read_records(tmp_path, "aggregates")]
    assert record["count"] == 1


def test_a_flood_into_a_slow_sink_holds_the_server_not_memory(simulator: StartSim) -> None:
    # The server could write five million events as fast as the socket takes them; the
    # job writes records to a pipe this test drains at 25 KiB/s.
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=50, rate=1000),
            faults=Faults(end_after=5_000_000),
            pace=False,
            events_per_write=50,
        )
    )
    proc = subprocess.Popen(
        bytewax_run_cmd("dataflows.sensor_stats"),
        env=job_env(SSE_URL=sim.url, OUTPUT="-", WINDOW="1s", LATENESS="0s"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    stop = threading.Event()

    def slow_sink() -> None:
        while not stop.is_set() and proc.stdout.read1(512):  # type: ignore[union-attr]
            time.sleep(0.02)

    reader = threading.Thread(target=slow_sink, daemon=True)
    reader.start()
    try:
        # The sink is the bottleneck: once the source's 2 MiB and the socket buffers are
        # full, the server is held, not buffered into memory. Unheld, it writes ~80,000
        # events/s; the sink's pace lets ~3,000 events/s through. However long the job
        # takes to start and fill up on a busy machine, it must come to that.
        wait_until_steady(lambda: len(sim.sent_ids), "the server to be held", most=50_000, over=4.0)
        peak = peak_rss_bytes(proc.pid)
    finally:
        stop.set()
        proc.kill()
        proc.wait(timeout=20)
        reader.join(timeout=20)
    assert peak is not None
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"


def test_a_million_events_through_the_job(simulator: StartSim, tmp_path: Path) -> None:
    events = 1_000_000
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=50, rate=500),
            faults=Faults(end_after=events),
            pace=False,
            events_per_write=200,
        )
    )
    code, stderr, peak = run_with_peak_rss(
        "dataflows.sensor_stats", timeout=300, SSE_URL=sim.url, OUTPUT=str(tmp_path)
    )
    assert code == 0, stderr
    assert f"summary: {events} events, {events} readings, 0 dead letters" in stderr
    records = [json.loads(x) for x in read_records(tmp_path, "aggregates")]
    assert sum(r["count"] for r in records) == events
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"
