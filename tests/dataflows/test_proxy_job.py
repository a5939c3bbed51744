"""The main job behind a forward proxy (proxy.py with basic auth): SSE_PROXY for the
stream and its tokens, drops on the way, every window equal to pandas, and the proxy's
password in no log line, record or run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.simulator import Faults, OAuth2Server, SequenceSpec, SimulatorConfig
from dataflows.config import READERS
from tests.helpers.oracle import (
    assert_same_aggregates,
    expected_aggregates,
    load_aggregates,
    read_records,
    run_job,
    sent_readings,
)
from tests.helpers.servers import PROXY_PASSWORD, StartSim

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("reader", READERS)
def test_the_job_reads_through_the_proxy_with_tokens_and_drops(
    simulator: StartSim, forward_proxy: str, tmp_path: Path, reader: str
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=50, seed=4),
            faults=Faults(end_after=600, drop_every=170, drop_mid_event=True),
            pace_rate=500,
            oauth2=OAuth2Server(clients={"cid": "cs-proxied-4d2c"}),
        )
    )
    out = tmp_path / "out"
    run = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(out),
        SSE_URL=sim.url,
        SSE_PROXY=f"http://tester:{PROXY_PASSWORD}@{forward_proxy}",
        SSE_OAUTH2_TOKEN_URL=sim.token_url,
        SSE_OAUTH2_CLIENT_ID="cid",
        SSE_OAUTH2_CLIENT_SECRET="cs-proxied-4d2c",
        SSE_RETRY_INITIAL="10ms",
        SSE_READER=reader,
        LOG_LEVEL="debug",
    )
    assert run.returncode == 0, run.stderr
    assert f"through the proxy http://{forward_proxy}" in run.stderr
    expected, _ = expected_aggregates([sent_readings(sim, 600)], 10_000, 2_000)
    assert_same_aggregates(load_aggregates(read_records(out, "aggregates")), expected)
    assert sim.tokens is not None and sim.tokens.requests
    written = [p.read_text() for p in out.rglob("*") if p.is_file()]
    assert not any(PROXY_PASSWORD in text for text in [run.stderr, run.stdout, *written])


def test_a_proxy_url_that_cannot_be_one_stops_the_job_at_start(tmp_path: Path) -> None:
    run = run_job(
        "dataflows.sensor_stats",
        OUTPUT=str(tmp_path / "out"),
        SSE_URL="http://127.0.0.1:9/stream",
        SSE_PROXY=f"socks5://tester:{PROXY_PASSWORD}@127.0.0.1:1080",
    )
    assert run.returncode == 2
    assert "SSE_PROXY" in run.stderr and "http://host:port" in run.stderr
    assert PROXY_PASSWORD not in run.stderr
