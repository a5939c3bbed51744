"""``make run`` until the main job exists: the simulator and a subscriber printing events.

The stream is bounded (it ends with 204) and has one dropped connection, so the
reconnect with ``Last-Event-ID`` shows in the log.
"""

from __future__ import annotations

import logging
import sys
import time

from connectors.simulator.sequence import SequenceSpec
from connectors.simulator.server import Faults, SensorSimulator, SimulatorConfig
from connectors.sse import RetryPolicy, subscribe


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = SimulatorConfig(
        sequence=SequenceSpec(sensors=4, rate=20, start_ms=int(time.time()) * 1000),
        faults=Faults(drop_every=30, drop_mid_event=True, end_after=60),
    )
    with SensorSimulator(config) as sim:
        events = 0
        for event in subscribe(sim.url, retry=RetryPolicy(initial_delay=0.2, jitter=0.2)):
            print(f"id={event.id:>3} {event.data}", flush=True)
            events += 1
    print(f"{events} events, each once, across one dropped connection", flush=True)
    return 0 if events == 60 else 1


if __name__ == "__main__":
    sys.exit(main())
