"""Disruptive Technologies' events as the simulator serves them, with the readings a
correct parser reads from each: the oracle's side of the DT format, written out here
type by type rather than derived from the parser's rule.

Two device mixes (``SequenceSpec.dt_events``): ``readings``, sensors cycling through
temperature, humidity and CO2 (the benchmarks' stream); ``every``, sensors cycling through
every event type of DT's API (the types of DT's Python SDK, its test fixtures' shapes,
and the states DT's documentation lists). Temperature events carry ``samples`` when the
spec asks (DT's inter-heartbeat sampling: newest first, the first equal to ``value``),
and every ``backfill_every``-th temperature event is a backfilled one, an hour old.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

__all__ = ["DT_EVERY", "DtEvent", "ExpectedReading", "dt_event", "event_type_of", "rfc3339"]


class ExpectedReading(NamedTuple):
    """One number an event carries, as a correct parser must read it."""

    sensor_id: str
    metric: str
    ts_ms: int
    value: float


# Every DT event type, in the order the ``every`` mix gives them to sensors.
DT_EVERY: tuple[str, ...] = (
    "temperature",
    "humidity",
    "co2",
    "pressure",
    "objectPresent",
    "waterPresent",
    "motion",
    "deskOccupancy",
    "contact",
    "objectPresentCount",
    "touchCount",
    "touch",
    "networkStatus",
    "batteryStatus",
    "cellularStatus",
    "connectionStatus",
    "ethernetStatus",
    "labelsChanged",
    "probeWireStatus",
)
_READINGS_MIX = ("temperature", "humidity", "co2")
# Two-state events: the states, and what the first reads (1) and the second (0).
_STATES = {
    "objectPresent": ("PRESENT", "NOT_PRESENT"),
    "waterPresent": ("PRESENT", "NOT_PRESENT"),
    "motion": ("MOTION_DETECTED", "NO_MOTION_DETECTED"),
    "deskOccupancy": ("OCCUPIED", "NOT_OCCUPIED"),
    "contact": ("OPEN", "CLOSED"),
}
_HOUR_MS = 3_600_000

# value(n, field, ts_ms): the sequence's value of a field at a time (noise salted by n).
ValueOf = Callable[[int, str, int], float]
# unit(n, salt): the sequence's uniform number in [0, 1).
UnitOf = Callable[[int, int], float]


@dataclass(frozen=True)
class DtEvent:
    """One DT event: its type, its ``data``, and the readings it carries (none for a
    backfilled one, which the job keeps as a dead letter of its own)."""

    event_type: str
    data: Mapping[str, object] | None
    readings: list[ExpectedReading]
    backfilled: bool = False


def rfc3339(ts_ms: int) -> str:
    seconds, ms = divmod(ts_ms, 1000)
    return f"{_rfc3339_second(seconds)}{ms:03d}Z"


# A stream's events share their second with hundreds of others, and strftime was a fifth
# of what the simulator spent on an event (a million-event test is bound by the server).
@lru_cache(maxsize=4096)
def _rfc3339_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def event_type_of(index: int, every: bool) -> str:
    mix = DT_EVERY if every else _READINGS_MIX
    return mix[index % len(mix)]


def dt_event(
    n: int,
    index: int,
    sid: str,
    ts_ms: int,
    *,
    every: bool,
    samples: int,
    period_ms: float,
    backfill_every: int,
    value: ValueOf,
    unit: UnitOf,
) -> DtEvent:
    """Event ``n`` of sensor ``index`` (id ``sid``) at ``ts_ms``; ``period_ms`` is the
    time since that sensor's previous event, which its samples spread over."""
    kind = event_type_of(index, every)
    stamp = rfc3339(ts_ms)

    def one(metric: str, number: float) -> list[ExpectedReading]:
        return [ExpectedReading(sid, metric, ts_ms, number)]

    if kind == "temperature":
        return _temperature(n, sid, ts_ms, samples, period_ms, backfill_every, value)
    if kind == "humidity":
        t, rh = value(n, "temperature", ts_ms), value(n, "relativeHumidity", ts_ms)
        data = {"humidity": {"temperature": t, "relativeHumidity": rh, "updateTime": stamp}}
        readings = [
            ExpectedReading(sid, "humidity.temperature", ts_ms, t),
            ExpectedReading(sid, "humidity.relativeHumidity", ts_ms, rh),
        ]
        return DtEvent(kind, data, readings)
    if kind == "co2":
        ppm = value(n, "co2", ts_ms)
        return DtEvent(kind, {"co2": {"ppm": ppm, "updateTime": stamp}}, one("co2", ppm))
    if kind == "pressure":
        pascal = value(n, "pascal", ts_ms)
        data = {"pressure": {"pascal": pascal, "updateTime": stamp}}
        return DtEvent(kind, data, one("pressure", pascal))
    if kind in _STATES:
        on = unit(n, 5) < 0.5
        block: dict[str, object] = {"state": _STATES[kind][0 if on else 1], "updateTime": stamp}
        if kind == "deskOccupancy":
            block["remarks"] = []
        return DtEvent(kind, {kind: block}, one(kind, 1.0 if on else 0.0))
    if kind in ("objectPresentCount", "touchCount"):
        total = n // 7 + int(unit(n, 6) * 10)
        data = {kind: {"total": total, "updateTime": stamp}}
        return DtEvent(kind, data, one(kind, float(total)))
    if kind == "networkStatus":
        strength, rssi = int(unit(n, 8) * 100), -40 - int(unit(n, 9) * 60)
        connector = {"id": "emulated-ccon", "signalStrength": strength, "rssi": rssi}
        data = {
            "networkStatus": {
                "signalStrength": strength,
                "rssi": rssi,
                "updateTime": stamp,
                "cloudConnectors": [connector],
                "transmissionMode": "LOW_POWER_STANDARD_MODE",
            }
        }
        readings = [
            ExpectedReading(sid, "networkStatus.signalStrength", ts_ms, float(strength)),
            ExpectedReading(sid, "networkStatus.rssi", ts_ms, float(rssi)),
        ]
        return DtEvent(kind, data, readings)
    if kind == "batteryStatus":
        percentage = 100 - int(unit(n, 10) * 30)
        data = {"batteryStatus": {"percentage": percentage, "updateTime": stamp}}
        return DtEvent(kind, data, one("batteryStatus", float(percentage)))
    if kind == "cellularStatus":
        strength = int(unit(n, 12) * 100)
        data = {"cellularStatus": {"signalStrength": strength, "errors": [], "updateTime": stamp}}
        return DtEvent(kind, data, one("cellularStatus", float(strength)))
    # Events that are not measurements: no reading.
    if kind == "touch":
        return DtEvent(kind, {"touch": {"updateTime": stamp}}, [])
    if kind == "connectionStatus":
        block = {"connection": "ETHERNET", "available": ["CELLULAR", "ETHERNET"]}
        return DtEvent(kind, {kind: {**block, "updateTime": stamp}}, [])
    if kind == "ethernetStatus":
        block = {"macAddress": "f0:b5:b7:00:0a:08", "ipAddress": "10.0.0.1", "errors": []}
        return DtEvent(kind, {kind: {**block, "updateTime": stamp}}, [])
    if kind == "labelsChanged":
        changed: dict[str, object] = {"added": {"room": str(n % 9)}, "modified": {}}
        return DtEvent(kind, {**changed, "removed": []}, [])
    return DtEvent(kind, {kind: {"state": "THREE_WIRE", "updateTime": stamp}}, [])


