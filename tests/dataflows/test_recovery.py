"""Crash recovery: SIGKILL a job at each point, restart it, and get the same records.

The kill points: early (before the first snapshot is committed, so the restart starts
over), mid-window (after a snapshot, while the newest event sent sits in the middle of a
window), just after a snapshot is committed, just after a part file was finished
(renamed into sight) or a Delta commit, and, for Delta, while the settled 23:00 hour's
date is being compacted (its first compacted file written, its commit not yet or just
made). Each restart must send the ``Last-Event-ID`` that the recovery
store holds for the stream (none before the first snapshot), and the finished part
files must hold what an uninterrupted run's hold: the same lines, none doubled, none
missing, none left unfinished. The stream spans midnight, files roll every 2 KiB, and
hours close while the job runs, so kills fall among rolls and renames. The streams are
each vendor's in turn: flat JSON, DT's envelope (every event type, samples, backfilled
events) and Obelisk's metric events.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from connectors.simulator import Faults, SensorSimulator, SequenceSpec, SimulatorConfig
from connectors.simulator.sequence import is_backfilled
from dataflows.recovery_store import partitions, resume_epoch
from tests.helpers.oracle import (
    ROOT,
    assert_same_aggregates,
    bytewax_run_cmd,
    delta_records,
    expected_aggregates,
    finished_parts,
    job_env,
    load_aggregates,
    read_lines,
    read_records,
    run_job,
    sent_readings,
)
from tests.helpers.processes import alive, reader_pids
from tests.helpers.servers import StartSim, free_port
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.slow

EVENTS = 2400
WINDOW_MS = 10_000
WINDOW = {
    "WINDOW": "10s",
    "LATENESS": "200ms",
    "FEATURE_WINDOW": "20s",
    "FEATURE_STEP": "10s",
    "OUTPUT_ROLL_SIZE": "2KiB",
}
# Each job, and the kind of record that must come out the same (dead letters too).
JOBS = {"sensor_stats": "aggregates", "features": "features", "alerts": "alerts"}
# The job killed at each point alone; every job is killed at each point in turn.
KILLED_ALONE = ["sensor_stats"]
# Each kind's time, whose hour names the folder a record is in.
TIME_FIELDS = {"aggregates": "window_start", "features": "window_start", "alerts": "ts"}
# Rules that the simulated readings cross every few readings, so that an alert's state
# (streaks, episodes, each sensor's last reading) is held at every kill point.
ALERT_RULES = """
[temperature]
high = 21.0
low = 20.0
raise_after = 2
clear_after = 2
rate_limit = 0.05
rate_span = "5s"

[co2]
high = 600.0
raise_after = 2
clear_after = 2
"""
KILL_POINTS = ["early", "mid-window", "after-snapshot", "after-finish"]
FORMATS = ["jsonl", "delta"]
# The streams' formats: each vendor's at some kill points of each output format.
VENDORS: dict[str, dict[str, Any]] = {
    "flat": {},
    # Every DT event type (non-readings, states, pings), 3 samples a temperature event,
    # every 7th of those backfilled (a dead letter).
    "dt": {"format": "dt", "dt_events": "every", "samples": 3, "backfill_every": 7},
    "obelisk": {"format": "obelisk"},
}


def _vendor(n: int) -> str:
    """The vendors in turn."""
    return list(VENDORS)[n % len(VENDORS)]


# Compaction is Delta's alone; the JSON Lines parts have no such step. Two points are
# tried again with each stream read in a process of its own (SSE_READER=process).
POINTS = [
    (point, fmt, _vendor(n), "thread")
    for n, (point, fmt) in enumerate(
        [(point, fmt) for fmt in FORMATS for point in KILL_POINTS] + [("compaction", "delta")]
    )
] + [("mid-window", "jsonl", "dt", "process"), ("after-finish", "delta", "obelisk", "process")]
# 2 events a second of event time from 23:50 UTC: 20 minutes across midnight, the
# stream's 23:00 hour closing in the job at 00:01:40 (window, lateness, idle rule, margin).
START_MS = 1_764_546_600_000  # 2025-11-30T23:50:00Z
EVENT_RATE = 2.0


def _settings(fmt: str) -> dict[str, str]:
    """The jobs' settings in every recovery test: fast reconnects, short windows."""
    return {"SSE_RETRY_INITIAL": "10ms", "SSE_RETRY_MAX": "50ms", "OUTPUT_FORMAT": fmt} | WINDOW


