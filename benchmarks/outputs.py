"""The output layer's figures: the job's throughput with each format against the single
file it wrote before, bytes on disk per aggregate row, and reading one hour out of a day.

The day is made by the sinks themselves (the job's own writers, fed a day of aggregate
lines directly: a day of event time through the job would take the benchmark an hour),
for a fleet where each sensor has one window every ``window_minutes``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from connectors.sinks import Cluster, HourlyPartSink
from connectors.sinks.delta import DeltaSink
from connectors.sinks.layout import HOUR_MICROS
from dataflows.tables import TABLE_SCHEMAS

__all__ = ["DAY", "bytes_on_disk", "day_rows", "make_day", "read_hour"]

# The day: 2026-11-30, UTC; the hour read out of it, 12:00.
DAY = datetime(2026, 11, 30, tzinfo=UTC)
HOUR = 12


def day_rows(sensors: int, window_minutes: int) -> int:
    """How many aggregate rows a day of such a fleet has."""
    return sensors * 1440 // window_minutes


def _hour_lines(sensors: int, hour: int, window_minutes: int) -> str:
    """An hour of aggregates: each sensor one window every ``window_minutes``."""
    start = DAY + timedelta(hours=hour)
    span = timedelta(minutes=window_minutes)
    lines = []
    for minute in range(0, 60, window_minutes):
        begin = start + timedelta(minutes=minute)
        bounds = (
            f'"window_start":"{begin:%Y-%m-%dT%H:%M:%S}.000Z",'
            f'"window_end":"{begin + span:%Y-%m-%dT%H:%M:%S}.000Z",'
        )
        for sensor in range(sensors):
            # Two decimals, as sensors report, and no pattern a codec could take apart.
            noise = (sensor * 7919 + (hour * 60 + minute) * 104_729) % 1_000
            value = orjson.dumps(15.0 + (sensor % 97) / 10 + noise / 100).decode()
            lines.append(
                f'{{"sensor_id":"sensor-{sensor:05d}","metric":"temperature",{bounds}'
                f'"count":1,"mean":{value},"min":{value},"max":{value}}}'
            )
    return "\n".join(lines)


def make_day(directory: Path, sensors: int, window_minutes: int = 1) -> dict[str, Path]:
    """A day of aggregates as the single file of before, hourly JSON Lines parts and a
    Delta table (compacted as the job leaves it); the paths of each."""
    single = directory / "single" / "aggregates" / "aggregates.jsonl"
    single.parent.mkdir(parents=True)
    parts, table = directory / "jsonl" / "aggregates", directory / "delta" / "aggregates"
    first_hour = (DAY - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1)
    now = {"at": first_hour * HOUR_MICROS}
    settle = timedelta(minutes=2)
    jsonl = HourlyPartSink(
        parts,
        "bench",
        Cluster(),
        clock=lambda: now["at"],
        settle=settle,
        roll_size=128 * 2**20,
        finish_on_exit=False,
    )
    delta = DeltaSink(
        table,
        "bench",
        Cluster(),
        TABLE_SCHEMAS["aggregates"],
        clock=lambda: now["at"],
        settle=settle,
    )
    jsonl_part = jsonl.build_part("out", jsonl.list_parts()[0], None)
    delta_part = delta.build_part("out", delta.list_parts()[0], None)
    with single.open("w") as whole:
        for hour in range(24):
            text = _hour_lines(sensors, hour, window_minutes)
            whole.write(text + "\n")
            chunk = [(first_hour + hour, text)]
            jsonl_part.write_batch(chunk)
            delta_part.write_batch(chunk)
            now["at"] = (first_hour + hour + 1) * HOUR_MICROS + settle // timedelta(microseconds=1)
            jsonl_part.snapshot()
            delta_part.snapshot()
    jsonl_part.close()
    delta_part.close()
    return {"single file": single, "JSON Lines parts": parts, "Delta": table}


def bytes_on_disk(path: Path) -> int:
    """What a kind's files take: the single file, the finished parts, or the Delta
    table's current files (not the ones compaction replaced, which vacuum removes)."""
    if path.is_file():
        return path.stat().st_size
    if (path / "_delta_log").is_dir():
        from deltalake import DeltaTable

        table = DeltaTable(str(path))
        return sum(Path(uri).stat().st_size for uri in table.file_uris())
    return sum(p.stat().st_size for p in path.glob("date=*/hour=*/*.jsonl"))


_READER = r"""
import json, sys, time
from pathlib import Path
kind, path, date, hour = sys.argv[1:5]
started = time.perf_counter()
import pandas as pd
start = pd.Timestamp(f"{date}T{hour}:00", tz="UTC")
end = start + pd.Timedelta(hours=1)
if kind == "single file":
    frame = pd.DataFrame([json.loads(line) for line in open(path)])
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True, format="ISO8601")
    frame = frame[(frame.window_start >= start) & (frame.window_start < end)]
elif kind == "Delta":
    from deltalake import DeltaTable
    frame = DeltaTable(path).to_pandas(
        filters=[("date", "=", date), ("window_start", ">=", start), ("window_start", "<", end)]
    )
else:
    folder = Path(path) / f"date={date}" / f"hour={hour}"
    frame = pd.DataFrame(
        [json.loads(line) for p in sorted(folder.glob("*.jsonl")) for line in open(p)]
    )
seconds = time.perf_counter() - started
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"rows": len(frame), "seconds": seconds, "peak_mib": peak}))
"""


def read_hour(kind: str, path: Path) -> dict[str, float]:
    """Read the day's hour 12:00 with pandas in a fresh process: rows, seconds (after
    the interpreter starts) and peak RSS."""
    done = subprocess.run(
        [sys.executable, "-c", _READER, kind, str(path), f"{DAY:%Y-%m-%d}", f"{HOUR:02d}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    return dict(json.loads(done.stdout))


if __name__ == "__main__":  # a quick look: python -m benchmarks.outputs [sensors [minutes]]
    sensors = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    minutes = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rows = day_rows(sensors, minutes)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        paths = make_day(Path(tmp), sensors, minutes)
        print(f"made a day of {rows:,} rows in {time.perf_counter() - began:.1f} s")
        for name, where in paths.items():
            print(name, bytes_on_disk(where) / rows, "bytes a row", read_hour(name, where))
