"""The features job against pandas' own rolling computations over the same readings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows.config import ConfigError, load_feature_config
from dataflows.feature_math import add_to_features, feature_values, new_features
from dataflows.readings import Reading
from tests.helpers.oracle import KEY, read_records, run_in_process, run_job, sent_readings
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

WINDOW_MS, STEP_MS, SPAN = 6_000, 2_000, 5
# The windows above, and quick reconnects after the simulator's drops.
SETTINGS = {
    "FEATURE_WINDOW": f"{WINDOW_MS}ms",
    "FEATURE_STEP": f"{STEP_MS}ms",
    "FEATURE_EWMA_SPAN": str(SPAN),
    "SSE_RETRY_INITIAL": "10ms",
    "SSE_RETRY_MAX": "50ms",
}
FEATURES = ["count", "mean", "std", "min", "max", "first", "last", "slope", "ewma", "zscore"]


def expected_features(sent: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (sensor, metric), group in sent.groupby(KEY, sort=True):
        series = group.sort_values("ts_ms", kind="stable")
        ts = pd.to_datetime(series["ts_ms"], unit="ms", utc=True)
        values = pd.Series(series["value"].to_numpy(), index=ts)
        # The windows holding at least one reading: starts at multiples of the step.
        starts = sorted(
            {
                k * STEP_MS
                for t in series["ts_ms"]
                for k in range((t - WINDOW_MS) // STEP_MS + 1, t // STEP_MS + 1)
            }
        )
        ends = pd.to_datetime([s + WINDOW_MS for s in starts], unit="ms", utc=True)
        # pandas' rolling over [end - window, end), evaluated at each window's end.
        probe = pd.concat([values, pd.Series(np.nan, index=ends)]).sort_index(kind="stable")
        rolling = probe.rolling(f"{WINDOW_MS}ms", closed="left")
        at_end = pd.DataFrame(
            {
                "count": rolling.count(),
                "mean": rolling.mean(),
                "std": rolling.std(ddof=1),
                "min": rolling.min(),
                "max": rolling.max(),
            }
        )
        at_end = at_end[~at_end.index.duplicated(keep="last")].loc[ends]
        for start, end in zip(starts, ends, strict=True):
            inside = series[(series["ts_ms"] >= start) & (series["ts_ms"] < start + WINDOW_MS)]
            x = inside["value"].to_numpy()
            t = (inside["ts_ms"].to_numpy() - inside["ts_ms"].iloc[0]) / 1000.0
            std = at_end.loc[end, "std"]
            rows.append(
                {
                    "sensor_id": sensor,
                    "metric": metric,
                    "window_start_ms": start,
                    **at_end.loc[end].to_dict(),
                    "first": x[0],
                    "last": x[-1],
                    "slope": np.polyfit(t, x, 1)[0] if len(x) > 1 and np.ptp(t) > 0 else np.nan,
                    "ewma": pd.Series(x).ewm(span=SPAN).mean().iloc[-1],
                    "zscore": (x[-1] - at_end.loc[end, "mean"]) / std if std > 0 else np.nan,
                }
            )
    frame = pd.DataFrame(rows)
    frame["count"] = frame["count"].astype("int64")
    return frame.sort_values([*KEY, "window_start_ms"]).reset_index(drop=True)


def load_features(lines: list[str]) -> pd.DataFrame:
    # json, not pd.read_json: pandas' default float parser is not correctly rounded.
    frame = pd.DataFrame([json.loads(line) for line in lines])
    starts = pd.to_datetime(frame.pop("window_start"), utc=True, format="ISO8601")
    ends = pd.to_datetime(frame.pop("window_end"), utc=True, format="ISO8601")
    assert ((ends - starts) == pd.Timedelta(milliseconds=WINDOW_MS)).all()
    frame["window_start_ms"] = (starts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return frame.sort_values([*KEY, "window_start_ms"]).reset_index(drop=True)


def test_every_feature_of_every_window_matches_pandas(simulator: StartSim, tmp_path: Path) -> None:
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=4, rate=40, format="dt"),
            faults=Faults(end_after=1200, drop_every=250, drop_mid_event=True, malformed_every=101),
            pace=False,
        )
    )
    run_in_process(
        "dataflows.features",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        **SETTINGS,
    )
    got = load_features(read_records(tmp_path, "features"))
    expected = expected_features(sent_readings(sim, 1200))
    assert_features_match(got, expected)
    assert got["count"].min() >= 1


def assert_features_match(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert got[["sensor_id", "metric", "window_start_ms"]].equals(
        expected[["sensor_id", "metric", "window_start_ms"]]
    )
    assert (got["count"] == expected["count"]).all()
    # A single reading has no std, slope or z-score: null, read as NaN.
    assert got["std"].isna().equals(expected["std"].isna())
    for column in FEATURES:
        np.testing.assert_allclose(
            got[column], expected[column], rtol=1e-9, atol=1e-9, err_msg=column
        )


def test_two_workers_write_the_features_one_worker_does(
    simulator: StartSim, tmp_path: Path
) -> None:
    # Two streams, drops, and a sensor of each that goes quiet half way, so the idle
    # rule runs on each worker's own view of the streams.
    events = 1500
    sims = [
        simulator(
            SimulatorConfig(
                sequence=SequenceSpec(
                    sensors=5,
                    rate=50,
                    sensor_offset=offset,
                    seed=offset,
                    quiet_sensor=1,
                    quiet_after_ms=10_000,
                ),
                faults=Faults(end_after=events, drop_every=400 + offset),
                pace=False,
                events_per_write=3,
            )
        )
        for offset in (0, 100)
    ]
    one, two = tmp_path / "w1", tmp_path / "w2"
    for out, workers in ((one, "1"), (two, "2")):
        run = run_job(
            "dataflows.features",
            "-w",
            workers,
            SSE_URL=",".join(s.url for s in sims),
            OUTPUT=str(out),
            IDLE_CLOSE="1s",
            **SETTINGS,
        )
        assert run.returncode == 0, run.stderr
    lines = read_records(two, "features")
    assert sorted(read_records(one, "features")) == sorted(lines)
    sent = pd.concat([sent_readings(sim, events) for sim in sims])
    assert_features_match(load_features(lines), expected_features(sent))


def test_feature_settings_are_validated() -> None:
    with pytest.raises(ConfigError) as raised:
        load_feature_config(
            {"FEATURE_WINDOW": "10s", "FEATURE_STEP": "20s", "FEATURE_EWMA_SPAN": "0"}
        )
    assert "FEATURE_STEP (20s) must not be longer than FEATURE_WINDOW (10s)" in str(raised.value)
    assert "FEATURE_EWMA_SPAN must be at least 1" in str(raised.value)


def _reading(seconds: float, value: float) -> Reading:
    ts = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    return Reading("s", "m", ts, value, "1", "x")


def test_one_reading_has_no_spread_slope_or_zscore() -> None:
    state = add_to_features(new_features(SPAN), _reading(0, 4.0))
    values = feature_values(state)
    assert values == {
        "count": 1,
        "mean": 4.0,
        "std": None,
        "min": 4.0,
        "max": 4.0,
        "first": 4.0,
        "last": 4.0,
        "slope": None,
        "ewma": 4.0,
        "zscore": None,
    }


def test_equal_readings_have_zero_spread_and_no_zscore() -> None:
    state = new_features(SPAN)
    for second in range(3):
        add_to_features(state, _reading(second, 2.5))
    values = feature_values(state)
    assert (values["std"], values["slope"], values["zscore"]) == (0.0, 0.0, None)


def test_readings_at_one_instant_have_no_slope() -> None:
    state = new_features(SPAN)
    add_to_features(state, _reading(1, 1.0))
    add_to_features(state, _reading(1, 3.0))
    assert feature_values(state)["slope"] is None
