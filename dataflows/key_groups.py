"""Key groups: every sensor's tumbling windows, kept in a bounded number of Bytewax keys.

Bytewax keeps a logic, a clock, a notification and a snapshot per key, which costs about
as much per window as a busy window's readings do: a fleet where each sensor sends one
reading per window spent most of its time there. So, as Flink does with key groups, each
(sensor, metric) key is routed to one of ``KEY_GROUPS`` groups by a stable hash, and one
``GroupWindows`` per group keeps the windows of all of its keys. The runtime sees a few
dozen keys whatever the fleet size.

The rules are those of one key at a time (``windows.py``): a key's watermark only moves
on, reading by reading, to the larger of the reading's time less ``lateness`` and the
event time of the stream it came by less ``lateness`` and ``idle_close``; a reading older
than the watermark is late (and moves it all the same); a window closes once the
watermark reaches its end, or at the end of the input. Which group a key is in never
changes what is written, only where it is computed.

The stream's event time a reading is judged by is the one it came with (each row
carries it), so lateness never depends on how the stream was cut into batches, and a
sensor heard by two gateways, one behind the other, never has a closed window opened
again by the slower one. The idle rule closes a quiet key's windows on its stream's
event time as far as its group has been given it, and moves the key's watermark to the
end of the newest window it closed. That time comes in band: each source batch gives
every group, rows or not, a mark of each stream's time after the batch (a row with no
key, ``KeyGroups.of``), which arrives after the group's rows of that batch and before
those of the next. A time shared by the groups would run ahead of rows still on their
way to a group on another worker (several workers in one process), whose key's window
it would close before they came, so that they were late.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from datetime import timedelta
from itertools import chain
from typing import Final, NamedTuple

from bytewax.operators import StatefulBatchLogic

from dataflows.aggregates import LateRow, exact_parts
from dataflows.readings import ReadingRow
from dataflows.times import duration_micros

__all__ = [
    "MARK",
    "ClosedWindow",
    "Emitted",
    "GroupWindows",
    "KeyGroups",
    "KeyRows",
    "LateKeyRow",
    "Window",
    "group_of",
    "window_mean",
]

# One key's readings of one source batch, in arrival order.
KeyRows = tuple[str, list[ReadingRow]]
# A late reading with its key: (key, (window id, row)).
LateKeyRow = tuple[str, LateRow]
# A window: (window id, count, minimum, maximum, exact parts of the sum). Tuples, so that
# a snapshot shares them rather than copying each.
Window = tuple[int, int, float, float, tuple[float, ...]]
# A key's state as a snapshot holds it: (its watermark plus the lateness, which is its
# newest reading's time unless a stream's time moved it further; the stream of its newest
# on-time reading; its open windows by window id). Plus the lateness, so that a snapshot
# from before the watermark was kept, which held the newest reading's time there, resumes
# as it was.
_KeyState = tuple[int, str, tuple[Window, ...]]


class _Key:
    """A key's state while it runs: ``_KeyState``'s fields, changed in place. Rebuilt as
    three nested tuples a reading, a fleet's key states were a third of the windows
    step's time in allocations and frees."""

    def __init__(self, reach: int, stream: str, windows: list[Window]) -> None:
        self.reach = reach
        self.stream = stream
        self.windows = windows


# A window that closed: (key, window). A plain tuple: a fleet closes one per reading.
ClosedWindow = tuple[str, Window]


def window_mean(window: Window) -> float:
    """The mean of a window's readings: the exact sum of its parts, correctly rounded, over
    the count, so the same whatever the order the readings came in."""
    parts = window[4]
    return (parts[0] if len(parts) == 1 else math.fsum(parts)) / window[1]


class Emitted(NamedTuple):
    """What one call of a group's logic gives: one item, so that the steps after it run
    once per group and batch rather than once per window."""

    windows: list[ClosedWindow]
    late: list[LateKeyRow]


def group_of(key: str, groups: int) -> str:
    """The group of ``key``: the same in every process and run (``hash`` is not)."""
    return str(zlib.crc32(key.encode()) % groups)


# The key of a mark: a row that carries only its stream's time (``KeyGroups.of``).
MARK: Final = ""


