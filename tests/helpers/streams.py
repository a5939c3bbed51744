"""What the subscription tests share: a fast retry policy, simulator shapes, id helpers."""

from __future__ import annotations

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.sse import OversizedEvent, RetryPolicy, SSEEvent

__all__ = ["FAST_RETRY", "data_lengths", "ids_alone", "ids_of", "resumed_from", "unpaced"]

# Fast, deterministic reconnects for tests: no jitter, small delays.
FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, jitter=0.0)


def unpaced(faults: Faults | None = None, **kwargs: object) -> SimulatorConfig:
    return SimulatorConfig(
        sequence=SequenceSpec(sensors=5),
        faults=faults or Faults(end_after=40),
        pace=False,
        **kwargs,  # type: ignore[arg-type]
    )


def ids_of(events: list[SSEEvent]) -> list[int]:
    return [int(e.id) for e in events]


def resumed_from(sim: SensorSimulator) -> list[str | None]:
    return [r.headers.get("Last-Event-ID") for r in sim.requests]


def data_lengths(events: list[SSEEvent | OversizedEvent]) -> tuple[list[str], list[object]]:
    """A decode for a reader process: the events' ids, and each one's data length (an
    oversized one's None)."""
    lengths = [len(e.data) if isinstance(e, SSEEvent) else None for e in events]
    return [e.id for e in events], lengths


def ids_alone(events: list[SSEEvent | OversizedEvent]) -> tuple[list[str], list[object]]:
    """A decode that breaks its contract: the events' ids and no value for any of them."""
    return [e.id for e in events], []
