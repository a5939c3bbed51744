"""The Delta sink, partition by partition, on real tables: whatever the batches, snapshots
and crashes, the table holds every row once, in the partition of its date, typed, and
a reader of the table never sees a row twice or loses one it saw.

Crashes as in ``test_rolling_sink``: the partition is dropped without ``close()``, a new
one is built from a committed snapshot (the newest, or the one before it: taken, not
yet committed, or the one before that: Bytewax's resume epoch one too small), and what
came after that snapshot is written again.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sinks import Cluster, delta
from connectors.sinks.delta import DeltaSink, DeltaState
from connectors.sinks.layout import HOUR_MICROS
from tests.helpers.stops import stopped

SCHEMA = pa.schema(
    [
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("count", pa.int64()),
        pa.field("value", pa.float64()),
    ]
)
# Hours either side of a midnight: 2026-01-01T22:00Z is hour 490_918.
FIRST_HOUR = 490_918
hours = st.integers(min_value=FIRST_HOUR, max_value=FIRST_HOUR + 3)
actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.lists(
                st.tuples(hours, st.integers(min_value=1, max_value=5)), min_size=1, max_size=3
            ),
        ),
        st.tuples(st.just("clock"), hours),
        st.tuples(st.just("snapshot"), st.just(0)),
        st.tuples(st.just("crash"), st.integers(min_value=0, max_value=2)),
    ),
    max_size=14,
)


def line(hour: int, n: int) -> str:
    ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(hours=hour, seconds=n % 3600)
    return (
        f'{{"name":"{hour}:{n}","ts":"{ts:%Y-%m-%dT%H:%M:%S}.000Z","count":{n},"value":{n / 7!r}}}'
    )


def table_rows(uri: Path) -> list[tuple[str, int, float, str]]:
    table = DeltaTable(str(uri)).to_pyarrow_table()
    rows = []
    for row in table.to_pylist():
        hour = int(row["name"].split(":")[0])
        # Each row in the partition of its own date, its time typed.
        assert row["date"] == f"{row['ts']:%Y-%m-%d}"
        assert row["ts"].tzinfo is not None
        assert (row["ts"] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(hours=1) == hour
        rows.append((row["name"], row["count"], row["value"], row["date"]))
    return rows


class Clock:
    now: int | None = None

    def __call__(self) -> int | None:
        return self.now


@settings(max_examples=40, deadline=None)
@given(actions=actions, stage_rows=st.sampled_from([3, 65_536]))
def test_the_table_holds_every_row_once_whatever_the_crashes(
    actions: list[tuple[str, object]], stage_rows: int
) -> None:
    uri = Path(tempfile.mkdtemp(prefix="delta-")) / "table"
    try:
        clock = Clock()
        sink = DeltaSink(
            uri,
            "job",
            Cluster(),
            SCHEMA,
            clock=clock,
            settle=timedelta(minutes=1),
            run="rtest",
            stage_rows=stage_rows,
        )
        (part_name,) = sink.list_parts()
        part = sink.build_part("out", part_name, None)
        written: list[tuple[int, str]] = []
        snapshots: list[tuple[DeltaState, int]] = []
        counter = 0
        ever_seen: set[str] = set()
        for action, arg in actions:
            if action == "write":
                batch = []
                for hour, size in arg:  # type: ignore[attr-defined]
                    batch.append((hour, "\n".join(line(hour, counter + k) for k in range(size))))
                    counter += size
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
                    # A resume from further back than the snapshot before the last takes
                    # back what was committed since (Bytewax's frontier "one too small").
                    ever_seen = {row[0] for row in table_rows(uri)}
                replay, written = written[covered:], written[:covered]
                if replay:
                    part.write_batch(replay)
                    written += replay
            names = [row[0] for row in table_rows(uri)]
            assert len(names) == len(set(names)), "a row twice in the table"
            assert ever_seen <= set(names), "a committed row was taken back"
            ever_seen |= set(names)
        part.close()
        expected = sorted(
            (f"{hour}:{n}", n, n / 7)
            for hour, text in written
            for n in (
                int(x.split('"name":"')[1].split('"')[0].split(":")[1]) for x in text.splitlines()
            )
        )
        assert sorted(row[:3] for row in table_rows(uri)) == expected
    finally:
        shutil.rmtree(uri.parent)


def test_a_finished_date_is_compacted_into_one_file(tmp_path: Path) -> None:
    clock = Clock()
    uri = tmp_path / "table"
    sink = DeltaSink(uri, "job", Cluster(), SCHEMA, clock=clock, settle=timedelta(minutes=1))
    part = sink.build_part("out", sink.list_parts()[0], None)
    # Twenty snapshots, each with rows of 2026-01-01T23: twenty small files.
    hour = FIRST_HOUR + 1
    for n in range(20):
        part.write_batch([(hour, line(hour, n))])
        part.snapshot()
    table = DeltaTable(str(uri))
    assert len(table.file_uris()) == 19  # the newest is committed at the next snapshot
    # The clock passes the hour's end and its settle time: its date is compacted.
    clock.now = (hour + 1) * HOUR_MICROS + 2 * 60 * 1_000_000
    part.snapshot()
    clock.now += HOUR_MICROS
    part.snapshot()
    table = DeltaTable(str(uri))
    assert len(table.file_uris()) == 1
    assert len(table_rows(uri)) == 20
    part.close()


def test_a_resume_before_a_commit_and_a_compaction_adds_no_file_twice(tmp_path: Path) -> None:
    clock = Clock()
    uri = tmp_path / "table"
    sink = DeltaSink(uri, "job", Cluster(), SCHEMA, clock=clock, settle=timedelta(minutes=1))
    part_name = sink.list_parts()[0]
    part = sink.build_part("out", part_name, None)
    hour = FIRST_HOUR + 1
    part.write_batch([(hour, line(hour, 0))])
    part.snapshot()
    part.write_batch([(hour, line(hour, 1))])
    before = part.snapshot()  # lists the second file; the first is committed
    # The next snapshot commits the second file, and compaction merges both into one.
    clock.now = (hour + 1) * HOUR_MICROS + 2 * 60 * 1_000_000
    part.snapshot()
    assert len(DeltaTable(str(uri)).file_uris()) == 1
    # The process dies before that snapshot is committed: the restart resumes from the
    # one before, which still lists the second file as staged.
    part = sink.build_part("out", part_name, before)
    part.close()
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:0", f"{hour}:1"]


def test_a_resume_from_further_back_takes_back_what_was_committed_since(tmp_path: Path) -> None:
    """Bytewax's resume epoch can be one too small: the restart gets the snapshot before
    the one before the last, whose files were committed since, and the replay cuts the
    rows into other files than the first run did."""
    uri = tmp_path / "table"
    sink = DeltaSink(uri, "job", Cluster(), SCHEMA, clock=Clock(), settle=timedelta(minutes=1))
    part_name = sink.list_parts()[0]
    hour = FIRST_HOUR + 1
    rows = [(hour, line(hour, n)) for n in range(4)]
    part = sink.build_part("out", part_name, None)
    part.write_batch(rows[:1])
    further_back = part.snapshot()
    part.write_batch(rows[1:3])
    part.snapshot()  # commits the first file
    part.write_batch(rows[3:])
    part.snapshot()  # commits the second, of two rows
    assert len(table_rows(uri)) == 3
    part = sink.build_part("out", part_name, further_back)
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:0"]
    part.write_batch(rows[1:2])
    part.snapshot()
    part.write_batch(rows[2:])
    part.snapshot()
    part.close()
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:{n}" for n in range(4)]


@pytest.mark.parametrize("input_ended", [False, True])
def test_a_close_before_the_end_of_input_leaves_what_a_restart_takes_back_uncompacted(
    tmp_path: Path, input_ended: bool
) -> None:
    """Bytewax closes a partition when the dataflow stops for any reason (a failure, a
    lost peer in a cluster): the close commits what it holds, and the restart, from a
    snapshot before that commit, must be able to take it back. A compaction at that
    close would have merged it out of reach, so it waits for the end of input."""
    uri = tmp_path / "table"
    ended = [False]
    settle = timedelta(minutes=1)
    sink = DeltaSink(
        uri, "job", Cluster(), SCHEMA, clock=Clock(), settle=settle, input_ended=lambda: ended[0]
    )
    part_name = sink.list_parts()[0]
    hour = FIRST_HOUR + 1
    rows = [(hour, line(hour, n)) for n in range(4)]
    part = sink.build_part("out", part_name, None)
    part.write_batch(rows[:1])
    part.snapshot()
    resumed_from = part.snapshot()  # the first file committed
    part.write_batch(rows[1:3])
    part.snapshot()  # the second file listed, in a snapshot no restart gets
    ended[0] = input_ended
    part.close()
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:{n}" for n in range(3)]
    live = DeltaTable(str(uri)).file_uris()
    if input_ended:  # the end of input: the date is compacted, as before
        assert len(live) == 1 and "c000" in live[0]
        return
    assert len(live) == 2 and not any("c000" in path for path in live)
    part = sink.build_part("out", part_name, resumed_from)
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:0"]
    part.write_batch(rows[1:])
    part.snapshot()
    ended[0] = True
    part.close()
    assert sorted(row[0] for row in table_rows(uri)) == [f"{hour}:{n}" for n in range(4)]


def test_a_commit_begun_before_another_writer_removed_rows_still_lands(tmp_path: Path) -> None:
    """delta-rs fails a transaction without a read predicate when a commit since the
    version it began from removed data (a take-back by another process's writer as a
    cluster restarts, retention's delete). A writer's commit only adds its own files,
    so it goes again on the newer version rather than stop the job."""
    uri = tmp_path / "table"
    sinks = [
        DeltaSink(
            uri, "job", Cluster(process=p), SCHEMA, clock=Clock(), settle=timedelta(minutes=1)
        )
        for p in (0, 1)
    ]
    parts = [sink.build_part("out", sink.list_parts()[0], None) for sink in sinks]
    hour = FIRST_HOUR + 1
    for n, part in enumerate(parts):
        part.write_batch([(hour, line(hour, n))])
        part.snapshot()  # a file staged and listed
    parts[0].snapshot()  # committed
    # Writer 1 begins its commit from this version; then writer 0's row is removed.
    begun = [DeltaTable(str(uri))]
    DeltaTable(str(uri)).delete(f"name = '{hour}:0'")
    parts[1]._table = lambda: begun.pop() if begun else DeltaTable(str(uri))  # type: ignore[method-assign]
    parts[1].snapshot()
    assert not begun, "the commit did not begin from the older version"
    assert [row[0] for row in table_rows(uri)] == [f"{hour}:1"]


def test_retention_deletes_the_dates_that_ended_longer_ago_and_says_so(tmp_path: Path) -> None:
    clock = Clock()
    uri = tmp_path / "table"
    removed: list[tuple[str, int]] = []
    sink = DeltaSink(
        uri,
        "job",
        Cluster(),
        SCHEMA,
        clock=clock,
        settle=timedelta(minutes=1),
        retention=(timedelta(hours=2), lambda partition, files: removed.append((partition, files))),
    )
    part = sink.build_part("out", sink.list_parts()[0], None)
    # 2026-01-01T22:00 and 23:00, then 2026-01-02T00:00: two dates, three commits.
    for hour in (FIRST_HOUR, FIRST_HOUR + 1, FIRST_HOUR + 2):
        part.write_batch([(hour, line(hour, 1)), (hour, line(hour, 2))])
        part.snapshot()
    part.snapshot()
    assert {p["date"] for p in DeltaTable(str(uri)).partitions()} == {"2026-01-01", "2026-01-02"}
    assert removed == []
    # Two hours past the end of 2026-01-01: that date goes, the next stays.
    clock.now = (FIRST_HOUR + 2) * HOUR_MICROS + 2 * HOUR_MICROS
    part.snapshot()
    assert {p["date"] for p in DeltaTable(str(uri)).partitions()} == {"2026-01-02"}
    assert sorted(row[0] for row in table_rows(uri)) == [
        f"{FIRST_HOUR + 2}:1",
        f"{FIRST_HOUR + 2}:2",
    ]
    assert [partition for partition, _ in removed] == ["date=2026-01-01"]
    assert removed[0][1] >= 1
    part.close()


def test_a_stop_at_any_line_of_a_write_leaves_a_table_with_no_row_twice(tmp_path: Path) -> None:
    hour = FIRST_HOUR + 1  # 23:00, so the batch spans two dates
    for count in itertools.count(1):
        uri = tmp_path / str(count) / "table"
        sink = DeltaSink(
            uri,
            "job",
            Cluster(),
            SCHEMA,
            clock=Clock(),
            settle=timedelta(minutes=1),
            finish_on_exit=True,
            stage_rows=3,
        )
        part = sink.build_part("out", sink.list_parts()[0], None)
        first = [(hour, line(hour, n)) for n in range(3)]
        part.write_batch(first)  # staged: in the table once the exit hook commits it
        later = [(h, n) for n in range(3, 6) for h in (hour, hour + 1)]
        batch = [(h, line(h, n)) for h, n in later]
        if not stopped(delta.__file__, count, partial(part.write_batch, batch)):
            break  # the write ran to its end before the count: every line was tried
        part.exit()  # what the exit hook does
        names = [name for name, *_ in table_rows(uri)]
        assert len(names) == len(set(names)), f"stopped at line {count}"
        # The first batch whole; of the stopped one, what it staged before the stop.
        assert {f"{hour}:{n}" for n in range(3)} <= set(names)
        assert set(names) <= {f"{hour}:{n}" for n in range(3)} | {f"{h}:{n}" for h, n in later}
    assert count > 20  # the write's lines were all tried, not a handful


def test_a_table_an_older_version_made_gets_the_nullable_columns_added_since(
    tmp_path: Path,
) -> None:
    uri = tmp_path / "table"
    old = pa.schema(list(SCHEMA)[:3])  # without "value"
    first = DeltaSink(uri, "job", Cluster(), old, clock=Clock(), settle=timedelta(minutes=1))
    part = first.build_part("out", first.list_parts()[0], None)
    without_value = line(FIRST_HOUR, 1).rsplit(',"value"', 1)[0] + "}"
    part.write_batch([(FIRST_HOUR, without_value)])
    part.close()
    second = DeltaSink(uri, "job", Cluster(), SCHEMA, clock=Clock(), settle=timedelta(minutes=1))
    part = second.build_part("out", second.list_parts()[0], None)
    part.write_batch([(FIRST_HOUR, line(FIRST_HOUR, 2))])
    part.close()
    rows = sorted(table_rows(uri))
    assert [(name, count, value) for name, count, value, _ in rows] == [
        (f"{FIRST_HOUR}:1", 1, None),  # written before the column was
        (f"{FIRST_HOUR}:2", 2, 2 / 7),
    ]


def test_a_table_with_other_columns_is_refused(tmp_path: Path) -> None:
    uri = tmp_path / "table"
    DeltaSink(
        uri,
        "job",
        Cluster(),
        SCHEMA.append(pa.field("extra", pa.int64())),
        clock=Clock(),
        settle=timedelta(minutes=1),
    )
    try:
        DeltaSink(uri, "job", Cluster(), SCHEMA, clock=Clock(), settle=timedelta(minutes=1))
    except ValueError as refused:
        assert "has the columns name, ts, count, value, extra, date" in str(refused)
        assert "write to another OUTPUT" in str(refused)
    else:
        raise AssertionError("a table with a column the job does not write was taken")
