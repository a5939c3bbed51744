"""Crash recovery: SIGKILL the main job mid-stream, restart it, and get the same files."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from tests.oracle import (
    ROOT,
    assert_same_aggregates,
    bytewax_run_cmd,
    expected_aggregates,
    job_env,
    load_aggregates,
    read_lines,
    run_job,
    sent_readings,
)

StartSim = Callable[[SimulatorConfig], SensorSimulator]

pytestmark = pytest.mark.slow

EVENTS = 2400
WINDOW = {"WINDOW": "500ms", "LATENESS": "200ms", "FEATURE_WINDOW": "1s", "FEATURE_STEP": "500ms"}
# Each job, and the output file that must come out the same.
JOBS = {
    "sensor_stats": ("aggregates/aggregates.jsonl", "dead_letters/dead_letters.jsonl"),
    "features": ("features/features.csv", "dead_letters/dead_letters.jsonl"),
}


def _recovery_args(directory: Path) -> list[str]:
    return ["-r", str(directory), "-s", "1", "-b", "0"]


def _init_recovery(directory: Path) -> None:
    directory.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(directory), "1"],
        check=True,
        cwd=ROOT,
        env=job_env(),
        timeout=60,
    )


@pytest.mark.parametrize(
    ("job", "seed"), [("sensor_stats", 1), ("sensor_stats", 2), ("features", 3)]
)
def test_a_killed_job_restarted_with_recovery_writes_what_an_uninterrupted_run_does(
    simulator: StartSim, tmp_path: Path, job: str, seed: int
) -> None:
    module = f"dataflows.{job}"
    main_file, letters_file = JOBS[job]
    # Paced at 600 events/s, the stream lasts 4 s: long enough to be killed in the middle,
    # after a snapshot or before one.
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=8, rate=600, seed=seed),
            faults=Faults(end_after=EVENTS, malformed_every=150),
            events_per_write=4,
        )
    )
    settings = {"SSE_URL": sim.url, "SSE_RETRY_INITIAL": "10ms", "SSE_RETRY_MAX": "50ms", **WINDOW}

    whole = tmp_path / "uninterrupted"
    run = run_job(module, OUTPUT=str(whole), **settings)
    assert run.returncode == 0, run.stderr

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state)
    rng = random.Random(seed)
    proc = subprocess.Popen(
        bytewax_run_cmd(module, *_recovery_args(state)),
        env=job_env(OUTPUT=str(recovered), **settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Kill at a random point after the first windows were written and at least one
    # snapshot interval (1 s) later, so the restart has state to resume from.
    partial_file = recovered / main_file
    deadline = time.monotonic() + 60
    while (
        not (partial_file.exists() and partial_file.stat().st_size) and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    time.sleep(rng.uniform(1.1, 2.0))
    proc.kill()
    proc.wait(timeout=20)
    partial = read_lines(partial_file)
    assert proc.returncode == -9
    # Killed mid-stream: some windows written, not all.
    assert 1 < len(partial) < len(read_lines(whole / main_file))

    requests_before_restart = len(sim.requests)
    restart = run_job(module, *_recovery_args(state), OUTPUT=str(recovered), **settings)
    assert restart.returncode == 0, restart.stderr

    for name in (main_file, letters_file):
        lines = read_lines(recovered / name)
        assert len(lines) == len(set(lines)), f"duplicate lines in {name}"
        assert sorted(lines) == sorted(read_lines(whole / name)), name
    if main_file.endswith(".csv"):
        assert read_lines(recovered / main_file)[0].startswith("sensor_id,metric,")

    # The restarted subscription resumed with the id recovery kept, not from the start.
    resumed_from = sim.requests[requests_before_restart].headers.get("Last-Event-ID", "")
    assert resumed_from.isdigit() and 0 < int(resumed_from) < EVENTS

    if job == "sensor_stats":
        expected, _ = expected_aggregates([sent_readings(sim, EVENTS)], 500, 200)
        assert_same_aggregates(load_aggregates(read_lines(recovered / main_file)), expected)


def _lines_of(path: Path) -> list[str]:
    return read_lines(path) if path.exists() else []