def _recovery_args(directory: Path, backup: str = "0") -> list[str]:
    return ["-r", str(directory), "-s", "1", "-b", backup]


def _init_recovery(directory: Path, partitions: int = 1) -> None:
    directory.mkdir()
    subprocess.run(
        [sys.executable, "-m", "bytewax.recovery", str(directory), str(partitions)],
        check=True,
        cwd=ROOT,
        env=job_env(),
        timeout=60,
    )


class RecoveryStore:
    """Reads Bytewax's recovery partition (SQLite) while the job writes it."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._path = directory / "part-0.sqlite3"

    def _query(self, sql: str, path: Path | None = None) -> list[tuple[object, ...]]:
        uri = f"file:{path or self._path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            return db.execute(sql).fetchall()

    def commit_epoch(self) -> int | None:
        """The epoch the next run resumes after, once a snapshot is committed."""
        rows = self._query("SELECT commit_epoch FROM commits")
        return int(rows[0][0]) if rows else None  # type: ignore[call-overload]

    def commit_epochs(self) -> list[int]:
        """Each partition's committed epoch (none yet: not listed)."""
        rows = [
            row
            for path in partitions(self._directory)
            for row in self._query("SELECT commit_epoch FROM commits", path)
        ]
        return [int(epoch) for (epoch,) in rows]  # type: ignore[call-overload]

    def resume_id(self, step_id: str) -> str | None:
        """The source's resume state a restart gets, once the run is dead: its newest
        snapshot before the epoch Bytewax resumes from. That epoch comes from the
        workers' frontiers (Bytewax's own query, ``resume_epoch``), which a kill can
        leave one ahead of the commits table."""
        epoch = resume_epoch(self._directory)
        if epoch is None:
            return None
        rows = self._query(
            f"SELECT ser_change FROM snaps WHERE step_id = '{step_id}' "
            f"AND snap_epoch < {epoch} ORDER BY snap_epoch DESC LIMIT 1"
        )
        if not rows or rows[0][0] is None:
            return None
        # The parsed source's: the SSE source's own (the last event id) and the time.
        state = pickle.loads(rows[0][0])["source"]  # type: ignore[arg-type]
        # A snapshot before the first event holds no id (""): no Last-Event-ID is sent.
        return None if state is None or state == "" else str(state)


def _on_disk(written: Path) -> list[str]:
    """Every line in the part files of a kind, finished or not, while the job writes
    them (a file renamed between the listing and the read is listed again)."""
    while True:
        try:
            paths = sorted(written.glob("date=*/hour=*/*"))
            return [line for path in paths for line in read_lines(path)]
        except FileNotFoundError:
            continue


def _written(written: Path) -> int:
    """How much of a kind is on disk: lines (JSON Lines), or staged Parquet files."""
    return len(_on_disk(written)) + len(list(written.glob("date=*/*.parquet")))


def _finished(written: Path) -> int:
    """How much of a kind a reader sees: finished files, or the Delta table's version."""
    if (written / "_delta_log").is_dir():
        return DeltaTable(str(written)).version()
    return len(finished_parts(written.parent, written.name))


def _records(out: Path, kind: str) -> list[str]:
    if (out / kind / "_delta_log").is_dir():
        return delta_records(out, kind)
    return read_records(out, kind)


def _compacted(written: Path) -> set[Path]:
    """The files delta-rs's compaction wrote (its names, unlike the sink's own)."""
    return set(written.glob("date=*/part-[0-9][0-9][0-9][0-9][0-9]-*-c000.*.parquet"))


