"""The independent oracle: window aggregates computed with pandas from what the server sent,
and a runner for the jobs as real ``python -m bytewax.run`` processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson
import pandas as pd

from connectors.simulator import SensorSimulator

ROOT = Path(__file__).resolve().parents[2]
KEY = ["sensor_id", "metric"]


def sent_readings(sim: SensorSimulator, events: int) -> pd.DataFrame:
    """What the simulator's events 0..events-1 carried, in the order sent, with their ids."""
    rows = [(sim.url, n, *r) for n in range(events) for r in sim.expected_readings([n])]
    return pd.DataFrame(
        rows, columns=["stream", "event_id", "sensor_id", "metric", "ts_ms", "value"]
    )


def expected_aggregates(
    streams: Sequence[pd.DataFrame], window_ms: int, lateness_ms: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(aggregates, late readings) from each stream's readings in the order sent.

    A reading is late when it is more than ``lateness_ms`` older than the newest reading
    of its (sensor, metric) before it; the others fall in the window
    ``[floor(ts / window) * window, + window)``.
    """
    sent = pd.concat(streams, ignore_index=True)
    # Vectorised per key, so that a fleet of tens of thousands of keys stays quick.
    newest = sent.groupby(KEY)["ts_ms"].cummax()
    newest_before = newest.groupby([sent[k] for k in KEY]).shift(1)
    late_mask = sent["ts_ms"] < newest_before - lateness_ms
    kept = sent[~late_mask].copy()
    kept["window_start_ms"] = kept["ts_ms"] // window_ms * window_ms
    windows = kept.groupby([*KEY, "window_start_ms"])["value"]
    aggregates = windows.agg(count="count", min="min", max="max")
    aggregates["mean"] = [math.fsum(values) / len(values) for values in windows.agg(list)]
    aggregates = aggregates.reset_index()
    aggregates["window_end_ms"] = aggregates["window_start_ms"] + window_ms
    return _sorted(aggregates), sent[late_mask].reset_index(drop=True)


def load_aggregates(lines: Sequence[str]) -> pd.DataFrame:
    """The job's JSON Lines records as the oracle's columns."""
    # json, not pd.read_json: pandas' default float parser is not correctly rounded.
    frame = pd.DataFrame([json.loads(line) for line in lines])
    for column in ("window_start", "window_end"):
        frame[f"{column}_ms"] = _ms(pd.to_datetime(frame.pop(column), utc=True, format="ISO8601"))
    return _sorted(frame[[*KEY, "window_start_ms", "count", "mean", "min", "max", "window_end_ms"]])


def _ms(moments: pd.Series) -> pd.Series:
    return (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"count": "int64", "mean": "float64", "min": "float64", "max": "float64"})
    frame = frame.astype({"window_start_ms": "int64", "window_end_ms": "int64"})
    return frame.sort_values([*KEY, "window_start_ms"]).reset_index(drop=True)


def assert_same_aggregates(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Every window present on both sides, and count, mean, min, max equal to the bit."""
    assert len(got) == len(expected), (len(got), len(expected))
    pd.testing.assert_frame_equal(got, expected[got.columns.tolist()], check_exact=True)


@dataclass
class JobRun:
    returncode: int
    stdout: str
    stderr: str


def job_env(**settings: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SSE_", "SIM_", "DT_", "OBELISK_", "WINDOW", "LATENESS", "OUTPUT"))
    }
    env.update(settings)
    env["PYTHONPATH"] = str(ROOT)
    return env


def bytewax_run_cmd(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bytewax.run", module, *args]


def run_job(module: str, *args: str, timeout: float = 120, **settings: str) -> JobRun:
    done = subprocess.run(
        bytewax_run_cmd(module, *args),
        env=job_env(**settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return JobRun(done.returncode, done.stdout, done.stderr)


def read_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def finished_parts(out: Path, kind: str) -> list[Path]:
    """The part files of ``kind`` a reader sees: finished ones, in their hour folders."""
    return sorted(p for p in (out / kind).glob("date=*/hour=*/*.jsonl") if p.name[0] != ".")


def delta_records(out: Path, kind: str) -> list[str]:
    """The rows of ``kind``'s Delta table as the JSON lines the JSON Lines format writes
    (the ``date`` partition left out), so that the two formats compare line for line."""
    from deltalake import DeltaTable

    from dataflows.times import iso

    table = DeltaTable(str(out / kind)).to_pyarrow_table()
    columns = [name for name in table.column_names if name != "date"]
    return [
        orjson.dumps({c: iso(v) if isinstance(v, datetime) else v for c, v in row.items()}).decode()
        for row in table.select(columns).to_pylist()
    ]


def delta_files(out: Path, kind: str) -> list[str]:
    """The data files the current version of ``kind``'s Delta table holds."""
    from deltalake import DeltaTable

    return sorted(DeltaTable(str(out / kind)).file_uris())


def writers(out: Path, kind: str) -> set[str]:
    """The partitions (``<process>-<worker slot>``) that wrote finished files of ``kind``."""
    return {"-".join(p.name.split("-")[-4:-2]) for p in finished_parts(out, kind)}


def read_records(out: Path, kind: str) -> list[str]:
    """Every line of ``kind`` a reader of ``out`` sees: those of its finished part files."""
    return [line for path in finished_parts(out, kind) for line in read_lines(path)]


def run_job_watching(
    module: str, sim: SensorSimulator, *args: str, timeout: float = 120, **settings: str
) -> tuple[JobRun, list[tuple[str, int]]]:
    """Run a job with records on stdout; note, for each record, how many events the
    simulator had sent when the record arrived (what the job could have seen by then)."""
    with tempfile.TemporaryFile(mode="w+") as stderr:
        proc = subprocess.Popen(
            bytewax_run_cmd(module, *args),
            env=job_env(OUTPUT="-", **settings),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        seen = [(line, len(sim.sent_ids)) for line in proc.stdout]
        proc.wait(timeout=timeout)
        stderr.seek(0)
        run = JobRun(proc.returncode, "".join(line for line, _ in seen), stderr.read())
    return run, seen


def run_in_process(module: str, **settings: str) -> None:
    """A job's dataflow run in this process with ``bytewax.testing.run_main``, its settings
    from ``settings`` alone: for tests about what the dataflow writes, not the process."""
    from bytewax.testing import run_main

    from dataflows import features, sensor_stats
    from dataflows.config import load_config, load_feature_config
    from dataflows.run_stats import RunStats

    job = load_config(settings, argv=[])
    if module == "dataflows.sensor_stats":
        run_main(sensor_stats.build_flow(job, RunStats("sensor_stats")))
    elif module == "dataflows.features":
        feature_settings = load_feature_config(settings)
        run_main(features.build_flow(job, feature_settings, RunStats("features")))
    else:
        raise ValueError(f"no in-process runner for {module}")
