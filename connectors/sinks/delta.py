"""Delta Lake tables (delta-rs, through the ``deltalake`` package), partitioned by date,
an idempotent transaction per worker and snapshot, compacted as dates settle.

``DeltaSink`` takes the same items as ``HourlyPartSink``: ``(route, (hour, text))``,
whole JSON lines of one hour of event time. A partition keeps the lines of each date
and, at every snapshot (or every ``stage_rows`` rows, so memory stays bounded), parses
them with pyarrow's JSON reader against the table's schema (typed columns; floats read
back exactly as written) into a Parquet file in the table's ``date=`` folder. No reader
sees such a file until it is committed: at the snapshot after the one that listed it
(which is committed by then), one Delta transaction adds every file of the snapshot
before, with an application transaction (``txn``: the partition's id and a version
counting its commits). A partition's snapshot is what it has staged and not yet
committed, as file names, never the rows.

On resume from a snapshot, the files it lists are committed unless the table's version
for the partition's id shows they were already (the crash came after that commit);
files staged after the snapshot are removed, files committed after it (a resume from
further back) are taken back in one transaction (undoing the compaction that merged
any of them since), and the source's replay stages their rows again. Writer
``000-000`` compacts (``optimize``) each date's small files once an hour of it settles,
and every writer of the first process compacts the dates it wrote at the end of input,
one at a time (with recovery, only when the input ended rather than the
dataflow stopped: see ``DeltaSink``). A commit that another writer's removal of rows
made fail is made again on the newer version (``_transact``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypedDict

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, CommitProperties, RemoveAction, Transaction

from connectors.sinks.exits import exit_lock, forget, remember
from connectors.sinks.layout import HOUR_MICROS, seq_of
from connectors.sinks.retention import Removed
from connectors.sinks.rolling import Chunk, Cluster, new_run

__all__ = ["DeltaSink", "DeltaState", "TableSettings"]

log = logging.getLogger(__name__)

DATE = "date"


class DeltaState(TypedDict):
    """A partition's snapshot: its run, its next file's number, the version its next
    commit carries, and its staged files not yet committed: (date, file name, bytes,
    rows)."""

    run: str
    next: int
    version: int
    staged: list[tuple[str, str, int, int]]


@dataclass(frozen=True)
class TableSettings:
    """How a table is kept: compaction's target file size, how long files that
    compaction replaced stay for readers of older versions (then ``vacuum`` removes
    them), and how long the log keeps old versions."""

    target_size: int = 128 * 2**20
    deleted_file_retention: timedelta = timedelta(hours=1)
    log_retention: timedelta = timedelta(days=2)


def _date_of(hour: int) -> str:
    return f"{datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour):%Y-%m-%d}"


def _interval(span: timedelta) -> str:
    return f"interval {int(span.total_seconds())} seconds"


def _column_names(table: DeltaTable) -> list[str]:
    return [field.name for field in pa.schema(table.schema().to_arrow())]


def open_table(uri: Path, schema: pa.Schema, settings: TableSettings) -> None:
    """Create the table (``schema`` plus the ``date`` column it is partitioned by)
    unless it exists; one that exists must have the same columns."""
    full = schema.append(pa.field(DATE, pa.string(), nullable=False))
    if not DeltaTable.is_deltatable(str(uri)):
        uri.mkdir(parents=True, exist_ok=True)
        # Another process of the cluster may make it first.
        with contextlib.suppress(CommitFailedError):
            DeltaTable.create(
                str(uri),
                schema=full,
                mode="ignore",
                partition_by=[DATE],
                configuration={
                    "delta.logRetentionDuration": _interval(settings.log_retention),
                    "delta.deletedFileRetentionDuration": _interval(
                        settings.deleted_file_retention
                    ),
                    # delta-rs writes a checkpoint every this many commits (its default,
                    # said here so that a table made elsewhere keeps it too).
                    "delta.checkpointInterval": "100",
                },
            )
    table = DeltaTable(str(uri))
    names = _column_names(table)
    missing = [field for field in schema if field.name not in names]
    if set(names) - set(full.names) or not all(field.nullable for field in missing):
        raise ValueError(
            f"the Delta table {uri} has the columns {', '.join(names)}, "
            f"not {', '.join(full.names)}: write to another OUTPUT"
        )
    if missing:
        # A table an older version made: the columns added since are nullable, so its
        # rows read with them empty.
        from deltalake.schema import Field

        try:
            table.alter.add_columns([Field.from_arrow(field) for field in missing])
        except Exception:
            # Another process of the cluster added them first; anything else is real.
            if not set(schema.names) <= set(_column_names(DeltaTable(str(uri)))):
                raise
        else:
            log.info("added the columns %s to %s", ", ".join(f.name for f in missing), uri)


class DeltaSink(FixedPartitionedSink[Chunk, DeltaState]):
    """A Delta table at ``uri`` whose columns are ``schema`` and ``date``; partitions as
    ``HourlyPartSink``'s (one per worker), files ``part-<name>-<partition>-...``.
    ``clock`` and ``settle`` say when an hour is complete (for compaction);
    ``finish_on_exit``, ``run`` and ``retention`` as for ``HourlyPartSink`` (a date is
    removed once its end is that old: a delete, then ``vacuum``).

    ``input_ended`` (with recovery) says whether this process's input ended as streams
    end. Bytewax closes a partition when the dataflow stops for any reason, a failure or
    a lost peer included; then the files committed since the snapshot a restart resumes
    from are taken back, which a compaction merging them would make impossible, so a
    close compacts only when ``input_ended()`` is true. None: every close compacts."""

    def __init__(
        self,
        uri: Path,
        name: str,
        cluster: Cluster,
        schema: pa.Schema,
        *,
        clock: Callable[[], int | None],
        settle: timedelta,
        settings: TableSettings = TableSettings(),
        finish_on_exit: bool = False,
        run: str | None = None,
        stage_rows: int = 65_536,
        retention: tuple[timedelta, Removed] | None = None,
        input_ended: Callable[[], bool] | None = None,
    ) -> None:
        open_table(uri, schema, settings)
        self._uri = uri
        self._name = name
        self._cluster = cluster
        self._schema = schema
        self._clock = clock
        self._settle = settle // timedelta(microseconds=1)
        self._settings = settings
        self._finish_on_exit = finish_on_exit
        self._run = run
        self._stage_rows = stage_rows
        self._retention = retention
        self._input_ended = input_ended

    def route_keys(self) -> list[str]:
        return self._cluster.route_keys()

    def list_parts(self) -> list[str]:
        return self._cluster.part_names()

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(
        self, step_id: str, for_part: str, resume_state: DeltaState | None
    ) -> _DeltaPartition:
        if resume_state is None:
            run = self._run or new_run()
            resume_state = {"run": run, "next": 0, "version": 0, "staged": []}
        return _DeltaPartition(
            self,
            f"part-{self._name}-{for_part}",
            resume_state,
            compacts=self._cluster.process == 0,
            hourly=for_part == "000-000",
        )


# Tries of one transaction that another writer's removal made fail (``_transact``).
_COMMIT_ATTEMPTS = 30

# Compactions of one table, one at a time: delta-rs let two concurrent compactions of a
# date both commit (each removing the same small files and adding its own merged file:
# every row twice), so only the first process compacts, one writer at a time.
_COMPACTIONS: dict[Path, threading.Lock] = {}
_COMPACTIONS_LOCK = threading.Lock()


def _compaction_lock(uri: Path) -> threading.Lock:
    with _COMPACTIONS_LOCK:
        return _COMPACTIONS.setdefault(uri.resolve(), threading.Lock())


# How far back in the table's history a take-back looks for the compaction that merged
# its files: they were committed one or two snapshots ago, a handful of commits for
# every writer of the cluster.
_HISTORY = 1000


@dataclass(frozen=True)
class _Compaction:
    """One compaction in the table's history: the files it replaced and the ones it
    wrote, as paths in the table (``date=.../name``)."""

    version: int
    removed: frozenset[str]
    added: frozenset[str]

    @property
    def removed_names(self) -> set[str]:
        return {path.split("/")[1] for path in self.removed}


def _relative(uri: str) -> str:
    """A file's path in the table, from the absolute one delta-rs gives."""
    folder, name = uri.rsplit("/", 2)[-2:]
    return f"{folder}/{name}"