def _kill_when(
    point: str, sim: SensorSimulator, store: RecoveryStore, written: Path, step: str
) -> None:
    """Wait for the kill point; return at it. ``step``: the job's source."""
    if point == "early":
        wait_for(lambda: len(sim.sent_ids) >= 100, "the first events")
        assert store.commit_epoch() is None, "too late for an early kill"
        return
    wait_for(lambda: _written(written) > 0, "the first output")
    # A snapshot that holds a place in the stream (the stream was held over the first).
    wait_for(lambda: store.resume_id(step) is not None, "a snapshot of the stream")
    if point == "after-snapshot":
        committed = store.commit_epoch()
        wait_for(lambda: store.commit_epoch() != committed, "the next snapshot")
        return
    if point == "compaction":
        before = _compacted(written)
        wait_for(lambda: bool(_compacted(written) - before), "a compaction")
        return
    if point == "after-finish":  # a file renamed into sight, or a Delta commit
        finished = _finished(written)
        wait_for(lambda: _finished(written) > finished, "a finished file or a commit")
        return
    # Mid-window: the newest event sent lies in the middle third of its window.
    spec = sim.config.sequence

    def mid_window() -> bool:
        sent = sim.sent_ids
        if not sent:
            return False
        ts = spec.start_ms + int(sent[-1] * 1000 / spec.rate)
        return WINDOW_MS // 3 <= ts % WINDOW_MS < 2 * WINDOW_MS // 3

    time.sleep(0.3)
    wait_for(mid_window, "the middle of a window")


# The last events of a stream killed once, held back until the kill: a job that falls
# behind its stream (a busy machine) still finds it going on.
RESERVE = 200


def _go_on(sim: SensorSimulator) -> None:
    """A held stream goes on, up to its reserve (the hold moves on to it)."""
    sim.hold(at=EVENTS - RESERVE)


