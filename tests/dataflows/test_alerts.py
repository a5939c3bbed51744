"""Alerts: hand-written readings with known expected transitions, rule files, and the job."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from dataflows.alert_engine import AlertEngine
from dataflows.alert_rules import MetricRules, RulesError, load_rules
from dataflows.config import DEFAULT_RULES, load_config
from dataflows.readings import Reading
from dataflows.runtime import demo_simulator_config
from dataflows.times import iso
from tests.helpers.oracle import ROOT, bytewax_run_cmd, job_env, read_records, run_job
from tests.helpers.servers import StartSim

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def r(seconds: float, value: float, sensor: str = "a", metric: str = "t") -> Reading:
    return Reading(sensor, metric, T0 + timedelta(seconds=seconds), value, "1", "s")


def run(rules: MetricRules, readings: list[Reading]) -> list[tuple[float, str, str, str]]:
    """(seconds, sensor, rule, state) of every alert, in order."""
    engine = AlertEngine({"t": rules})
    return [
        ((a.ts - T0).total_seconds(), a.sensor_id, a.rule, a.state)
        for reading in readings
        for a in engine.observe(reading)
    ]


def test_high_threshold_with_hysteresis() -> None:
    rules = MetricRules(high=30, raise_after=3, clear_after=2)
    values = [29, 31, 32, 29, 31, 32, 33, 34, 35, 29, 31, 28, 27, 26, 31]
    #         0   1   2   3   4   5   6*  7   8   9   10  11  12* 13  14
    readings = [r(i, v) for i, v in enumerate(values)]
    # Raised at the third consecutive reading above 30 (t=6), never repeated while it
    # holds; one reading back inside (t=9) is not enough to clear, two in a row (11, 12) is.
    assert run(rules, readings) == [(6, "a", "high", "raised"), (12, "a", "high", "cleared")]


def test_low_threshold_and_the_reading_that_caused_it() -> None:
    engine = AlertEngine({"t": MetricRules(low=10, raise_after=2, clear_after=1)})
    alerts = [
        a for x in [r(0, 12), r(1, 9), r(2, 8.5), r(3, 7), r(4, 11)] for a in engine.observe(x)
    ]
    assert [(a.rule, a.state, a.value, a.limit) for a in alerts] == [
        ("low", "raised", 8.5, 10),
        ("low", "cleared", 11, 10),
    ]


def test_rate_of_change_in_units_per_second() -> None:
    rules = MetricRules(rate_limit=1.0, raise_after=1, clear_after=2)
    # +0.5/s, +3/s (raise), -2/s (still beyond), +0.5/s, +0.5/s (cleared at the second).
    readings = [r(0, 10), r(2, 11), r(3, 14), r(4, 12), r(6, 13), r(8, 14)]
    assert run(rules, readings) == [(3, "a", "rate", "raised"), (8, "a", "rate", "cleared")]
    engine = AlertEngine({"t": rules})
    alerts = [a for x in readings[:3] for a in engine.observe(x)]
    assert alerts[0].rate == 3.0


def test_a_rate_measured_over_a_span_ignores_noise_from_one_reading_to_the_next() -> None:
    rules = MetricRules(rate_limit=1.0, rate_span=timedelta(seconds=5), raise_after=2)
    # Readings every 0.5 s with +-0.4 of noise: 1.6/s from one to the next, never 1/s over
    # 5 s. Then a real climb of 2/s for 15 s raises it; flat again clears it.
    noisy = [r(i / 2, 20 + (0.4 if i % 2 else -0.4)) for i in range(40)]
    climb = [r(20 + i / 2, 20 + i) for i in range(31)]
    flat = [r(36 + i / 2, 50.0) for i in range(30)]
    alerts = run(rules, noisy + climb + flat)
    assert alerts == [(30, "a", "rate", "raised"), (40, "a", "rate", "cleared")]
    engine = AlertEngine({"t": rules})
    raised = [a for x in noisy + climb for a in engine.observe(x)]
    assert raised[0].rate == 2.0  # (30 - 20) / 5 s, to the readings' precision


def test_rates_are_given_to_the_readings_precision() -> None:
    engine = AlertEngine({"t": MetricRules(rate_limit=1.0)})
    alerts = [a for x in [r(0, 21.07), r(0.3, 22.39)] for a in engine.observe(x)]
    # 1.32 / 0.3 is 4.400000000000013 in floats.
    assert [a.rate for a in alerts] == [4.4]


def test_a_sensor_repeating_one_value_is_stuck_until_the_value_changes() -> None:
    rules = MetricRules(stuck=timedelta(seconds=5))
    readings = [r(i, 20.0 + (i % 3) / 10) for i in range(10)]  # changing: never stuck
    readings += [r(10 + i, 21.5) for i in range(8)]  # 21.5 from t=10 to t=17
    readings += [r(18, 21.6), r(19, 21.6)]
    assert run(rules, readings) == [(15, "a", "stuck", "raised"), (18, "a", "stuck", "cleared")]
    engine = AlertEngine({"t": rules})
    alerts = [a for x in readings for a in engine.observe(x)]
    assert [(a.value, a.gap_seconds) for a in alerts] == [(21.5, 5.0), (21.6, 7.0)]


def episode(engine: AlertEngine, readings: list[Reading]) -> list[tuple[str, float, float, float]]:
    """(state, onset seconds, peak, ended seconds or -1) of every alert."""
    return [
        (
            a.state,
            (a.onset - T0).total_seconds() if a.onset else -1,
            a.peak if a.peak is not None else float("nan"),
            (a.ended - T0).total_seconds() if a.ended else -1,
        )
        for x in readings
        for a in engine.observe(x)
    ]


def test_a_threshold_episode_runs_from_its_first_reading_beyond_to_its_first_back_inside() -> None:
    engine = AlertEngine({"t": MetricRules(high=30, raise_after=3, clear_after=2)})
    values = [29, 31, 29, 32, 33, 31, 36, 34, 29, 35, 28, 27, 26]
    #         0   1   2   3*  4   5   6   7   8   9   10* 11  12
    # 31 at t=1 is a streak broken at once: not the onset. The streak that raises starts
    # at t=3; the one reading inside at t=8 does not end it; the streak of two that
    # clears starts at t=10. Its peak is the readings' highest, 36, wherever it falls.
    assert episode(engine, [r(i, v) for i, v in enumerate(values)]) == [
        ("raised", 3, 33, -1),
        ("cleared", 3, 36, 10),
    ]


def test_a_low_episodes_peak_is_its_lowest_reading() -> None:
    engine = AlertEngine({"t": MetricRules(low=10, raise_after=2, clear_after=1)})
    values = [12, 9, 8.5, 7, 9.5, 11, 8]
    assert episode(engine, [r(i, v) for i, v in enumerate(values)]) == [
        ("raised", 1, 8.5, -1),
        ("cleared", 1, 7, 5),
    ]
    # A second episode starts afresh: its onset and peak are its own.
    assert episode(engine, [r(7, 9.9), r(8, 9.8), r(9, 10.5)]) == [
        ("raised", 6, 8, -1),
        ("cleared", 6, 8, 9),
    ]


def test_a_stuck_episode_is_the_repeated_value_from_its_first_reading() -> None:
    engine = AlertEngine({"t": MetricRules(stuck=timedelta(seconds=5))})
    readings = [r(0, 20.1), r(1, 20.3), *[r(2 + i, 22.06) for i in range(8)], r(10, 22.07)]
    assert episode(engine, readings) == [("raised", 2, 22.06, -1), ("cleared", 2, 22.06, 10)]


def test_a_silence_episode_runs_from_the_last_reading_to_the_next() -> None:
    engine = AlertEngine({"t": MetricRules(silence=timedelta(seconds=5))})
    readings = [r(0, 1), r(2, 1), r(20, 1)]
    assert [
        (a.state, (a.onset - T0).total_seconds() if a.onset else None, a.ended)
        for x in readings
        for a in engine.observe(x)
    ] == [("raised", 2, None), ("cleared", 2, T0 + timedelta(seconds=20))]


def test_silence_judged_on_the_stream_event_time() -> None:
    rules = MetricRules(silence=timedelta(seconds=5))
    readings = [r(0, 1, "a"), r(0, 1, "b"), r(3, 1, "b"), r(6, 1, "b"), r(9, 1, "b"), r(10, 1, "a")]
    # b's readings move the stream past a's 0 + 5 s at t=6: a is raised then (dated 5 s),
    # and cleared by its own reading at t=10. b is never silent. Nothing repeats.
    assert run(rules, readings) == [(5, "a", "silence", "raised"), (10, "a", "silence", "cleared")]


def test_a_sensors_own_late_reading_puts_the_gap_on_record() -> None:
    rules = MetricRules(silence=timedelta(seconds=5))
    engine = AlertEngine({"t": rules})
    alerts = [a for x in [r(0, 1), r(2, 1), r(20, 1), r(21, 1)] for a in engine.observe(x)]
    assert [((a.ts - T0).total_seconds(), a.state, a.gap_seconds) for a in alerts] == [
        (7, "raised", 18.0),
        (20, "cleared", 18.0),
    ]


def test_a_quiet_stream_raises_silence_on_wall_time() -> None:
    rules = {
        "t": MetricRules(silence=timedelta(seconds=5)),
        "u": MetricRules(silence=timedelta(seconds=30)),
    }
    engine = AlertEngine(rules)
    engine.observe(r(0, 1, "a", "t"))
    engine.observe(r(0, 1, "b", "u"))
    assert engine.next_quiet_check() == timedelta(seconds=5)
    assert engine.stream_quiet(timedelta(seconds=2)) == []
    raised = engine.stream_quiet(timedelta(seconds=6))
    assert [(a.sensor_id, a.rule, a.state, a.ts) for a in raised] == [
        ("a", "silence", "raised", T0 + timedelta(seconds=5))
    ]
    assert engine.stream_quiet(timedelta(seconds=7)) == []  # not repeated
    assert engine.next_quiet_check() == timedelta(seconds=30)
    assert [a.state for a in engine.observe(r(8, 1, "a", "t"))] == ["cleared"]


def test_rules_for_other_metrics_do_not_apply() -> None:
    assert run(MetricRules(high=0), [r(0, 5, metric="other")]) == []


# -- the rules file ------------------------------------------------------------------
def test_the_default_rules_load() -> None:
    rules = load_rules(DEFAULT_RULES)
    assert rules["temperature"].high == 26.0
    assert rules["co2"].silence == timedelta(seconds=10)
    assert rules["temperature"].rate_span == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[t]\nhigh = 30\nraise_after = 0\n",
            "line 3: [t] raise_after: must be a whole number of readings, at least 1, got 0",
        ),
        ("[t]\nhigh = 30\n\n[u]\nhihg = 5\n", "line 5: [u] hihg: unknown rule; use high, low"),
        ("[t]\nhigh = 'hot'\n", "line 2: [t] high: must be a number, got 'hot'"),
        ("[t]\nhigh = 10\nlow = 20\n", "line 3: [t] low: low (20) must be below high (10)"),
        ("[t]\nsilence = 'forever'\n", "line 2: [t] silence: 'forever' is not a duration"),
        (
            "[t]\nraise_after = 2\n",
            "line 1: [t]: no rule: give high, low, rate_limit, silence or stuck",
        ),
        ("[t]\nhigh = 30\nhigh = 31\n", "not valid TOML"),
        ("", "no rules"),
    ],
)
def test_a_rules_file_with_a_mistake_is_refused_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert str(raised.value).startswith(str(path))
    assert message in str(raised.value)


def test_toml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text("[t]\nhigh = 30\nlow = \n")
    with pytest.raises(RulesError, match=r"line 3"):
        load_rules(path)


# -- the job -------------------------------------------------------------------------
@pytest.mark.slow
def test_the_job_alerts_through_faults_as_the_engine_does(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = simulator(
        SimulatorConfig(
            # One event a second of event time: 15 minutes, over a ten-minute wave.
            sequence=SequenceSpec(sensors=3, rate=1),
            faults=Faults(end_after=900, drop_every=200, drop_mid_event=True, malformed_every=50),
            pace=False,
        )
    )
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(
        "[temperature]\nhigh = 22.0\nlow = 20.0\nraise_after = 2\nclear_after = 3\n"
        "rate_limit = 6.0\n[co2]\nhigh = 700.0\nraise_after = 2\nclear_after = 2\n"
    )
    out = tmp_path / "out"
    result = run_job(
        "dataflows.alerts",
        SSE_URL=sim.url,
        ALERT_RULES=str(rules_file),
        OUTPUT=str(out),
        SSE_RETRY_INITIAL="10ms",
        SSE_RETRY_MAX="50ms",
    )
    assert result.returncode == 0, result.stderr
    got = [json.loads(line) for line in read_records(out, "alerts")]
    # The same readings, in the order sent, through the engine alone.
    engine = AlertEngine(load_rules(rules_file))
    expected = [
        a.to_record()
        for n in range(900)
        for e in sim.expected_readings([n])
        for a in engine.observe(
            Reading(
                e.sensor_id,
                e.metric,
                T0 + timedelta(milliseconds=e.ts_ms - int(T0.timestamp() * 1000)),
                e.value,
                str(n),
                sim.url,
            )
        )
    ]
    assert got == expected
    assert {(a["rule"], a["state"]) for a in got} >= {
        ("high", "raised"),
        ("high", "cleared"),
        ("low", "raised"),
    }


@pytest.mark.slow
def test_the_job_refuses_a_bad_rules_file(tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text("[temperature]\nhigh = 30\nclear_afer = 2\n")
    result = run_job("dataflows.alerts", ALERT_RULES=str(rules_file), timeout=60)
    assert result.returncode == 2
    assert f"{rules_file}, line 3: [temperature] clear_afer: unknown rule" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_quiet_stream_raises_silence_while_the_job_runs(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=2, rate=50, start_ms=int(time.time()) * 1000),
            faults=Faults(stall_after=20, stall_seconds=30),
        )
    )
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text("[temperature]\nsilence = '1s'\n[co2]\nsilence = '1s'\n")
    proc = subprocess.Popen(
        bytewax_run_cmd("dataflows.alerts"),
        env=job_env(SSE_URL=sim.url, ALERT_RULES=str(rules_file), SSE_HEARTBEAT_TIMEOUT="60s"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        alerts = [json.loads(proc.stdout.readline()) for _ in range(2)]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert sorted((a["sensor_id"], a["rule"], a["state"]) for a in alerts) == [
        ("sensor-000", "silence", "raised"),
        ("sensor-001", "silence", "raised"),
    ]
    assert all(a["gap_seconds"] >= 1.0 for a in alerts)


@pytest.mark.slow
def test_a_default_run_raises_exactly_the_simulators_injected_anomalies(tmp_path: Path) -> None:
    # Everything at its default: the embedded simulator (20 s of four sensors with a
    # spike, a stuck sensor and one going quiet, a drop and a malformed event) and the
    # default rules. Its noise must not raise anything.
    start = "2026-12-03T23:59:50Z"  # the episodes cross midnight
    result = run_job("dataflows.alerts", OUTPUT=str(tmp_path), SIM_START=start, timeout=180)
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in read_records(tmp_path, "alerts")]
    assert sorted((a["sensor_id"], a["metric"], a["rule"], a["state"]) for a in alerts) == [
        ("sensor-000", "temperature", "high", "cleared"),
        ("sensor-000", "temperature", "high", "raised"),
        ("sensor-002", "co2", "silence", "raised"),
        ("sensor-003", "temperature", "stuck", "cleared"),
        ("sensor-003", "temperature", "stuck", "raised"),
    ]
    at = {(a["rule"], a["state"]): datetime.fromisoformat(a["ts"]) for a in alerts}
    # The spike lasts 2 s (a tenth of the run); the sensor is stuck for 6 s (from 8 s).
    spike = at["high", "cleared"] - at["high", "raised"]
    assert timedelta(seconds=1) < spike < timedelta(seconds=3)
    stuck = next(a for a in alerts if a["rule"] == "stuck" and a["state"] == "cleared")
    assert 5.5 <= stuck["gap_seconds"] <= 6.0
    # Each episode as the readings the simulator sent show it (pandas, from its events).
    config = demo_simulator_config(load_config({"SIM_START": start}).demo)  # type: ignore[arg-type]
    sent = SensorSimulator(config).expected_readings(range(config.faults.end_after or 0))
    frame = pd.DataFrame(sent, columns=["sensor_id", "metric", "ts_ms", "value"])
    frame["ts"] = pd.to_datetime(frame["ts_ms"], unit="ms", utc=True)
    episodes = {(a["rule"], a["state"]): (a["onset"], a["peak"], a["ended"]) for a in alerts}
    hot = frame[(frame.sensor_id == "sensor-000") & (frame.metric == "temperature")]
    beyond = hot[hot.value > 26.0]  # the default high; the noise never reaches it
    after = hot[hot.ts > beyond.ts.max()]
    assert episodes["high", "cleared"] == (
        iso_of(beyond.ts.min()),
        beyond.value.max(),
        iso_of(after.ts.min()),
    )
    stuck_sensor = frame[(frame.sensor_id == "sensor-003") & (frame.metric == "temperature")]
    runs = (stuck_sensor.value != stuck_sensor.value.shift()).cumsum()
    longest = stuck_sensor[runs == runs.value_counts().idxmax()]
    ended = stuck_sensor[stuck_sensor.ts > longest.ts.max()].ts.min()
    assert episodes["stuck", "cleared"] == (
        iso_of(longest.ts.min()),
        longest.value.iloc[0],
        iso_of(ended),
    )
    quiet = frame[frame.sensor_id == "sensor-002"]
    assert episodes["silence", "raised"] == (iso_of(quiet.ts.max()), None, None)


def iso_of(moment: pd.Timestamp) -> str:
    return iso(moment.to_pydatetime())
