"""What every job shares on the way out: records and lines to stdout/stderr or to files.

With ``OUTPUT`` a directory, each kind of record has its own file under it, written
through Bytewax's FileSink so that recovery neither loses nor repeats a line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import bytewax.operators as op
import orjson
from bytewax.dataflow import Stream

from connectors.sinks import HeaderFileSink, StdErrSink, StdOutSink, line_file_sink
from dataflows.config import OutputConfig
from dataflows.readings import DeadLetter
from dataflows.run_stats import RunStats

__all__ = ["write_dead_letters", "write_line_lists", "write_lines", "write_records"]

X = TypeVar("X")


def _json_lines(records: list[dict[str, Any]]) -> str:
    # orjson: a fleet writes a record per reading, and json.dumps took a sixth of the job.
    # Same JSON (UTF-8, compact); numbers the shortest that read back the same float.
    return "\n".join([orjson.dumps(record).decode() for record in records])


def _csv_lines(records: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    # None is an empty field, which pandas.read_csv reads as NaN.
    csv.writer(buffer, lineterminator="\n").writerows(
        ["" if record[c] is None else record[c] for c in columns] for record in records
    )
    return buffer.getvalue()[:-1]


def _joined(lines: list[str]) -> str:
    return "\n".join(lines)


def _joined_lists(batches: list[list[str]]) -> str:
    return "\n".join([line for lines in batches for line in lines])


def _records_in(batches: list[list[str]]) -> int:
    return sum(map(len, batches))


def _lines_of(
    batch: list[X],
    to_lines: Callable[[list[X]], str],
    kind: str,
    stats: RunStats,
    count: Callable[[list[X]], int] = len,
) -> list[str]:
    # A batch's lines as one item: the sink writes it and its line end at once, and the
    # runtime moves one item where a fleet has one record per reading.
    records = count(batch)
    stats.count_records(kind, records)
    return [to_lines(batch)] if records else []


def _keyed_lines_of(
    batch: list[X],
    to_lines: Callable[[list[X]], str],
    kind: str,
    stats: RunStats,
    count: Callable[[list[X]], int] = len,
) -> list[tuple[str, str]]:
    return [("", lines) for lines in _lines_of(batch, to_lines, kind, stats, count)]


def write_records(
    step_id: str,
    records: Stream[dict[str, Any]],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    *,
    csv_columns: tuple[str, ...] | None = None,
) -> None:
    """Records as JSON Lines (stdout, or ``OUTPUT/<kind>/<kind>.jsonl``), or, with
    ``csv_columns`` and an OUTPUT directory, as ``OUTPUT/<kind>/<kind>.csv`` with a header."""
    if csv_columns is None or output.directory is None:
        write_lines(step_id, records, kind, output, stats, to_lines=_json_lines)
        return
    to_csv = partial(_csv_lines, columns=csv_columns)
    keyed = op.flat_map_batch(
        f"{step_id}_lines",
        records,
        partial(_keyed_lines_of, to_lines=to_csv, kind=kind, stats=stats),
    )
    path = output.directory / kind / f"{kind}.csv"
    stats.output(kind, str(path))
    header = ",".join(csv_columns)
    sink = HeaderFileSink(path, header)
    _start_file(path, header + "\n", output)
    op.output(step_id, keyed, sink)


def write_lines(
    step_id: str,
    items: Stream[X],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    *,
    to_lines: Callable[[list[X]], str] = _joined,  # type: ignore[assignment]
    count: Callable[[list[X]], int] = len,
    console_stderr: bool = False,
) -> None:
    """Items as lines to ``OUTPUT/<kind>/<kind>.jsonl``, or to stdout (stderr) when OUTPUT
    is ``-``; ``to_lines`` formats a batch of them (by default they are lines already), and
    ``count`` tells how many records a batch holds (by default one an item).
    Counting and formatting are one step a batch: a step per line costs the runtime's
    per-item call several times a record."""
    lines_of = partial(_lines_of, to_lines=to_lines, kind=kind, stats=stats, count=count)
    if output.directory is None:
        lines = op.flat_map_batch(f"{step_id}_lines", items, lines_of)
        stats.output(kind, "stderr" if console_stderr else "stdout")
        op.output(step_id, lines, StdErrSink() if console_stderr else StdOutSink())
        return
    keyed_lines_of = partial(
        _keyed_lines_of, to_lines=to_lines, kind=kind, stats=stats, count=count
    )
    keyed = op.flat_map_batch(f"{step_id}_lines", items, keyed_lines_of)
    path = output.directory / kind / f"{kind}.jsonl"
    stats.output(kind, str(path))
    sink = line_file_sink(path)
    _start_file(path, "", output)
    op.output(step_id, keyed, sink)


def write_line_lists(
    step_id: str,
    lists: Stream[list[str]],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
) -> None:
    """Like ``write_lines``, for a stream of lists of lines, each line a record: a step
    that makes many records at once hands them on as one item."""
    write_lines(step_id, lists, kind, output, stats, to_lines=_joined_lists, count=_records_in)


def write_dead_letters(
    dead: Stream[DeadLetter],
    output: OutputConfig,
    stats: RunStats,
    *,
    late: Stream[str] | None = None,
) -> None:
    """Dead letters (and late readings already as lines) to stderr or ``OUTPUT/dead_letters``."""
    letters = op.map("letter", dead, DeadLetter.to_json)
    if late is not None:
        letters = op.merge("dead_letters", letters, late)
    write_lines("dead_letters_out", letters, "dead_letters", output, stats, console_stderr=True)


def _start_file(path: Path, content: str, output: OutputConfig) -> None:
    # Bytewax opens a file sink at its first line, so a run with nothing to write would
    # leave an earlier run's file in place. A fresh run starts each file anew; a run with
    # recovery keeps it (FileSink truncates it to the snapshot it resumes from).
    if output.resume:
        path.touch()
    else:
        path.write_text(content)