def _run_until_killed(
    point: str,
    module: str,
    sim: SensorSimulator,
    state: Path,
    written: Path,
    settings: dict[str, str],
    reserve: bool = False,
) -> int:
    """Start the job with recovery, SIGKILL it at ``point``; return its exit status.
    ``reserve``: hold the stream's last events back until then (a single kill: one of
    several in turn may need them)."""
    first_request = len(sim.requests)
    store = RecoveryStore(state)
    committed = store.commit_epoch()
    if point == "early" and reserve:
        sim.hold(at=EVENTS - RESERVE)
    elif point != "early":
        sim.hold()  # until the job is up: however long it takes, the whole stream is to come
    log = state.parent / f"killed-{first_request}.log"
    proc = subprocess.Popen(
        bytewax_run_cmd(module, *_recovery_args(state)),
        env=job_env(SSE_URL=sim.url, OUTPUT=str(written.parent), **settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        wait_for(lambda: len(sim.requests) > first_request, "the subscription")
        if point != "early":
            wait_for(lambda: store.commit_epoch() != committed, "a snapshot of this run")
            if reserve:
                _go_on(sim)
            else:
                sim.release()
        _kill_when(point, sim, store, written, f"{module.rsplit('.', 1)[1]}.sse")
    finally:
        proc.kill()
        proc.wait(timeout=20)
        sim.release()  # for the restart
    # A reader process (SSE_READER=process) does not outlive its job.
    readers = reader_pids(log.read_text())
    assert len(readers) == (settings.get("SSE_READER") == "process")
    for pid in readers:
        wait_for(lambda pid=pid: not alive(pid), "the killed job's reader process to end")
    return proc.returncode


def _same_lines(got: list[str], expected: list[str], name: str) -> None:
    assert len(got) == len(set(got)), f"duplicate lines in {name}"
    assert sorted(got) == sorted(expected), name


def _paced(seed: int, vendor: str = "flat") -> SimulatorConfig:
    # Served at 600 events/s, the stream lasts 4 s: time to kill it at each point.
    return SimulatorConfig(
        sequence=SequenceSpec(
            sensors=8, rate=EVENT_RATE, seed=seed, start_ms=START_MS, **VENDORS[vendor]
        ),
        faults=Faults(end_after=EVENTS, malformed_every=150),
        events_per_write=4,
        pace_rate=600,
    )


def _with_uninterrupted_run(
    simulator: StartSim,
    configs: list[SimulatorConfig],
    module: str,
    whole: Path,
    settings: dict[str, str],
) -> tuple[list[SensorSimulator], list[SensorSimulator]]:
    """A simulator for each config, and the same streams unpaced, read by one
    uninterrupted single-worker run into ``whole``: (the streams, their references)."""
    sims = [simulator(config) for config in configs]
    references = [simulator(replace(config, pace=False)) for config in configs]
    urls = ",".join(sim.url for sim in references)
    run = run_job(module, SSE_URL=urls, OUTPUT=str(whole), **settings)
    assert run.returncode == 0, run.stderr
    return sims, references


def _letters_as_read(
    whole: Path, references: list[SensorSimulator], sims: list[SensorSimulator]
) -> list[str]:
    """The uninterrupted run's dead letters, each naming the stream the recovered run read."""
    letters = _records(whole, "dead_letters")
    for reference, sim in zip(references, sims, strict=True):
        letters = [line.replace(reference.url, sim.url) for line in letters]
    return letters


def _assert_same_records(
    recovered: Path, whole: Path, kind: str, reference: SensorSimulator, sim: SensorSimulator
) -> None:
    """The recovered run's finished records equal the uninterrupted run's, each in the
    folder of its own hour (or date), and nothing is left unfinished."""
    assert not [p for p in recovered.rglob(".*") if p.is_file()], "unfinished part files"
    assert len(_records(whole, kind)) > 20, f"too few {kind} to show anything"
    _same_lines(_records(recovered, kind), _records(whole, kind), kind)
    uninterrupted_letters = _letters_as_read(whole, [reference], [sim])
    _same_lines(_records(recovered, "dead_letters"), uninterrupted_letters, "dead letters")
    # The simulator's malformed events, and DT's backfilled ones.
    spec, faults = sim.config.sequence, sim.config.faults
    letters = [n for n in range(EVENTS) if faults.malformed(n) or is_backfilled(spec, n)]
    assert len(uninterrupted_letters) == len(letters) >= EVENTS // 150
    time_field = TIME_FIELDS[kind]
    if (recovered / kind / "_delta_log").is_dir():
        table = DeltaTable(str(recovered / kind)).to_pandas()
        assert set(table.date) == {"2025-11-30", "2025-12-01"}
        assert (table[time_field].dt.strftime("%Y-%m-%d") == table.date).all()
        return
    folders = {p.parent.relative_to(recovered / kind) for p in finished_parts(recovered, kind)}
    assert folders == {Path("date=2025-11-30/hour=23"), Path("date=2025-12-01/hour=00")}
    for path in finished_parts(recovered, kind):
        starts = {json.loads(line)[time_field][:13] for line in read_lines(path)}
        folder = path.parent
        assert starts == {f"{folder.parent.name[5:]}T{folder.name[5:]}"}, path


@pytest.mark.parametrize(("point", "fmt", "vendor", "reader"), POINTS)
@pytest.mark.parametrize("job", KILLED_ALONE)
def test_a_killed_job_restarted_with_recovery_writes_what_an_uninterrupted_run_does(
    simulator: StartSim, tmp_path: Path, job: str, point: str, fmt: str, vendor: str, reader: str
) -> None:
    module = f"dataflows.{job}"
    kind = JOBS[job]
    paced = _paced(seed=[p for p, *_ in POINTS].index(point) + 1, vendor=vendor)
    settings = _settings(fmt) | {"SSE_READER": reader}
    # The uninterrupted run reads the same events unpaced; its dead letters name its URL.
    whole = tmp_path / "uninterrupted"
    (sim,), (reference,) = _with_uninterrupted_run(simulator, [paced], module, whole, settings)

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state)
    store = RecoveryStore(state)
    killed = _run_until_killed(point, module, sim, state, recovered / kind, settings, True)
    assert killed == -9
    assert len(sim.sent_ids) < EVENTS, "the stream ended before the kill"
    if point != "early":  # killed mid-stream with output on disk: some windows, not all
        assert _written(recovered / kind) > 0
        assert len(_records(recovered, kind)) < len(_records(whole, kind))
    expected_resume = store.resume_id(f"{job}.sse")
    if point == "early":
        assert expected_resume is None
    else:
        assert expected_resume is not None and 0 < int(expected_resume) < EVENTS

    requests_before_restart = len(sim.requests)
    restart = run_job(
        module, *_recovery_args(state), SSE_URL=sim.url, OUTPUT=str(recovered), **settings
    )
    assert restart.returncode == 0, restart.stderr
    resumed_from = sim.requests[requests_before_restart].headers.get("Last-Event-ID")
    assert resumed_from == expected_resume

    _assert_same_records(recovered, whole, kind, reference, sim)
    if kind == "aggregates":
        expected, _ = expected_aggregates([sent_readings(sim, EVENTS)], WINDOW_MS, 200)
        assert_same_aggregates(load_aggregates(_records(recovered, kind)), expected)


# Each job in each format, on a stream of each vendor in turn.
IN_TURN = [
    (job, fmt, _vendor(n))
    for n, (job, fmt) in enumerate((job, fmt) for job in JOBS for fmt in FORMATS)
]


@pytest.mark.parametrize(("job", "fmt", "vendor"), IN_TURN)
def test_one_run_killed_at_each_point_in_turn_still_writes_the_same(
    simulator: StartSim, tmp_path: Path, job: str, fmt: str, vendor: str
) -> None:
    """Early, mid-window, just after a snapshot, just after a file was finished (a
    Delta commit), then for Delta during a compaction, all on the same recovery state;
    each restart resumes from the snapshot the previous run committed."""
    module = f"dataflows.{job}"
    kind = JOBS[job]
    paced = _paced(seed=7, vendor=vendor)
    settings = _settings(fmt)
    rules = tmp_path / "rules.toml"
    rules.write_text(ALERT_RULES)
    settings["ALERT_RULES"] = str(rules)
    whole = tmp_path / "uninterrupted"
    (sim,), (reference,) = _with_uninterrupted_run(simulator, [paced], module, whole, settings)

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state)
    store = RecoveryStore(state)
    resumed: list[tuple[str | None, str | None]] = []
    for point in [p for p, f, _, reader in POINTS if f == fmt and reader == "thread"]:
        expected_resume = store.resume_id(f"{job}.sse")
        first_request = len(sim.requests)
        code = _run_until_killed(point, module, sim, state, recovered / kind, settings)
        assert code == -9, f"the run ended before its {point} kill"
        got = sim.requests[first_request].headers.get("Last-Event-ID")
        resumed.append((got, expected_resume))
    # The last restart runs to the end.
    expected_resume = store.resume_id(f"{job}.sse")
    first_request = len(sim.requests)
    restart = run_job(
        module, *_recovery_args(state), SSE_URL=sim.url, OUTPUT=str(recovered), **settings
    )
    assert restart.returncode == 0, restart.stderr
    resumed.append((sim.requests[first_request].headers.get("Last-Event-ID"), expected_resume))
    assert all(got == expected for got, expected in resumed), resumed
    assert resumed[0] == (None, None) and resumed[-1][0] is not None
    _assert_same_records(recovered, whole, kind, reference, sim)


