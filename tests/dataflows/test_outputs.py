"""The jobs' output directories, as real ``python -m bytewax.run`` processes write them:
hour folders by event time across two UTC dates, files finished as hours settle, a
reader that looks while the job writes, and what a run does with records already there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from tests.helpers.oracle import (
    ROOT,
    assert_same_aggregates,
    bytewax_run_cmd,
    delta_files,
    delta_records,
    expected_aggregates,
    finished_parts,
    job_env,
    load_aggregates,
    read_lines,
    read_records,
    run_job,
    sent_readings,
)
from tests.helpers.servers import StartSim
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

FAST_RETRY = {"SSE_RETRY_INITIAL": "10ms", "SSE_RETRY_MAX": "50ms"}
# 2025-12-31T22:50:00Z: the streams below run across 23:00 and midnight into 2026.
NEW_YEARS_EVE_MS = 1_767_221_400_000


def across_midnight(events: int, rate: float, **config: object) -> SimulatorConfig:
    """Eight sensors from 22:50 UTC on 2025-12-31, ``rate`` events a second of event time."""
    return SimulatorConfig(
        sequence=SequenceSpec(sensors=8, rate=rate, seed=3, start_ms=NEW_YEARS_EVE_MS),
        **{  # type: ignore[arg-type]
            "faults": Faults(end_after=events, drop_every=2_500, malformed_every=1_000),
            "pace": False,
            "events_per_write": 20,
            **config,
        },
    )


def folder_hour(path: Path) -> str:
    """``YYYY-MM-DDTHH`` of a part file's hour folder."""
    return f"{path.parent.parent.name[5:]}T{path.parent.name[5:]}"


def test_windows_across_two_dates_equal_pandas_each_record_in_its_hours_folder(
    simulator: StartSim, tmp_path: Path
) -> None:
    # 90 minutes of event time (22:50 to 00:20), 4 events a second.
    events = 21_600
    sim = simulator(across_midnight(events, rate=4.0))
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(tmp_path), **FAST_RETRY)
    assert run.returncode == 0, run.stderr
    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    assert_same_aggregates(load_aggregates(read_records(tmp_path, "aggregates")), expected)

    parts = finished_parts(tmp_path, "aggregates")
    assert sorted({folder_hour(p) for p in parts}) == [
        "2025-12-31T22",
        "2025-12-31T23",
        "2026-01-01T00",
    ]
    for path in parts:
        starts = {json.loads(line)["window_start"][:13] for line in read_lines(path)}
        assert starts == {folder_hour(path)}, path
    # The hours before the last settled while the stream ran: one file each, its
    # windows all written before it was finished.
    by_hour = {h: [p for p in parts if folder_hour(p) == h] for h in map(folder_hour, parts)}
    assert len(by_hour["2025-12-31T22"]) == len(by_hour["2025-12-31T23"]) == 1
    # Dead letters by their stream's event time.
    letters = finished_parts(tmp_path, "dead_letters")
    assert sum(len(read_lines(p)) for p in letters) == events // 1_000
    for path in letters:
        for line in read_lines(path):
            assert json.loads(line)["stream_time"][:13] == folder_hour(path)
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "unfinished part files"


def test_a_reader_polling_while_the_job_writes_sees_whole_files_never_a_line_twice(
    simulator: StartSim, tmp_path: Path
) -> None:
    # Paced, so the reader has a few seconds of a job that rolls a file every 4 KiB.
    events = 3_000
    sim = simulator(across_midnight(events, rate=4.0, pace=True, pace_rate=1_000))
    seen: dict[Path, bytes] = {}
    problems: list[str] = []
    done = threading.Event()

    def read_while_running() -> None:
        while not done.is_set():
            lines: list[str] = []
            for path in finished_parts(tmp_path, "aggregates"):
                content = path.read_bytes()  # a finished file never changes nor goes
                if seen.setdefault(path, content) != content:
                    problems.append(f"{path.name} changed after it was finished")
                if not content.endswith(b"\n"):
                    problems.append(f"{path.name} ends inside a line")
                lines += content.decode().splitlines()
            if len(lines) != len(set(lines)):
                problems.append("a line in two finished files")
            for line in lines:
                json.loads(line)

    reader = threading.Thread(target=read_while_running)
    reader.start()
    try:
        run = run_job(
            "dataflows.sensor_stats",
            SSE_URL=sim.url,
            OUTPUT=str(tmp_path),
            OUTPUT_ROLL_SIZE="4KiB",
            **FAST_RETRY,
        )
    finally:
        done.set()
        reader.join()
    assert run.returncode == 0, run.stderr
    assert problems == []
    assert len(seen) > 10, "the reader saw too few files to tell"
    assert sorted(seen) == finished_parts(tmp_path, "aggregates")
    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    assert_same_aggregates(load_aggregates(read_records(tmp_path, "aggregates")), expected)


def _small_stream(simulator: StartSim) -> SensorSimulator:
    faults = Faults(end_after=600, malformed_every=100)
    return simulator(across_midnight(600, rate=50.0, faults=faults))


