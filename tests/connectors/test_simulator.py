"""The simulator: formats, purity of event n, resume, faults, auth, and the CLI."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.simulator import (
    Faults,
    SequenceSpec,
    SimulatorConfig,
    expected_readings,
    payload,
)
from connectors.sse import SSEEvent, SSEHTTPError, subscribe
from tests.helpers.servers import StartSim
from tests.helpers.streams import FAST_RETRY
from tests.helpers.waiting import wait_for


def _ms(stamp: str) -> int:
    # Integer arithmetic: a float timestamp times 1000 truncates a time before 1970 wrongly.
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_flat_events_carry_their_reading() -> None:
    spec = SequenceSpec(sensors=4, format="flat")
    for n in range(12):
        (reading,) = expected_readings(spec, n)
        body = json.loads(payload(spec, n))
        assert body == {
            "sensor_id": reading.sensor_id,
            "metric": reading.metric,
            "ts": body["ts"],
            "value": reading.value,
        }
        assert _ms(body["ts"]) == reading.ts_ms


@given(
    sensors=st.integers(1, 30),
    rate=st.floats(0.01, 5000),
    seed=st.integers(0, 2**32),
    start_ms=st.integers(-(10**12), 4 * 10**12),
    disorder_ms=st.integers(0, 10_000),
    n=st.integers(0, 10**9),
)
def test_a_flat_event_is_what_json_dumps_writes_and_its_time_is_its_ms(
    sensors: int, rate: float, seed: int, start_ms: int, disorder_ms: int, n: int
) -> None:
    # The flat payload is written by hand for speed: it must be json.dumps's exact text.
    spec = SequenceSpec(
        sensors=sensors, rate=rate, seed=seed, start_ms=start_ms, disorder_ms=disorder_ms
    )
    text = payload(spec, n)
    body = json.loads(text)
    assert json.dumps(body, separators=(",", ":")) == text
    (reading,) = expected_readings(spec, n)
    assert _ms(body["ts"]) == reading.ts_ms


def test_dt_envelopes_carry_every_number_of_the_event() -> None:
    spec = SequenceSpec(sensors=3, format="dt", project="p1")
    kinds = {}
    for n in range(3):
        event = json.loads(payload(spec, n))["result"]["event"]
        readings = expected_readings(spec, n)
        assert event["targetName"] == f"projects/p1/devices/{readings[0].sensor_id}"
        assert _ms(event["timestamp"]) == readings[0].ts_ms
        kinds[event["eventType"]] = (event["data"], readings)
    temp_data, (temp,) = kinds["temperature"]
    assert temp_data["temperature"]["value"] == temp.value
    hum_data, (hum_t, hum_rh) = kinds["humidity"]
    assert (hum_t.metric, hum_rh.metric) == ("humidity.temperature", "humidity.relativeHumidity")
    assert hum_data["humidity"]["temperature"] == hum_t.value
    assert hum_data["humidity"]["relativeHumidity"] == hum_rh.value
    co2_data, (co2,) = kinds["co2"]
    assert co2_data["co2"]["ppm"] == co2.value


def test_obelisk_events_use_ms_and_typed_metric_names() -> None:
    spec = SequenceSpec(sensors=2, format="obelisk")
    (reading,) = expected_readings(spec, 5)
    body = json.loads(payload(spec, 5))
    assert body["timestamp"] == reading.ts_ms
    assert body["metric"] == f"{reading.metric}::number"
    assert body["source"] == reading.sensor_id
    assert body["value"] == reading.value


def test_event_n_depends_on_n_alone() -> None:
    spec = SequenceSpec(seed=3, format="dt")
    forward = [payload(spec, n) for n in range(50)]
    backward = [payload(spec, n) for n in reversed(range(50))][::-1]
    assert forward == backward
    assert payload(SequenceSpec(seed=4, format="dt"), 7) != forward[7]


def test_disorder_moves_timestamps_back_within_the_bound() -> None:
    spec = SequenceSpec(rate=100, disorder_ms=500)
    ordered = SequenceSpec(rate=100)
    shifts = [
        expected_readings(ordered, n)[0].ts_ms - expected_readings(spec, n)[0].ts_ms
        for n in range(500)
    ]
    assert all(0 <= s < 500 for s in shifts)
    assert len(set(shifts)) > 100


@pytest.mark.parametrize(
    "kwargs",
    [{"sensors": 0}, {"rate": 0}, {"format": "xml"}, {"disorder_ms": -1}],
)
def test_bad_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SequenceSpec(**kwargs)  # type: ignore[arg-type]


def test_only_loopback_is_served() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimulatorConfig(host="0.0.0.0")


def test_malformed_events_are_cut_json_and_carry_no_readings(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(malformed_every=4, end_after=12), pace=False))
    events = list(subscribe(sim.url, retry=FAST_RETRY))
    bad = []
    for event in events:
        try:
            json.loads(event.data)
        except json.JSONDecodeError:
            bad.append(int(event.id))
    assert bad == [3, 7, 11]
    assert len(sim.expected_readings(range(12))) == 9


def test_resume_serves_the_same_bytes(simulator: StartSim) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(format="obelisk"), faults=Faults(end_after=30), pace=False
        )
    )
    whole = list(subscribe(sim.url, retry=FAST_RETRY))
    tail = list(subscribe(sim.url, last_event_id="19", retry=FAST_RETRY))
    assert tail == whole[20:]


@pytest.mark.parametrize(
    "required",
    [{"bearer_token": "b"}, {"basic_auth": ("u", "p")}, {"query_token": "q"}],
)
def test_missing_credentials_get_401(simulator: StartSim, required: dict[str, object]) -> None:
    sim = simulator(SimulatorConfig(pace=False, **required))  # type: ignore[arg-type]
    with pytest.raises(SSEHTTPError) as raised:
        list(subscribe(sim.url))
    assert raised.value.status == 401


def test_dt_pings_arrive_as_events_without_ids(simulator: StartSim) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=2, rate=3, format="dt"),
            faults=Faults(end_after=2),
            ping_interval=0.1,
        )
    )
    events = list(subscribe(sim.url + "?ping_interval=0.05s", retry=FAST_RETRY))
    types = [json.loads(e.data)["result"]["event"]["eventType"] for e in events]
    assert types.count("ping") >= 2
    assert [e.id for e in events if "ping" not in e.data] == ["0", "1"]


def _held_dt(events: int) -> SimulatorConfig:
    return SimulatorConfig(
        sequence=SequenceSpec(sensors=2, rate=3, format="dt"),
        faults=Faults(end_after=events),
        pace_rate=200,
        ping_interval=0.05,
        events_per_write=4,
    )


@pytest.mark.parametrize("at", [None, 3])
def test_a_held_stream_sends_only_pings_until_released(simulator: StartSim, at: int | None) -> None:
    """Held at once, or at event 3: the events before it, then only pings (DT's are
    events), then, released, the rest in order."""
    sim = simulator(_held_dt(6))
    sim.hold(at=at)
    events: list[SSEEvent] = []
    reader = threading.Thread(target=lambda: events.extend(subscribe(sim.url, retry=FAST_RETRY)))
    reader.start()
    wait_for(lambda: sum('"ping"' in e.data for e in events) >= 2, "pings while held")
    assert sim.sent_ids == list(range(at or 0))
    sim.release()
    reader.join(timeout=60)
    assert not reader.is_alive()
    assert [e.id for e in events if '"ping"' not in e.data] == [str(n) for n in range(6)]
    assert sim.sent_ids == list(range(6))


def test_the_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "connectors.simulator",
            "--port",
            "0",
            "--sensors",
            "3",
            "--unpaced",
            "--end-after",
            "6",
            "--format",
            "dt",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+/stream)", line)
        assert match, line
        events = list(subscribe(match.group(1), retry=FAST_RETRY))
        assert [e.id for e in events] == [str(n) for n in range(6)]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    assert code == 0


def test_the_cli_explains_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "connectors.simulator", "--statuses", "five"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "expected statuses like 503,408" in done.stderr
