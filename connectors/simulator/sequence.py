"""The simulated sensors: event n of a stream is a pure function of (spec, n).

Because nothing depends on what was sent before, a server can resume from any
``Last-Event-ID`` and a test can recompute what any event carried.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from connectors.simulator.dt_events import DtEvent, ExpectedReading, dt_event, rfc3339
from connectors.vendors import VENDOR_FORMATS, VendorFormat

__all__ = [
    "ExpectedReading",
    "SequenceSpec",
    "dt_event_type",
    "expected_readings",
    "is_backfilled",
    "obelisk_dataset",
    "obelisk_event",
    "payload",
    "ping_payload",
    "sensor_id",
]


# Device kinds, cycled over the sensors: (DT event type, metrics it reports).
_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("temperature", ("temperature",)),
    ("humidity", ("temperature", "relativeHumidity")),
    ("co2", ("co2",)),
)
# Per metric: level, swing, noise amplitude, decimals, and a salt that keeps its noise
# independent of the other metrics of the same event.
_SHAPES: dict[str, tuple[float, float, float, int, int]] = {
    "temperature": (21.0, 3.0, 0.4, 2, 1),
    "relativeHumidity": (45.0, 8.0, 1.5, 1, 2),
    "co2": (600.0, 150.0, 20.0, 0, 3),
    "pascal": (101_325.0, 400.0, 30.0, 0, 4),
}
_MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SequenceSpec:
    """What the simulated sensors send: how many, how often (in event time), what shape.

    ``disorder_ms`` moves each event's timestamp back by up to that many ms, so streams
    can be out of order in event time the way real gateways are. ``quiet_sensor`` (an
    index) stops reporting ``quiet_after_ms`` into the stream, as a sensor with a dead
    battery does; the sensor after it reports in its turns from then on.

    Two more anomalies, for alert rules to find: ``spike_sensor`` reads ``spike_by`` more
    than it should from ``spike_after_ms`` for ``spike_for_ms``; ``stuck_sensor`` repeats
    one value (its level at the start, without noise) from ``stuck_after_ms`` for
    ``stuck_for_ms``. Times are event time since ``start_ms``.

    For the DT format: ``dt_events`` is the device mix (``readings``: temperature,
    humidity and CO2 sensors; ``every``: every DT event type, ``dt_events.DT_EVERY``);
    ``samples`` makes temperature events carry that many samples, spread over the time
    since the sensor's previous event (0: no ``samples`` list, as first-generation
    sensors send); every ``backfill_every``-th temperature event is backfilled.

    For Obelisk: the sensors are spread over ``datasets`` datasets in turn (one: the
    dataset is ``project``; more: ``<project>-0``, ``<project>-1``...).
    """

    sensors: int = 20
    rate: float = 50.0
    seed: int = 0
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    format: VendorFormat = "flat"
    disorder_ms: int = 0
    project: str = "sensorwax-demo"
    sensor_offset: int = 0  # sensor-<offset> is the first: streams with distinct sensors
    quiet_sensor: int | None = None
    quiet_after_ms: int = 0
    spike_sensor: int | None = None
    spike_after_ms: int = 0
    spike_for_ms: int = 0
    spike_by: float = 10.0
    stuck_sensor: int | None = None
    stuck_after_ms: int = 0
    stuck_for_ms: int = 0
    dt_events: Literal["readings", "every"] = "readings"
    samples: int = 0
    backfill_every: int = 0
    datasets: int = 1

    def __post_init__(self) -> None:
        if self.sensors < 1:
            raise ValueError(f"sensors must be at least 1, got {self.sensors}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 events per second, got {self.rate}")
        if self.format not in VENDOR_FORMATS:
            raise ValueError(
                f"format must be one of {', '.join(VENDOR_FORMATS)}, got {self.format!r}"
            )
        if self.disorder_ms < 0:
            raise ValueError(f"disorder_ms must be >= 0, got {self.disorder_ms}")
        if self.quiet_sensor is not None and not 0 <= self.quiet_sensor < self.sensors > 1:
            raise ValueError("quiet_sensor must be the index of one of at least two sensors")
        if self.dt_events not in ("readings", "every"):
            raise ValueError(f"dt_events must be readings or every, got {self.dt_events!r}")
        if not 0 <= self.samples <= 30:  # DT's sensors send up to 30
            raise ValueError(f"samples must be 0 to 30, got {self.samples}")
        if self.datasets < 1:
            raise ValueError(f"datasets must be at least 1, got {self.datasets}")
        if self.backfill_every < 0:
            raise ValueError(f"backfill_every must be >= 0, got {self.backfill_every}")
        for name in ("spike_sensor", "stuck_sensor"):
            index = getattr(self, name)
            if index is not None and not 0 <= index < self.sensors:
                raise ValueError(f"{name} must be the index of a sensor, got {index}")


def _unit(seed: int, n: int, salt: int) -> float:
    """A uniform number in [0, 1) from (seed, n, salt): splitmix64, no shared state."""
    z = (seed * 0x9E3779B97F4A7C15 + n * 0xBF58476D1CE4E5B9 + salt * 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)


def sensor_id(spec: SequenceSpec, index: int) -> str:
    return f"sensor-{index + spec.sensor_offset:03d}"


def _sensor_index(spec: SequenceSpec, n: int) -> int:
    """Which sensor event ``n`` comes from: in turn, but for a sensor gone quiet."""
    index = n % spec.sensors
    if index == spec.quiet_sensor and n * 1000 / spec.rate >= spec.quiet_after_ms:
        return (index + 1) % spec.sensors
    return index


def _kind(index: int) -> tuple[str, tuple[str, ...]]:  # the flat and Obelisk mixes
    return _KINDS[index % len(_KINDS)]


def _timestamp_ms(spec: SequenceSpec, n: int) -> int:
    ts = spec.start_ms + int(n * 1000 / spec.rate)
    if spec.disorder_ms:
        ts -= int(_unit(spec.seed, n, 7) * spec.disorder_ms)
    return ts


@lru_cache(maxsize=65536)
def _phase(seed: int, index: int) -> float:
    return _unit(seed, index, 11) * 2 * math.pi


def _value(spec: SequenceSpec, n: int, index: int, metric: str, ts_ms: int) -> float:
    level, swing, noise, decimals, salt = _SHAPES[metric]
    phase = _phase(spec.seed, index)
    since = ts_ms - spec.start_ms
    if index == spec.stuck_sensor and 0 <= since - spec.stuck_after_ms < spec.stuck_for_ms:
        stuck_at = spec.start_ms + spec.stuck_after_ms
        return round(level + swing * math.sin(2 * math.pi * stuck_at / 600_000 + phase), decimals)
    wave = math.sin(2 * math.pi * ts_ms / 600_000 + phase)  # a ten-minute cycle
    jitter = (_unit(spec.seed, n, salt) - 0.5) * 2
    value = level + swing * wave + noise * jitter
    if index == spec.spike_sensor and 0 <= since - spec.spike_after_ms < spec.spike_for_ms:
        value += spec.spike_by
    return round(value, decimals)


def expected_readings(spec: SequenceSpec, n: int) -> list[ExpectedReading]:
    """The readings event ``n`` carries."""
    if spec.format == "dt":
        return _dt(spec, n).readings
    index = _sensor_index(spec, n)
    ts_ms = _timestamp_ms(spec, n)
    _, metrics = _kind(index)
    metric = metrics[0]
    number = _value(spec, n, index, metric, ts_ms)
    return [ExpectedReading(sensor_id(spec, index), metric, ts_ms, number)]


def is_backfilled(spec: SequenceSpec, n: int) -> bool:
    """Whether event ``n`` is a backfilled DT event (a ``backfilled`` dead letter)."""
    return spec.format == "dt" and _dt(spec, n).backfilled


def _dt(spec: SequenceSpec, n: int) -> DtEvent:
    index = _sensor_index(spec, n)
    return dt_event(
        n,
        index,
        sensor_id(spec, index),
        _timestamp_ms(spec, n),
        every=spec.dt_events == "every",
        samples=spec.samples,
        period_ms=spec.sensors * 1000 / spec.rate,
        backfill_every=spec.backfill_every,
        value=lambda salt, field, ts: _value(spec, salt, index, field, ts),
        unit=lambda salt, k: _unit(spec.seed, salt, k),
    )


def payload(spec: SequenceSpec, n: int) -> str:
    """The SSE ``data`` of event ``n`` in the spec's format (one line of JSON)."""
    if spec.format == "dt":
        return json.dumps(_dt_envelope(spec, n), separators=(",", ":"))
    first = expected_readings(spec, n)[0]
    if spec.format == "flat":
        # What json.dumps writes for these fields (ids and metric names need no escapes,
        # a float is its repr either way), at a third of its cost: unpaced tests are
        # bound by this server.
        return (
            f'{{"sensor_id":"{first.sensor_id}","metric":"{first.metric}",'
            f'"ts":"{rfc3339(first.ts_ms)}","value":{first.value!r}}}'
        )
    return json.dumps(obelisk_event(spec, n), separators=(",", ":"))


