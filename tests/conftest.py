"""The fixtures every test folder shares: loopback servers, a throwaway CA, DEBUG logs,
a real forward proxy, and no proxy from the machine's environment."""

from __future__ import annotations

import logging
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from connectors.simulator import SensorSimulator, SimulatorConfig
from tests.helpers.servers import PROXY_PASSWORD, ScriptedServer, Step
from tests.helpers.waiting import wait_for


@pytest.fixture
def simulator() -> Iterator[Callable[[SimulatorConfig], SensorSimulator]]:
    """Starts simulators on free ports and stops them after the test."""
    started: list[SensorSimulator] = []

    def start(config: SimulatorConfig) -> SensorSimulator:
        sim = SensorSimulator(config).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(scripts: list[list[Step]], tls: ssl.SSLContext | None = None) -> ScriptedServer:
        server = ScriptedServer(scripts, tls).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority for the TLS tests."""
    return trustme.CA()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record captured, at DEBUG: urllib3 prints its request lines there."""
    caplog.set_level(logging.DEBUG)
    yield caplog


@pytest.fixture
def forward_proxy(tmp_path: Path) -> Iterator[str]:
    """proxy.py on a free port, with basic auth; yields its host:port."""
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "proxy",
            "--hostname",
            "127.0.0.1",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--threaded",
            "--num-workers",
            "1",
            "--basic-auth",
            f"tester:{PROXY_PASSWORD}",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: port_file.is_file() and port_file.read_text().strip() != "", "proxy.py")
        yield f"127.0.0.1:{port_file.read_text().strip()}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(autouse=True)
def _no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests talk to 127.0.0.1; a proxy set on the machine running them must not route
    # them elsewhere. The proxy tests set what they mean.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "SSE_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
