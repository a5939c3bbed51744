"""The README's examples of reading the output run as they are written, with pandas,
Polars and DuckDB, on both formats as a job wrote them, and read exactly the windows of
the hour and the day they ask for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from tests.helpers.oracle import ROOT, expected_aggregates, run_job, sent_readings
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
# From 2025-12-31T23:30Z, two hours of event time: half an hour in one date, an hour and
# a half in the next.
START_MS = 1_767_223_800_000


def reading_examples() -> list[str]:
    """The Python blocks of the README's "Reading the output" section."""
    text = README.read_text()
    section = text.split("\n## Reading the output\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_shows_a_reader_for_each_library() -> None:
    examples = reading_examples()
    for library in ("import pandas", "import polars", "import duckdb", "DeltaTable"):
        assert any(library in example for example in examples), library


def test_the_readmes_reading_examples_read_exactly_one_hour_and_one_day(
    simulator: StartSim, tmp_path: Path
) -> None:
    events = 14_400
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=2.0, seed=5, start_ms=START_MS),
            faults=Faults(end_after=events),
            pace=False,
            events_per_write=20,
        )
    )
    outputs = {"jsonl": tmp_path / "jsonl", "delta": tmp_path / "delta"}
    for fmt, out in outputs.items():
        run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(out), OUTPUT_FORMAT=fmt)
        assert run.returncode == 0, run.stderr
    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    new_year_ms = 1_767_225_600_000
    in_hour = (
        (expected.window_start_ms >= new_year_ms)
        & (expected.window_start_ms < new_year_ms + 3_600_000)
    ).sum()
    in_day = (expected.window_start_ms >= new_year_ms).sum()
    assert 0 < in_hour < in_day < len(expected)
    in_eve = (expected.window_start_ms < new_year_ms).sum()
    assert in_eve > 0

    for example in reading_examples():
        scope: dict[str, object] = {
            "OUT": str(outputs["jsonl"]),
            "OUT_DELTA": str(outputs["delta"]),
            "DATE": "2026-01-01",
            "HOUR": "00",
        }
        exec(compile(example, "README.md", "exec"), scope)
        assert len(scope["hour"]) == in_hour, example  # type: ignore[arg-type]
        assert len(scope["day"]) == in_day, example  # type: ignore[arg-type]
        scope.update(DATE="2025-12-31", HOUR="23")
        exec(compile(example, "README.md", "exec"), scope)
        assert len(scope["hour"]) == in_eve, example  # type: ignore[arg-type]
        assert len(scope["day"]) == in_eve, example  # type: ignore[arg-type]
