"""A day in minutes (``make soak``): a simulated day of event time for a fleet, served
fast, through the main job with recovery, two SIGKILLs, OAuth2 tokens that expire and a
dropped connection every few thousand events, into hourly JSON Lines parts and into a
Delta table. Each output must equal the pandas oracle, window for window; the peak RSS
of each run and the files each hour (or date) ended with are reported.

``python -m benchmarks.soak [--sensors N] [--hours H] [--pace EVENTS_PER_S]``; loopback
only, bounded by the day's events, and it stops by itself.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.outputs import bytes_on_disk
from benchmarks.run import PeakWatcher, flow_env
from connectors.simulator import (
    Faults,
    OAuth2Server,
    SensorSimulator,
    SequenceSpec,
    SimulatorConfig,
)
from tests.helpers.oracle import (
    assert_same_aggregates,
    delta_files,
    delta_records,
    expected_aggregates,
    finished_parts,
    load_aggregates,
    read_records,
    sent_readings,
)

ROOT = Path(__file__).resolve().parent.parent
DAY_MS = 1_764_460_800_000  # 2025-11-30T00:00:00Z
CLIENT_SECRET = "soak-client-secret"  # the simulator's own client: a loopback test secret


def _run_with_kills(
    sim: SensorSimulator, events: int, out: Path, fmt: str, kills: int
) -> list[int]:
    """The job with recovery, SIGKILLed ``kills`` times at even points of the stream,
    then run to the end; the peak RSS (KiB) of each run."""
    state = out.parent / f"{out.name}-state"
    state.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(state), "1"], check=True, cwd=ROOT
    )
    env = flow_env(
        sim.url,
        str(out),
        OUTPUT_FORMAT=fmt,
        SSE_OAUTH2_TOKEN_URL=sim.token_url,
        SSE_OAUTH2_CLIENT_ID="sensorwax",
        SSE_OAUTH2_CLIENT_SECRET=CLIENT_SECRET,
        SSE_RETRY_INITIAL="10ms",
        SSE_RETRY_MAX="100ms",
        STATUS_EVERY="0",
    )
    cmd = [sys.executable, "-m", "bytewax.run", "dataflows.sensor_stats"]
    cmd += ["-r", str(state), "-s", "2", "-b", "0"]
    peaks = []
    for run in range(kills + 1):
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE)
        watcher = PeakWatcher([proc.pid])
        if run < kills:
            kill_at = events * (run + 1) // (kills + 1)
            while len(sim.sent_ids) < kill_at and proc.poll() is None:
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=3600)
        peaks.append(watcher.stop())
        if run == kills and proc.returncode != 0:
            raise RuntimeError(f"the last run failed: {stderr.decode()[-2000:]}")
    return peaks


def _files(out: Path, fmt: str) -> Counter[str]:
    """Files a partition ended with: per hour folder (JSON Lines) or date (Delta)."""
    if fmt == "delta":
        return Counter(Path(p).parent.name for p in delta_files(out, "aggregates"))
    return Counter(
        f"{p.parent.parent.name}/{p.parent.name}" for p in finished_parts(out, "aggregates")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--sensors", type=int, default=2_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--pace", type=float, default=25_000.0, help="events per second served")
    parser.add_argument("--token-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    # Each sensor one reading a minute.
    rate = args.sensors / 60
    events = int(args.hours * 3600 * rate)
    print(
        f"{args.hours:g} h of event time, {args.sensors:,} sensors a reading a minute each: "
        f"{events:,} events served at {args.pace:,.0f}/s, tokens of {args.token_seconds:g} s, "
        f"a drop every 4,999 events, two SIGKILLs"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jsonl", "delta"):
            sim = SensorSimulator(
                SimulatorConfig(
                    sequence=SequenceSpec(
                        sensors=args.sensors, rate=rate, seed=11, start_ms=DAY_MS
                    ),
                    faults=Faults(end_after=events, drop_every=4_999, drop_mid_event=True),
                    pace=True,
                    pace_rate=args.pace,
                    events_per_write=25,
                    oauth2=OAuth2Server(
                        clients={"sensorwax": CLIENT_SECRET}, token_lifetime=args.token_seconds
                    ),
                )
            ).start()
            try:
                out = Path(tmp) / fmt
                started = time.perf_counter()
                peaks = _run_with_kills(sim, events, out, fmt, kills=2)
                seconds = time.perf_counter() - started
                lines = (
                    delta_records(out, "aggregates")
                    if fmt == "delta"
                    else read_records(out, "aggregates")
                )
                expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
                assert_same_aggregates(load_aggregates(lines), expected)
                tokens = len(sim.tokens.issued) if sim.tokens is not None else 0
                reconnects = sum(1 for r in sim.requests if r.path == "/stream") - 1
            finally:
                sim.stop()
            files = _files(out, fmt)
            per_row = bytes_on_disk(out / "aggregates") / len(lines)
            spread = f"{min(files.values())}-{max(files.values())}"
            rows.append(
                f"| {fmt} | {seconds:.0f} s | {len(lines):,} windows, equal to pandas | "
                f"{per_row:.1f} bytes a row | "
                f"{' / '.join(f'{p / 1024:.0f}' for p in peaks)} MiB | "
                f"{len(files)} partitions, {spread} files each | "
                f"{tokens} tokens, {reconnects} reconnects |"
            )
            print(rows[-1], flush=True)
    print("\n| output | wall time | windows | on disk | peak RSS (3 runs) | files | stream |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
