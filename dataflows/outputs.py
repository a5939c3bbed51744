"""What every job shares on the way out: records and lines to stdout/stderr or to files.

With ``OUTPUT`` a directory, each kind of record has its own file under it, written
through Bytewax's FileSink so that recovery neither loses nor repeats a line.
"""

from __future__ import annotations

import csv
import io
import json
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import bytewax.operators as op
from bytewax.dataflow import Stream

from connectors.sinks import HeaderFileSink, StdErrSink, StdOutSink, line_file_sink
from dataflows.config import OutputConfig
from dataflows.readings import DeadLetter
from dataflows.run_stats import RunStats

__all__ = ["write_dead_letters", "write_lines", "write_records"]

X = TypeVar("X")


def _keyed_line(line: str) -> tuple[str, str]:
    return ("", line)


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def _csv_line(record: dict[str, Any], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    # None is an empty field, which pandas.read_csv reads as NaN.
    csv.writer(buffer, lineterminator="").writerow(
        ["" if record[c] is None else record[c] for c in columns]
    )
    return buffer.getvalue()


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
        lines = op.map(f"{step_id}_json", records, _json_line)
        write_lines(step_id, lines, kind, output, stats)
        return
    records = _counted(step_id, records, kind, stats)
    lines = op.map(f"{step_id}_csv", records, partial(_csv_line, columns=csv_columns))
    keyed = op.map(f"{step_id}_keyed", lines, _keyed_line)
    path = output.directory / kind / f"{kind}.csv"
    stats.output(kind, str(path))
    header = ",".join(csv_columns)
    sink = HeaderFileSink(path, header)
    _start_file(path, header + "\n", output)
    op.output(step_id, keyed, sink)


def write_lines(
    step_id: str,
    lines: Stream[str],
    kind: str,
    output: OutputConfig,
    stats: RunStats,
    *,
    console_stderr: bool = False,
) -> None:
    """Lines to ``OUTPUT/<kind>/<kind>.jsonl``, or to stdout (stderr) when OUTPUT is ``-``."""
    lines = _counted(step_id, lines, kind, stats)
    if output.directory is None:
        stats.output(kind, "stderr" if console_stderr else "stdout")
        op.output(step_id, lines, StdErrSink() if console_stderr else StdOutSink())
        return
    keyed = op.map(f"{step_id}_keyed", lines, _keyed_line)
    path = output.directory / kind / f"{kind}.jsonl"
    stats.output(kind, str(path))
    sink = line_file_sink(path)
    _start_file(path, "", output)
    op.output(step_id, keyed, sink)


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


def _counted(step_id: str, items: Stream[X], kind: str, stats: RunStats) -> Stream[X]:
    """``items`` unchanged, counted a batch at a time as records of ``kind``."""
    return op.flat_map_batch(f"{step_id}_count", items, partial(_count, kind=kind, stats=stats))


def _count(batch: list[X], kind: str, stats: RunStats) -> list[X]:
    stats.count_records(kind, len(batch))
    return batch


def _start_file(path: Path, content: str, output: OutputConfig) -> None:
    # Bytewax opens a file sink at its first line, so a run with nothing to write would
    # leave an earlier run's file in place. A fresh run starts each file anew; a run with
    # recovery keeps it (FileSink truncates it to the snapshot it resumes from).
    if output.resume:
        path.touch()
    else:
        path.write_text(content)
