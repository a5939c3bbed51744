"""The notebooks' analysis on a fleet's day: ``sensor_analysis``'s reading and tables
(per sensor, losses, short windows) over a day of aggregates, with today's notebook
modules beside those of ``BEFORE`` (the notebooks as issue 27 found them), each in a
fresh process: seconds and peak RSS.

The day is ``benchmarks.outputs.make_day``'s (the job's own sinks, one window a minute
per sensor), in each format the job writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

__all__ = ["BEFORE", "analyse"]

# The notebooks before issue 27: load_records with json.loads per line, short windows
# by a rolling median joined with dead letters by time.
BEFORE = "5d33f96"

_ANALYSIS = r"""
import json, sys, time
from pathlib import Path
root, output, hour = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sys.path[:0] = [str(root / "notebooks"), str(root)]
started = time.perf_counter()
import pandas as pd
import notebook_data as nd
span = {}
if hour != "day":
    span = {"start": hour, "end": pd.Timestamp(hour, tz="UTC") + pd.Timedelta(hours=1)}
aggregates = nd.load_records(output, "aggregates", ("window_start", "window_end"), **span)
dead = nd.load_records(output, "dead_letters", ("stream_time",), **span)
read = time.perf_counter()
marks = pd.DataFrame({"event_time": pd.Series([], dtype="datetime64[ns, UTC]")})
per_sensor = nd.per_sensor_summary(aggregates)
if hasattr(nd, "low_count_windows"):  # before: the short windows were all it had
    low = nd.low_count_windows(aggregates, dead, marks)
else:
    import sensor_losses as sl
    losses = sl.sensor_losses(aggregates, dead)
    low = sl.low_count_windows(aggregates, dead, marks)
done = time.perf_counter()
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        peak = int(line.split()[1]) / 1024
print(json.dumps({"windows": len(aggregates), "read_seconds": read - started,
                  "seconds": done - started, "peak_mib": peak}))
"""


def analyse(root: Path, output: Path, hour: str = "day") -> dict[str, float]:
    """``sensor_analysis``'s reading and tables with the notebook modules of ``root``
    (a checkout) on ``output``, the whole of it or one ``hour`` ("2026-11-30T12:00"),
    in a fresh process: windows, seconds reading, seconds in all and peak RSS (MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", _ANALYSIS, str(root), str(output), hour],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=root,
    )
    if done.returncode:
        raise RuntimeError(f"the analysis with {root} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout))