def _compactions(table: DeltaTable, root: Path) -> list[_Compaction]:
    """The table's recent compactions, newest first, each read from the versions on
    either side of it (time travel: the files live before and after)."""
    found = []
    for entry in table.history(limit=_HISTORY):
        if entry.get("operation") != "OPTIMIZE":
            continue
        version = int(entry["version"])
        before = {_relative(u) for u in DeltaTable(str(root), version=version - 1).file_uris()}
        after = {_relative(u) for u in DeltaTable(str(root), version=version).file_uris()}
        found.append(_Compaction(version, frozenset(before - after), frozenset(after - before)))
    return found


def _date_values(path: str) -> dict[str, str | None]:
    return {DATE: path.split("/")[0].removeprefix(f"{DATE}=")}


def _remove(root: Path, path: str, now: int) -> RemoveAction:
    return RemoveAction(path, True, now, (root / path).stat().st_size, _date_values(path))


def _add(root: Path, path: str, now: int) -> AddAction:
    """A file a compaction replaced, added back as it was: its size and row count."""
    rows = pq.read_metadata(root / path).num_rows
    size = (root / path).stat().st_size
    return AddAction(path, size, _date_values(path), now, True, f'{{"numRecords":{rows}}}')


class _DeltaPartition(StatefulSinkPartition[Chunk, DeltaState]):
    def __init__(
        self, sink: DeltaSink, writer: str, state: DeltaState, compacts: bool, hourly: bool
    ) -> None:
        self._sink = sink
        self._uri = sink._uri
        self._run = state["run"]
        self._prefix = f"{writer}-{self._run}"
        self._app = f"sensorwax-{self._prefix}"
        self._next = state["next"]
        self._version = state["version"]
        self._compacts = compacts
        self._hourly = hourly
        self._lock = exit_lock()
        self._lines: dict[str, list[str]] = {}
        self._buffered = 0
        # Staged as of the last snapshot (committed at the next), and since.
        self._listed: list[tuple[str, str, int, int]] = []
        self._staged: list[tuple[str, str, int, int]] = []
        self._dates: set[str] = set()
        self._settled_hour: int | None = None
        self._expired_before: str | None = None
        self._restore(state)
        if sink._finish_on_exit:
            remember(self)

    def _table(self) -> DeltaTable:
        return DeltaTable(str(self._uri))

    def _restore(self, state: DeltaState) -> None:
        table = self._table()
        live = {Path(path).name for path in table.file_uris()}
        later: list[tuple[int, Path]] = []
        gone: list[tuple[int, Path]] = []
        for path in self._uri.glob(f"{DATE}=*/{self._prefix}-*.parquet"):
            seq = seq_of(path.with_suffix(".jsonl"))
            if seq is None or seq < self._next:
                continue
            (later if path.name in live else gone).append((seq, path))
        staged = bool(state["staged"])
        kept = self._version if staged else self._version - 1
        done = table.transaction_version(self._app)
        merged: set[str] = set()
        if gone and done is not None and done > kept:
            # Committed since the snapshot, then merged by a compaction: taken back too.
            merged = {name for c in _compactions(table, self._uri) for name in c.removed_names}
        for seq, path in gone:
            if path.name in merged:
                later.append((seq, path))
            else:
                path.unlink()  # staged after the snapshot: the replay stages its rows again
        if later:
            self._take_back(later, kept)
        if state["staged"]:
            self._listed = list(state["staged"])
            self._commit_listed()

    def _take_back(self, later: list[tuple[int, Path]], kept: int) -> None:
        """Files committed after the snapshot this run resumes from: Bytewax can resume a
        snapshot further back than the one before its last (its frontier may be "one
        too small"), and the replay writes their rows again. As the JSON Lines writer
        does with files it finished after its snapshot, they are taken back: one
        transaction removes them and sets the commits' counter back to the snapshot's
        (``kept``).

        One that a compaction has merged since is taken back by undoing that compaction
        (the hourly one merges a live date's newest files): the merged file is removed
        and the files it replaced, which stay on disk until vacuumed, are added back,
        all but this writer's later ones. Another writer's later file so added back is
        live again, and that writer takes it back as any other. Each try works from the
        table as it is then, so two writers undoing one compaction undo it once."""
        names = {path.name for _, path in later}
        undone: list[_Compaction] = []

        def actions_for(table: DeltaTable) -> list[AddAction | RemoveAction]:
            live = {_relative(path) for path in table.file_uris()}
            now = int(time.time() * 1000)
            actions: list[AddAction | RemoveAction] = [
                _remove(self._uri, f"{path.parent.name}/{path.name}", now)
                for _, path in sorted(later)
                if f"{path.parent.name}/{path.name}" in live
            ]
            undone.clear()
            merged = {f"{p.parent.name}/{p.name}" for _, p in later} - live
            for compaction in _compactions(table, self._uri) if merged else []:
                if not merged & compaction.removed:
                    continue
                restore = sorted(
                    path for path in compaction.removed if path.split("/")[1] not in names
                )
                missing = [path for path in restore if not (self._uri / path).exists()]
                if not compaction.added <= live or missing:
                    log.error(
                        "%s: cannot undo the compaction (version %d) that merged files "
                        "committed after the snapshot this run resumes from (%s): their "
                        "rows will be in the table twice",
                        self._uri,
                        compaction.version,
                        "vacuumed: " + ", ".join(missing)
                        if missing
                        else "its file merged again or removed since",
                    )
                    continue
                actions += [_remove(self._uri, path, now) for path in sorted(compaction.added)]
                actions += [_add(self._uri, path, now) for path in restore]
                merged -= compaction.removed
                undone.append(compaction)
            return actions

        self._transact(self._table(), actions_for, kept)
        # New names from here on: a reader of an older version still finds those files.
        self._next = max(seq for seq, _ in later) + 1
        log.warning(
            "%s: took back %d files committed after the snapshot this run resumes from%s; "
            "the replay writes their rows again",
            self._uri,
            len(later),
            "".join(f", undoing the compaction of version {c.version}" for c in undone),
        )

    def write_batch(self, values: list[Chunk]) -> None:
        with self._lock:
            lines = self._lines
            for hour, text in values:
                date = _date_of(hour)
                known = lines.get(date)
                if known is None:
                    known = lines[date] = []
                known.append(text)
                self._buffered += text.count("\n") + 1
            if self._buffered >= self._sink._stage_rows:
                self._stage()

    def _stage(self) -> None:
        """Every buffered line into a Parquet file per date, not yet in the table."""
        schema = self._sink._schema
        options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        # A date's lines leave the buffer before their file is named in _staged, and a
        # name is taken before its file is written: a stop signal between any two steps
        # can lose the lines in flight (a stop without recovery does), never stage them
        # twice or write two files under one name.
        lines = self._lines
        self._lines, self._buffered = {}, 0
        for date, texts in lines.items():
            data = ("\n".join(texts) + "\n").encode()
            table = pa_json.read_json(io.BytesIO(data), parse_options=options).select(schema.names)
            name = f"{self._prefix}-{self._next:06d}.parquet"
            self._next += 1
            folder = self._uri / f"{DATE}={date}"
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, folder / name, compression="zstd")
            size = (folder / name).stat().st_size
            self._dates.add(date)
            self._staged.append((date, name, size, table.num_rows))

    def _commit_listed(self) -> None:
        """One transaction adding the files of the last snapshot, unless the table has
        it already (a crash after the commit, before the snapshot that followed it)."""
        cutoff = self._cutoff()
        if cutoff is not None:
            # Rows of a date retention has removed are not added back.
            expired = Counter(date for date, *_ in self._listed if date < cutoff)
            for date, name, _, _ in self._listed:
                if date < cutoff:
                    (self._uri / f"{DATE}={date}" / name).unlink(missing_ok=True)
            self._listed = [entry for entry in self._listed if entry[0] >= cutoff]
            assert self._sink._retention is not None
            for date, files in sorted(expired.items()):
                self._sink._retention[1](f"{DATE}={date}", files)
        if not self._listed:
            return
        table = self._table()
        done = table.transaction_version(self._app)
        if done is None or done < self._version:
            now = int(time.time() * 1000)
            actions: list[AddAction | RemoveAction] = [
                AddAction(
                    f"{DATE}={date}/{name}",
                    size,
                    {DATE: date},
                    now,
                    True,
                    f'{{"numRecords":{rows}}}',
                )
                for date, name, size, rows in self._listed
            ]
            self._transact(table, actions, self._version)
        self._version += 1
        self._listed = []

    def _transact(
        self,
        table: DeltaTable,
        actions: list[AddAction | RemoveAction]
        | Callable[[DeltaTable], list[AddAction | RemoveAction]],
        version: int,
    ) -> None:
        """One transaction of this partition's, which leaves its commits' counter at
        ``version``.

        delta-rs takes a transaction without a read predicate to have read the whole
        table, so another writer's commit that removes data (a take-back at a restart,
        retention's delete) makes it fail, and its own retries do not help. Ours only add
        this partition's new files or remove its own, whatever else the table holds, so
        the same actions are committed again on the newer version; ``actions`` given as
        a function of the table (a take-back, which may undo a compaction) are worked
        out again from it."""
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                table.create_write_transaction(
                    actions(table) if callable(actions) else actions,
                    mode="append",
                    schema=table.schema(),
                    partition_by=[DATE],
                    commit_properties=CommitProperties(
                        app_transactions=[Transaction(app_id=self._app, version=version)],
                        max_commit_retries=100,
                    ),
                )
                return
            except CommitFailedError as exc:
                if attempt == _COMMIT_ATTEMPTS:
                    raise
                log.info(
                    "%s: commit %d of %s met a concurrent removal, again (%s)",
                    self._uri,
                    version,
                    self._prefix,
                    str(exc).splitlines()[0],
                )
            time.sleep(min(0.01 * attempt, 0.2))
            table = self._table()

    def snapshot(self) -> DeltaState:
        with self._lock:
            if self._lines:
                self._stage()
            self._commit_listed()
            self._listed, self._staged = self._staged, []
            if self._hourly:
                self._compact_settled()
                self._expire()
            return {
                "run": self._run,
                "next": self._next,
                "version": self._version,
                "staged": list(self._listed),
            }

    def _compact_settled(self) -> None:
        # Once an hour settles, its date's small files are compacted: a finished date
        # ends as a few large files however often snapshots came.
        now = self._sink._clock()
        if now is None:
            return
        settled = (now - self._sink._settle) // HOUR_MICROS - 1
        if self._settled_hour is None or settled > self._settled_hour:
            self._compact(_date_of(settled))
        self._settled_hour = settled

    def _cutoff(self) -> str | None:
        """The first date retention keeps, by the event clock; None: every date."""
        retention, now = self._sink._retention, self._sink._clock()
        if retention is None or now is None:
            return None
        return _date_of((now - retention[0] // timedelta(microseconds=1)) // HOUR_MICROS)

    def _expire(self) -> None:
        """Dates that ended ``retention`` or longer ago: deleted, then vacuumed."""
        before = self._cutoff()
        if before is None or self._sink._retention is None:
            return
        on_removed = self._sink._retention[1]
        if self._expired_before is not None and before <= self._expired_before:
            return
        table = self._table()
        dates = sorted({p[DATE] for p in table.partitions() if (p[DATE] or "") < before})
        if dates:
            files = pa.table(table.get_add_actions(flatten=True)).column("partition.date")
            counts = {date: files.to_pylist().count(date) for date in dates}
            try:
                table.delete(f"{DATE} < '{before}'")
            except CommitFailedError as exc:
                log.warning("%s: removing dates before %s failed (%s)", self._uri, before, exc)
                return
            hours = self._sink._settings.deleted_file_retention.total_seconds() / 3600
            self._table().vacuum(
                retention_hours=int(hours), enforce_retention_duration=False, dry_run=False
            )
            for date in dates:
                on_removed(f"{DATE}={date}", counts[date])
        self._expired_before = before

    def _compact(self, date: str) -> None:
        if not self._compacts:
            return
        try:
            with _compaction_lock(self._uri):
                metrics = self._table().optimize.compact(
                    partition_filters=[(DATE, "=", date)],
                    target_size=self._sink._settings.target_size,
                )
        except CommitFailedError as exc:
            log.warning("%s: compaction of %s failed, left for later (%s)", self._uri, date, exc)
            return
        if metrics.get("numFilesRemoved"):
            log.info(
                "%s: compacted %s: %s files into %s",
                self._uri,
                date,
                metrics["numFilesRemoved"],
                metrics["numFilesAdded"],
            )

    def close(self) -> None:
        with self._lock:
            self._commit_all()
            ended = self._sink._input_ended
            if ended is not None and not ended():
                log.info(
                    "%s: closed before the end of input: no compaction, so that a restart "
                    "can take back what was committed since its snapshot",
                    self._uri,
                )
                return
            for date in sorted(self._dates):
                self._compact(date)

    def exit(self) -> None:
        with self._lock:
            self._commit_all()

    def _commit_all(self) -> None:
        if self._lines:
            self._stage()
        self._commit_listed()
        self._listed, self._staged = self._staged, []
        self._commit_listed()
        forget(self)
