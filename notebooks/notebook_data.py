"""What the notebooks share: running a job against the simulator, and loading its output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
UNITS = {"temperature": "°C", "relativeHumidity": "% RH", "co2": "ppm"}

_RECONNECT = re.compile(
    r"^(?P<time>\S+Z) (?:WARNING|INFO) connectors\.sse\.client: (?P<stream>\S+): reconnecting in "
    r"(?P<delay>[\d.]+) s \(attempt (?P<attempt>\d+)\): (?P<reason>.*?)"
    r"(?:; resuming after event '(?P<last_id>[^']*)')?$"
)


def run_job(module: str, output: Path, **settings: str) -> Path:
    """Run ``dataflows.<module>`` against its embedded simulator, writing under ``output``.

    The job's log goes to ``output/job.log``; returns ``output``.
    """
    output.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSE_", "OUTPUT"))}
    env.update({"OUTPUT": str(output), **settings})
    with (output / "job.log").open("w") as log:
        subprocess.run(
            [sys.executable, "-m", "bytewax.run", f"dataflows.{module}"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
            check=True,
            timeout=600,
        )
    return output


def load_jsonl(path: Path, time_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """JSON Lines to a frame; floats parsed exactly (``pd.read_json`` rounds them)."""
    rows = (
        [json.loads(line) for line in path.read_text().splitlines() if line]
        if path.exists()
        else []
    )
    frame = pd.DataFrame(rows)
    for column in time_columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def load_reconnects(log: Path) -> pd.DataFrame:
    """Every reconnect a job logged: time (UTC), stream, delay, attempt, reason, last id."""
    rows = []
    if log.exists():
        for line in log.read_text().splitlines():
            match = _RECONNECT.match(line)
            if match:
                rows.append(match.groupdict())
    frame = pd.DataFrame(rows, columns=["time", "stream", "delay", "attempt", "reason", "last_id"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    frame["delay"] = frame["delay"].astype(float)
    return frame
