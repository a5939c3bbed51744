"""JSON Lines part files by hour of event time, rolled and finished exactly once.

``HourlyPartSink`` is a Bytewax ``FixedPartitionedSink``: each of its partitions is one
worker's writer, with one open file per hour of event time that has records on their
way. A file is finished (renamed from its hidden in-progress name to its visible one)
when its hour has settled (the event clock is ``settle`` past the hour's end), when it
reaches ``roll_size`` bytes, and at the end of input.

Exactly once, with Bytewax recovery: a partition's snapshot is what files it has open
and how long each is, and which it has closed; never the records. A closed file is
renamed at the snapshot after the one that recorded it closed, so that a visible file
is almost never one that a restart from an older snapshot takes back. On resume, the
partition brings every file of its own back to what its snapshot says: files started
after it are removed, open ones truncated to their length and hidden again (a crash may
have come after a rename), closed ones finished. What the source replays then writes
every later record once more, once.

Items are ``(route, (hour, text))``: ``route`` one of ``route_keys()`` (so that records
stay in the process that made them), ``hour`` hours since the epoch (UTC), ``text``
whole lines without the last line end.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, TypedDict

from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

from connectors.sinks.exits import exit_lock, forget, remember
from connectors.sinks.layout import HOUR_MICROS, PartFile, part_files, seq_of
from connectors.sinks.retention import HourExpiry, Removed

__all__ = ["Chunk", "Cluster", "HourlyPartSink", "PartState"]

log = logging.getLogger(__name__)

Chunk = tuple[int, str]
"""Lines of one hour: (hours since the epoch, the lines joined by newlines)."""


class PartState(TypedDict):
    """A partition's snapshot: its run's name, its next file's number, its open files
    (hour -> (seq, bytes)) and the files it closed, not yet finished (hour, seq, bytes)."""

    run: str
    next: int
    open: dict[int, tuple[int, int]]
    closing: list[tuple[int, int, int]]


@dataclass(frozen=True)
class Cluster:
    """Where this process stands in a Bytewax cluster: its index and its workers (``-i``,
    ``-w``); every process of a cluster has the same number of workers."""

    process: int = 0
    workers: int = 1

    def part_names(self) -> list[str]:
        """This process's sink partitions, one a worker (``<process>-<slot>``). Only its
        own: their primaries are its own workers, so no record crosses to another
        process on its way to a file."""
        return [f"{self.process:03d}-{slot:03d}" for slot in range(self.workers)]

    def route_keys(self) -> list[str]:
        """The item keys that lead to this process's partitions, one each: parts sort
        as process * workers + slot, the index a sink's ``part_fn`` reads from the key."""
        first = self.process * self.workers
        return [str(first + slot) for slot in range(self.workers)]


def new_run() -> str:
    # Sorts by start time; the random part keeps two runs started in one second apart.
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}{secrets.token_hex(2)}"


