"""Disruptive Technologies' own set-up, end to end: the job given only the variables of
DT's examples (and the test server's base URLs) reads the project's device stream, with
the JWT grant or basic auth, DT's ping_interval and event_types, every DT event type,
temperature samples and backfilled events, and writes what pandas computes from the
readings the simulator sent."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from connectors.simulator.sequence import expected_readings, is_backfilled
from tests.helpers.oracle import (
    assert_same_aggregates,
    expected_aggregates,
    load_aggregates,
    read_records,
    run_job,
)
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

PROJECT = "c0md3mm0c7pet3vico8g"
KEY_ID = "c18rs36olv9021epsv2g"
SECRET = "239dcd912b8041a58054f843a2a633a4"  # the SDK fixtures' key secret shape
EMAIL = f"c15uar7915fg13c8lfp0@{PROJECT}.serviceaccount.d21s.com"
EVENTS = 19 * 20  # every one of the 19 event types, 20 times
# 0.25 events a second of event time over 19 sensors: each reports every 76 s, and its
# 8 samples reach back 66.5 s: further behind the stream than LATENESS and IDLE_CLOSE's
# 30 s default, so every sample is windowed only because DT's set-up makes IDLE_CLOSE 16
# minutes.
SEQUENCE = SequenceSpec(
    sensors=19,
    rate=0.25,
    format="dt",
    dt_events="every",
    samples=8,
    backfill_every=5,
    project=PROJECT,
    seed=3,
    start_ms=1_764_633_000_000,  # 2025-12-01T23:50:00Z: the stream crosses midnight
)


def _sent(sim_ids: list[int]) -> pd.DataFrame:
    rows = [("dt", n, *r) for n in sim_ids for r in expected_readings(SEQUENCE, n)]
    return pd.DataFrame(
        rows, columns=["stream", "event_id", "sensor_id", "metric", "ts_ms", "value"]
    )


def _dt_settings(sim_port: int, token_url: str, **more: str) -> dict[str, str]:
    return {
        "DT_PROJECT_ID": PROJECT,
        "DT_SERVICE_ACCOUNT_KEY_ID": KEY_ID,
        "DT_SERVICE_ACCOUNT_SECRET": SECRET,
        "DT_API_URL": f"http://127.0.0.1:{sim_port}/v2",
        "DT_TOKEN_URL": token_url,
        **more,
    }


def _check_output(out: Path, sent_ids: list[int]) -> None:
    sent = _sent(sent_ids)
    assert set(sent.metric) >= {"temperature", "humidity.relativeHumidity", "motion"}
    expected, late = expected_aggregates([sent], 10_000, 2_000)
    assert late.empty
    assert_same_aggregates(load_aggregates(read_records(out, "aggregates")), expected)
    letters = [json.loads(line) for line in read_records(out, "dead_letters")]
    backfilled = [n for n in sent_ids if is_backfilled(SEQUENCE, n)]
    assert backfilled
    assert sorted(int(letter["event_id"]) for letter in letters) == backfilled
    assert {letter["reason"] for letter in letters} == {"backfilled"}
    assert not any(SECRET in path.read_text() for path in out.rglob("*") if path.is_file())


def test_the_four_dt_variables_read_the_project_stream_with_the_jwt_grant(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SEQUENCE,
            # A quiet spell of 2.5 s: the stream sends only DT's pings, every second.
            faults=Faults(end_after=EVENTS, pause_after=150, pause_seconds=2.5),
            pace_rate=400,
            events_per_write=4,
            oauth2=OAuth2Server(jwt_keys={KEY_ID: (SECRET, EMAIL)}),
        )
    )
    out = tmp_path / "out"
    settings = _dt_settings(sim.port, sim.token_url, DT_SERVICE_ACCOUNT_EMAIL=EMAIL)
    # The heartbeat sets DT's ping_interval (five sixths of it: 1 s).
    run = run_job(
        "dataflows.sensor_stats", OUTPUT=str(out), SSE_HEARTBEAT_TIMEOUT="1.2s", **settings
    )
    assert run.returncode == 0, run.stderr

    streams = [r for r in sim.requests if r.status == 200 and "devices:stream" in r.path]
    assert streams, sim.requests
    first = urlsplit(streams[0].path)
    assert first.path == f"/v2/projects/{PROJECT}/devices:stream"
    assert parse_qs(first.query) == {"ping_interval": ["1s"]}
    assert streams[0].headers["Authorization"].startswith("Bearer ")
    assert sim.tokens is not None
    assert {r.grant for r in sim.tokens.requests} == {"urn:ietf:params:oauth:grant-type:jwt-bearer"}
    # The pause's pings kept the stream: no reconnect, one subscription.
    assert len(streams) == 1, [r.path for r in sim.requests]
    assert sorted(sim.sent_ids) == list(range(EVENTS))
    _check_output(out, sim.sent_ids)
    record = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert record["settings"]["DT_SERVICE_ACCOUNT_SECRET"] == "***"
    assert record["settings"]["IDLE_CLOSE"] == "16m"


def test_without_an_email_the_key_is_basic_auth_and_event_types_filter_the_stream(
    simulator: StartSim, tmp_path: Path
) -> None:
    kinds = "temperature,humidity,motion,networkStatus,touch"
    sim = simulator(
        SimulatorConfig(
            sequence=SEQUENCE,
            faults=Faults(end_after=EVENTS),
            pace_rate=400,
            events_per_write=4,
            basic_auth=(KEY_ID, SECRET),
        )
    )
    out = tmp_path / "out"
    settings = _dt_settings(sim.port, "http://127.0.0.1:9/unused", DT_EVENT_TYPES=kinds)
    run = run_job("dataflows.sensor_stats", OUTPUT=str(out), **settings)
    assert run.returncode == 0, run.stderr

    query = parse_qs(urlsplit(sim.requests[0].path).query)
    assert query == {"ping_interval": ["50s"], "event_types": kinds.split(",")}
    assert sim.requests[0].headers["Authorization"].startswith("Basic ")
    sent = sim.sent_ids
    assert 0 < len(sent) < EVENTS  # only the wanted types were sent
    assert {r.metric.split(".")[0] for r in _sent(sent).itertuples()} == {
        "temperature",
        "humidity",
        "motion",
        "networkStatus",
    }
    _check_output(out, sent)


def test_dt_settings_that_cannot_work_stop_the_job_with_one_line_each(tmp_path: Path) -> None:
    run = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(tmp_path / "out"),
        DT_PROJECT_ID=PROJECT,
        DT_SERVICE_ACCOUNT_KEY_ID=KEY_ID,
        DT_EVENT_TYPES="temperature,temprature",
        SSE_BEARER_TOKEN="tok-abc-123",
    )
    assert run.returncode == 2
    assert "DT_SERVICE_ACCOUNT_SECRET: needed with DT_PROJECT_ID" in run.stderr
    assert "DT_EVENT_TYPES: 'temprature' not DT's" in run.stderr
    assert "unset SSE_BEARER_TOKEN" in run.stderr
    assert "tok-abc-123" not in run.stderr
    assert "Traceback" not in run.stderr
