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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from sensor_losses import dead_letter_sensors

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig  # noqa: E402
from dataflows.alert_rules import MetricRules, load_rules  # noqa: E402
from dataflows.config import DEFAULT_RULES, DemoConfig  # noqa: E402
from dataflows.runtime import demo_anomalies  # noqa: E402
from dataflows.tables import TABLE_SCHEMAS  # noqa: E402

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
    job: str | None = None,
    columns: Iterable[str] | None = None,
) -> pd.DataFrame:
    """A kind of record a job wrote under ``output``, in either format: its finished
    JSON Lines part files or its Delta table, typed as the Delta tables are
    (``dataflows.tables``: UTC times, int64 counts, exact float64 values).

    Only what is asked for is read: with ``start``/``end`` only the hour folders (or
    dates) of that range, and rows whose first time column falls outside it are left
    out; with ``sensors`` only their rows; with ``job`` only that job's records (dead
    letters of several jobs in one ``OUTPUT``; rows an older version wrote, which name
    no job, are left out of a Delta table then); with ``columns`` only those columns."""
    low = None if start is None else _utc(start)
    high = None if end is None else _utc(end)
    schema = TABLE_SCHEMAS[kind]
    # Once: ``sensors`` may be an iterator, read by the Delta filter and the row filter.
    named = None if sensors is None or "sensor_id" not in schema.names else sorted(set(sensors))
    wanted = None if columns is None else list(columns)
    needed = schema.names if wanted is None else list(wanted)
    if (low is not None or high is not None) and time_columns:
        needed = [*needed, time_columns[0]]
    if named is not None:
        needed = [*needed, "sensor_id"]
    needed = [name for name in schema.names if name in set(needed)]
    directory = Path(output) / kind
    if (directory / "_delta_log").is_dir():
        table = _read_table(
            directory,
            needed,
            time_columns[0] if time_columns else None,
            low,
            high,
            job if "job" in schema.names else None,
            named,
        )
    else:
        table = _read_parts(directory, schema, needed, low, high, job)
    keep = None
    if time_columns and (low is not None or high is not None):
        moments = table.column(time_columns[0])
        if low is not None:
            keep = pc.greater_equal(moments, pa.scalar(low.to_pydatetime(), moments.type))
        if high is not None:
            before = pc.less(moments, pa.scalar(high.to_pydatetime(), moments.type))
            keep = before if keep is None else pc.and_(keep, before)
    if named is not None:
        among = pc.is_in(table.column("sensor_id"), pa.array(named, pa.string()))
        keep = among if keep is None else pc.and_(keep, among)
    if keep is not None:
        table = table.filter(keep)
    if wanted is not None:
        table = table.select(wanted)
    return table.to_pandas()


def _utc(moment: str | pd.Timestamp) -> pd.Timestamp:
    """A moment as UTC: a naive one is taken to be UTC already."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _read_table(
    uri: Path,
    columns: list[str],
    time_column: str | None,
    low: pd.Timestamp | None,
    high: pd.Timestamp | None,
    job: str | None,
    sensors: list[str] | None,
) -> pa.Table:
    """A Delta table's columns, reading only the dates (files) the range needs and the
    row groups that may hold the range's times (``time_column``) and ``sensors``."""
    from deltalake import DeltaTable

    filters: list[tuple[str, str, Any]] = []
    if low is not None:
        filters.append(("date", ">=", f"{low:%Y-%m-%d}"))
    if high is not None:
        filters.append(("date", "<=", f"{high:%Y-%m-%d}"))
    if time_column is not None and low is not None:
        filters.append((time_column, ">=", low))
    if time_column is not None and high is not None:
        filters.append((time_column, "<", high))
    if job is not None:
        filters.append(("job", "=", job))
    if sensors is not None:
        filters.append(("sensor_id", "in", sensors))
    table = DeltaTable(str(uri))
    present = {field.name for field in table.schema().fields}
    schema = TABLE_SCHEMAS[uri.name]
    if job is not None and "job" not in present:  # made before dead letters named a job
        return schema.empty_table().select(columns)
    # A table an older version made may lack a newer nullable column: read it as nulls.
    found = table.to_pyarrow_table(
        columns=[c for c in columns if c in present], filters=filters or None
    )
    for name in columns:
        if name not in present:
            found = found.append_column(
                schema.field(name), pa.nulls(len(found), schema.field(name).type)
            )
    return found.select(columns)


def _read_parts(
    directory: Path,
    schema: pa.Schema,
    columns: list[str],
    low: pd.Timestamp | None,
    high: pd.Timestamp | None,
    job: str | None,
) -> pa.Table:
    """The finished part files of the hours the range needs, parsed by pyarrow with the
    kind's schema: exact floats (``pd.read_json`` rounds them), a few bytes a value
    rather than a Python object, and only ``columns`` kept from each file."""
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    prefix = "part-" if job is None else f"part-{job}-"
    pieces = []
    for folder in hour_folders(directory, low, high):
        for path in sorted(folder.glob(f"{prefix}*.jsonl")):
            if path.stat().st_size:
                pieces.append(pa_json.read_json(path, parse_options=options).select(columns))
    if not pieces:
        return schema.empty_table().select(columns)
    return pa.concat_tables(pieces)


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


def dead_letter_table(dead: pd.DataFrame) -> pd.DataFrame:
    """Dead letters by reason: how many, from which sensors (read from their data, the
    most first), and the first of each as an example."""
    columns = ["reason", "count", "sensors", "example event", "detail", "data"]
    if not len(dead):
        return pd.DataFrame(columns=columns)
    by_reason = dead.assign(sensor=dead_letter_sensors(dead).to_numpy()).groupby("reason")
    first = by_reason.first()
    table = pd.DataFrame(
        {
            "count": by_reason.size(),
            "sensors": by_reason["sensor"].agg(_counted),
            "example event": first["event_id"],
            "detail": first["detail"],
            "data": first["data"].str.slice(0, 60),
        }
    )
    return table.sort_values("count", ascending=False).reset_index()[columns]


def _counted(names: pd.Series, shown: int = 5) -> str:
    """``"sensor-003 x2, unknown sensor x1"``: the most frequent first, then "and N more"."""
    counts = names.value_counts()
    text = ", ".join(f"{name} x{n}" for name, n in counts.iloc[:shown].items())
    return text + (f" and {len(counts) - shown} more" if len(counts) > shown else "")


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