class KeyGroups:
    """Routes rows by key to ``count`` groups, remembering each key's group (a fleet's
    keys come back every window; the dict holds one entry per key). With ``marks`` (the
    idle rule is on), every group gets each stream's time after the batch."""

    def __init__(self, count: int, marks: bool = False) -> None:
        self.count = count
        self._marks = marks
        self._names = [str(group) for group in range(count)]
        self._group: dict[str, str] = {}

    def of(
        self, keyed: dict[str, list[ReadingRow]], after: dict[str, int] | None = None
    ) -> list[tuple[str, list[KeyRows]]]:
        """A batch's rows by key, gathered by group: one item per group touched, or per
        group with marks, each ending with a mark of every stream in ``after`` (its event
        time after the batch)."""
        known, count = self._group, self.count
        out: dict[str, list[KeyRows]] = {}
        for key, rows in keyed.items():
            group = known.get(key)
            if group is None:
                group = known[key] = group_of(key, count)
            members = out.get(group)
            if members is None:
                out[group] = [(key, rows)]
            else:
                members.append((key, rows))
        if self._marks and after:
            marks: list[KeyRows] = [
                (MARK, [(stamp, 0.0, "", stream, stamp)]) for stream, stamp in after.items()
            ]
            for group in self._names:
                members = out.get(group)
                if members is None:
                    out[group] = list(marks)
                else:
                    members.extend(marks)
        return list(out.items())


def _emitted(windows: list[ClosedWindow], late: list[LateKeyRow]) -> list[Emitted]:
    return [Emitted(windows, late)] if windows or late else []


def _new_window(window_id: int, values: list[float]) -> Window:
    if len(values) == 1:
        value = values[0]
        return (window_id, 1, value, value, (value,) if value else ())
    return (window_id, len(values), min(values), max(values), tuple(exact_parts(values)))


def _merged(window: Window, values: list[float]) -> Window:
    window_id, count, low, high, parts = window
    return (
        window_id,
        count + len(values),
        min(low, *values),
        max(high, *values),
        tuple(exact_parts([*parts, *values])),
    )


# A key's cutoff before its first reading: below every time a reading can have (year 1
# is -6.2e16 us), so the first reading is never late and always sets it. An int, not
# None: compiled, an int of up to 62 bits is kept unboxed, and an optional one is a
# Python object made anew at each step of a reading.
_NO_CUTOFF: Final = -(1 << 61)


