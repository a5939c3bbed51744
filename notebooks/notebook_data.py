"""What the notebooks share: a simulator and runs for their own demo, and the analysis of
any job's output directory (its records, dead letters and run record).

Everything a notebook writes goes under one temporary directory, removed when its
kernel ends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig  # noqa: E402
from dataflows.alert_rules import MetricRules, load_rules  # noqa: E402
from dataflows.config import DEFAULT_RULES, DemoConfig  # noqa: E402
from dataflows.runtime import demo_anomalies  # noqa: E402

UNITS = {
    "temperature": "°C",
    "humidity.temperature": "°C",
    "humidity.relativeHumidity": "% RH",
    "co2": "ppm",
}

# One directory for every file a notebook writes; the object removes it when the kernel
# ends (or is garbage collected).
_SCRATCH = tempfile.TemporaryDirectory(prefix="sensorwax-notebook-")


def scratch(name: str) -> Path:
    """A directory under the notebook's one temporary directory."""
    path = Path(_SCRATCH.name) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def demo_stream(
    events: int = 2000, rate: float = 100.0, sensors: int = 4, fmt: str = "flat"
) -> SensorSimulator:
    """A simulator for a notebook's own runs: ``events / rate`` seconds of event time,
    served as fast as the job reads, with the embedded demo's anomalies (a spike, a
    stuck sensor, a sensor going quiet), a dropped connection and malformed events.
    Every job pointed at it gets the same stream, so their outputs line up."""
    demo = DemoConfig(sensors=sensors, rate=rate, events=events)
    config = SimulatorConfig(
        sequence=SequenceSpec(
            sensors=sensors, rate=rate, format=fmt, seed=1, **demo_anomalies(demo)
        ),  # type: ignore[arg-type]
        faults=Faults(
            end_after=events,
            drop_every=events // 2 + 7,
            drop_mid_event=True,
            malformed_every=events // 4 + 3,
        ),
        pace=False,
        events_per_write=20,
    )
    return SensorSimulator(config).start()


def run_job(module: str, output: Path, **settings: str) -> Path:
    """Run ``dataflows.<module>`` as the README does, writing to ``output``; returns it.

    Its log goes to ``output/job.log`` for the reader; the notebooks never parse it.
    """
    output.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSE_", "SIM_", "OUTPUT"))}
    env.update({"OUTPUT": str(output), "PYTHONPATH": str(REPO), **settings})
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


