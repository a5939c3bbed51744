"""Obelisk's two phases, end to end: the job given only OBELISK_* and its client's
credentials finds or creates its stream in the Catalog, reads it, drops what Obelisk
sends again after a reconnect, and writes what pandas computes from the readings the
simulator sent; a restart reads the same stream on from where it stopped; the Catalog
command's three operations; and the refusals, one line each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from connectors.obelisk_catalog import STREAM_FIELDS, ObeliskCatalog
from connectors.simulator import (
    Faults,
    OAuth2Server,
    SensorSimulator,
    SequenceSpec,
    SimulatorConfig,
)
from connectors.simulator.obelisk import ObeliskConfig
from connectors.simulator.sequence import expected_readings, obelisk_event
from connectors.sse import ClientCredentials
from dataflows.config import READERS
from tests.helpers.oracle import (
    ROOT,
    assert_same_aggregates,
    expected_aggregates,
    job_env,
    load_aggregates,
    read_records,
    run_job,
)
from tests.helpers.servers import StartSim, free_port

pytestmark = pytest.mark.slow

CLIENT_ID = "60a6665536e9be3139e58f7c"
SECRET = "4b0c8e1d2f3a45e6b7c8d9e0f1a2b3c4"
DATASETS = ("sensorwax-demo-0", "sensorwax-demo-2")
HALF = 300
# 12 sensors over 3 datasets at 2 events a second of event time from 23:59:00Z: the
# stream crosses midnight, and its first HALF events end at a window boundary (150 s).
SEQUENCE = SequenceSpec(
    sensors=12, rate=2.0, datasets=3, seed=5, format="obelisk", start_ms=1_764_633_540_000
)


def _config(end_after: int, ack_lag: int = 9, max_streams: int = 3) -> SimulatorConfig:
    return SimulatorConfig(
        sequence=SEQUENCE,
        # Drops, and acknowledgements nine events behind: every reconnect replays nine.
        faults=Faults(end_after=end_after, drop_every=70),
        pace_rate=400,
        events_per_write=3,
        oauth2=OAuth2Server(clients={CLIENT_ID: SECRET}),
        obelisk=ObeliskConfig(ack_lag=ack_lag, max_streams=max_streams),
    )


def _settings(sim: SensorSimulator, **more: str) -> dict[str, str]:
    return {
        "OBELISK_URL": sim.base_url,
        "OBELISK_CLIENT_ID": CLIENT_ID,
        "OBELISK_CLIENT_SECRET": SECRET,
        "OBELISK_DATASETS": ",".join(DATASETS),
        **more,
    }


def _wanted(first: int, end: int, datasets: tuple[str, ...] = DATASETS) -> list[int]:
    return [n for n in range(first, end) if obelisk_event(SEQUENCE, n)["dataset"] in datasets]


def _sent(ids: list[int]) -> pd.DataFrame:
    rows = [("obelisk", n, *r) for n in ids for r in expected_readings(SEQUENCE, n)]
    return pd.DataFrame(
        rows, columns=["stream", "event_id", "sensor_id", "metric", "ts_ms", "value"]
    )


def _check_output(out: Path, ids: list[int]) -> None:
    expected, late = expected_aggregates([_sent(ids)], 10_000, 2_000)
    assert late.empty
    assert_same_aggregates(load_aggregates(read_records(out, "aggregates")), expected)
    assert not read_records(out, "dead_letters")
    assert not any(SECRET in path.read_text() for path in out.rglob("*") if path.is_file())


def _catalog(sim: SensorSimulator) -> ObeliskCatalog:
    return ObeliskCatalog(sim.base_url, ClientCredentials(sim.token_url, CLIENT_ID, SECRET))


@pytest.mark.parametrize("reader", READERS)
def test_the_job_creates_its_stream_reads_it_and_a_restart_reads_on_from_there(
    simulator: StartSim, tmp_path: Path, reader: str
) -> None:
    first = simulator(_config(end_after=HALF))
    out = tmp_path / "out"
    run = run_job("dataflows.sensor_stats", OUTPUT=str(out), SSE_READER=reader, **_settings(first))
    assert run.returncode == 0, run.stderr
    assert first.catalog is not None
    (stream,) = first.catalog.streams
    assert (stream.name, stream.datasets, stream.metrics) == ("sensorwax", DATASETS, ("*::number",))
    # Obelisk's default fields leave out the timestamp: the job asks for what it reads.
    assert stream.fields == STREAM_FIELDS and stream.precision == "MILLISECONDS"
    reads = [r for r in first.requests if r.path.startswith("/api/v3/data/streams/")]
    assert len(reads) > 3
    assert all(r.path.endswith(f"{stream.id}?receiveBacklog=true") for r in reads)
    assert all(r.headers["Authorization"].startswith("Bearer ") for r in reads)
    # Every reconnect began with nine events the job had: Obelisk sent them twice.
    assert len(first.sent_ids) > len(set(first.sent_ids))
    assert sorted(set(first.sent_ids)) == _wanted(0, HALF)
    assert "events the server sent again" in run.stderr

    # Obelisk's streaming service restarts; the stream and its subscription stay.
    first.stop()
    second_catalog = first.catalog
    second = SensorSimulator(_config(end_after=2 * HALF), catalog=second_catalog).start()
    try:
        run = run_job(
            "dataflows.sensor_stats",
            OUTPUT=str(out),
            OUTPUT_MODE="append",
            SSE_READER=reader,
            **_settings(second),
        )
    finally:
        second.stop()
    assert run.returncode == 0, run.stderr
    assert [s.id for s in second_catalog.streams] == [stream.id]
    assert second_catalog.operations.count("createStream") == 1
    assert f"reading Obelisk stream {stream.id}" in run.stderr
    # On from where the first run stopped: nothing again, nothing missed.
    assert min(second.sent_ids) >= HALF
    assert sorted(set(second.sent_ids)) == _wanted(HALF, 2 * HALF)
    _check_output(out, _wanted(0, 2 * HALF))
    record = json.loads(sorted((out / "runs").glob("*.json"))[-1].read_text())
    assert record["settings"]["OBELISK_CLIENT_SECRET"] == "***"
    assert record["settings"]["OBELISK_STREAM"] == "sensorwax"


def _command(sim: SensorSimulator, *args: str, **more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dataflows.obelisk", *args],
        env=job_env(**{**_settings(sim), **more}),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_the_command_creates_lists_and_removes_streams_and_says_why_not(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = simulator(_config(end_after=HALF, ack_lag=0, max_streams=2))
    made = _command(
        sim, "create-stream", "--name", "by-hand", "--dataset", "sensorwax-demo-1",
        "--metric", "temperature::number",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    stream_id = re.search(r"created Obelisk stream (\w+) \(by-hand\)", made.stdout)
    assert stream_id is not None, made.stdout
    shown = dict(
        line.split("=", 1) for line in made.stdout.splitlines() if re.match(r"^SSE_\w+=", line)
    )
    assert (
        shown["SSE_URL"] == f"{sim.base_url}/api/v3/data/streams/{stream_id[1]}?receiveBacklog=true"
    )

    listed = _command(sim, "list-streams")
    assert listed.returncode == 0, listed.stderr
    assert re.search(
        rf"{stream_id[1]}\s+by-hand\s+sensorwax-demo-1\s+temperature::number", listed.stdout
    )

    # The printed settings read the stream as they are (the secret is the user's to add).
    out = tmp_path / "out"
    settings = {k: v for k, v in shown.items() if k != "SSE_OAUTH2_CLIENT_SECRET"}
    run = run_job(
        "dataflows.sensor_stats", OUTPUT=str(out), SSE_OAUTH2_CLIENT_SECRET=SECRET, **settings
    )
    assert run.returncode == 0, run.stderr
    temperature = [
        n for n in _wanted(0, HALF, ("sensorwax-demo-1",))
        if obelisk_event(SEQUENCE, n)["metric"] == "temperature::number"
    ]  # fmt: skip
    assert sorted(set(sim.sent_ids)) == temperature
    _check_output(out, temperature)

    # The Catalog's refusals: one line with its own message, exit status 1.
    assert _command(sim, "create-stream", "--name", "second").returncode == 0
    full = _command(sim, "create-stream", "--name", "third")
    assert full.returncode == 1
    assert full.stderr.strip().splitlines() == [
        "sensorwax: Obelisk catalog refused to createStream 'third': BAD_REQUEST: "
        "Maximum number of active streams reached (2)"
    ]
    removed = _command(sim, "remove-stream", stream_id[1])
    assert removed.returncode == 0, removed.stderr
    assert stream_id[1] not in _command(sim, "list-streams").stdout
    again = _command(sim, "remove-stream", stream_id[1])
    assert again.returncode == 1
    assert f"NOT_FOUND: Stream {stream_id[1]} not found" in again.stderr
    foreign = _command(sim, "create-stream", "--name", "x", "--dataset", "not-ours")
    assert foreign.returncode == 1
    assert "NOT_AUTHORIZED: No permission to access dataset not-ours" in foreign.stderr
    wrong = _command(sim, "list-streams", OBELISK_CLIENT_SECRET="not-the-secret")
    assert wrong.returncode == 1
    assert "refused the credentials: HTTP 401" in wrong.stderr
    unset = _command(sim, "list-streams", OBELISK_URL="")
    assert unset.returncode == 2
    assert "OBELISK_URL: the Obelisk to use" in unset.stderr
    for done in (made, listed, full, removed, again, foreign, wrong, unset):
        assert "Traceback" not in done.stderr and "not-the-secret" not in done.stderr
        assert SECRET not in done.stdout + done.stderr


def test_a_stream_of_that_name_that_reads_something_else_is_refused_not_read(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = simulator(_config(end_after=HALF))
    catalog = _catalog(sim)
    # Made by hand with Obelisk's defaults: no timestamp field, and one dataset only.
    document = {
        "query": 'mutation { createStream(input: {name: "sensorwax", dataRange: '
        '{datasets: "sensorwax-demo-0"}}) { responseCode item { id } } }'
    }
    assert sim.catalog is not None
    made = sim.catalog.execute(document)
    stream_id = made["data"]["createStream"]["item"]["id"]
    assert catalog.find_stream("sensorwax") is not None
    run = run_job("dataflows.sensor_stats", OUTPUT=str(tmp_path / "out"), **_settings(sim))
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (line,) = [line for line in run.stderr.splitlines() if "stopped:" in line]
    assert f"Obelisk stream 'sensorwax' ({stream_id}) is not the stream" in line
    assert "leaves out the field(s) timestamp, dataset" in line
    assert "it reads the datasets sensorwax-demo-0" in line
    assert f"python -m dataflows.obelisk remove-stream {stream_id}" in line
    assert not [r for r in sim.requests if r.path.startswith("/api/v3/data/streams/")]


def test_obelisk_settings_that_cannot_work_stop_the_job_with_one_line_each(
    tmp_path: Path,
) -> None:
    run = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(tmp_path / "out"),
        OBELISK_URL="obelisk.example",
        OBELISK_CLIENT_ID=CLIENT_ID,
        OBELISK_METRICS="temperature,co2::number",
        OBELISK_FILTER="{source:",
        SSE_URL="http://127.0.0.1:9/stream",
        SSE_OAUTH2_TOKEN_URL="http://127.0.0.1:9/token",
        SSE_OAUTH2_CLIENT_ID="x",
        SSE_OAUTH2_CLIENT_SECRET="client-secret-xyz",
    )
    assert run.returncode == 2
    for expected in (
        "OBELISK_URL: 'obelisk.example' is not an http(s) URL",
        "OBELISK_CLIENT_SECRET: needed with OBELISK_URL",
        "OBELISK_DATASETS: the ids of the datasets to stream",
        "OBELISK_METRICS: 'temperature' not <name>::<type>",
        "OBELISK_FILTER: '{source:' is not JSON",
        "set one of SSE_URL, DT_PROJECT_ID and OBELISK_URL",
        "unset SSE_BEARER_TOKEN, SSE_BASIC_AUTH, SSE_QUERY_TOKEN and SSE_OAUTH2_*",
    ):
        assert expected in run.stderr
    assert "client-secret-xyz" not in run.stderr
    assert "Traceback" not in run.stderr


def test_an_obelisk_that_cannot_be_reached_is_tried_again_within_the_retry_caps(
    tmp_path: Path,
) -> None:
    run = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(tmp_path / "out"),
        OBELISK_URL=f"http://127.0.0.1:{free_port()}",
        OBELISK_CLIENT_ID=CLIENT_ID,
        OBELISK_CLIENT_SECRET=SECRET,
        OBELISK_DATASETS=",".join(DATASETS),
        SSE_RETRY_INITIAL="50ms",
        SSE_RETRY_MAX_ATTEMPTS="2",
    )
    assert run.returncode == 1
    assert run.stderr.count("trying again in") == 2
    (line,) = [line for line in run.stderr.splitlines() if "stopped:" in line]
    assert "gave up after 2 reconnect attempts in a row" in line
    assert "SSE_RETRY_MAX_ATTEMPTS=2" in line
    assert "token endpoint" in line
    assert "Traceback" not in run.stderr and SECRET not in run.stderr