class HourlyPartSink(FixedPartitionedSink[Chunk, PartState]):
    """Hourly part files under ``directory``, a partition per worker of the cluster,
    named ``part-<name>-<partition>-...``; ``clock`` is event time in microseconds
    (None before there is any). With ``finish_on_exit``, a process that exits without
    reaching the end of input (a stop, a fatal error) finishes its open files; leave it
    off with recovery, where a restart continues them.

    ``retention``: how long to keep records (by event time) and whom to tell of each
    hour folder removed; writer ``000-000`` removes them as its snapshots come.

    ``run`` names the files of a recovery store's history (the same in every attempt
    on that store): a partition that starts with no snapshot removes every file of its
    own with that name, which an attempt killed before its first snapshot left. None
    (without recovery): each partition's files get a name of their own.
    """

    def __init__(
        self,
        directory: Path,
        name: str,
        cluster: Cluster,
        *,
        clock: Callable[[], int | None],
        settle: timedelta,
        roll_size: int,
        finish_on_exit: bool,
        run: str | None = None,
        retention: tuple[timedelta, Removed] | None = None,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._run = run
        self._retention = retention
        self._directory = directory
        self._name = name
        self._cluster = cluster
        self._clock = clock
        self._settle = settle // timedelta(microseconds=1)
        self._roll_size = roll_size
        self._finish_on_exit = finish_on_exit

    def route_keys(self) -> list[str]:
        return self._cluster.route_keys()

    def list_parts(self) -> list[str]:
        return self._cluster.part_names()

    def part_fn(self, item_key: str) -> int:
        return int(item_key)

    def build_part(
        self, step_id: str, for_part: str, resume_state: PartState | None
    ) -> _HourlyPartition:
        if resume_state is None and self._run is not None:
            resume_state = {"run": self._run, "next": 0, "open": {}, "closing": []}
        expiry = None
        if self._retention is not None and for_part == "000-000":
            expiry = HourExpiry(self._directory, *self._retention)
        return _HourlyPartition(
            self._directory,
            f"part-{self._name}-{for_part}",
            resume_state,
            clock=self._clock,
            settle=self._settle,
            roll_size=self._roll_size,
            finish_on_exit=self._finish_on_exit,
            expiry=expiry,
        )


class _HourlyPartition(StatefulSinkPartition[Chunk, PartState]):
    def __init__(
        self,
        directory: Path,
        writer: str,
        state: PartState | None,
        *,
        clock: Callable[[], int | None],
        settle: int,
        roll_size: int,
        finish_on_exit: bool,
        expiry: HourExpiry | None = None,
    ) -> None:
        self._directory = directory
        self._expiry = expiry
        self._clock = clock
        self._settle = settle
        self._roll_size = roll_size
        self._finish_on_exit = finish_on_exit
        self._lock = exit_lock()
        self._handles: dict[int, BinaryIO] = {}
        # hour -> [seq, bytes written]
        self._open: dict[int, list[int]] = {}
        # Closed since the last snapshot, and closed as of it (finished at the next).
        self._closed: list[tuple[int, int, int]] = []
        self._closing: list[tuple[int, int, int]] = []
        self._run = new_run() if state is None else state["run"]
        self._prefix = f"{writer}-{self._run}"
        self._next = 0 if state is None else state["next"]
        if state is not None:
            self._restore(state)
        remember(self)

    def _file(self, hour: int, seq: int) -> PartFile:
        return PartFile(self._directory, self._prefix, seq, hour)

    def _restore(self, state: PartState) -> None:
        for path, _ in part_files(self._directory, self._prefix + "-"):
            seq = seq_of(path)
            if seq is not None and seq >= self._next:
                path.unlink()  # started after the snapshot: what follows writes it again
        for hour, seq, size in state["closing"]:
            part = self._file(hour, seq)
            _bring_back(part, size)
            _finish(part)
        for hour, (seq, size) in state["open"].items():
            part = self._file(hour, seq)
            _bring_back(part, size)
            self._handles[hour] = part.hidden.open("ab", buffering=0)
            self._open[hour] = [seq, size]

    def write_batch(self, values: list[Chunk]) -> None:
        with self._lock:
            handles, opened, limit = self._handles, self._open, self._roll_size
            for hour, text in values:
                data = (text + "\n").encode()
                _write_all(handles.get(hour) or self._start(hour), data)
                written = opened[hour]
                written[1] += len(data)
                if written[1] >= limit:
                    self._close(hour)
            self._close_settled()

    # _start and _close keep every file they made findable in _open or _closed at each
    # step: a stop signal raises between any two steps, and the exit hook finishes what
    # those name. A file named in both is finished once all the same.
    def _start(self, hour: int) -> BinaryIO:
        part = self._file(hour, self._next)
        self._open[hour] = [self._next, 0]
        self._next += 1
        part.hidden.parent.mkdir(parents=True, exist_ok=True)
        handle = self._handles[hour] = part.hidden.open("wb", buffering=0)
        return handle

    def _close(self, hour: int) -> None:
        seq, size = self._open[hour]
        self._closed.append((hour, seq, size))
        del self._open[hour]
        handle = self._handles.pop(hour, None)
        if handle is not None:
            handle.close()

    def _close_settled(self) -> None:
        now = self._clock()
        if now is None or not self._open:
            return
        last_settled = (now - self._settle) // HOUR_MICROS - 1
        for hour in [hour for hour in self._open if hour <= last_settled]:
            self._close(hour)

    def snapshot(self) -> PartState:
        with self._lock:
            self._close_settled()
            # Closed as of the previous snapshot, which is committed by now.
            for hour, seq, _ in self._closing:
                _finish(self._file(hour, seq))
            self._closing, self._closed = self._closed, []
            if self._expiry is not None:
                self._expiry(self._clock())
            return {
                "run": self._run,
                "next": self._next,
                "open": {hour: (seq, size) for hour, (seq, size) in self._open.items()},
                "closing": list(self._closing),
            }

    def close(self) -> None:
        with self._lock:
            self._finish_all()

    def exit(self) -> None:
        """The process is exiting before the end of input."""
        if self._finish_on_exit:
            with self._lock:
                self._finish_all()

    def _finish_all(self) -> None:
        for hour in list(self._open):
            self._close(hour)
        for hour, seq, _ in self._closing + self._closed:
            _finish(self._file(hour, seq))
        self._closing, self._closed = [], []
        forget(self)


def _write_all(handle: BinaryIO, data: bytes) -> None:
    # Unbuffered: what a batch wrote is in the file when write_batch returns, as a kill
    # would leave it, and a snapshot has nothing to flush.
    view = memoryview(data)
    while view:
        view = view[handle.write(view) or 0 :]


def _bring_back(part: PartFile, size: int) -> None:
    """A file of a snapshot as it was then: hidden, ``size`` bytes long."""
    if part.visible.exists():
        part.visible.rename(part.hidden)
    if not part.hidden.exists():
        if size:
            log.error("%s is gone: its %d bytes of records are lost", part.hidden, size)
        part.hidden.parent.mkdir(parents=True, exist_ok=True)
        part.hidden.touch()
    os.truncate(part.hidden, size)


def _finish(part: PartFile) -> None:
    """Make a closed file visible, durable first, by an atomic rename."""
    if not part.hidden.exists():
        return  # finished already (an exit hook, or the snapshot before a crash)
    if part.hidden.stat().st_size == 0:
        # Only a stop between creating a file and its first line leaves one empty; an
        # empty part would be an error to some readers and is worth nothing to any.
        part.hidden.unlink()
        return
    descriptor = os.open(part.hidden, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.rename(part.hidden, part.visible)