# A cluster: (processes (-i/-a), workers in each (-w)).
CLUSTERS = {
    "one worker": (1, 1),
    "two workers": (1, 2),
    "two processes": (2, 1),
    "two processes of two workers": (2, 2),
    # Two streams for three processes: one reads none.
    "three processes": (3, 1),
}
# (job, cluster, format, lost): every cluster for sensor_stats, the two-process one in
# both formats; the features job (its sliding windows) on the largest. Lost: the second
# process is killed, and its peers stop or are killed after; or every process at once,
# as when the machine they share goes.
CLUSTER_CASES = [
    ("sensor_stats", "two processes", "jsonl", "one"),
    ("sensor_stats", "two processes", "delta", "one"),
    ("sensor_stats", "two workers", "delta", "one"),
    ("sensor_stats", "two processes of two workers", "delta", "one"),
    ("features", "two processes of two workers", "jsonl", "one"),
    ("sensor_stats", "three processes", "delta", "one"),
    ("sensor_stats", "two processes of two workers", "jsonl", "all"),
]


def _start_cluster(
    cluster: str,
    module: str,
    urls: str,
    state: Path,
    out: Path,
    settings: dict[str, str],
    backup: str = "0",
) -> list[subprocess.Popen[bytes]]:
    env = job_env(SSE_URL=urls, OUTPUT=str(out), **settings)
    recovery = _recovery_args(state, backup)
    processes, workers = CLUSTERS[cluster]
    threads = ["-w", str(workers)]
    if processes == 1:
        commands = [bytewax_run_cmd(module, *recovery, *threads)]
    else:
        addresses = ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))
        commands = [
            bytewax_run_cmd(module, *recovery, *threads, "-i", str(i), "-a", addresses)
            for i in range(processes)
        ]
    return [
        subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for command in commands
    ]