def _by_window(
    rows: list[ReadingRow],
    key: str,
    cutoff: int,
    back: int | None,
    lateness: int,
    length: int,
    late: list[LateKeyRow],
) -> tuple[int, dict[int, list[float]]]:
    """A key's rows, reading by reading in arrival order: the late ones go to ``late``;
    returns the key's watermark after them and the others' values by window id (empty
    when every one was late). ``back`` is the idle rule's distance behind each row's
    stream time (None: off)."""
    touched: dict[int, list[float]] = {}
    start = end = 0
    values_in: list[float] = []
    for row in rows:
        ts = row[0]
        if back is not None and row[4] - back > cutoff:
            cutoff = row[4] - back
        if ts < cutoff:
            late.append((key, (ts // length, row)))
            continue
        if ts - lateness > cutoff:
            cutoff = ts - lateness
        if not start <= ts < end:
            window_id = ts // length
            start = window_id * length
            end = start + length
            found = touched.get(window_id)
            values_in = touched[window_id] = [] if found is None else found
        values_in.append(row[1])
    return cutoff, touched


class GroupWindows(StatefulBatchLogic[list[KeyRows], "Emitted", dict[str, _KeyState]]):
    """The tumbling windows of every key of one key group.

    Items in are a source batch's ``KeyRows`` of the group; out comes at most one
    ``Emitted`` a call: the windows that closed and the late readings. Times are whole
    microseconds since the epoch, so the window of a reading is one integer division.
    The state of a window is freed when it closes; what stays per key is its watermark
    and stream, which the lateness rule needs. A key's open windows are in window order.

    Each stream's event time, for the idle rule, is the newest this group was given:
    by its rows and by the marks that follow each batch's (``KeyGroups.of``).
    """

    def __init__(
        self,
        length: timedelta,
        lateness: timedelta,
        idle_close: timedelta | None,
        opened: Callable[[int], None],
        resume_state: dict[str, _KeyState] | None,
    ) -> None:
        self._length = duration_micros(length)
        self._lateness = duration_micros(lateness)
        self._idle_back = None if idle_close is None else duration_micros(lateness + idle_close)
        self._opened = opened
        self._opened_by_add = 0  # windows _add opened, counted with the batch's own
        self._times: dict[str, int] = {}
        self._keys: dict[str, _Key] = {
            key: _Key(reach, stream, list(windows))
            for key, (reach, stream, windows) in (resume_state or {}).items()
        }
        # Per stream and window id, the keys with that window open: what the idle rule
        # may have to close. Windows start on the epoch's grid, so a stream has a few ids
        # open at a time, each shared by many keys. A window closed on its key's own
        # readings leaves its set at once (most of a fleet's do).
        self._due: dict[str, dict[int, set[str]]] = {}
        if self._idle_back is not None:
            for key, state in self._keys.items():
                for window in state.windows:
                    self._due_at(state.stream, window[0], key)

    def _due_at(self, stream: str, window_id: int, key: str) -> None:
        due = self._due.get(stream)
        if due is None:
            due = self._due[stream] = {}
        keys = due.get(window_id)
        if keys is None:
            due[window_id] = {key}
        else:
            keys.add(key)

    def _floor(self, stream: str) -> int | None:
        back, stamp = self._idle_back, self._times.get(stream)
        return None if back is None or stamp is None else stamp - back

    def on_batch(self, values: list[list[KeyRows]]) -> tuple[list[Emitted], bool]:
        length, lateness, keys, back = self._length, self._lateness, self._keys, self._idle_back
        out: list[ClosedWindow] = []
        late: list[LateKeyRow] = []
        # Per stream: the windows the idle rule may close, and its event time after the
        # rows of this call.
        dues: dict[str, dict[int, set[str]]] = {}
        read_to: dict[str, int] = {}
        opened = 0
        for key, rows in chain.from_iterable(values):
            last = rows[-1]
            stream = last[3]
            due = dues.get(stream)
            if due is None:
                due = dues[stream] = self._due.get(stream) or self._due.setdefault(stream, {})
                read_to[stream] = last[4]
            elif last[4] > read_to[stream]:
                read_to[stream] = last[4]
            if key == MARK:
                continue
            state = keys.get(key)
            cutoff = _NO_CUTOFF if state is None else state.reach - lateness
            if len(rows) == 1:
                # A fleet's usual case, on a path of its own: one reading of a key. The
                # lateness step is _by_window's, inlined: a call and a dict per reading
                # were a fifth of a fleet's time in this step.
                ts = last[0]
                if back is not None and last[4] - back > cutoff:
                    cutoff = last[4] - back
                if ts < cutoff:
                    late.append((key, (ts // length, last)))
                    self._moved_by_late(key, state, stream, cutoff, out)
                    continue
                if ts - lateness > cutoff:
                    cutoff = ts - lateness
                if state is None:
                    state = keys[key] = _Key(0, stream, [])
                windows = state.windows
                # Close first: the reading's own window ends after it, so it stays open.
                if windows and (windows[0][0] + 1) * length <= cutoff:
                    if len(windows) == 1:
                        out.append((key, windows[0]))
                        if back is not None and (ids := due.get(windows[0][0])) is not None:
                            ids.discard(key)
                        windows.clear()
                    else:
                        self._close(key, stream, windows, cutoff, out)
                window_id = ts // length
                if windows and windows[-1][0] == window_id:
                    windows[-1] = _merged(windows[-1], [last[1]])
                elif not windows or window_id > windows[-1][0]:
                    value = last[1]
                    windows.append((window_id, 1, value, value, (value,) if value else ()))
                    opened += 1
                    if back is not None:
                        ids = due.get(window_id)
                        if ids is None:
                            due[window_id] = {key}
                        else:
                            ids.add(key)
                else:
                    # Within the lateness, behind the newest window: the general way.
                    self._add(key, stream, windows, {window_id: [last[1]]})
                if state.stream != stream:
                    self._restream(key, state, stream)
                state.reach = cutoff + lateness
                continue
            cutoff, touched = _by_window(rows, key, cutoff, back, lateness, length, late)
            if not touched:
                self._moved_by_late(key, state, stream, cutoff, out)
                continue
            if state is None:
                state = keys[key] = _Key(0, stream, [])
            windows = state.windows
            self._add(key, stream, windows, touched)
            if (windows[0][0] + 1) * length <= cutoff:
                self._close(key, stream, windows, cutoff, out)
            if state.stream != stream:
                self._restream(key, state, stream)
            state.reach = cutoff + lateness
        opened += self._opened_by_add
        self._opened_by_add = 0
        if opened:
            self._opened(opened)
        times = self._times
        for stream, stamp in read_to.items():
            if stamp > times.get(stream, stamp - 1):
                times[stream] = stamp
        self._close_idle(out)
        return _emitted(out, late), self.RETAIN

    def _moved_by_late(
        self,
        key: str,
        state: _Key | None,
        stream: str,
        cutoff: int,
        out: list[ClosedWindow],
    ) -> None:
        """Every reading of ``key`` here was late; its watermark moves to ``cutoff`` all
        the same (their stream's time says how far it has gone), which may close its
        windows. The key stays with its stream: only an on-time reading moves it."""
        reach = cutoff + self._lateness
        if state is None:
            self._keys[key] = _Key(reach, stream, [])
            return
        if reach > state.reach:
            windows = state.windows
            if windows and (windows[0][0] + 1) * self._length <= cutoff:
                self._close(key, state.stream, windows, cutoff, out)
            state.reach = reach

    def _restream(self, key: str, state: _Key, new: str) -> None:
        """A key whose on-time reading came by another stream than its last (a sensor
        heard by two gateways) moves to that stream: the idle rule judges it by the new
        stream's time from now on, so its open windows wait for that stream's time, not
        the old one's."""
        old, state.stream = state.stream, new
        if self._idle_back is None:
            return
        before = self._due.get(old, {})
        for window in state.windows:
            if (ids := before.get(window[0])) is not None:
                ids.discard(key)
            self._due_at(new, window[0], key)

    def _add(
        self,
        key: str,
        stream: str,
        windows: list[Window],
        touched: dict[int, list[float]],
    ) -> None:
        """Adds the values of each window touched to ``windows``, kept in window order."""
        by_id = {window[0]: window for window in windows}
        for window_id, values_in in touched.items():
            old = by_id.get(window_id)
            if old is None:
                by_id[window_id] = _new_window(window_id, values_in)
                self._opened_by_add += 1
                if self._idle_back is not None:
                    self._due_at(stream, window_id, key)
            else:
                by_id[window_id] = _merged(old, values_in)
        windows[:] = [by_id[window_id] for window_id in sorted(by_id)]

    def _close(
        self,
        key: str,
        stream: str,
        windows: list[Window],
        cutoff: int,
        out: list[ClosedWindow],
    ) -> int:
        """Writes the windows that end at or before ``cutoff`` and takes them out of
        ``windows`` (they are its first ones: it is in window order); returns the id of
        the newest of them."""
        length = self._length
        due = self._due.get(stream) if self._idle_back is not None else None
        closed = 0
        for window in windows:
            if (window[0] + 1) * length > cutoff:
                break
            closed += 1
            out.append((key, window))
            if due is not None and window[0] in due:
                due[window[0]].discard(key)
        newest = windows[closed - 1][0]
        del windows[:closed]
        return newest

    def _close_idle(self, out: list[ClosedWindow]) -> None:
        # The idle rule: a stream's event time closes the windows of keys gone quiet.
        keys, length = self._keys, self._length
        for stream, due in self._due.items():
            floor = self._floor(stream) if due else None
            if floor is None:
                continue
            # A key whose windows close here is held to the end of the newest of them:
            # its next readings are judged by the stream time they carry, and one
            # stamped before this floor must be late, never reopen a window.
            lateness = self._lateness
            for window_id in [w for w in due if (w + 1) * length <= floor]:
                for key in due.pop(window_id):
                    state = keys[key]
                    windows = state.windows
                    if state.stream == stream and windows and (windows[0][0] + 1) * length <= floor:
                        newest_closed = self._close(key, stream, windows, floor, out)
                        held = (newest_closed + 1) * length + lateness
                        state.reach = max(state.reach, held)

    def on_eof(self) -> tuple[list[Emitted], bool]:
        out: list[ClosedWindow] = []
        for key, state in self._keys.items():
            if state.windows:
                out.extend((key, window) for window in state.windows)
                state.windows = []
        self._due.clear()
        return _emitted(out, []), self.RETAIN

    def snapshot(self) -> dict[str, _KeyState]:
        return {
            key: (state.reach, state.stream, tuple(state.windows))
            for key, state in self._keys.items()
        }
