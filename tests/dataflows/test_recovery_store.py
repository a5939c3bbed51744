"""A snapshot a killed run left past the resume epoch is never loaded (real Bytewax runs
on a real recovery store)."""

from __future__ import annotations

import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from dataflows.recovery_store import (
    forget_snapshots_past_resume,
    history_name,
    partitions,
    resume_epoch,
)


# Three runs: "k" twice, to the end of that part of the input; then "j" only, stopped
# as a kill stops a run (at the end of its input a run snapshots every key; killed, only
# those it was given), after it got past the killed run's epoch; then "k" again.
# An ABORT triggers once: each test makes its own input.
def _input() -> list[tuple[str, int] | TestingSource.EOF | TestingSource.ABORT]:
    return [
        ("k", 1),
        ("k", 2),
        TestingSource.EOF(),
        ("j", 1),
        ("j", 1),
        ("j", 1),
        TestingSource.ABORT(),
        ("k", 3),
    ]


STALE_SUM = 100


def _running_sums(source: TestingSource, out: list[tuple[str, int]]) -> Dataflow:
    flow = Dataflow("sums")
    readings = op.input("in", flow, source)

    def add(total: int | None, value: int) -> tuple[int, int]:
        total = (total or 0) + value
        return total, total

    op.output("out", op.stateful_map("sum", readings, add), TestingSink(out))
    return flow


def _run(source: TestingSource, store: Path) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    expected = resume_epoch(store)
    recovery = RecoveryConfig(str(store), backup_interval=timedelta(0))
    run_main(_running_sums(source, out), epoch_interval=timedelta(0), recovery_config=recovery)
    # Bytewax notes the epoch each run resumed from: the one resume_epoch computed.
    runs = [
        row for db in partitions(store) for row in _rows(db, "SELECT ex_num, resume_epoch FROM exs")
    ]
    assert max(runs)[1] == (1 if expected is None else expected)
    return out


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql).fetchall()


def _leave_a_killed_runs_snapshot(store: Path) -> None:
    """What a run killed in its first epoch leaves: "k"'s sum as of that epoch, in the
    epoch the next run resumes from, which never finished."""
    epoch = resume_epoch(store)
    assert epoch is not None
    sql = "SELECT DISTINCT step_id FROM snaps WHERE state_key = 'k'"
    (path,) = [path for path in partitions(store) if _rows(path, sql)]
    with closing(sqlite3.connect(path)) as db, db:
        (step,) = db.execute(sql).fetchone()
        db.execute(
            "INSERT INTO snaps (step_id, state_key, snap_epoch, ser_change) VALUES (?, ?, ?, ?)",
            (step, "k", epoch, pickle.dumps(STALE_SUM)),
        )


def _three_runs(tmp_path: Path, partitions: int, *, forget: bool) -> list[tuple[str, int]]:
    store = tmp_path / "store"
    store.mkdir()
    init_db_dir(store, partitions)
    source = TestingSource(_input())
    assert _run(source, store) == [("k", 1), ("k", 3)]
    _leave_a_killed_runs_snapshot(store)
    if forget:
        assert forget_snapshots_past_resume(store) == 1
    assert _run(source, store) == [("j", 1), ("j", 2), ("j", 3)]
    if forget:
        forget_snapshots_past_resume(store)
    return [(key, total) for key, total in _run(source, store) if key == "k"]


@pytest.mark.parametrize("partitions", [1, 3])
def test_bytewax_alone_loads_a_killed_runs_snapshot_once_a_run_has_passed_its_epoch(
    tmp_path: Path, partitions: int
) -> None:
    # The hazard the job removes at start: "k" goes on from the dead run's sum.
    assert _three_runs(tmp_path, partitions, forget=False) == [("k", STALE_SUM + 3)]


@pytest.mark.parametrize("partitions", [1, 3])
def test_without_the_killed_runs_snapshot_a_key_goes_on_from_its_own_last_state(
    tmp_path: Path, partitions: int
) -> None:
    assert _three_runs(tmp_path, partitions, forget=True) == [("k", 6)]


def test_a_store_no_run_has_used_has_no_resume_epoch(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 2)
    assert resume_epoch(tmp_path) is None
    assert forget_snapshots_past_resume(tmp_path) == 0


def test_the_history_name_outlives_a_killed_runs_log_and_the_clean_up(tmp_path: Path) -> None:
    """The name of the part files of a store's history must be the same for the attempt
    after a kill before the first snapshot (which removes the files of that name the
    killed one left): neither SQLite's checkpoint of the killed run's log, done by the
    clean-up, nor a whole run on the store may change it."""
    init_db_dir(tmp_path, 2)
    name = history_name(tmp_path)
    assert re.fullmatch(r"r[0-9a-f]{8}", name)
    # A process that writes the store and dies without closing it (as SIGKILL leaves it):
    # its writes are in the write-ahead log, which the next connection checkpoints.
    write = (
        "import os, sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
        'db.execute("INSERT INTO exs (ex_num, worker_count, resume_epoch) VALUES (0, 1, 1)"); '
        "db.commit(); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", write, str(partitions(tmp_path)[0])], check=True)
    assert list(tmp_path.glob("*-wal")), "the killed process left no log"
    forget_snapshots_past_resume(tmp_path)
    assert not list(tmp_path.glob("*-wal"))
    assert history_name(tmp_path) == name
    assert _run(TestingSource([("k", 1), TestingSource.EOF()]), tmp_path) == [("k", 1)]
    assert history_name(tmp_path) == name


def test_a_store_made_anew_at_the_same_path_has_a_name_of_its_own(tmp_path: Path) -> None:
    store = tmp_path / "store"
    store.mkdir()
    init_db_dir(store, 1)
    first = history_name(store)
    shutil.rmtree(store)
    store.mkdir()
    init_db_dir(store, 1)
    assert history_name(store) != first