def _kill_all(procs: list[subprocess.Popen[bytes]], sims: list[SensorSimulator]) -> None:
    """Every process of the cluster killed; then the held streams let go, for the restart."""
    for proc in procs:
        proc.kill()
        proc.wait(timeout=20)
    for sim in sims:
        sim.release()


def _restart_cluster(
    cluster: str,
    module: str,
    urls: str,
    state: Path,
    out: Path,
    settings: dict[str, str],
    backup: str = "0",
) -> list[str]:
    """The cluster started again and run to its end; each process's log."""
    restarted = _start_cluster(cluster, module, urls, state, out, settings, backup)
    errors = [proc.communicate(timeout=180)[1].decode() for proc in restarted]
    # The end of each process's log: where the first failure is named.
    assert [proc.returncode for proc in restarted] == [0] * len(restarted), [
        error[-3000:] for error in errors
    ]
    return errors


@pytest.mark.parametrize(("job", "cluster", "fmt", "lost"), CLUSTER_CASES)
def test_a_cluster_that_loses_a_process_restarts_to_what_one_uninterrupted_process_writes(
    simulator: StartSim, tmp_path: Path, job: str, cluster: str, fmt: str, lost: str
) -> None:
    """Two streams read by a cluster with a recovery store of two partitions. A process
    is killed after a file was finished (a Delta commit), as when a machine goes; its
    peers stop on their own or are killed (or all are killed at once). The restarted
    cluster must write what one uninterrupted single-worker process writes."""
    module, kind = f"dataflows.{job}", JOBS[job]
    # Two vendors' streams, another pair in each case (the format is told per event).
    case = CLUSTER_CASES.index((job, cluster, fmt, lost))
    paced = [
        replace(config, sequence=replace(config.sequence, sensor_offset=s * 8))
        for s, config in enumerate(_paced(seed=21 + s, vendor=_vendor(case + s)) for s in range(2))
    ]
    settings = _settings(fmt)
    whole = tmp_path / "uninterrupted"
    sims, references = _with_uninterrupted_run(simulator, paced, module, whole, settings)

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state, partitions=2)
    urls = ",".join(sim.url for sim in sims)
    for sim in sims:
        sim.hold()  # until the cluster is up
    procs = _start_cluster(cluster, module, urls, state, recovered, settings)
    written = recovered / kind
    try:
        wait_for(lambda: all(sim.requests for sim in sims), "both subscriptions", timeout=120)
        store = RecoveryStore(state)
        wait_for(lambda: len(store.commit_epochs()) == 2, "a snapshot in each partition")
        for sim in sims:
            _go_on(sim)
        # Then a snapshot in each partition that holds both streams' places.
        wait_for(lambda: all(len(sim.sent_ids) >= 50 for sim in sims), "both streams' events")
        held = store.commit_epochs()
        wait_for(
            lambda: all(a > b for a, b in zip(store.commit_epochs(), held, strict=True)),
            "a snapshot of both streams",
        )
        finished = _finished(written)
        wait_for(lambda: _finished(written) > finished, "a finished file or a commit")
        # The second process (or the only one: two workers in it).
        victims = procs if lost == "all" else [procs[min(1, len(procs) - 1)]]
        for proc in victims:
            proc.kill()
        for proc in victims:
            proc.wait(timeout=20)
        # A peer that lost its cluster stops by itself; one that does not is killed.
        for proc in (proc for proc in procs if proc not in victims):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
    finally:
        _kill_all(procs, sims)
    assert all(len(sim.sent_ids) < EVENTS for sim in sims), "a stream ended before the kill"
    assert 0 < len(_records(recovered, kind)) < len(_records(whole, kind))

    requests_before = [len(sim.requests) for sim in sims]
    _restart_cluster(cluster, module, urls, state, recovered, settings)
    for sim, before in zip(sims, requests_before, strict=True):
        assert sim.requests[before].headers.get("Last-Event-ID") is not None

    _same_lines(_records(recovered, kind), _records(whole, kind), kind)
    letters = _letters_as_read(whole, references, sims)
    _same_lines(_records(recovered, "dead_letters"), letters, "dead letters")
    if kind == "aggregates":
        streams = [sent_readings(sim, EVENTS) for sim in sims]
        expected, _ = expected_aggregates(streams, WINDOW_MS, 200)
        assert_same_aggregates(load_aggregates(_records(recovered, kind)), expected)


