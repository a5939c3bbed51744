"""The hourly part-file sink, partition by partition, on real files: whatever the batches,
rolls, snapshots and crashes, the finished files hold every line once, each in the
folder of its hour, and a reader listing them at any moment sees whole lines, none
twice, and never loses a line it saw.

A crash is modelled as Bytewax recovers from one: the partition object is dropped
without ``close()`` (its open files as they are on disk), a new one is built from a
committed snapshot (the newest, the one before it, or the one before that: Bytewax's
resume epoch can be one too small), and every chunk written after that snapshot is
written again.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from datetime import timedelta
from functools import partial
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sinks import Cluster, HourlyPartSink, PartState, rolling
from connectors.sinks.layout import HOUR_MICROS, hour_folder, hour_of_folder
from tests.helpers.stops import stopped

# (hour, lines) chunks; each line names itself, so duplicates and losses show.
hours = st.integers(min_value=490_000, max_value=490_003)
chunk_sizes = st.integers(min_value=1, max_value=6)
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"), st.lists(st.tuples(hours, chunk_sizes), min_size=1, max_size=4)
        ),
        st.tuples(st.just("clock"), hours),
        st.tuples(st.just("snapshot"), st.just(0)),
        # Crash, then resume from the newest snapshot (0) or the one before (1): a
        # snapshot taken but not yet committed when the process died.
        st.tuples(st.just("crash"), st.integers(min_value=0, max_value=2)),
    ),
    max_size=40,
)


class Clock:
    def __init__(self) -> None:
        self.now: int | None = None

    def __call__(self) -> int | None:
        return self.now


def visible_lines(directory: Path) -> list[str]:
    lines = []
    for path in sorted(directory.glob("date=*/hour=*/*.jsonl")):
        assert not path.name.startswith(".")
        text = path.read_text()
        assert text.endswith("\n"), f"{path} ends inside a line"
        hour = hour_of_folder(path.parent)
        for line in text.splitlines():
            assert line.split(":")[0] == str(hour), f"{line} in the folder of hour {hour}"
            lines.append(line)
    return lines


@settings(max_examples=400, deadline=None)
@given(actions=actions, roll_size=st.sampled_from([40, 200, 1 << 20]))
def test_finished_files_hold_every_line_once_whatever_the_crashes(
    actions: list[tuple[str, object]], roll_size: int
) -> None:
    directory = Path(tempfile.mkdtemp(prefix="rolling-"))
    try:
        clock = Clock()
        sink = HourlyPartSink(
            directory,
            "job",
            Cluster(),
            clock=clock,
            settle=timedelta(minutes=1),
            roll_size=roll_size,
            finish_on_exit=False,
            run="rtest",
        )
        (part_name,) = sink.list_parts()
        part = sink.build_part("out", part_name, None)
        # Every chunk written, and the snapshots with how many chunks each covers.
        written: list[tuple[int, str]] = []
        snapshots: list[tuple[PartState, int]] = []
        counter = 0
        ever_seen: set[str] = set()
        for action, arg in actions:
            if action == "write":
                batch = []
                for hour, size in arg:  # type: ignore[attr-defined]
                    lines = [f"{hour}:{counter + k}" for k in range(size)]
                    counter += size
                    batch.append((hour, "\n".join(lines)))
                part.write_batch(batch)
                written += batch
            elif action == "clock":
                clock.now = arg * HOUR_MICROS  # type: ignore[operator]
            elif action == "snapshot":
                snapshots.append((part.snapshot(), len(written)))
            else:
                back = min(int(arg), len(snapshots) - 1)  # type: ignore[call-overload]
                state, covered = snapshots[-1 - back] if snapshots else (None, 0)
                # What a restart resumed from is committed: no later crash goes back further.
                snapshots = snapshots[len(snapshots) - 1 - back : len(snapshots) - back]
                part = sink.build_part("out", part_name, state)
                if back == 2:
                    # Further back than the snapshot before the newest (Bytewax's resume
                    # epoch one too small), files finished since are taken back.
                    ever_seen = set(visible_lines(directory))
                # The source replays what came after the snapshot.
                replay = written[covered:]
                written = written[:covered]
                if replay:
                    part.write_batch(replay)
                    written += replay
            seen = visible_lines(directory)
            assert len(seen) == len(set(seen)), "a line twice in the finished files"
            # A file is finished a snapshot after the one that closed it: resuming from
            # the snapshot before the newest never takes back what a reader saw.
            assert ever_seen <= set(seen), "a finished line was taken back"
            ever_seen |= set(seen)
        part.close()
        expected = [line for _, text in written for line in text.splitlines()]
        got = visible_lines(directory)
        assert sorted(got) == sorted(expected)
        assert not [p for p in directory.rglob(".*") if p.is_file()], "unfinished files left"
        if roll_size == 40 and sum(map(len, expected)) > 400:
            assert len(list(directory.rglob("*.jsonl"))) > 1, "no roll by size"
    finally:
        shutil.rmtree(directory)


def test_an_hour_is_finished_once_the_clock_is_past_it_and_its_settle_time(
    tmp_path: Path,
) -> None:
    clock = Clock()
    sink = HourlyPartSink(
        tmp_path,
        "job",
        Cluster(),
        clock=clock,
        settle=timedelta(minutes=5),
        roll_size=1 << 20,
        finish_on_exit=False,
    )
    part = sink.build_part("out", sink.list_parts()[0], None)
    hour = 490_000
    part.write_batch([(hour, f"{hour}:a"), (hour + 1, f"{hour + 1}:b")])
    clock.now = (hour + 1) * HOUR_MICROS + 4 * 60 * 1_000_000  # 4 minutes past its end
    part.write_batch([(hour, f"{hour}:c")])
    part.snapshot()
    part.snapshot()
    assert visible_lines(tmp_path) == []
    clock.now += 60 * 1_000_000  # 5 minutes past: settled, finished at the next snapshots
    part.write_batch([(hour + 1, f"{hour + 1}:d")])
    part.snapshot()
    assert visible_lines(tmp_path) == [], "finished before the snapshot that closed it is kept"
    part.snapshot()
    assert visible_lines(tmp_path) == [f"{hour}:a", f"{hour}:c"]
    assert [p.parent.relative_to(tmp_path) for p in tmp_path.rglob("*.jsonl")] == [
        Path(hour_folder(hour))
    ]
    part.close()
    assert sorted(visible_lines(tmp_path)) == [
        f"{hour}:a",
        f"{hour}:c",
        f"{hour + 1}:b",
        f"{hour + 1}:d",
    ]


def test_parts_are_this_processes_workers_and_routes_lead_to_them(tmp_path: Path) -> None:
    sink = HourlyPartSink(
        tmp_path,
        "job",
        Cluster(process=1, workers=3),
        clock=Clock(),
        settle=timedelta(0),
        roll_size=1 << 20,
        finish_on_exit=False,
    )
    assert sink.list_parts() == ["001-000", "001-001", "001-002"]
    # Bytewax picks a partition by indexing the sorted parts of every process (0's first).
    everyone = sorted(["000-000", "000-001", "000-002", *sink.list_parts()])
    assert [everyone[sink.part_fn(key)] for key in sink.route_keys()] == sink.list_parts()


def test_a_stop_at_any_line_of_a_write_leaves_every_file_it_made_finished_on_exit(
    tmp_path: Path,
) -> None:
    for count in itertools.count(1):
        out = tmp_path / str(count)
        clock = Clock()
        sink = HourlyPartSink(
            out,
            "job",
            Cluster(),
            clock=clock,
            settle=timedelta(0),
            roll_size=30,
            finish_on_exit=True,
        )
        part = sink.build_part("out", sink.list_parts()[0], None)
        hour = 490_000
        part.write_batch([(hour, f"{hour}:first")])
        clock.now = (hour + 1) * HOUR_MICROS  # the next batch closes the first hour
        # Two hours, a roll past 30 bytes, and the settled hour closed.
        batch = [(hour + 1, f"{hour + 1}:{n:020}") for n in range(3)]
        batch.append((hour + 2, f"{hour + 2}:last"))
        if not stopped(rolling.__file__, count, partial(part.write_batch, batch)):
            break  # the write ran to its end before the count: every line was tried
        part.exit()  # what the exit hook does
        assert not [p for p in out.rglob(".*") if p.is_file()], f"stopped at line {count}"
        lines = visible_lines(out)
        assert lines[0] == f"{hour}:first" and len(lines) == len(set(lines))
    assert count > 20  # the write's lines were all tried, not a handful
