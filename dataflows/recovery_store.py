"""Before a run with recovery: remove the snapshots a killed run wrote at or past the
epoch this run resumes from.

Bytewax 0.21.1 resumes from the first epoch its workers had not all finished, and loads
for each step and key the newest snapshot *before* that epoch, whichever run wrote it
(``SerializedSnapshotLoader``: ``WHERE snap_epoch < resume_epoch``). A step snapshots a
key (or a sink partition) only in the epochs it was given items for it. So a snapshot
that a killed run wrote at its last, unfinished epoch stays in the store, and once the
next run gets past that epoch without touching that key, the run after it loads the dead
run's state: a sink partition then names files the runs since have written again, and a
window counts the readings that are replayed to it twice. Nothing before the resume
epoch is touched: that is the state this run starts from.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from contextlib import closing
from pathlib import Path

__all__ = ["forget_snapshots_past_resume", "history_name", "partitions", "resume_epoch"]

log = logging.getLogger(__name__)


def partitions(directory: Path) -> list[Path]:
    """The recovery store's partition files (``bytewax.recovery`` makes them)."""
    return sorted(directory.glob("part-*.sqlite3"))


def resume_epoch(directory: Path) -> int | None:
    """The epoch Bytewax resumes from, as its own query computes it over every
    partition: the smallest worker frontier of the newest execution (a worker that wrote
    none is at that execution's resume epoch). None: no execution yet."""
    executions: list[tuple[int, int, int]] = []
    fronts: list[tuple[int, int, int]] = []
    for path in partitions(directory):
        with closing(sqlite3.connect(path)) as db:
            executions += db.execute("SELECT ex_num, worker_count, resume_epoch FROM exs")
            fronts += db.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts")
    if not executions:
        return None
    newest, workers, resumed_at = max(executions)
    progress = dict.fromkeys(range(workers), resumed_at)
    for execution, worker, frontier in fronts:
        if execution == newest:
            progress[worker] = max(progress.get(worker, frontier), frontier)
    return min(progress.values())


def forget_snapshots_past_resume(directory: Path) -> int:
    """Remove every snapshot at or after the resume epoch; returns how many there were."""
    epoch = resume_epoch(directory)
    if epoch is None:
        return 0
    removed = 0
    for path in partitions(directory):
        with closing(sqlite3.connect(path)) as db, db:
            removed += db.execute("DELETE FROM snaps WHERE snap_epoch >= ?", (epoch,)).rowcount
    if removed:
        log.info(
            "recovery: removed %d snapshots a killed run wrote at or after epoch %d, "
            "where this run resumes",
            removed,
            epoch,
        )
    return removed


def history_name(directory: Path) -> str:
    """A name for the part files of the store's history: the same in every attempt on
    the store, another for a store made anew at the same path. It is kept in a table of
    the first partition, made by the first attempt (the first process of a cluster to
    get there). Not from the file's metadata: its change time moves whenever SQLite
    writes the file, a checkpoint of a killed run's log included, and an inode number
    comes back for a store made again."""
    first = partitions(directory)
    if not first:
        return f"r{secrets.token_hex(4)}"  # bytewax.run refuses such a directory itself
    with closing(sqlite3.connect(first[0], timeout=30, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("CREATE TABLE IF NOT EXISTS sensorwax_history (name TEXT NOT NULL)")
        db.execute(
            "INSERT INTO sensorwax_history SELECT ? "
            "WHERE NOT EXISTS (SELECT 1 FROM sensorwax_history)",
            (f"r{secrets.token_hex(4)}",),
        )
        ((name,),) = db.execute("SELECT name FROM sensorwax_history").fetchall()
        db.execute("COMMIT")
    return str(name)