def _optimized(table: Path) -> bool:
    """Whether a compaction has replaced files in the table."""
    if not (table / "_delta_log").is_dir():
        return False
    return any(
        entry.get("operation") == "OPTIMIZE"
        and int(entry.get("operationMetrics", {}).get("numFilesRemoved", 0)) > 0
        for entry in DeltaTable(str(table)).history()
    )


def _frontiers_back_one_epoch(state: Path) -> None:
    """The store as Bytewax leaves it when its frontier is one too small: every worker's
    frontier of the newest execution one epoch back."""
    for path in partitions(state):
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(
                "UPDATE fronts SET worker_frontier = worker_frontier - 1 "
                "WHERE ex_num = (SELECT max(ex_num) FROM exs)"
            )


@pytest.mark.parametrize("cluster", ["one worker", "two workers", "two processes"])
def test_a_restart_from_before_a_compaction_of_a_live_date_takes_its_merged_files_back(
    simulator: StartSim, tmp_path: Path, cluster: str
) -> None:
    """The hourly compaction merges a date's newest files while the date still gets
    rows (22:00 settles while 23:00 is written). Killed just after such a compaction, and
    restarted from the snapshot before the last (as Bytewax's frontier can be), the
    writers find files committed after their snapshot merged into the compaction's file:
    taking them back undoes the compaction, so the replay's rows are in the table once.
    With two writers, each of whose files the compaction merged, it is undone once."""
    streams = 1 if cluster == "one worker" else 2
    start = START_MS - 3_600_000  # 22:50, twenty minutes: the 22:00 hour settles at 23:01:40
    configs = [
        replace(config, sequence=replace(config.sequence, start_ms=start, sensor_offset=8 * s))
        for s, config in enumerate(_paced(seed=31 + s) for s in range(streams))
    ]
    settings = _settings("delta")
    module, kind = "dataflows.sensor_stats", "aggregates"
    whole = tmp_path / "uninterrupted"
    sims, references = _with_uninterrupted_run(simulator, configs, module, whole, settings)

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state, partitions=streams)
    urls = ",".join(s.url for s in sims)
    # Snapshots kept for ten minutes (-b), so that the one before the last is there.
    for sim in sims:
        sim.hold()  # until the cluster is up
    procs = _start_cluster(cluster, module, urls, state, recovered, settings, backup="600")
    try:
        wait_for(lambda: all(sim.requests for sim in sims), "the subscriptions", timeout=120)
        # An epoch done (with -b, the commits table waits for the backup interval).
        wait_for(lambda: (resume_epoch(state) or 0) > 1, "a snapshot")
        for sim in sims:
            _go_on(sim)
        wait_for(lambda: _optimized(recovered / kind), "a compaction", timeout=120)
    finally:
        _kill_all(procs, sims)
    assert all(len(sim.sent_ids) < EVENTS for sim in sims), "a stream ended before the kill"
    epoch = resume_epoch(state)
    assert epoch is not None and epoch > 1
    _frontiers_back_one_epoch(state)
    assert resume_epoch(state) == epoch - 1

    errors = _restart_cluster(cluster, module, urls, state, recovered, settings, backup="600")
    letters = _letters_as_read(whole, references, sims)
    _same_lines(_records(recovered, "dead_letters"), letters, "dead letters")
    _same_lines(_records(recovered, kind), _records(whole, kind), kind)
    expected, _ = expected_aggregates([sent_readings(s, EVENTS) for s in sims], WINDOW_MS, 200)
    assert_same_aggregates(load_aggregates(_records(recovered, kind)), expected)
    undone = [error.count("undoing the compaction of version") for error in errors]
    assert sum(undone) >= 1, "no merged file taken back"


