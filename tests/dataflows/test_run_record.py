"""The run record: a job's own account of its run in OUTPUT/runs/, checked against what
the simulator did."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows.times import iso
from tests.helpers.doc_blocks import examples
from tests.helpers.oracle import run_job
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("drop_mid_event", [False, True], ids=["between", "mid-event"])
def test_the_run_record_puts_each_break_where_the_stream_broke(
    simulator: StartSim, tmp_path: Path, drop_mid_event: bool
) -> None:
    events, every = 1200, 250
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=5, rate=50, disorder_ms=1500, seed=4),
            faults=Faults(end_after=events, drop_every=every, drop_mid_event=drop_mid_event),
            pace=False,
            events_per_write=7,
        )
    )
    secret = "s3cr3t-t0ken"
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=f"{sim.url}?token={secret}",
        OUTPUT=str(tmp_path),
        SSE_RETRY_INITIAL="10ms",
        SSE_RETRY_MAX="50ms",
        SSE_BEARER_TOKEN=secret,
    )
    assert run.returncode == 0, run.stderr
    (path,) = (tmp_path / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert secret not in path.read_text()
    assert record["job"] == "sensor_stats" and record["ended"] is not None
    assert record["settings"]["SSE_BEARER_TOKEN"] == "***"
    assert record["settings"]["WINDOW"] == "10s"
    (stream,) = record["streams"]
    breaks = stream["reconnects"]
    # A drop after every 250 events, then the normal end of the stream after the last.
    assert [b["last_event_id"] for b in breaks] == [
        str(n - 1) for n in range(every, events + 1, every)
    ] + [str(events - 1)]
    assert [b["clean_end"] for b in breaks] == [False] * 4 + [True]
    # The stream's event time at each break: its newest reading up to that event.
    for b in breaks:
        last = int(b["last_event_id"])
        newest = max(r.ts_ms for n in range(last + 1) for r in sim.expected_readings([n]))
        assert b["event_time"] == iso(datetime.fromtimestamp(newest / 1000, UTC))
    assert record["summary"]["events"] == events
    assert record["summary"]["reconnects"] == len(breaks)
    assert record["outputs"]["aggregates"] == str(tmp_path / "aggregates")
    # What the docs show of a record has its fields, each of its type.
    shown = [e for e in examples() if (e.marker or "").startswith(IN_RECORD)]
    assert shown
    for block in shown:
        entry = _entry(record, (block.marker or "")[len(IN_RECORD) :])
        assert _types(json.loads(block.code)) == _types(entry), block.name


IN_RECORD = "in the run record: "


def _entry(record: dict[str, Any], path: str) -> dict[str, Any]:
    """The part of a record a docs block names: ``streams[].reconnects[]`` is the first
    reconnect of the first stream."""
    node: Any = record
    for step in path.split("."):
        node = node[step.removesuffix("[]")]
        if step.endswith("[]"):
            node = node[0]
    return dict(node)


def _types(entry: dict[str, Any]) -> dict[str, str]:
    return {key: type(value).__name__ for key, value in entry.items()}
