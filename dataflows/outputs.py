"""What every job shares on the way out: records as JSON Lines, to the console or to
hourly part files, and what a run does with the records already in ``OUTPUT``.

With ``OUTPUT`` a directory, each kind of record goes under ``OUTPUT/<kind>/`` in
``date=YYYY-MM-DD/hour=HH`` folders by its event time (``connectors.sinks.rolling``):
an aggregate or a feature row by its window's start, an alert by its time, a dead
letter by its stream's event time (the wall clock before the stream's first reading).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream

from connectors.sinks import HourlyPartSink, StdErrSink, StdOutSink, part_files
from connectors.sinks.layout import HOUR_MICROS
from dataflows.config import ConfigError, OutputConfig
from dataflows.readings import DeadLetter
from dataflows.recovery_store import history_name
from dataflows.run_stats import RunStats
from dataflows.times import micros

if TYPE_CHECKING:
    from connectors.sinks.delta import DeltaSink

__all__ = [
    "JOB_OUTPUTS",
    "HourLines",
    "hour_of_iso",
    "prepare_output",
    "write_dead_letters",
    "write_hour_lines",
    "write_records",
]

log = logging.getLogger("dataflows")

X = TypeVar("X")

HourLines = dict[int, list[str]]
"""Lines by the hour of their records' event time (hours since the epoch, UTC)."""

# The kinds of record each job writes; dead letters are every job's, each in its own files.
JOB_OUTPUTS: dict[str, tuple[str, ...]] = {
    "sensor_stats": ("aggregates", "dead_letters"),
    "features": ("features", "dead_letters"),
    "alerts": ("alerts", "dead_letters"),
}

# Beyond what a job says its records may lag behind event time: batches on their way
# between the steps, and the streams' times moving apart.
_SETTLE_MARGIN = timedelta(minutes=1)

_HOURS: dict[str, int] = {}


