"""The notebooks: run headless from a clean state, every cell, on their own demo runs and
on a job's output directory written the way the README says; what they mark and list
checked against what the simulator did; committed without output; nothing left behind."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.simulator.sequence import expected_readings, sensor_id
from connectors.vendors import VendorFormat
from dataflows.config import DemoConfig
from dataflows.runtime import demo_anomalies
from tests.helpers.oracle import ROOT, run_job
from tests.helpers.servers import StartSim

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURES = {"sensor_analysis": 1, "feature_exploration": 3}

sys.path.insert(0, str(ROOT / "notebooks"))
import notebook_data as nd  # noqa: E402
import panels  # noqa: E402
import sensor_losses as sl  # noqa: E402

pytestmark = pytest.mark.slow


def test_there_are_the_two_notebooks() -> None:
    assert [n.name for n in NOTEBOOKS] == ["feature_exploration.ipynb", "sensor_analysis.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: strip the execution counts"


def execute(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **parameters: Path
) -> list[bytes]:
    """Runs every cell, with ``parameters`` set in the parameter cell; returns the PNGs.
    The kernel's temporary directory is ``tmp_path/tmp``: it must be empty afterwards."""
    notebook = nbformat.read(path, as_version=4)
    if parameters:
        cell = next(c for c in notebook.cells if c.cell_type == "code")
        for name, value in parameters.items():
            assert f"{name} = None" in cell.source
            cell.source = cell.source.replace(f"{name} = None", f"{name} = {str(value)!r}")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    # A failing cell raises CellExecutionError here, failing the test.
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    assert list((tmp_path / "tmp").iterdir()) == [], "the notebook left files behind"
    images = [
        base64.b64decode(output["data"]["image/png"])
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == FIGURES[path.stem]
    assert all(image.startswith(b"\x89PNG") for image in images)
    return images


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_every_cell_on_its_own_demo_run(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = execute(path, tmp_path, monkeypatch)
    (tmp_path / f"{path.stem}.png").write_bytes(images[0])


def test_the_usual_range_leaves_out_far_outliers_only() -> None:
    usual = [0.1 * i for i in range(100)]
    assert panels.usual_range(pd.Series(usual)) == (0.0, pytest.approx(9.9))
    low, high = panels.usual_range(pd.Series([*usual, 100.0, -80.0]))
    assert -80.0 < low <= 0.0 and 9.9 <= high < 100.0
    # Mostly one value, a few others: those others are outliers only if far from it.
    assert panels.usual_range(pd.Series([5.0] * 50 + [5.1, 4.9])) == (4.9, 5.1)
    assert panels.usual_range(pd.Series([2.0, 2.0])) == (1.5, 2.5)


def test_a_fleet_draws_the_sensors_of_interest_first_then_the_first_by_id_or_those_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = [(f"sensor-{i:05d}", metric) for i in range(20_000) for metric in ("co2", "rh")]
    drawn = panels.keys_to_draw(keys[::-1])
    assert drawn == sorted(keys)[: panels.PANELS]
    assert "Drawing 12 of 40000 sensor series (12 the first by id): set SENSORS" in (
        capsys.readouterr().out
    )
    # Alerts before losses, a sensor named by both drawn once, as the first reason says.
    interest = {
        "with alerts": ["sensor-19999", "sensor-00500"],
        "with losses": ["sensor-00500", "sensor-12345"] + [f"sensor-1{i:04d}" for i in range(20)],
    }
    drawn = panels.keys_to_draw(keys, interest=interest)
    assert drawn[:6] == [
        ("sensor-00500", "co2"),
        ("sensor-00500", "rh"),
        ("sensor-19999", "co2"),
        ("sensor-19999", "rh"),
        ("sensor-10000", "co2"),
        ("sensor-10000", "rh"),
    ]
    assert len(drawn) == panels.PANELS
    assert all(key[0] in interest["with losses"] for key in drawn[4:])
    said = capsys.readouterr().out
    assert "(4 with alerts, 8 with losses); not drawn: 34 more with losses" in said
    asked = panels.keys_to_draw(keys, ["sensor-00007", "sensor-19999"], interest=interest)
    assert asked == [
        ("sensor-00007", "co2"),
        ("sensor-00007", "rh"),
        ("sensor-19999", "co2"),
        ("sensor-19999", "rh"),
    ]
    assert "Drawing 4 of 40000 sensor series: those of SENSORS" in capsys.readouterr().out
    few = [("a", "co2"), ("b", "co2")]
    assert panels.keys_to_draw(few, interest={"with losses": ["b"]}) == few[::-1]
    assert capsys.readouterr().out == ""  # all drawn: nothing to say


def test_windows_are_steps_over_the_time_they_cover_broken_where_none_covers_it() -> None:
    at = pd.Timestamp("2026-01-01T00:00", tz="UTC")

    def times(*seconds: float) -> pd.Series:
        return pd.Series([at + pd.Timedelta(seconds=s) for s in seconds])

    # Tumbling windows with the one at 2 s missing: the line stops at 2 s.
    x, (y,) = panels.window_steps(times(0, 1, 3), times(1, 2, 4), pd.Series([5.0, 6.0, 7.0]))
    assert list(pd.to_datetime(x, utc=True)) == list(times(0, 1, 1, 2, 2, 3, 4))
    assert y[:4].tolist() == [5.0, 5.0, 6.0, 6.0] and pd.isna(y[4]) and y[5:].tolist() == [7, 7]
    # Sliding windows (2 s every 0.5 s): each value holds from the window before's end.
    x, (y,) = panels.window_steps(times(0, 0.5, 1), times(2, 2.5, 3), pd.Series([1.0, 2.0, 3.0]))
    assert list(pd.to_datetime(x, utc=True)) == list(times(0, 2, 2, 2.5, 2.5, 3))
    assert y.tolist() == [1, 1, 2, 2, 3, 3]


def test_breaks_are_lines_up_to_ten_then_a_rug_and_tails_are_counted_apart() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = pd.Timestamp("2026-01-01T00:00", tz="UTC")
    fig, (few, many) = plt.subplots(2)
    panels.mark_breaks(few, pd.Series([at + pd.Timedelta(seconds=s) for s in range(10)]))
    panels.mark_breaks(many, pd.Series([at + pd.Timedelta(seconds=s) for s in range(79)]))
    assert len(few.lines) == 10
    assert len(many.lines) == 1 and len(many.lines[0].get_xdata()) == 79
    assert many.get_legend_handles_labels()[1] == ["stream broke (79, ticks)"]
    plt.close(fig)
    values = pd.Series([0.0, 0.0, 0.0, *[1.0 + i / 100 for i in range(50)], 9.5])
    low, high = panels.usual_range(values)
    assert panels.tails(values, low, high) == "3 below, lowest 0; 1 above, highest 9.5"
    assert panels.tails(values, -1.0, 10.0) == ""


def anomalous_stream(simulator: StartSim, fmt: str = "flat") -> tuple[object, SequenceSpec]:
    # 20 readings a second per sensor: every window of 1 s holds 20 but where one is lost.
    demo = DemoConfig(sensors=6, rate=120, events=2400)
    spec = SequenceSpec(sensors=6, rate=120, format=fmt, seed=5, **demo_anomalies(demo))  # type: ignore[arg-type]
    sim = simulator(
        SimulatorConfig(
            sequence=spec,
            faults=Faults(end_after=2400, drop_every=700, drop_mid_event=True, malformed_every=450),
            pace=False,
        )
    )
    return sim, spec


def analysed(
    sim: SensorSimulator, output_format: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """``sim``'s stream through the main job as the README says (python -m bytewax.run
    dataflows.sensor_stats with OUTPUT set, 1 s windows), then through sensor_analysis."""
    out = tmp_path / "out"
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(out),
        OUTPUT_FORMAT=output_format,
        WINDOW="1s",
        LATENESS="200ms",
        SSE_RETRY_INITIAL="10ms",
        SSE_RETRY_MAX="50ms",
    )
    assert run.returncode == 0, run.stderr
    execute(ROOT / "notebooks" / "sensor_analysis.ipynb", tmp_path, monkeypatch, OUTPUT=out)
    return out


@pytest.mark.parametrize("fmt", ["jsonl", "delta"])
def test_sensor_analysis_on_a_jobs_output_marks_each_break_where_the_stream_broke(
    simulator: StartSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    sim, _ = anomalous_stream(simulator)
    out = analysed(sim, fmt, tmp_path, monkeypatch)
    marks = nd.breaks(nd.load_run(out))
    # The drops after events 700, 1400 and 2100, marked at the stream's newest reading
    # then; the normal end of the stream not marked.
    assert list(marks.last_event_id) == ["699", "1399", "2099"]
    expected = [
        max(r.ts_ms for n in range(int(last) + 1) for r in sim.expected_readings([n]))
        for last in marks.last_event_id
    ]
    assert list(marks.event_time) == [
        pd.Timestamp(datetime.fromtimestamp(ms / 1000, UTC)) for ms in expected
    ]
    # Each sensor lost exactly the readings of its malformed events, each explained by
    # that event's dead letter, and no short window is unexplained.
    aggregates = nd.load_records(out, "aggregates", ("window_start", "window_end"))
    dead = nd.load_records(out, "dead_letters", job="sensor_stats")
    assert len(dead) == 5
    assert_losses_are_the_malformed_events(sim, 2400, aggregates, dead)
    low = sl.low_count_windows(aggregates, dead, marks)
    assert "unexplained" not in set(low.explained_by)
    assert low.explained_by.str.count("invalid_json").sum() == len(low)


def lost_in_full_windows(sim: SensorSimulator, events: int, window_ms: int) -> pd.Series:
    """The oracle: per (sensor_id, metric), the readings the simulator's lost events
    (malformed, oversized) would have put in the series' full windows: those between its
    first and last window of the readings that did arrive."""
    spec, faults = sim.config.sequence, sim.config.faults
    rows = [
        (r.sensor_id, r.metric, r.ts_ms // window_ms, faults.lost(n))
        for n in range(events)
        for r in expected_readings(spec, n)
    ]
    readings = pd.DataFrame(rows, columns=["sensor_id", "metric", "window", "lost"])
    arrived = readings[~readings.lost].groupby(["sensor_id", "metric"])["window"]
    bounds = arrived.agg(["min", "max"])
    readings = readings.join(bounds, on=["sensor_id", "metric"])
    full = readings[(readings.window > readings["min"]) & (readings.window < readings["max"])]
    return full[full.lost].groupby(["sensor_id", "metric"]).size()


def assert_losses_are_the_malformed_events(
    sim: SensorSimulator, events: int, aggregates: pd.DataFrame, dead: pd.DataFrame
) -> pd.DataFrame:
    losses = sl.sensor_losses(aggregates, dead)
    truth = lost_in_full_windows(sim, events, window_ms=1000).reindex(losses.index, fill_value=0)
    assert truth.sum() > 0
    pd.testing.assert_series_equal(losses["lost"], truth, check_names=False, check_dtype=False)
    pd.testing.assert_series_equal(
        losses["dead_letters"], truth, check_names=False, check_dtype=False
    )
    assert (losses["unexplained"] == 0).all()
    return losses


@pytest.mark.parametrize(
    ("fmt", "output_format", "drop_every", "rate"),
    [
        ("flat", "jsonl", 1500, 400.0),
        ("dt", "delta", 5003, 400.0),
        ("flat", "delta", 5003, 40.0),
        ("obelisk", "jsonl", 5003, 400.0),
    ],
    ids=[
        "flat-jsonl-16-breaks",
        "dt-delta-4-breaks",
        "flat-delta-one-reading-a-window",
        "obelisk-jsonl-letters-without-their-sensor",
    ],
)
def test_sensor_analysis_on_a_fleet_finds_the_two_sensors_that_lose_readings_steadily(
    simulator: StartSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: VendorFormat,
    output_format: str,
    drop_every: int,
    rate: float,
) -> None:
    # 40 sensors read in turn, 10 readings a second each for a minute (or one for ten
    # minutes: a window of 1 s holds one reading, so a lost one is a window not written);
    # every 300th event cut off: events 299, 599, ... are sensor-019's and sensor-039's in
    # turn, so those two lose one reading in 15 (6.7%), steadily, which no sensor's own
    # median can see. sensor-007 goes quiet at 30 s and sensor-008 takes its turns.
    events = 24_000
    spec = SequenceSpec(
        sensors=40, rate=rate, format=fmt, seed=3, quiet_sensor=7, quiet_after_ms=30_000
    )
    sim = simulator(
        SimulatorConfig(
            sequence=spec,
            faults=Faults(
                end_after=events, drop_every=drop_every, drop_mid_event=True, malformed_every=300
            ),
            pace=False,
            events_per_write=20,
        )
    )
    out = analysed(sim, output_format, tmp_path, monkeypatch)
    aggregates = nd.load_records(out, "aggregates", ("window_start", "window_end"))
    dead = nd.load_records(out, "dead_letters", job="sensor_stats")
    assert len(dead) == events // 300
    losses = assert_losses_are_the_malformed_events(sim, events, aggregates, dead)
    lossy = {"sensor-019", "sensor-039"}
    noteworthy = sl.noteworthy_losses(losses)
    assert set(noteworthy.index.get_level_values("sensor_id")) == lossy
    assert (noteworthy["lost_share"] > 0.06).all() and (noteworthy["judged_by"] == "peers").all()
    one_a_window = rate == 40.0
    assert (noteworthy["absent_windows"] == noteworthy["lost"]).all() == one_a_window
    assert (losses.drop(noteworthy.index)["lost"] == 0).all()
    # The quiet sensor reported until it went quiet; lost nothing by being quiet.
    start = pd.Timestamp(datetime.fromtimestamp(spec.start_ms / 1000, UTC))
    quiet = losses.xs("sensor-007", level="sensor_id")
    assert (quiet["reported_until"] == start + pd.Timedelta(seconds=30)).all()
    # The dead letters name their sensors (an Obelisk event cut in half has lost its
    # "source", so those are matched by time); those sensors are drawn first.
    table = nd.dead_letter_table(dead)
    named = ["sensor-019 x40, sensor-039 x40"], ["sensor-039 x40, sensor-019 x40"]
    assert table["sensors"].tolist() in ((["unknown sensor x80"],) if fmt == "obelisk" else named)
    interest = {"with losses": noteworthy.index.get_level_values("sensor_id")}
    drawn = panels.keys_to_draw(losses.index, interest=interest)
    assert {key[0] for key in drawn[: len(noteworthy)]} == lossy
    assert len(nd.breaks(nd.load_run(out, "sensor_stats"))) == (events - 1) // drop_every


def explored(sim: SensorSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Both jobs on ``sim``'s stream into one OUTPUT, as an analyst's would be, then
    feature_exploration on it; returns the OUTPUT."""
    out = tmp_path / "out"
    for job, settings in (
        ("features", {"FEATURE_WINDOW": "2s", "FEATURE_STEP": "500ms"}),
        ("alerts", {}),
    ):
        run = run_job(
            f"dataflows.{job}",
            SSE_URL=sim.url,
            OUTPUT=str(out),
            LATENESS="200ms",
            SSE_RETRY_INITIAL="10ms",
            SSE_RETRY_MAX="50ms",
            **settings,
        )
        assert run.returncode == 0, run.stderr
    execute(
        ROOT / "notebooks" / "feature_exploration.ipynb",
        tmp_path,
        monkeypatch,
        FEATURES_OUTPUT=out,
        ALERTS_OUTPUT=out,
    )
    return out


def test_feature_exploration_on_two_jobs_in_one_output_shows_exactly_the_injected_anomalies(
    simulator: StartSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim, _ = anomalous_stream(simulator, fmt="dt")
    out = explored(sim, tmp_path, monkeypatch)
    # The run record is chosen by job, with one sentence; without a job it is refused.
    with pytest.raises(ValueError, match="holds the runs of alerts, features: say which"):
        nd.load_run(out)
    assert nd.load_run(out, "features")["job"] == "features"
    assert "holds the runs of alerts, features: reading the newest of features" in (
        capsys.readouterr().out
    )
    # Each job's dead letters are its own, read by job and only the columns asked for.
    for job in ("features", "alerts"):
        letters = nd.load_records(out, "dead_letters", job=job, columns=["event_id", "job"])
        assert list(letters.columns) == ["event_id", "job"] and set(letters.job) == {job}
        assert sorted(map(int, letters.event_id)) == [449, 899, 1349, 1799, 2249]
    # Partial windows, a series' edges, are marked: every other window of 2 s holds its
    # sensor's 40 readings, or 39 where one event was cut off (the sensor taking the
    # quiet one's turns holds more).
    features = nd.load_records(out, "features", ("window_start", "window_end"))
    full = features[~sl.partial_windows(features).to_numpy()]
    assert len(full) > len(features) / 2
    assert full["count"].min() == 39
    episodes = nd.alert_episodes(nd.load_records(out, "alerts", ("ts",)))
    assert_episodes_are_the_injected(sim, 2400, episodes)


def test_feature_exploration_on_a_fleet_draws_the_sensors_with_alerts_and_their_episodes(
    simulator: StartSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 sensors, 20 readings a second each for 20 s, the anomalies on sensors past the
    # first 12 by id: a spike on sensor-018, sensor-022 stuck, sensor-032 going quiet.
    events = 16_000
    timing = demo_anomalies(DemoConfig(sensors=40, rate=800, events=events))
    timing.update(spike_sensor=18, stuck_sensor=22, quiet_sensor=32)
    spec = SequenceSpec(sensors=40, rate=800, seed=6, **timing)
    sim = simulator(
        SimulatorConfig(
            sequence=spec,
            faults=Faults(end_after=events, drop_every=5003, drop_mid_event=True),
            pace=False,
            events_per_write=20,
        )
    )
    out = explored(sim, tmp_path, monkeypatch)
    alerts = nd.load_records(out, "alerts", ("ts",))
    assert_episodes_are_the_injected(sim, events, nd.alert_episodes(alerts))
    features = nd.load_records(out, "features", ("window_start", "window_end"))
    drawn = panels.keys_to_draw(
        features.groupby(["sensor_id", "metric"]).groups,
        interest={"with alerts": alerts.sensor_id},
    )
    assert len(drawn) == panels.PANELS
    assert {key[0] for key in drawn[:3]} == {"sensor-018", "sensor-022", "sensor-032"}


def assert_episodes_are_the_injected(
    sim: SensorSimulator, events: int, episodes: pd.DataFrame
) -> None:
    """The episodes are exactly the simulator's spike, stuck value and silence, each as
    its readings show it: from the condition's first reading to the first past it,
    whatever the rules' raise_after and clear_after, its peak the extreme reading."""
    spec = sim.config.sequence
    assert spec.spike_sensor is not None and spec.stuck_sensor is not None
    assert spec.quiet_sensor is not None
    start = pd.Timestamp(datetime.fromtimestamp(spec.start_ms / 1000, UTC))

    def at(ms: int) -> pd.Timestamp:
        return start + pd.Timedelta(milliseconds=ms)

    sent = sim.expected_readings(range(events))
    metric = {r.sensor_id: r.metric for r in sent if r.metric in ("temperature", "co2")}
    spiked, stuck_id, quiet_id = (
        sensor_id(spec, n) for n in (spec.spike_sensor, spec.stuck_sensor, spec.quiet_sensor)
    )
    # Each sensor reads once a round of the fleet, in turn.
    tick = pd.Timedelta(seconds=spec.sensors / spec.rate)
    got = {(e.sensor_id, e.metric, e.rule): e for e in episodes.itertuples()}
    assert set(got) == {
        (spiked, metric[spiked], "high"),
        (stuck_id, metric[stuck_id], "stuck"),
        (quiet_id, metric[quiet_id], "silence"),
    }
    spike = got[spiked, metric[spiked], "high"]
    assert at(spec.spike_after_ms) <= spike.start < at(spec.spike_after_ms) + tick
    end_of_spike = at(spec.spike_after_ms + spec.spike_for_ms)
    assert end_of_spike <= spike.end < end_of_spike + tick
    assert spike.raised > spike.start and spike.cleared > spike.end
    assert spike.peak == max(
        r.value for r in sent if (r.sensor_id, r.metric) == (spiked, metric[spiked])
    )
    stuck = got[stuck_id, metric[stuck_id], "stuck"]
    assert at(spec.stuck_after_ms) <= stuck.start < at(spec.stuck_after_ms) + tick
    assert abs(stuck.duration - pd.Timedelta(milliseconds=spec.stuck_for_ms)) <= tick
    stuck_values = {
        r.value
        for r in sent
        if (r.sensor_id, r.metric) == (stuck_id, metric[stuck_id])
        and stuck.start <= at(r.ts_ms - spec.start_ms) < stuck.end
    }
    assert stuck_values == {stuck.peak}
    quiet = got[quiet_id, metric[quiet_id], "silence"]
    assert at(spec.quiet_after_ms) - 6 * tick <= quiet.start < at(spec.quiet_after_ms)
    assert pd.isna(quiet.end) and pd.isna(quiet.peak)


def test_a_time_range_and_sensors_read_only_what_they_ask_for_in_either_format(
    simulator: StartSim, tmp_path: Path
) -> None:
    # Three hours of event time from 2025-12-31T22:30Z, six sensors.
    events = 10_800
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=1.0, seed=2, start_ms=1_767_220_200_000),
            faults=Faults(end_after=events),
            pace=False,
            events_per_write=20,
        )
    )
    frames = {}
    asked = dict(
        start="2025-12-31T23:30", end="2026-01-01T00:30", sensors=["sensor-001", "sensor-004"]
    )
    for fmt in ("jsonl", "delta"):
        out = tmp_path / fmt
        run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(out), OUTPUT_FORMAT=fmt)
        assert run.returncode == 0, run.stderr
        times = ("window_start", "window_end")
        whole = nd.load_records(out, "aggregates", times)
        frames[fmt] = nd.load_records(out, "aggregates", times, **asked)  # type: ignore[arg-type]
        assert len(whole) > 3 * len(frames[fmt])
        # Only the columns asked for come back, the range and sensors still applied.
        counts = nd.load_records(
            out,
            "aggregates",
            times,
            columns=["sensor_id", "count"],
            **asked,  # type: ignore[arg-type]
        )
        assert list(counts.columns) == ["sensor_id", "count"]
        # Sensors as an iterator, read once: the same rows.
        once = nd.load_records(
            out,
            "aggregates",
            times,
            start=asked["start"],  # type: ignore[arg-type]
            end=asked["end"],  # type: ignore[arg-type]
            sensors=iter(["sensor-001", "sensor-004"]),
        )
        pd.testing.assert_frame_equal(once, frames[fmt])
        assert counts["count"].tolist() == frames[fmt]["count"].tolist()
    start, end = (
        pd.Timestamp("2025-12-31T23:30", tz="UTC"),
        pd.Timestamp("2026-01-01T00:30", tz="UTC"),
    )
    for frame in frames.values():
        assert set(frame.sensor_id) == {"sensor-001", "sensor-004"}
        assert frame.window_start.min() == start
        assert frame.window_start.max() == end - pd.Timedelta(seconds=10)
    # The same range given in another time zone reads the same rows.
    for fmt, frame in frames.items():
        aware = nd.load_records(
            tmp_path / fmt,
            "aggregates",
            ("window_start", "window_end"),
            start=start.tz_convert("Europe/Brussels"),
            end=end.tz_convert("America/New_York"),
            sensors=["sensor-001", "sensor-004"],
        )
        pd.testing.assert_frame_equal(aware, frame)
    columns = ["sensor_id", "metric", "window_start", "count", "mean", "min", "max"]
    jsonl, delta = (
        f[columns].sort_values(columns[:3]).reset_index(drop=True) for f in frames.values()
    )
    pd.testing.assert_frame_equal(jsonl, delta, check_dtype=False, check_exact=True)
    # Only the hour folders the range covers are read.
    folders = nd.hour_folders(tmp_path / "jsonl" / "aggregates", start, end)
    assert [f"{f.parent.name}/{f.name}" for f in folders] == [
        "date=2025-12-31/hour=23",
        "date=2026-01-01/hour=00",
    ]
