"""The fixtures every test folder shares: loopback servers, a throwaway CA, DEBUG logs."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterator

import pytest
import trustme

from connectors.simulator import SensorSimulator, SimulatorConfig
from tests.helpers.servers import ScriptedServer, Step


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