def hour_of_iso(moment: str) -> int:
    """The hour (since the epoch) of an ISO 8601 UTC time as the jobs write it
    (``2026-12-03T08:15:00.000Z``), read from its first 13 characters."""
    head = moment[:13]
    hour = _HOURS.get(head)
    if hour is None:
        if len(_HOURS) > 4096:
            _HOURS.clear()
        start = datetime.strptime(head, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        hour = _HOURS[head] = micros(start) // HOUR_MICROS
    return hour


def _records_by_hour(records: list[dict[str, Any]], time_field: str) -> HourLines:
    # orjson: a fleet writes a record per reading, and json.dumps took a sixth of the job.
    # Same JSON (UTF-8, compact); numbers the shortest that read back the same float.
    by_hour: HourLines = {}
    for record in records:
        hour = hour_of_iso(record[time_field])
        lines = by_hour.get(hour)
        if lines is None:
            lines = by_hour[hour] = []
        lines.append(orjson.dumps(record).decode())
    return by_hour


def _merged(batch: list[HourLines]) -> HourLines:
    if len(batch) == 1:
        return batch[0]
    by_hour: HourLines = {}
    for item in batch:
        for hour, lines in item.items():
            known = by_hour.get(hour)
            if known is None:
                by_hour[hour] = list(lines)
            else:
                known.extend(lines)
    return by_hour


def _letters_by_hour(letters: list[DeadLetter], job: str) -> HourLines:
    by_hour: HourLines = {}
    arrival: int | None = None
    for letter in letters:
        stamp = letter.stream_time
        if stamp is None:
            arrival = arrival or micros(datetime.now(UTC))
            stamp = arrival
        by_hour.setdefault(stamp // HOUR_MICROS, []).append(letter.to_json(job))
    return by_hour


def _console_lines(
    batch: list[X], by_hour: Callable[[list[X]], HourLines], kind: str, stats: RunStats
) -> list[str]:
    # A batch's lines as one item: the sink writes it and its line end at once.
    grouped = by_hour(batch)
    lines = [line for hour in sorted(grouped) for line in grouped[hour]]
    stats.count_records(kind, len(lines))
    return ["\n".join(lines)] if lines else []


def _chunks(
    batch: list[X],
    by_hour: Callable[[list[X]], HourLines],
    kind: str,
    stats: RunStats,
    routes: Iterator[str],
) -> list[tuple[str, tuple[int, str]]]:
    # One item per hour a batch touches: the runtime's cost per item is paid a few times
    # a batch, where a fleet has one record per reading.
    grouped = by_hour(batch)
    stats.count_records(kind, sum(map(len, grouped.values())))
    route = next(routes)
    return [(route, (hour, "\n".join(lines))) for hour, lines in grouped.items() if lines]


def _write(
    step_id: str,
    items: Stream[X],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    by_hour: Callable[[list[X]], HourLines],
    settle: timedelta,
    console_stderr: bool = False,
) -> None:
    if output.directory is None:
        lines = op.flat_map_batch(
            f"{step_id}_lines",
            items,
            partial(_console_lines, by_hour=by_hour, kind=kind, stats=stats),
        )
        stats.output(kind, "stderr" if console_stderr else "stdout")
        op.output(step_id, lines, StdErrSink() if console_stderr else StdOutSink())
        return
    directory = output.directory / kind
    run = None if output.recovery is None else history_name(output.recovery)
    # Without recovery no restart continues what a partition holds: at a stop it is
    # finished (JSON Lines) or committed (Delta) as the process exits.
    finish_on_exit = output.recovery is None
    retention = None
    if output.retention is not None:
        retention = (output.retention, partial(stats.removed, kind))
    sink: HourlyPartSink | DeltaSink
    if output.format == "delta":
        # Only here: deltalake and pyarrow are about 90 MiB a JSON Lines job does not need.
        from connectors.sinks.delta import DeltaSink
        from dataflows.tables import TABLE_SCHEMAS

        sink = DeltaSink(
            directory,
            stats.job,
            output.cluster,
            TABLE_SCHEMAS[kind],
            clock=stats.times.slowest,
            settle=settle + _SETTLE_MARGIN,
            finish_on_exit=finish_on_exit,
            run=run,
            retention=retention,
            input_ended=None if output.recovery is None else stats.input_ended,
        )
    else:
        sink = HourlyPartSink(
            directory,
            stats.job,
            output.cluster,
            clock=stats.times.slowest,
            settle=settle + _SETTLE_MARGIN,
            roll_size=output.roll_size,
            finish_on_exit=finish_on_exit,
            run=run,
            retention=retention,
        )
    routes = itertools.cycle(sink.route_keys())
    chunks = op.flat_map_batch(
        f"{step_id}_lines",
        items,
        partial(_chunks, by_hour=by_hour, kind=kind, stats=stats, routes=routes),
    )
    stats.output(kind, str(directory))
    op.output(step_id, chunks, sink)


def write_records(
    step_id: str,
    records: Stream[dict[str, Any]],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    *,
    time_field: str,
    settle: timedelta,
) -> None:
    """Records as JSON Lines, each in the hour of its ``time_field`` (ISO 8601, UTC), to
    stdout or ``OUTPUT/<kind>/``; ``settle``: how far behind the streams' event time a
    record of an hour may still come, so that the hour's files are finished after it."""
    by_hour = partial(_records_by_hour, time_field=time_field)
    _write(step_id, records, kind, output, stats, by_hour, settle)


def write_hour_lines(
    step_id: str,
    items: Stream[HourLines],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    *,
    settle: timedelta,
) -> None:
    """Like ``write_records``, for a step that makes its lines itself, many at a time."""
    _write(step_id, items, kind, output, stats, _merged, settle)


def write_dead_letters(
    dead: Stream[DeadLetter],
    output: OutputConfig,
    stats: RunStats,
    *,
    settle: timedelta,
    late: Stream[DeadLetter] | None = None,
) -> None:
    """Dead letters (and late readings) to stderr or ``OUTPUT/dead_letters/``."""
    letters = dead if late is None else op.merge("dead_letters", dead, late)
    _write(
        "dead_letters_out",
        letters,
        "dead_letters",
        output,
        stats,
        partial(_letters_by_hour, job=stats.job),
        settle,
        console_stderr=True,
    )


def prepare_output(job: str, output: OutputConfig) -> None:
    """Before a run: refuse an ``OUTPUT`` whose kinds are in the other format; then,
    without recovery, refuse to start where ``job`` has records there already (mode
    ``new``), add to them (``append``; JSON Lines files a killed run left unfinished are
    finished, cut to their last whole line), or remove them (``overwrite``). Raises
    ConfigError with the one line to show."""
    if output.directory is None:
        return
    kinds = JOB_OUTPUTS[job]
    _check_format(output, kinds)
    if output.resume:
        return
    unfinished: list[Path] = []
    legacy: list[Path] = []
    if output.format == "delta":
        finished = _committed_files(job, output.directory, kinds)
    else:
        finished, unfinished, legacy = _records_of(job, output.directory, kinds)
    if not (finished or unfinished or legacy):
        return
    count = len(finished) + len(unfinished) + len(legacy)
    if output.mode == "new":
        raise ConfigError(
            f"OUTPUT {str(output.directory)!r} already holds {count} files of {job}'s records "
            f"({', '.join(kinds)}): set OUTPUT_MODE=append to add to them, "
            "OUTPUT_MODE=overwrite to replace them, or run with recovery (-r) to continue"
        )
    if output.mode == "overwrite":
        if output.format == "delta":
            _remove_from_tables(job, output.directory, kinds)
        else:
            for path in [*finished, *unfinished, *legacy]:
                path.unlink(missing_ok=True)
            for kind in kinds:
                _remove_empty_folders(output.directory / kind)
        log.info("OUTPUT_MODE=overwrite: removed %d files of %s's records", count, job)
        return
    for path in unfinished:
        _finish_left_over(path)
    for path in legacy:
        log.warning(
            "%s is the single file of an older sensorwax: readers of %s will read it too; "
            "move it away",
            path,
            path.parent,
        )


def _check_format(output: OutputConfig, kinds: tuple[str, ...]) -> None:
    assert output.directory is not None
    for kind in kinds:
        folder = output.directory / kind
        table = (folder / "_delta_log").is_dir()
        if output.format == "delta" and not table and next(part_files(folder), None):
            raise ConfigError(
                f"OUTPUT: {str(folder)!r} holds JSON Lines part files, and OUTPUT_FORMAT=delta "
                "needs it for a Delta table: set another OUTPUT, or OUTPUT_FORMAT=jsonl"
            )
        if output.format == "jsonl" and table:
            raise ConfigError(
                f"OUTPUT: {str(folder)!r} is a Delta table: set OUTPUT_FORMAT=delta to add "
                "to it, or another OUTPUT"
            )


def _committed_files(job: str, directory: Path, kinds: tuple[str, ...]) -> list[Path]:
    """The data files of ``job`` in the kinds' Delta tables, as their current versions
    hold them."""
    from deltalake import DeltaTable

    found = []
    for kind in kinds:
        uri = directory / kind
        if DeltaTable.is_deltatable(str(uri)):
            for path in DeltaTable(str(uri)).file_uris():
                if Path(path).name.startswith(f"part-{job}-"):
                    found.append(Path(path))
    return found


def _remove_from_tables(job: str, directory: Path, kinds: tuple[str, ...]) -> None:
    """One transaction a table, removing ``job``'s files (``vacuum`` deletes them later)."""
    import pyarrow as pa
    from deltalake import DeltaTable
    from deltalake.transaction import AddAction, RemoveAction

    for kind in kinds:
        uri = directory / kind
        if not DeltaTable.is_deltatable(str(uri)):
            continue
        table = DeltaTable(str(uri))
        actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
        now = int(datetime.now(UTC).timestamp() * 1000)
        removes: list[AddAction | RemoveAction] = [
            RemoveAction(row["path"], True, now, row["size_bytes"], {"date": row["partition.date"]})
            for row in actions
            if Path(row["path"]).name.startswith(f"part-{job}-")
        ]
        if removes:
            table.create_write_transaction(
                removes, mode="append", schema=table.schema(), partition_by=["date"]
            )


def _records_of(
    job: str, directory: Path, kinds: tuple[str, ...]
) -> tuple[list[Path], list[Path], list[Path]]:
    finished: list[Path] = []
    unfinished: list[Path] = []
    legacy: list[Path] = []
    for kind in kinds:
        folder = directory / kind
        if not folder.is_dir():
            continue
        for path, done in part_files(folder, f"part-{job}-"):
            (finished if done else unfinished).append(path)
        # The one file per kind that sensorwax wrote before part files.
        legacy += [p for p in (folder / f"{kind}.jsonl", folder / f"{kind}.csv") if p.exists()]
    return finished, unfinished, legacy


def _finish_left_over(path: Path) -> None:
    """A part file a killed run left unfinished, cut to its last whole line and finished."""
    with path.open("rb+") as handle:
        handle.truncate(_after_last_line(handle, handle.seek(0, os.SEEK_END)))
    visible = path.with_name(path.name[1:].removesuffix(".inprogress"))
    # Another process of the cluster may have finished it first.
    with contextlib.suppress(FileNotFoundError):
        path.rename(visible)
    log.warning("finished %s, which a run that was killed left unfinished", visible)


def _after_last_line(handle: BinaryIO, size: int) -> int:
    """How many bytes of the file are whole lines: up to and with its last newline."""
    end = size
    while end > 0:
        start = max(end - 65536, 0)
        handle.seek(start)
        at = handle.read(end - start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _remove_empty_folders(directory: Path) -> None:
    for folder in sorted(directory.glob("date=*/hour=*"), reverse=True):
        for empty in (folder, folder.parent):
            try:
                empty.rmdir()
            except OSError:
                break
