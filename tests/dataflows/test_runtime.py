"""Running a job: the status line, a clear line for every start-up mistake, the settings
listed by ``python -m dataflows``, the warning for a wrong format, the summary."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows import native
from dataflows.config import JOB_SETTINGS, MEANINGS, SECRET_SETTINGS, settings_of
from tests.helpers.oracle import ROOT, job_env, read_records, run_job
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

_STATUS = re.compile(
    r"status: (\d+) events/s, (\d+) readings, (\d+) dead letters(?: \(([^)]*)\))?, "
    r"(\d+) reconnects, lag (\S+ s|unknown), (\d+) open windows$"
)


def test_a_status_line_every_second_says_how_the_job_is_doing(simulator: StartSim) -> None:
    # 3 s of a paced stream with a drop and malformed events.
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=4, rate=100),
            faults=Faults(end_after=300, drop_every=150, malformed_every=100),
        )
    )
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        STATUS_EVERY="1s",
        SSE_RETRY_INITIAL="10ms",
    )
    assert run.returncode == 0, run.stderr
    lines = [m for line in run.stderr.splitlines() if (m := _STATUS.search(line))]
    assert len(lines) >= 2, run.stderr
    readings = [int(m.group(2)) for m in lines]
    assert readings == sorted(readings) and readings[-1] <= 297
    assert any(int(m.group(1)) > 0 for m in lines)  # events were arriving
    last = lines[-1]
    # Events 99, 199 and 299 are malformed; a line can come after any of them.
    assert last.group(4) in (None, "invalid_json 1", "invalid_json 2", "invalid_json 3")
    assert int(last.group(5)) <= 2  # the drop, and the end of the stream


def test_no_status_line_with_status_every_0(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(rate=200), faults=Faults(end_after=300)))
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, STATUS_EVERY="0")
    assert run.returncode == 0, run.stderr
    assert "status:" not in run.stderr


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize(
    ("job", "settings", "message"),
    [
        (
            "sensor_stats",
            {"OUTPUT": "/proc/nope"},
            "OUTPUT: cannot create the directory '/proc/nope'",
        ),
        ("sensor_stats", {"WINDOW": "ten seconds"}, "WINDOW: 'ten seconds' is not a duration"),
        ("sensor_stats", {"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of debug, info"),
        ("sensor_stats", {"STATUS_EVERY": "often"}, "STATUS_EVERY: 'often' is not a duration"),
        ("sensor_stats", {"SSE_CA_BUNDLE": "{tmp}/ca.pem"}, "not a PEM file of certificates"),
        ("sensor_stats", {"SSE_URL": "ftp://x"}, "SSE_URL: 'ftp://x' is not an http"),
        ("sensor_stats", {"SSE_OAUTH2_CLIENT_ID": "c"}, "SSE_OAUTH2_TOKEN_URL is needed"),
        ("sensor_stats", {"BYTEWAX_DATAFLOW_API_ENABLED": "true"}, "is in use (another job?)"),
        ("features", {"FEATURE_STEP": "2m"}, "FEATURE_STEP (120s) must not be longer"),
        ("alerts", {"ALERT_RULES": "{tmp}/none.toml"}, "cannot read the rules file"),
    ],
)
def test_every_start_up_mistake_is_one_line_and_exit_status_2(
    tmp_path: Path, job: str, settings: dict[str, str], message: str
) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    settings = {k: v.replace("{tmp}", str(tmp_path)) for k, v in settings.items()}
    with _busy_port() as busy:
        if "BYTEWAX_DATAFLOW_API_ENABLED" in settings:
            settings["BYTEWAX_DATAFLOW_API_PORT"] = str(busy.getsockname()[1])
        run = run_job(f"dataflows.{job}", timeout=60, **settings)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("sensorwax: ") and message in lines[0], lines[0]
    assert "Traceback" not in run.stderr and "summary" not in run.stderr


def test_python_m_dataflows_lists_every_job_and_every_setting() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dataflows", "--help"],
        capture_output=True,
        text=True,
        env=job_env(),
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    for job in JOB_SETTINGS:
        assert f"  {job} " in done.stdout
    for name, meaning in MEANINGS.items():
        said = f"{meaning} (never logged)" if name in SECRET_SETTINGS else meaning
        assert re.search(rf"^  {name} +{re.escape(said)} \(default: ", done.stdout, re.M), name
    # And the one read at import, before the configuration.
    assert re.search(rf"^  {native.OFF} +0: run the pure-Python", done.stdout, re.M)


def test_every_setting_a_job_reads_has_a_meaning_and_no_meaning_is_left_over() -> None:
    read = {name for job in JOB_SETTINGS for name, _, _ in settings_of(job)}
    assert read == set(MEANINGS)
    assert ("WINDOW", "10s", MEANINGS["WINDOW"]) in settings_of("sensor_stats")
    assert "FEATURE_WINDOW" not in {name for name, _, _ in settings_of("alerts")}


def test_a_wrong_format_is_named_once(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(rate=500), faults=Faults(end_after=250)))
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, SSE_FORMAT="dt")
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "is SSE_FORMAT=dt right" in line]
    assert len(warnings) == 1, run.stderr
    assert "were all dead letters (unknown_format)" in warnings[0]
    right = run_job("dataflows.sensor_stats", SSE_URL=sim.url, SSE_FORMAT="flat")
    assert "is SSE_FORMAT" not in right.stderr


def test_the_summary_names_what_was_written_where(simulator: StartSim, tmp_path: Path) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=2), faults=Faults(end_after=100, malformed_every=50)
        )
    )
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(tmp_path))
    assert run.returncode == 0, run.stderr
    written = len(read_records(tmp_path, "aggregates"))
    assert (
        f"; wrote {written} aggregates to {tmp_path / 'aggregates'}, "
        f"2 dead letters to {tmp_path / 'dead_letters'}"
    ) in run.stderr