def test_a_run_into_records_already_there_refuses_to_start_unless_told_what_to_do(
    simulator: StartSim, tmp_path: Path
) -> None:
    sim = _small_stream(simulator)
    first = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(tmp_path), **FAST_RETRY)
    assert first.returncode == 0, first.stderr
    once = sorted(read_records(tmp_path, "aggregates"))
    assert once

    again = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(tmp_path), **FAST_RETRY)
    assert again.returncode == 2
    (line,) = again.stderr.splitlines()
    assert line.startswith(f"sensorwax: OUTPUT '{tmp_path}' already holds ")
    assert "OUTPUT_MODE=append" in line and "OUTPUT_MODE=overwrite" in line
    assert sorted(read_records(tmp_path, "aggregates")) == once, "the refused run wrote"

    # Another job's records are not this one's: the features job starts beside them.
    features = run_job("dataflows.features", SSE_URL=sim.url, OUTPUT=str(tmp_path), **FAST_RETRY)
    assert features.returncode == 0, features.stderr
    assert read_records(tmp_path, "features")

    appended = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        OUTPUT_MODE="append",
        **FAST_RETRY,
    )
    assert appended.returncode == 0, appended.stderr
    assert sorted(read_records(tmp_path, "aggregates")) == sorted(once + once)

    overwritten = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        OUTPUT_MODE="overwrite",
        **FAST_RETRY,
    )
    assert overwritten.returncode == 0, overwritten.stderr
    assert sorted(read_records(tmp_path, "aggregates")) == once
    # The features job's records, and its dead letters, are left alone.
    assert read_records(tmp_path, "features")
    assert any("part-features-" in p.name for p in finished_parts(tmp_path, "dead_letters"))


def test_a_stopped_run_finishes_its_files_and_a_killed_ones_are_finished_on_append(
    simulator: StartSim, tmp_path: Path
) -> None:
    stopped, killed = tmp_path / "stopped", tmp_path / "killed"
    for out, how in ((stopped, signal.SIGINT), (killed, signal.SIGKILL)):
        sim = simulator(across_midnight(100_000, rate=4.0, pace=True, pace_rate=500))
        proc = subprocess.Popen(
            bytewax_run_cmd("dataflows.sensor_stats"),
            env=job_env(SSE_URL=sim.url, OUTPUT=str(out), **FAST_RETRY),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda o=out: any((o / "aggregates").rglob(".part-*")), "a part file")
            proc.send_signal(how)
            proc.wait(timeout=60)
        finally:
            proc.kill()
    # Ctrl+C (or SIGTERM) without recovery: the files are finished as the job stops.
    assert not [p for p in stopped.rglob(".*") if p.is_file()]
    assert read_records(stopped, "aggregates")
    # SIGKILL: nothing could finish them; they hold records, so a new run refuses...
    left = [p for p in killed.rglob(".part-*") if p.is_file()]
    assert left
    sim = _small_stream(simulator)
    refused = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(killed), **FAST_RETRY)
    assert refused.returncode == 2, refused.stderr
    # ...and one that appends finishes them first, cut to their last whole line.
    on_disk = {p: p.read_bytes() for p in left}
    appended = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(killed),
        OUTPUT_MODE="append",
        **FAST_RETRY,
    )
    assert appended.returncode == 0, appended.stderr
    assert not [p for p in killed.rglob(".*") if p.is_file()]
    for path, content in on_disk.items():
        finished = path.with_name(path.name[1:].removesuffix(".inprogress"))
        whole = content[: content.rfind(b"\n") + 1]
        assert finished.read_bytes() == whole
        for line in whole.decode().splitlines():
            json.loads(line)


