"""What a job has done so far, for its summary, its status line and its metrics.

Counters move per batch (readings, dead letters, records) or are read from the live
subscriptions (events, bytes, reconnects): nothing here runs per event.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from connectors.sse.client import SubscriptionLike
from dataflows.stream_breaks import StreamBreaks
from dataflows.times import iso, micros
from dataflows.windows import StreamTimes, WorkerStreamTimes

__all__ = ["RunStats", "StatsNow", "StreamNow", "counted", "peak_rss_bytes"]

S = TypeVar("S")


@dataclass(frozen=True)
class StreamNow:
    """One stream as it stands: ``name`` is its partition, ``url`` redacted; ``lag`` in
    seconds, None before a reading."""

    name: str
    url: str
    events: int
    bytes: int
    reconnects: int
    token_fetches: int
    connected: bool
    lag: float | None


@dataclass(frozen=True)
class StatsNow:
    streams: list[StreamNow]
    readings: int
    dead_letters: dict[str, int]
    records: dict[str, int]
    open_windows: int
    seconds: float

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams)

    @property
    def reconnects(self) -> int:
        return sum(s.reconnects for s in self.streams)


@dataclass
class RunStats:
    """Counters across the workers of this process."""

    job: str
    # Each stream's event time, for this run alone: a second run in the same process
    # (tests, notebooks) on a stream of the same URL starts from nothing, not from where
    # the first one ended.
    times: StreamTimes = field(default_factory=StreamTimes)
    # The same as far as the features' windows step on each worker has read the streams:
    # its idle rule's, for the keys that went quiet (the main job's groups get theirs in
    # band).
    window_times: WorkerStreamTimes = field(default_factory=WorkerStreamTimes)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _streams: dict[str, SubscriptionLike] = field(default_factory=dict, repr=False)
    _ended: set[str] = field(default_factory=set, repr=False)
    _readings: int = 0
    _dead_letters: Counter[str] = field(default_factory=Counter)
    _records: Counter[str] = field(default_factory=Counter)
    _written_to: dict[str, str] = field(default_factory=dict)
    _removed: list[dict[str, object]] = field(default_factory=list)
    _windows_opened: int = 0
    _started: float = field(default_factory=time.monotonic)
    breaks: StreamBreaks = field(init=False)

    def __post_init__(self) -> None:
        self.breaks = StreamBreaks(self.times)

    def stream_opened(self, name: str, subscription: SubscriptionLike) -> None:
        """``name`` is the partition (readings carry it as their stream)."""
        with self._lock:
            self._streams[name] = subscription

    def stream_ended(self, name: str) -> None:
        """The stream ``name`` ended as streams end (a 204), not by a failure."""
        with self._lock:
            self._ended.add(name)

    def input_ended(self) -> bool:
        """Whether every stream this process read has ended as streams end: False while
        one is read, after a failure, or when this process read none."""
        with self._lock:
            return bool(self._streams) and self._ended >= self._streams.keys()

    def count(self, readings: int, dead: Iterable[str]) -> None:
        with self._lock:
            self._readings += readings
            self._dead_letters.update(dead)

    def output(self, kind: str, where: str) -> None:
        """Records of ``kind`` go to ``where`` (a path, stdout or stderr)."""
        with self._lock:
            self._written_to[kind] = where

    def removed(self, kind: str, partition: str, files: int) -> None:
        """Retention removed a partition of ``kind`` (``date=.../hour=...``)."""
        with self._lock:
            self._removed.append(
                {"kind": kind, "partition": partition, "files": files, "at": iso(datetime.now(UTC))}
            )

    def removals(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self._removed)

    def count_records(self, kind: str, records: int) -> None:
        with self._lock:
            self._records[kind] += records

    def window_opened(self, count: int = 1) -> None:
        with self._lock:
            self._windows_opened += count

    def outputs(self) -> dict[str, str]:
        """Where each kind of record goes."""
        with self._lock:
            return dict(self._written_to)

    def now(self) -> StatsNow:
        wall = micros(datetime.now(UTC))
        with self._lock:
            streams = list(self._streams.items())
            readings = self._readings
            dead = dict(self._dead_letters)
            records = dict(self._records)
            opened = self._windows_opened
        closed = records.get("aggregates", 0) + records.get("features", 0)
        return StatsNow(
            streams=[self._stream_now(name, sub, wall) for name, sub in streams],
            readings=readings,
            dead_letters=dead,
            records=records,
            # Windows this process opened and has not written yet (windows restored from
            # a snapshot are not counted as opened).
            open_windows=max(opened - closed, 0),
            seconds=time.monotonic() - self._started,
        )

    def _stream_now(self, name: str, sub: SubscriptionLike, wall: int) -> StreamNow:
        stats = sub.stats
        newest = self.times.get(name)
        return StreamNow(
            name=name,
            url=sub.url,
            events=stats.events + stats.oversized,
            bytes=stats.bytes_received,
            reconnects=stats.reconnects,
            token_fetches=stats.token_fetches,
            connected=sub.connected,
            lag=None if newest is None else max(wall - newest, 0) / 1e6,
        )

    def summary_line(self) -> str:
        now = self.now()
        dead = ", ".join(f"{reason} {n}" for reason, n in sorted(now.dead_letters.items()))
        with self._lock:
            written = [
                f"{now.records.get(kind, 0)} {kind.replace('_', ' ')} to {where}"
                for kind, where in self._written_to.items()
            ]
        peak = peak_rss_bytes()
        return (
            f"{self.job} summary: {now.events} events, {now.readings} readings, "
            f"{sum(now.dead_letters.values())} dead letters ({dead or 'none'}), "
            f"{now.reconnects} reconnects, {now.seconds:.1f} s"
            + (f", peak RSS {peak / 2**20:.0f} MiB" if peak else "")
            + (f"; wrote {', '.join(written)}" if written else "")
        )


def counted(builder: Callable[[], S], stats: RunStats) -> S:
    """A window's first state from ``builder``, counting the window as opened."""
    stats.window_opened()
    return builder()


def peak_rss_bytes(pid: int | None = None) -> int | None:
    """A process's peak resident set size (this one's by default), from /proc (Linux);
    None where there is no VmHWM or the process has gone.

    Not ``ru_maxrss``: that also counts the parent's pages between fork and exec, so a job
    started from a large process would report the parent's size.
    """
    try:
        with open(f"/proc/{pid or 'self'}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