def obelisk_dataset(spec: SequenceSpec, index: int) -> str:
    """The Obelisk dataset sensor ``index`` belongs to."""
    return spec.project if spec.datasets == 1 else f"{spec.project}-{index % spec.datasets}"


def obelisk_event(spec: SequenceSpec, n: int) -> dict[str, Any]:
    """Event ``n`` as an Obelisk metric event with every field a reading needs."""
    first = expected_readings(spec, n)[0]
    return {
        "timestamp": first.ts_ms,
        "dataset": obelisk_dataset(spec, _sensor_index(spec, n)),
        "metric": f"{first.metric}::number",
        "value": first.value,
        "source": first.sensor_id,
    }


def _dt_envelope(spec: SequenceSpec, n: int) -> object:
    event = _dt(spec, n)
    index = _sensor_index(spec, n)
    return {
        "result": {
            "event": {
                "eventId": f"ev{spec.seed:x}{n:012d}",
                "targetName": f"projects/{spec.project}/devices/{sensor_id(spec, index)}",
                "eventType": event.event_type,
                "data": event.data,
                "timestamp": rfc3339(_timestamp_ms(spec, n)),
            }
        }
    }


def dt_event_type(spec: SequenceSpec, n: int) -> str:
    """The DT event type of event ``n`` (what a stream's ``event_types`` filter sees)."""
    return _dt(spec, n).event_type


def ping_payload(spec: SequenceSpec, now_ms: int) -> str:
    """Disruptive Technologies' keep-alive: a ``ping`` event of the project, no data."""
    return json.dumps(
        {
            "result": {
                "event": {
                    "eventId": f"ping{now_ms:x}",
                    "targetName": f"projects/{spec.project}",
                    "eventType": "ping",
                    "data": None,
                    "timestamp": rfc3339(now_ms),
                }
            }
        },
        separators=(",", ":"),
    )