def test_a_resumed_stream_goes_on_from_the_time_it_had_where_it_resumes(
    simulator: StartSim, tmp_path: Path
) -> None:
    """A run reads the stream's first 149 events and ends; the next, on the same store,
    resumes after them, and its first event is a dead letter (event 149 is cut JSON).
    The letter carries the stream's time after event 148, as in one run of it all, and
    goes to that hour's folder: the source's snapshot holds the time beside the id. (The
    first run's end closed its windows, so only the letters are the same as one run's.)"""
    events, first = 600, 149
    sequence = SequenceSpec(sensors=8, rate=EVENT_RATE, seed=41, start_ms=START_MS)

    def config(end: int, port: int = 0) -> SimulatorConfig:
        faults = Faults(end_after=end, malformed_every=150)
        return SimulatorConfig(sequence=sequence, faults=faults, pace=False, port=port)

    module, settings = "dataflows.sensor_stats", _settings("jsonl")
    reference = simulator(config(events))
    whole = tmp_path / "uninterrupted"
    run = run_job(module, SSE_URL=reference.url, OUTPUT=str(whole), **settings)
    assert run.returncode == 0, run.stderr

    recovered, state = tmp_path / "recovered", tmp_path / "state"
    _init_recovery(state)
    opening = simulator(config(first))
    url = opening.url
    run = run_job(module, *_recovery_args(state), SSE_URL=url, OUTPUT=str(recovered), **settings)
    assert run.returncode == 0, run.stderr
    opening.stop()
    rest = simulator(config(events, port=opening.port))
    run = run_job(module, *_recovery_args(state), SSE_URL=url, OUTPUT=str(recovered), **settings)
    assert run.returncode == 0, run.stderr
    assert rest.requests[0].headers.get("Last-Event-ID") == str(first - 1)

    letters = _letters_as_read(whole, [reference], [rest])
    resumed = [json.loads(line) for line in letters if json.loads(line)["event_id"] == str(first)]
    assert len(resumed) == 1 and resumed[0]["stream_time"] is not None
    _same_lines(_records(recovered, "dead_letters"), letters, "dead letters")
    folders = {p.parent.relative_to(recovered) for p in finished_parts(recovered, "dead_letters")}
    assert folders <= {
        Path("dead_letters/date=2025-11-30/hour=23"),
        Path("dead_letters/date=2025-12-01/hour=00"),
    }
