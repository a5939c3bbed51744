"""The main job as a real process against the simulator with faults, checked against pandas."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
from bytewax.testing import run_main

from connectors.simulator import (
    Faults,
    OAuth2Server,
    SensorSimulator,
    SequenceSpec,
    SimulatorConfig,
)
from dataflows import sensor_stats
from dataflows.config import READERS, load_config
from dataflows.run_stats import RunStats
from dataflows.times import from_micros, iso
from tests.helpers.oracle import (
    ROOT,
    assert_same_aggregates,
    bytewax_run_cmd,
    expected_aggregates,
    job_env,
    load_aggregates,
    read_records,
    run_in_process,
    run_job,
    run_job_watching,
    sent_readings,
    writers,
)
from tests.helpers.processes import alive, cpu_seconds, reader_pids
from tests.helpers.secrets import assert_clean
from tests.helpers.servers import StartSim, free_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

FAST_RETRY_ENV = {"SSE_RETRY_INITIAL": "10ms", "SSE_RETRY_MAX": "50ms"}


def sim_config(
    fmt: str = "flat", events: int = 1500, offset: int = 0, **faults: object
) -> SimulatorConfig:
    return SimulatorConfig(
        sequence=SequenceSpec(sensors=6, rate=50, format=fmt, sensor_offset=offset, seed=offset),  # type: ignore[arg-type]
        faults=Faults(end_after=events, **faults),  # type: ignore[arg-type]
        pace=False,
        events_per_write=3,
    )


def check_against_oracle(
    out: Path,
    sims: list[SensorSimulator],
    events: int,
    window_ms: int = 10_000,
    lateness_ms: int = 2_000,
) -> None:
    """Every window equal to pandas' over what the servers sent; late readings exactly the
    dead letters with reason late."""
    sent = [sent_readings(sim, events) for sim in sims]
    expected, late = expected_aggregates(sent, window_ms, lateness_ms)
    got = load_aggregates(read_records(out, "aggregates"))
    assert_same_aggregates(got, expected)
    letters = [json.loads(line) for line in read_records(out, "dead_letters")]
    late_letters = sorted(
        (d["stream"], int(d["event_id"])) for d in letters if d["reason"] == "late"
    )
    assert late_letters == sorted(zip(late["stream"], late["event_id"].astype(int), strict=True))


def malformed_ids(sim: SensorSimulator, events: int) -> list[int]:
    return [n for n in range(events) if sim.config.faults.malformed(n)]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("fmt", ["flat", "dt", "obelisk"])
def test_each_format_through_drops_statuses_and_malformed_events(
    simulator: StartSim, tmp_path: Path, fmt: str, reader: str
) -> None:
    sim = simulator(
        sim_config(
            fmt, drop_every=211, drop_mid_event=True, statuses=(503, 408), malformed_every=97
        )
    )
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        SSE_FORMAT=fmt,
        SSE_READER=reader,
        OUTPUT=str(tmp_path),
        **FAST_RETRY_ENV,
    )
    assert run.returncode == 0, run.stderr
    assert len(reader_pids(run.stderr)) == (reader == "process")
    check_against_oracle(tmp_path, [sim], 1500)
    letters = [json.loads(x) for x in read_records(tmp_path, "dead_letters")]
    assert sorted(
        int(d["event_id"]) for d in letters if d["reason"] == "invalid_json"
    ) == malformed_ids(sim, 1500)
    assert "reconnecting" in run.stderr
    assert "HTTP 503" in run.stderr and "HTTP 408" in run.stderr
    summary = [line for line in run.stderr.splitlines() if "sensor_stats summary" in line]
    assert summary and "1500 events" in summary[0] and "invalid_json 15" in summary[0]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "read-to-close"])
def test_a_stream_cut_every_137_events_reconnects_without_growing_delays(
    simulator: StartSim, tmp_path: Path, chunked: bool
) -> None:
    # As a proxy cutting long requests would: every connection delivers events, so each
    # reconnect waits the server's retry: (20 ms, raised to the 0.1 s floor for a
    # server's retry:), never more, and a cap on attempts in a row is never reached.
    config = sim_config(drop_every=137, events=2000)
    sim = simulator(replace(config, retry_ms=20, chunked=chunked))
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        SSE_RETRY_MAX_ATTEMPTS="1",
    )
    assert run.returncode == 0, run.stderr
    check_against_oracle(tmp_path, [sim], 2000)
    waits = re.findall(r"reconnecting in ([\d.]+) s \(attempt (\d+)\)", run.stderr)
    # 14 cuts, then the end of the stream, then 204.
    assert len(waits) == 15 == len(sim.requests) - 1
    assert {attempt for _, attempt in waits} == {"1"}
    assert all(0.05 <= float(delay) <= 0.1 for delay, _ in waits), waits


@pytest.mark.parametrize(
    ("module", "reader"),
    [
        ("dataflows.sensor_stats", "thread"),
        ("dataflows.features", "thread"),
        ("dataflows.features", "process"),
    ],
)
def test_a_sensor_that_goes_quiet_gets_its_last_window_while_the_stream_goes_on(
    simulator: StartSim, module: str, reader: str
) -> None:
    # 4 sensors, 40 events/s for 6 s; sensor-001 stops 1.5 s in. Its last window ends at
    # 1.5 s (sliding: 2 s), so it closes once the stream reaches that + LATENESS +
    # IDLE_CLOSE, 1.1 s later.
    spec = SequenceSpec(
        sensors=4, rate=40, start_ms=int(time.time()) * 1000, quiet_sensor=1, quiet_after_ms=1500
    )
    sim = simulator(SimulatorConfig(sequence=spec, faults=Faults(end_after=240)))
    run, seen = run_job_watching(
        module,
        sim,
        SSE_URL=sim.url,
        WINDOW="500ms",
        LATENESS="100ms",
        IDLE_CLOSE="1s",
        FEATURE_WINDOW="1s",
        FEATURE_STEP="500ms",
        SSE_READER=reader,
    )
    assert run.returncode == 0, run.stderr
    quiet = [(json.loads(line), sent) for line, sent in seen if '"sensor-001"' in line]
    last, sent_then = max(quiet, key=lambda item: item[0]["window_end"])
    end_ms = 1500 if module == "dataflows.sensor_stats" else 2000
    assert last["window_end"] == iso(from_micros((spec.start_ms + end_ms) * 1000))
    # Written after the stream passed end + 0.1 s + 1 s (it cannot be earlier), and while
    # the stream still had a third of its events to send.
    assert (end_ms + 1100) * 40 // 1000 <= sent_then < 160, sent_then
    if module == "dataflows.sensor_stats":
        expected, late = expected_aggregates([sent_readings(sim, 240)], 500, 100)
        assert late.empty
        assert_same_aggregates(load_aggregates(run.stdout.splitlines()), expected)


def test_auto_format_reads_a_read_to_close_stream(simulator: StartSim, tmp_path: Path) -> None:
    config = sim_config("dt", drop_every=300)
    sim = simulator(SimulatorConfig(**{**config.__dict__, "chunked": False}))
    run_in_process(
        "dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(tmp_path), **FAST_RETRY_ENV
    )
    check_against_oracle(tmp_path, [sim], 1500)


def test_late_readings_become_dead_letters_exactly(simulator: StartSim, tmp_path: Path) -> None:
    config = sim_config()
    # Up to 3 s of disorder against 1 s of lateness: some readings are late, by the rule.
    spec = SequenceSpec(**{**config.sequence.__dict__, "disorder_ms": 3000})
    sim = simulator(SimulatorConfig(**{**config.__dict__, "sequence": spec}))
    run_in_process(
        "dataflows.sensor_stats", SSE_URL=sim.url, LATENESS="1s", WINDOW="5s", OUTPUT=str(tmp_path)
    )
    check_against_oracle(tmp_path, [sim], 1500, window_ms=5000, lateness_ms=1000)
    letters = [json.loads(x) for x in read_records(tmp_path, "dead_letters")]
    assert sum(d["reason"] == "late" for d in letters) > 20


def test_a_second_run_in_the_same_process_starts_with_its_own_stream_time(
    simulator: StartSim, tmp_path: Path
) -> None:
    # Two runs on the same URL, as when the system gives a closed server's port out again:
    # the second must not start from the first one's event time (its idle rule would take
    # its first readings for late).
    sim = simulator(sim_config())
    for run in ("first", "second"):
        out = tmp_path / run
        run_in_process(
            "dataflows.sensor_stats",
            SSE_URL=sim.url,
            LATENESS="1s",
            IDLE_CLOSE="1s",
            WINDOW="5s",
            OUTPUT=str(out),
        )
        check_against_oracle(out, [sim], 1500, window_ms=5000, lateness_ms=1000)


@pytest.mark.parametrize("key_groups", ["1", "64"])
def test_a_fleet_of_20000_sensors_with_one_reading_a_window_equals_pandas(
    simulator: StartSim, tmp_path: Path, key_groups: str
) -> None:
    # Each sensor reports once per 10 s window (2,000 events/s of event time), as fleets
    # do: every window holds one reading. A drop every 7,000 events resumes mid-fleet.
    events = 40_000
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=20_000, rate=2000, seed=3),
            faults=Faults(end_after=events, drop_every=7_000),
            pace=False,
            events_per_write=50,
        )
    )
    run_in_process(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        KEY_GROUPS=key_groups,
        **FAST_RETRY_ENV,
    )
    check_against_oracle(tmp_path, [sim], events)
    assert len(read_records(tmp_path, "aggregates")) >= 40_000


def test_dt_fleets_on_two_streams_and_two_workers_equal_pandas_and_one_worker(
    simulator: StartSim, tmp_path: Path
) -> None:
    # Two sites of 5,000 DT devices each (a humidity device gives two readings an event),
    # each device once per 10 s window, one stream a site, with drops: the key groups
    # take rows of both streams, on two workers as on one.
    events = 10_000
    sims = [
        simulator(
            SimulatorConfig(
                sequence=SequenceSpec(
                    sensors=5_000, rate=500, format="dt", sensor_offset=offset, seed=offset
                ),
                faults=Faults(end_after=events, drop_every=3_000 + offset // 10),
                pace=False,
                events_per_write=50,
            )
        )
        for offset in (0, 5_000)
    ]
    urls = ",".join(s.url for s in sims)
    one, two = tmp_path / "w1", tmp_path / "w2"
    for out, workers in ((one, "1"), (two, "2")):
        run = run_job(
            "dataflows.sensor_stats",
            "-w",
            workers,
            SSE_URL=urls,
            SSE_FORMAT="dt",
            OUTPUT=str(out),
            **FAST_RETRY_ENV,
        )
        assert run.returncode == 0, run.stderr
    check_against_oracle(two, sims, events)
    lines = read_records(two, "aggregates")
    assert len(lines) > 2 * events  # one window a reading, and more readings than events
    assert sorted(read_records(one, "aggregates")) == sorted(lines)


def test_two_streams_on_two_workers_equal_one_worker(simulator: StartSim, tmp_path: Path) -> None:
    sims = [
        simulator(sim_config(offset=0, drop_every=400)),
        simulator(sim_config(offset=100, drop_every=333)),
    ]
    urls = ",".join(s.url for s in sims)
    one, two = tmp_path / "w1", tmp_path / "w2"
    for out, workers in ((one, "1"), (two, "2")):
        run = run_job(
            "dataflows.sensor_stats", "-w", workers, SSE_URL=urls, OUTPUT=str(out), **FAST_RETRY_ENV
        )
        assert run.returncode == 0, run.stderr
    check_against_oracle(two, sims, 1500)
    assert sorted(read_records(one, "aggregates")) == sorted(read_records(two, "aggregates"))
    # Each worker wrote part files of its own.
    assert writers(two, "aggregates") == {"000-000", "000-001"}
    assert writers(one, "aggregates") == {"000-000"}


@pytest.mark.parametrize("reader", READERS)
def test_two_processes_equal_one(simulator: StartSim, tmp_path: Path, reader: str) -> None:
    sims = [
        simulator(sim_config(offset=0, drop_every=400)),
        simulator(sim_config(offset=100, malformed_every=97)),
    ]
    env = job_env(
        SSE_URL=",".join(s.url for s in sims),
        OUTPUT=str(tmp_path),
        SSE_READER=reader,
        **FAST_RETRY_ENV,
    )
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [
        subprocess.Popen(
            bytewax_run_cmd("dataflows.sensor_stats", "-i", str(i), "-a", addresses),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    # A reader process for each stream, in the cluster process that reads it.
    assert len([pid for _, err in outputs for pid in reader_pids(err)]) == 2 * (reader == "process")
    check_against_oracle(tmp_path, sims, 1500)
    # Each process wrote the windows it made, in part files of its own.
    assert writers(tmp_path, "aggregates") == {"000-000", "001-000"}


def test_stdout_output_and_dead_letters_on_stderr(simulator: StartSim) -> None:
    sim = simulator(sim_config(events=300, malformed_every=100))
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url)
    assert run.returncode == 0, run.stderr
    expected, _ = expected_aggregates([sent_readings(sim, 300)], 10_000, 2_000)
    assert_same_aggregates(load_aggregates(run.stdout.splitlines()), expected)
    letters = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    assert [d["event_id"] for d in letters] == ["99", "199", "299"]


@pytest.mark.runtime
def test_a_bad_setting_is_named_at_start() -> None:
    run = run_job("dataflows.sensor_stats", WINDOW="ten seconds", SSE_FORMAT="xml", timeout=60)
    assert run.returncode == 2
    assert "WINDOW: 'ten seconds' is not a duration" in run.stderr
    assert "SSE_FORMAT must be one of auto, flat, dt, obelisk; got 'xml'" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.runtime
def test_the_input_has_ended_when_every_stream_read_here_ended_not_on_a_failure(
    simulator: StartSim, tmp_path: Path
) -> None:
    """What the Delta sink asks before it compacts at a close (with recovery)."""
    ending = simulator(sim_config(events=200))
    refusing = simulator(SimulatorConfig(pace=False, bearer_token="right-token-123"))
    for urls, ends in (
        ([ending.url, ending.url + "?again"], True),
        ([ending.url, refusing.url], False),
    ):
        settings = {
            "SSE_URL": ",".join(urls),
            "OUTPUT": str(tmp_path / str(ends)),
            "SSE_BEARER_TOKEN": "wrong-token-456",  # the ending stream asks for none
            **FAST_RETRY_ENV,
        }
        stats = RunStats("sensor_stats")
        flow = sensor_stats.build_flow(load_config(settings, argv=[]), stats)
        if ends:
            run_main(flow)
        else:
            with pytest.raises(
                Exception, match=re.escape("error calling `StatefulSourcePartition.next_batch`")
            ):
                run_main(flow)
        assert stats.input_ended() is ends


@pytest.mark.runtime
@pytest.mark.parametrize("reader", READERS)
def test_a_fatal_error_stops_the_job_with_its_message(simulator: StartSim, reader: str) -> None:
    sim = simulator(SimulatorConfig(pace=False, bearer_token="right-token-123"))
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        SSE_BEARER_TOKEN="wrong-token-456",
        SSE_READER=reader,
        timeout=60,
    )
    assert run.returncode != 0
    # One clear line, not Bytewax's runtime-error traceback.
    assert "ERROR dataflows: stopped: " + sim.url + ": HTTP 401 Unauthorized" in run.stderr
    assert "Traceback" not in run.stderr
    assert "wrong-token-456" not in run.stderr + run.stdout


CLIENT_SECRET = "cs-5e1f0a9b3d7c"
JWT_SECRET = "jwt-8c2d4e6f0a1b9e3d5c7a2f4b6d8e0c1a3f5"
ISSUER = "sensorwax@project.serviceaccount.example"
GRANT_SETTINGS = {
    "client_credentials": {
        "SSE_OAUTH2_CLIENT_ID": "sensorwax",
        "SSE_OAUTH2_CLIENT_SECRET": CLIENT_SECRET,
    },
    "jwt_bearer": {
        "SSE_OAUTH2_JWT_KEY_ID": "key-1",
        "SSE_OAUTH2_JWT_SECRET": JWT_SECRET,
        "SSE_OAUTH2_JWT_ISSUER": ISSUER,
    },
}


def _oauth2(lifetime: float) -> OAuth2Server:
    return OAuth2Server(
        clients={"sensorwax": CLIENT_SECRET},
        jwt_keys={"key-1": (JWT_SECRET, ISSUER)},
        token_lifetime=lifetime,
    )


@pytest.mark.runtime
@pytest.mark.parametrize(
    ("grant", "fmt", "reader"),
    [
        ("client_credentials", "obelisk", "thread"),
        ("jwt_bearer", "dt", "thread"),
        ("jwt_bearer", "dt", "process"),
    ],
    ids=["obelisk", "dt", "dt, process reader"],
)
def test_tokens_that_expire_every_few_seconds_through_a_run_with_drops(
    simulator: StartSim, tmp_path: Path, grant: str, fmt: str, reader: str
) -> None:
    # As the vendors do, scaled down: tokens last 2.5 s, and the stream ends when its
    # token does; 600 events paced over 10 s, and a drop every 150 events besides.
    config = replace(sim_config(fmt, events=600, drop_every=150), pace=True, oauth2=_oauth2(2.5))
    sim = simulator(replace(config, sequence=replace(config.sequence, rate=60)))
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        SSE_FORMAT=fmt,
        OUTPUT=str(tmp_path),
        SSE_OAUTH2_TOKEN_URL=sim.token_url,
        SSE_READER=reader,
        LOG_LEVEL="DEBUG",
        **GRANT_SETTINGS[grant],
        **FAST_RETRY_ENV,
    )
    assert run.returncode == 0, run.stderr
    check_against_oracle(tmp_path, [sim], 600)
    tokens = sim.tokens.issued  # type: ignore[union-attr]
    streams = [r for r in sim.requests if r.path == "/stream"]
    # Ten seconds of 2.5 s tokens: at least four; never more than the connections made.
    assert 4 <= len(tokens) <= len(streams)
    assert {r.status for r in sim.tokens.requests} == {200}  # type: ignore[union-attr]
    written = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert_clean(run.stdout + run.stderr + written, [CLIENT_SECRET, JWT_SECRET, *tokens])


@pytest.mark.runtime
def test_a_refused_client_secret_stops_the_job_with_one_line(simulator: StartSim) -> None:
    sim = simulator(replace(sim_config(), oauth2=_oauth2(60)))
    started = time.monotonic()
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        SSE_OAUTH2_TOKEN_URL=sim.token_url,
        SSE_OAUTH2_CLIENT_ID="sensorwax",
        SSE_OAUTH2_CLIENT_SECRET="not-the-secret-789",
        timeout=60,
    )
    assert run.returncode == 1
    assert time.monotonic() - started < 60
    stopped = [line for line in run.stderr.splitlines() if "stopped:" in line]
    assert len(stopped) == 1
    assert f"token endpoint {sim.token_url} refused the credentials: HTTP 401" in stopped[0]
    assert "invalid_client" in stopped[0]
    assert "Traceback" not in run.stderr
    assert "not-the-secret-789" not in run.stdout + run.stderr


@pytest.mark.runtime
@pytest.mark.parametrize(
    ("signum", "busy", "reader"),
    [
        (signal.SIGINT, False, "thread"),
        (signal.SIGINT, True, "thread"),
        (signal.SIGTERM, False, "thread"),
        (signal.SIGTERM, True, "thread"),
        (signal.SIGINT, False, "process"),
        (signal.SIGTERM, True, "process"),
    ],
    ids=[
        "ctrl-c, quiet",
        "ctrl-c, busy",
        "sigterm, quiet",
        "sigterm, busy",
        "ctrl-c, quiet, process reader",
        "sigterm, busy, process reader",
    ],
)
def test_sigterm_stops_the_job_like_ctrl_c(
    simulator: StartSim, tmp_path: Path, signum: int, busy: bool, reader: str
) -> None:
    # Busy: an unpaced stream keeps the worker in the job's Python steps nearly all the
    # time, so the signal mostly lands inside one; it must stop the job the same way.
    config = (
        SimulatorConfig(
            sequence=SequenceSpec(sensors=50), faults=Faults(end_after=5_000_000), pace=False
        )
        if busy
        else SimulatorConfig(sequence=SequenceSpec(sensors=2, rate=20))
    )
    sim = simulator(config)
    proc = subprocess.Popen(
        bytewax_run_cmd("dataflows.sensor_stats"),
        env=job_env(SSE_URL=sim.url, OUTPUT=str(tmp_path), SSE_READER=reader),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = 20_000 if busy else 20
    wait_for(lambda: len(sim.sent_ids) >= started, "the first events", poll=0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    # Bytewax's Ctrl+C path, whether the signal lands between its steps or inside one: it
    # stops, closes the sources and exits 1, and the job says so in one line.
    shown = "\n".join(line for line in err.splitlines() if not line.startswith("  "))[-3000:]
    assert proc.returncode == 1, shown
    assert "stopped: interrupted by a signal (Ctrl+C or SIGTERM)" in err, shown
    assert "Traceback" not in err, shown
    assert "connectors.source" in err, shown  # the partition was closed and reported its stream
    assert "sensor_stats summary" in err
    readers = reader_pids(err)
    assert len(readers) == (reader == "process")
    for pid in readers:
        wait_for(lambda pid=pid: not alive(pid), "the reader process to end with the job")


@pytest.mark.runtime
def test_an_idle_stream_does_not_keep_a_core_busy(simulator: StartSim) -> None:
    # One event, then silence with pings: windows stay open, nothing to do.
    sim = simulator(SimulatorConfig(sequence=SequenceSpec(sensors=1, rate=0.05), ping_interval=0.5))
    proc = subprocess.Popen(
        bytewax_run_cmd("dataflows.sensor_stats"),
        env=job_env(SSE_URL=sim.url),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: bool(sim.sent_ids), "the first event", poll=0.05)
        time.sleep(1.0)
        before = cpu_seconds(proc.pid)
        time.sleep(3.0)
        used = cpu_seconds(proc.pid) - before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    # A spinning worker would use about 3 s of CPU here; an idle one a small fraction.
    assert used < 0.6, used