def hour_folders(
    directory: Path, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> list[Path]:
    """The ``date=/hour=`` folders of a kind's directory whose hour overlaps
    ``[start, end)`` (UTC; either open), in time order: the only ones a range reads."""
    folders = []
    for folder in sorted(Path(directory).glob("date=*/hour=*")):
        hour = pd.Timestamp(f"{folder.parent.name[5:]}T{folder.name[5:]}:00", tz="UTC")
        if (start is None or hour + pd.Timedelta(hours=1) > start) and (end is None or hour < end):
            folders.append(folder)
    return folders


def load_records(
    output: Path,
    kind: str,
    time_columns: tuple[str, ...] = (),
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    sensors: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A kind of record a job wrote under ``output``, in either format: its finished
    JSON Lines part files (floats parsed exactly; ``pd.read_json`` rounds them) or its
    Delta table. With ``start``/``end`` only the hour folders (or dates) of that range
    are read, and rows whose first time column falls outside it are left out; with
    ``sensors`` only their rows are kept."""
    low = None if start is None else pd.Timestamp(start, tz="UTC")
    high = None if end is None else pd.Timestamp(end, tz="UTC")
    wanted = None if sensors is None else set(sensors)
    if (Path(output) / kind / "_delta_log").is_dir():
        frame = _load_table(Path(output) / kind, time_columns, low, high, wanted)
    else:
        frame = _load_parts(Path(output) / kind, low, high, wanted)
    for column in time_columns:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    if time_columns and time_columns[0] in frame and (low is not None or high is not None):
        moments = frame[time_columns[0]]
        keep = pd.Series(True, index=frame.index)
        if low is not None:
            keep &= moments >= low
        if high is not None:
            keep &= moments < high
        frame = frame[keep].reset_index(drop=True)
    return frame


def _load_table(
    uri: Path,
    time_columns: tuple[str, ...],
    low: pd.Timestamp | None,
    high: pd.Timestamp | None,
    wanted: set[str] | None,
) -> pd.DataFrame:
    """A Delta table's rows, reading only the dates (and row groups) the range needs."""
    from deltalake import DeltaTable

    filters: list[tuple[str, str, Any]] = []
    if low is not None:
        filters.append(("date", ">=", f"{low:%Y-%m-%d}"))
    if high is not None:
        filters.append(("date", "<=", f"{high:%Y-%m-%d}"))
    if wanted is not None:
        filters.append(("sensor_id", "in", sorted(wanted)))
    frame = DeltaTable(str(uri)).to_pandas(filters=filters or None)
    return frame.drop(columns=["date"])


def _load_parts(
    directory: Path, low: pd.Timestamp | None, high: pd.Timestamp | None, wanted: set[str] | None
) -> pd.DataFrame:
    rows = []
    for folder in hour_folders(directory, low, high):
        for path in sorted(folder.glob("*.jsonl")):
            if path.name.startswith((".", "_")):
                continue
            for line in path.read_text().splitlines():
                if line:
                    row = json.loads(line)
                    if wanted is None or row.get("sensor_id") in wanted:
                        rows.append(row)
    return pd.DataFrame(rows)


def load_run(output: Path, job: str | None = None) -> dict[str, Any]:
    """The run record of the newest run of ``job`` (``sensor_stats``, ``features``,
    ``alerts``) that wrote to ``output`` (``OUTPUT/runs/``). Without ``job``, a directory
    that several jobs wrote to is refused: their newest run is no answer to a question
    about one of them."""
    records = [json.loads(p.read_text()) for p in (Path(output) / "runs").glob("*.json")]
    if not records:
        raise FileNotFoundError(
            f"{output} has no run record (runs/*.json): it was written by an older version "
            "of the job, or OUTPUT was not a directory"
        )
    jobs = sorted({r["job"] for r in records})
    if job is None and len(jobs) > 1:
        raise ValueError(
            f"{output} holds the runs of {', '.join(jobs)}: say which, load_run(output, job=...)"
        )
    if job is not None:
        if job not in jobs:
            raise FileNotFoundError(f"{output} has no run of {job}, only of {', '.join(jobs)}")
        if len(jobs) > 1:
            print(f"{output} holds the runs of {', '.join(jobs)}: reading the newest of {job}.")
        records = [r for r in records if r["job"] == job]
    return max(records, key=lambda r: r["started"])


def reconnects(run: dict[str, Any]) -> pd.DataFrame:
    """Every reconnect of the run, one row each; ``normal_end`` marks a stream's final
    clean end (the server finished the stream), which is not a break."""
    rows = []
    for stream in run["streams"]:
        found = stream["reconnects"]
        for n, item in enumerate(found):
            last = n == len(found) - 1
            rows.append(
                {
                    "stream": stream["name"],
                    **item,
                    "normal_end": last and item["clean_end"] and run["ended"] is not None,
                }
            )
    columns = ["stream", "at", "event_time", "reason", "clean_end", "last_event_id"]
    frame = pd.DataFrame(rows, columns=[*columns, "delay_seconds", "attempt", "normal_end"])
    for column in ("at", "event_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def breaks(run: dict[str, Any]) -> pd.DataFrame:
    """Where the streams broke: the reconnects, less each stream's normal end."""
    found = reconnects(run)
    return found[~found.normal_end.astype(bool)].reset_index(drop=True)


def per_sensor_summary(aggregates: pd.DataFrame) -> pd.DataFrame:
    """One row per sensor and metric: windows, readings, the usual readings per window,
    the range of values, and the first and last window."""
    return (
        aggregates.groupby(["sensor_id", "metric"])
        .agg(
            windows=("count", "size"),
            readings=("count", "sum"),
            usual_per_window=("count", "median"),
            mean=("mean", "mean"),
            min=("min", "min"),
            max=("max", "max"),
            first_window=("window_start", "min"),
            last_window=("window_end", "max"),
        )
        .round({"mean": 3, "min": 3, "max": 3})
    )


def low_count_windows(
    aggregates: pd.DataFrame, dead: pd.DataFrame, marks: pd.DataFrame
) -> pd.DataFrame:
    """Windows with fewer readings than their sensor's usual count then (by more than the
    one its counts vary by naturally, if they do), each with
    what explains it: dead letters whose stream time falls in it, stream breaks in it,
    or being the sensor's first or last window (the stream started, ended, or the sensor
    went quiet)."""
    frame = aggregates.sort_values("window_start").copy()
    keys = ["sensor_id", "metric"]
    # Usual for that time: the median of the five windows around it, so that a sensor
    # whose rate changed (another went quiet and it took its turns) is judged by its own.
    frame["usual"] = frame.groupby(keys)["count"].transform(
        lambda counts: counts.rolling(5, center=True, min_periods=1).median()
    )
    first = frame.groupby(keys)["window_start"].transform("min")
    last = frame.groupby(keys)["window_start"].transform("max")
    # Counts that naturally alternate (16 and 17 readings, as 100 readings a second over
    # six sensors give) are not short by the one between them: a sensor whose middle
    # windows are off its median in more than a third of them varies by one anyway.
    middle = frame[(frame.window_start != first) & (frame.window_start != last)]
    jitter = middle.groupby(keys)["count"].transform(
        lambda c: 1 if (c != c.median()).mean() > 1 / 3 else 0
    )
    jitter = jitter.reindex(frame.index, fill_value=0)
    low = frame[frame["count"] < frame["usual"] - jitter].copy()
    times = (
        pd.to_datetime(dead["stream_time"], utc=True, format="ISO8601")
        if len(dead) and "stream_time" in dead
        else pd.Series(dtype="datetime64[ns, UTC]")
    )
    causes = []
    for row in low.itertuples():
        inside = (times >= row.window_start) & (times < row.window_end)
        reasons = dead.loc[inside[inside].index, "reason"].value_counts() if len(dead) else {}
        cause = [f"{reason} x{n}" for reason, n in reasons.items()]
        stream_breaks = (
            (marks.event_time >= row.window_start) & (marks.event_time < row.window_end)
        ).sum()
        if stream_breaks:
            cause.append(f"stream broke x{stream_breaks}")
        if row.window_start == first[row.Index]:
            cause.append("the sensor's first window")
        if row.window_start == last[row.Index]:
            cause.append("the sensor's last window")
        causes.append(", ".join(cause) or "unexplained")
    low["missing"] = low["usual"] - low["count"]
    low["explained_by"] = causes
    columns = [*keys, "window_start", "count", "usual", "missing", "explained_by"]
    return low[columns].sort_values(["window_start", *keys]).reset_index(drop=True)


# Panels drawn one per sensor at most: a fleet's thousands would be unreadable and slow.
PANELS = 12


def keys_to_draw(
    keys: Iterable[tuple[str, str]], sensors: list[str] | None = None, limit: int = PANELS
) -> list[tuple[str, str]]:
    """The (sensor_id, metric) pairs to draw a panel or a colour each for: those of
    ``sensors`` when given, else the first ``limit``. Says what it left out."""
    ordered = sorted(keys)
    if sensors is None:
        picked = ordered[:limit]
    else:
        wanted = set(sensors)
        picked = [key for key in ordered if key[0] in wanted]
    if len(picked) < len(ordered):
        print(f"Drawing {len(picked)} of {len(ordered)} sensor series: set SENSORS to choose.")
    return picked


def usual_range(values: pd.Series, fences: float = 3.0) -> tuple[float, float]:
    """The span of the usual values: ``fences`` interquartile ranges beyond the quartiles
    (Tukey's far-out fences), within the values' own range, so an axis set to it is not
    squeezed by a few outliers. All the values when they have no spread."""
    q1, q3 = values.quantile([0.25, 0.75])
    spread = fences * (q3 - q1)
    low, high = max(values.min(), q1 - spread), min(values.max(), q3 + spread)
    if high <= low:
        low, high = values.min(), values.max()
    if high <= low:  # every value the same: a span around it
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)


def dead_letter_table(dead: pd.DataFrame) -> pd.DataFrame:
    """Dead letters by reason: how many, and the first of each as an example."""
    if not len(dead):
        return pd.DataFrame(columns=["reason", "count", "example event", "detail", "data"])
    first = dead.groupby("reason").first()
    table = pd.DataFrame(
        {
            "count": dead.groupby("reason").size(),
            "example event": first["event_id"],
            "detail": first["detail"],
            "data": first["data"].str.slice(0, 60),
        }
    )
    return table.sort_values("count", ascending=False).reset_index()


def alert_episodes(alerts: pd.DataFrame) -> pd.DataFrame:
    """Each alert's episode as its readings show it: sensor, metric, rule, ``start`` (the
    condition's first reading, the alert's ``onset``), ``end`` (the first reading past it,
    ``ended``; NaT: still raised at the end of the data), ``duration`` (how long the
    condition lasted, not how long the alert was raised), ``peak`` (its extreme reading;
    empty for a silence) and ``raised``/``cleared`` (when the rules said so)."""
    rows = []
    if len(alerts):
        for (sensor, metric, rule), group in alerts.sort_values("ts").groupby(
            ["sensor_id", "metric", "rule"]
        ):
            raised = None
            for alert in group.itertuples():
                if alert.state == "raised":
                    raised = alert
                elif raised is not None:
                    rows.append(
                        (
                            sensor,
                            metric,
                            rule,
                            alert.onset,
                            alert.ended,
                            alert.peak,
                            raised.ts,
                            alert.ts,
                        )
                    )
                    raised = None
            if raised is not None:
                rows.append(
                    (sensor, metric, rule, raised.onset, pd.NaT, raised.peak, raised.ts, pd.NaT)
                )
    keys = ["sensor_id", "metric", "rule"]
    frame = pd.DataFrame(rows, columns=[*keys, "start", "end", "peak", "raised", "cleared"])
    for column in ("start", "end", "raised", "cleared"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["duration"] = frame["end"] - frame["start"]
    return frame[[*keys, "start", "end", "duration", "peak", "raised", "cleared"]]


def alert_rules(run: dict[str, Any]) -> dict[str, MetricRules]:
    """The rules the alerts run used (``ALERT_RULES`` in its run record)."""
    path = run["settings"].get("ALERT_RULES", "unset")
    return load_rules(DEFAULT_RULES if path in ("unset", "") else Path(path))
