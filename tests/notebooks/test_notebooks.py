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

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows.config import DemoConfig
from dataflows.runtime import demo_anomalies
from tests.helpers.oracle import ROOT, run_job
from tests.helpers.servers import StartSim

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURES = {"sensor_analysis": 1, "feature_exploration": 3}

sys.path.insert(0, str(ROOT / "notebooks"))
import notebook_data as nd  # noqa: E402

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
    assert nd.usual_range(pd.Series(usual)) == (0.0, pytest.approx(9.9))
    low, high = nd.usual_range(pd.Series([*usual, 100.0, -80.0]))
    assert -80.0 < low <= 0.0 and 9.9 <= high < 100.0
    # Mostly one value, a few others: those others are outliers only if far from it.
    assert nd.usual_range(pd.Series([5.0] * 50 + [5.1, 4.9])) == (4.9, 5.1)
    assert nd.usual_range(pd.Series([2.0, 2.0])) == (1.5, 2.5)


def test_a_fleet_draws_the_first_sensors_or_the_ones_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = [(f"sensor-{i:05d}", metric) for i in range(20_000) for metric in ("co2", "rh")]
    drawn = nd.keys_to_draw(keys[::-1])
    assert drawn == sorted(keys)[: nd.PANELS]
    assert "Drawing 12 of 40000 sensor series" in capsys.readouterr().out
    asked = nd.keys_to_draw(keys, ["sensor-00007", "sensor-19999"])
    assert asked == [
        ("sensor-00007", "co2"),
        ("sensor-00007", "rh"),
        ("sensor-19999", "co2"),
        ("sensor-19999", "rh"),
    ]
    few = [("a", "co2"), ("b", "co2")]
    assert nd.keys_to_draw(few) == few
    assert capsys.readouterr().out.count("Drawing") == 1  # the one asked for; none for few


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


@pytest.mark.parametrize("fmt", ["jsonl", "delta"])
def test_sensor_analysis_on_a_jobs_output_marks_each_break_where_the_stream_broke(
    simulator: StartSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    sim, _ = anomalous_stream(simulator)
    out = tmp_path / "out"
    # As the README says: python -m bytewax.run dataflows.sensor_stats with OUTPUT set.
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(out),
        OUTPUT_FORMAT=fmt,
        WINDOW="1s",
        LATENESS="200ms",
        SSE_RETRY_INITIAL="10ms",
        SSE_RETRY_MAX="50ms",
    )
    assert run.returncode == 0, run.stderr
    execute(ROOT / "notebooks" / "sensor_analysis.ipynb", tmp_path, monkeypatch, OUTPUT=out)
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
    # Every short window is explained, and each malformed event explains one.
    aggregates = nd.load_records(out, "aggregates", ("window_start", "window_end"))
    dead = nd.load_records(out, "dead_letters")
    low = nd.low_count_windows(aggregates, dead, marks)
    assert "unexplained" not in set(low.explained_by)
    assert low.explained_by.str.contains("invalid_json").sum() == len(dead) == 5


def test_feature_exploration_on_two_jobs_in_one_output_shows_exactly_the_injected_anomalies(
    simulator: StartSim,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim, spec = anomalous_stream(simulator, fmt="dt")
    out = tmp_path / "out"  # both jobs write here, as an analyst's one OUTPUT would be
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
    # The run record is chosen by job, with one sentence; without a job it is refused.
    with pytest.raises(ValueError, match="holds the runs of alerts, features: say which"):
        nd.load_run(out)
    assert nd.load_run(out, "features")["job"] == "features"
    assert "holds the runs of alerts, features: reading the newest of features" in (
        capsys.readouterr().out
    )
    alerts = nd.load_records(out, "alerts", ("ts",))
    episodes = nd.alert_episodes(alerts)
    start = pd.Timestamp(datetime.fromtimestamp(spec.start_ms / 1000, UTC))

    def at(ms: int) -> pd.Timestamp:
        return start + pd.Timedelta(milliseconds=ms)

    # Each sensor reads every 50 ms (120 events a second over six sensors, in turn).
    tick = pd.Timedelta(milliseconds=50)
    got = {(e.sensor_id, e.metric, e.rule): e for e in episodes.itertuples()}
    assert set(got) == {
        ("sensor-000", "temperature", "high"),
        ("sensor-003", "temperature", "stuck"),
        ("sensor-002", "co2", "silence"),
    }
    # The episodes as the readings show them: from the condition's first reading to the
    # first past it, whatever the rules' raise_after and clear_after.
    spike = got["sensor-000", "temperature", "high"]
    assert at(spec.spike_after_ms) <= spike.start < at(spec.spike_after_ms) + tick
    end_of_spike = at(spec.spike_after_ms + spec.spike_for_ms)
    assert end_of_spike <= spike.end < end_of_spike + tick
    assert spike.raised > spike.start and spike.cleared > spike.end
    # The peak is the spike's highest reading, from the simulator's own events.
    sent = sim.expected_readings(range(2400))
    spiked = [r.value for r in sent if r.sensor_id == "sensor-000" and r.metric == "temperature"]
    assert spike.peak == max(spiked)
    stuck = got["sensor-003", "temperature", "stuck"]
    assert at(spec.stuck_after_ms) <= stuck.start < at(spec.stuck_after_ms) + tick
    assert abs(stuck.duration - pd.Timedelta(milliseconds=spec.stuck_for_ms)) <= tick
    stuck_values = {
        r.value
        for r in sent
        if r.sensor_id == "sensor-003" and stuck.start <= at(r.ts_ms - spec.start_ms) < stuck.end
    }
    assert stuck_values == {stuck.peak}
    quiet = got["sensor-002", "co2", "silence"]
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
    for fmt in ("jsonl", "delta"):
        out = tmp_path / fmt
        run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(out), OUTPUT_FORMAT=fmt)
        assert run.returncode == 0, run.stderr
        whole = nd.load_records(out, "aggregates", ("window_start", "window_end"))
        frames[fmt] = nd.load_records(
            out,
            "aggregates",
            ("window_start", "window_end"),
            start="2025-12-31T23:30",
            end="2026-01-01T00:30",
            sensors=["sensor-001", "sensor-004"],
        )
        assert len(whole) > 3 * len(frames[fmt])
    start, end = (
        pd.Timestamp("2025-12-31T23:30", tz="UTC"),
        pd.Timestamp("2026-01-01T00:30", tz="UTC"),
    )
    for frame in frames.values():
        assert set(frame.sensor_id) == {"sensor-001", "sensor-004"}
        assert frame.window_start.min() == start
        assert frame.window_start.max() == end - pd.Timedelta(seconds=10)
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