def _temperature(
    n: int,
    sid: str,
    ts_ms: int,
    samples: int,
    period_ms: float,
    backfill_every: int,
    value: ValueOf,
) -> DtEvent:
    backfilled = backfill_every > 0 and n % backfill_every == backfill_every - 1
    at = ts_ms - _HOUR_MS if backfilled else ts_ms
    if not samples:
        number = value(n, "temperature", at)
        block: dict[str, object] = {"value": number, "updateTime": rfc3339(at)}
        readings = [ExpectedReading(sid, "temperature", at, number)]
    else:
        # Newest first, the first the event's own value; spread over the time since the
        # sensor's previous event, so that no two events' samples overlap.
        times = [at - int(k * period_ms / samples) for k in range(samples)]
        values = [value(n if k == 0 else n * 64 + k, "temperature", t) for k, t in enumerate(times)]
        block = {
            "value": values[0],
            "updateTime": rfc3339(at),
            "samples": [
                {"value": v, "sampleTime": rfc3339(t)} for v, t in zip(values, times, strict=True)
            ],
        }
        readings = [
            ExpectedReading(sid, "temperature", t, v)
            for v, t in zip(reversed(values), reversed(times), strict=True)
        ]
    if backfilled:
        block["isBackfilled"] = True
        readings = []
    return DtEvent("temperature", {"temperature": block}, readings, backfilled)
