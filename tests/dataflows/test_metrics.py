"""The job's metrics on Bytewax's own endpoint, scraped while it runs, against what the
simulator sent."""

from __future__ import annotations

import math
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from dataflows.config import READERS
from tests.helpers.doc_blocks import examples
from tests.helpers.oracle import KEY, bytewax_run_cmd, job_env, sent_readings
from tests.helpers.servers import StartSim, free_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

EVENTS = 450


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint, by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def closed_windows(sent: pd.DataFrame, window_ms: int, lateness_ms: int) -> int:
    """Windows whose end its key's newest reading has passed by the lateness."""
    sent = sent.assign(window=sent["ts_ms"] // window_ms)
    newest = sent.groupby(KEY)["ts_ms"].transform("max")
    closed = (sent["window"] + 1) * window_ms <= newest - lateness_ms
    return int(sent[closed].groupby([*KEY, "window"]).ngroups)


@pytest.mark.parametrize("reader", READERS)
def test_metrics_match_what_the_simulator_sent(
    simulator: StartSim, tmp_path: Path, reader: str
) -> None:
    # Drops mid-event every 100 events and a malformed event every 50; after 450 events
    # (18 s of event time from a window's start a minute ago: each sensor's first window
    # closes, its second stays open) the stream stays open with pings only, so the
    # counters can be read at rest.
    start_ms = (int(time.time() * 1000) - 60_000) // 10_000 * 10_000
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=4, rate=25, start_ms=start_ms),
            faults=Faults(drop_every=100, drop_mid_event=True, malformed_every=50, hold_after=450),
            pace=False,
            ping_interval=0.2,
            oauth2=OAuth2Server(clients={"sensorwax": "cs-metrics-3e1f"}),
        )
    )
    port = free_port()
    proc = subprocess.Popen(
        bytewax_run_cmd("dataflows.sensor_stats"),
        env=job_env(
            SSE_URL=sim.url,
            OUTPUT=str(tmp_path),
            SSE_RETRY_INITIAL="10ms",
            SSE_OAUTH2_TOKEN_URL=sim.token_url,
            SSE_OAUTH2_CLIENT_ID="sensorwax",
            SSE_OAUTH2_CLIENT_SECRET="cs-metrics-3e1f",
            SSE_READER=reader,
            BYTEWAX_DATAFLOW_API_ENABLED="true",
            BYTEWAX_DATAFLOW_API_PORT=str(port),
        ),
        # Bytewax's API server writes dataflow.json into the working directory.
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sent = sent_readings(sim, EVENTS)
    malformed = [n for n in range(EVENTS) if sim.config.faults.malformed(n)]
    sent = sent[~sent["event_id"].isin(malformed)]
    windows = closed_windows(sent, 10_000, 2_000)
    stream = (("stream", sim.url),)
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    # Once the job has parsed every event and written every window it can, the counters
    # stay put: wait for that (a counter that never gets there times out, naming it).
    at_rest = {
        ("sensorwax_sse_events_total", stream): EVENTS,
        ("sensorwax_readings_total", ()): len(sent),
        ("sensorwax_dead_letters_total", (("reason", "invalid_json"),)): len(malformed),
        ("sensorwax_records_total", (("output", "dead_letters"),)): len(malformed),
        ("sensorwax_records_total", (("output", "aggregates"),)): windows,
    }

    def settled() -> bool:
        nonlocal samples
        try:
            samples = scrape(port)
        except OSError:
            return False  # not serving yet
        return all(samples.get(key, 0) == value for key, value in at_rest.items())

    try:
        wait_for(settled, f"the counters to reach {at_rest}", poll=0.2)
        scraped_at = time.time()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert len(sim.sent_ids) == EVENTS
    streams = [r for r in sim.requests if r.path == "/stream"]
    assert samples[("sensorwax_sse_reconnects_total", stream)] == len(streams) - 1 == 4
    assert samples[("sensorwax_sse_connected", stream)] == 1
    # An hour-long token, fetched once and reused across the four reconnects.
    tokens = len(sim.tokens.issued)  # type: ignore[union-attr]
    assert samples[("sensorwax_sse_token_refreshes_total", stream)] == tokens == 1
    payload = sum(len(sim.event_bytes(n)) for n in range(EVENTS))
    assert samples[("sensorwax_sse_bytes_total", stream)] > payload
    assert samples[("sensorwax_readings_total", ())] == len(sent) == EVENTS - len(malformed)
    invalid = samples[("sensorwax_dead_letters_total", (("reason", "invalid_json"),))]
    assert invalid == len(malformed) == 9
    assert samples[("sensorwax_records_total", (("output", "dead_letters"),))] == 9
    assert windows == 4 == samples[("sensorwax_open_windows", ())]
    lag = samples[("sensorwax_event_lag_seconds", stream)]
    newest = sent["ts_ms"].max() / 1000
    assert math.isclose(lag, scraped_at - newest, abs_tol=5.0), (lag, scraped_at - newest)
    # Bytewax's own step metrics are served beside them.
    assert any(name.startswith("bytewax_") for name, _ in samples)
    # docs/operating.md shows each of the job's metrics with its labels, and no other.
    (shown,) = [
        e for e in examples() if e.marker == "not run: scraped by tests/dataflows/test_metrics.py"
    ]
    documented = {
        (name, tuple(sorted(re.findall(r'(\w+)="', labels))))
        for name, labels in re.findall(r"^(\w+)(?:\{(.*)\})? ", shown.code, re.M)
    }
    served = {
        (name, tuple(sorted(k for k, _ in labels)))
        for name, labels in samples
        if name.startswith("sensorwax_")
    }
    assert documented == served
