"""A loopback sensor server speaking SSE, for the demo, the tests and the benchmarks."""

from connectors.simulator.oauth2 import OAuth2Server
from connectors.simulator.sequence import (
    ExpectedReading,
    SequenceSpec,
    expected_readings,
    payload,
)
from connectors.simulator.server import Faults, RequestRecord, SensorSimulator, SimulatorConfig

__all__ = [
    "ExpectedReading",
    "Faults",
    "OAuth2Server",
    "RequestRecord",
    "SensorSimulator",
    "SequenceSpec",
    "SimulatorConfig",
    "expected_readings",
    "payload",
]