def test_delta_tables_hold_what_json_lines_hold_typed_by_date_and_compacted(
    simulator: StartSim, tmp_path: Path
) -> None:
    # 90 minutes of event time across midnight, served in about 4 s so that the Delta
    # run, with a snapshot every second, commits a few dozen times on two workers.
    events = 21_600
    config = across_midnight(events, rate=4.0, pace=True, pace_rate=5_000)
    jsonl, delta, state = tmp_path / "jsonl", tmp_path / "delta", tmp_path / "state"
    sim = simulator(config)
    run = run_job("dataflows.sensor_stats", SSE_URL=sim.url, OUTPUT=str(jsonl), **FAST_RETRY)
    assert run.returncode == 0, run.stderr
    state.mkdir()
    init = subprocess.run(
        [*bytewax_run_cmd("x")[:2], "bytewax.recovery", str(state), "1"],
        env=job_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    run = run_job(
        "dataflows.sensor_stats",
        "-w",
        "2",
        "-r",
        str(state),
        "-s",
        "1",
        "-b",
        "0",
        SSE_URL=sim.url,
        OUTPUT=str(delta),
        OUTPUT_FORMAT="delta",
        **FAST_RETRY,
    )
    assert run.returncode == 0, run.stderr
    for kind in ("aggregates", "dead_letters"):
        assert sorted(delta_records(delta, kind)) == sorted(read_records(jsonl, kind)), kind
    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    assert_same_aggregates(load_aggregates(delta_records(delta, "aggregates")), expected)

    table = DeltaTable(str(delta / "aggregates"))
    types = {field.name: str(field.type) for field in table.to_pyarrow_table().schema}
    assert types == {
        "sensor_id": "string",
        "metric": "string",
        "window_start": "timestamp[us, tz=UTC]",
        "window_end": "timestamp[us, tz=UTC]",
        "count": "int64",
        "mean": "double",
        "min": "double",
        "max": "double",
        "date": "string",
    }
    new_year = table.to_pandas(filters=[("date", "=", "2026-01-01")])
    assert len(new_year) == (expected.window_start_ms >= 1_767_225_600_000).sum()
    assert (new_year.window_start >= pd.Timestamp("2026-01-01", tz="UTC")).all()
    # However many snapshots there were, each date ends as a file or two (a writer each).
    files = delta_files(delta, "aggregates")
    assert {Path(f).parent.name for f in files} == {"date=2025-12-31", "date=2026-01-01"}
    for date in ("date=2025-12-31", "date=2026-01-01"):
        assert 1 <= sum(Path(f).parent.name == date for f in files) <= 2, files
    assert table.history(limit=1000)[-1]["operation"] == "CREATE TABLE"
    commits = [h for h in table.history(limit=1000) if h["operation"] == "WRITE"]
    assert len(commits) > 4, "too few commits to tell compaction from none"


@pytest.mark.parametrize("fmt", ["jsonl", "delta"])
def test_retention_removes_exactly_the_partitions_older_than_it_and_says_so(
    simulator: StartSim, tmp_path: Path, fmt: str
) -> None:
    # Four hours of event time from 22:00 on 2025-12-31; the newest reading is about
    # 01:59:59, so an hour's retention keeps what ended after about 00:59:59.
    events = 28_800
    sim = simulator(
        replace(
            across_midnight(events, rate=2.0),
            sequence=SequenceSpec(
                sensors=8, rate=2.0, seed=3, start_ms=NEW_YEARS_EVE_MS - 3_000_000
            ),
        )
    )
    run = run_job(
        "dataflows.sensor_stats",
        SSE_URL=sim.url,
        OUTPUT=str(tmp_path),
        OUTPUT_FORMAT=fmt,
        OUTPUT_RETENTION="1h",
        **FAST_RETRY,
    )
    assert run.returncode == 0, run.stderr
    expected, _ = expected_aggregates([sent_readings(sim, events)], 10_000, 2_000)
    if fmt == "jsonl":
        gone = ["date=2025-12-31/hour=22", "date=2025-12-31/hour=23"]
        got = load_aggregates(read_records(tmp_path, "aggregates"))
        folders = sorted(
            f"{p.parent.parent.name}/{p.parent.name}"
            for p in finished_parts(tmp_path, "aggregates")
        )
        assert sorted(set(folders)) == ["date=2026-01-01/hour=00", "date=2026-01-01/hour=01"]
    else:
        gone = ["date=2025-12-31"]
        got = load_aggregates(delta_records(tmp_path, "aggregates"))
        dates = {p["date"] for p in DeltaTable(str(tmp_path / "aggregates")).partitions()}
        assert dates == {"2026-01-01"}
    # Both keep what starts from 2026-01-01T00:00Z.
    kept = expected[expected.window_start_ms >= 1_767_225_600_000].reset_index(drop=True)
    assert_same_aggregates(got, kept)
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    removed = sorted({r["partition"] for r in record["removed"] if r["kind"] == "aggregates"})
    assert removed == gone
    assert all(r["files"] >= 1 for r in record["removed"])


@pytest.mark.parametrize("fmt", ["jsonl", "delta"])
def test_jobs_sharing_one_output_each_name_their_own_dead_letters(
    simulator: StartSim, tmp_path: Path, fmt: str
) -> None:
    events = 4_000  # malformed every 1,000: events 999, 1999, 2999 and 3999
    sim = simulator(across_midnight(events, rate=4.0))
    for job in ("sensor_stats", "alerts"):
        run = run_job(
            f"dataflows.{job}",
            SSE_URL=sim.url,
            OUTPUT=str(tmp_path),
            OUTPUT_FORMAT=fmt,
            **FAST_RETRY,
        )
        assert run.returncode == 0, run.stderr
    lines = (
        delta_records(tmp_path, "dead_letters")
        if fmt == "delta"
        else read_records(tmp_path, "dead_letters")
    )
    by_job: dict[str, list[str]] = {}
    for letter in map(json.loads, lines):
        by_job.setdefault(letter["job"], []).append(letter["event_id"])
    malformed = ["999", "1999", "2999", "3999"]
    assert {job: sorted(ids, key=int) for job, ids in by_job.items()} == {
        "sensor_stats": malformed,
        "alerts": malformed,
    }
