"""The alert state machines: readings in, changes of alert state out. No Bytewax here.

Per (sensor, metric) and rule, an alert is raised once and cleared once; nothing is
repeated while a condition holds.

- ``high``/``low``: raised after ``raise_after`` consecutive readings beyond the
  threshold, cleared after ``clear_after`` consecutive readings back inside.
- ``rate``: the same counting, on |Δvalue / Δt| of a sensor, measured from the reading
  at least ``rate_span`` back (0: the reading before), so that measurement noise over a
  short step does not pass for a change; the rate is given to the readings' precision.
- ``stuck``: raised when a sensor has reported the same value, reading after reading,
  for ``stuck`` of event time (a frozen sensor or a gateway repeating its last value);
  cleared by a different value.
- ``silence``: raised when the stream's event time (the newest timestamp seen from any
  sensor) passes a sensor's last reading plus ``silence``, or, via ``stream_quiet``, when
  no reading at all has arrived for that long; cleared by the sensor's next reading. A
  sensor whose own next reading comes after a gap longer than ``silence`` raises and
  clears at once, so the gap is on record.

Every alert also says the episode as the readings show it: ``onset``, the first reading
of the condition (the first beyond the threshold of the streak that raised it, the first
of the repeated value, the last reading before the silence); ``peak``, the extreme
reading so far (the highest for ``high``, the lowest for ``low``, the fastest rate, the
stuck value); and, once cleared, ``ended``, the first reading past the condition (the
first back inside of the streak that cleared it, the first different value, the reading
that broke the silence). So an episode's duration is ``ended - onset``, not how long the
alert was raised, and its peak is a reading's.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dataflows.alert_rules import MetricRules
from dataflows.readings import Reading
from dataflows.times import iso

__all__ = ["Alert", "AlertEngine", "EngineState"]

Key = tuple[str, str]


@dataclass(frozen=True)
class Alert:
    sensor_id: str
    metric: str
    rule: str  # high, low, rate, silence, stuck
    state: str  # raised, cleared
    ts: datetime
    value: float | None = None  # the reading that caused it (high, low, rate)
    limit: float | None = None  # the threshold or rate limit it crossed
    rate: float | None = None  # units per second (rate)
    gap_seconds: float | None = None  # how long the sensor was silent, or stuck
    onset: datetime | None = None  # the condition's first reading
    peak: float | None = None  # its extreme reading (rate: its fastest rate) so far
    ended: datetime | None = None  # the first reading past it (cleared alerts)

    def to_record(self) -> dict[str, Any]:
        return {
            "sensor_id": self.sensor_id,
            "metric": self.metric,
            "rule": self.rule,
            "state": self.state,
            "ts": iso(self.ts),
            "value": self.value,
            "limit": self.limit,
            "rate": self.rate,
            "gap_seconds": self.gap_seconds,
            "onset": None if self.onset is None else iso(self.onset),
            "peak": self.peak,
            "ended": None if self.ended is None else iso(self.ended),
        }


@dataclass
class _Episode:
    """A threshold or rate condition from its first reading: while its streak builds,
    then while it is raised."""

    onset: datetime
    peak: float
    ended: datetime | None = None  # the first reading of a streak back inside


@dataclass
class _KeyState:
    last_ts: datetime
    last_value: float
    raised: set[str] = field(default_factory=set)
    # Consecutive readings beyond (while clear) or back inside (while raised), per rule.
    streak: dict[str, int] = field(default_factory=dict)
    # The reading the next rate is measured from, and since when the value is unchanged.
    rate_from: tuple[datetime, float] | None = None
    same_since: datetime | None = None
    # Per rule, the episode under way. A class-level None, not a factory: a snapshot made
    # before episodes were kept unpickles without it and reads this.
    episodes: dict[str, _Episode] | None = None


@dataclass
class EngineState:
    """Everything the engine knows; a plain, picklable value for Bytewax snapshots."""

    keys: dict[Key, _KeyState] = field(default_factory=dict)
    stream_time: datetime | None = None
    # (deadline, key, last_ts) of each key's silence rule; stale entries are skipped.
    deadlines: list[tuple[datetime, Key, datetime]] = field(default_factory=list)


def _extreme(rule: str, peak: float, measure: float) -> float:
    """The episode's peak with one more reading: the lowest for ``low``, else the highest."""
    return min(peak, measure) if rule == "low" else max(peak, measure)


def _decimals(*values: float) -> int:
    """The decimals the values are given to (their shortest form), at most 6: a rate is
    not more precise than the readings it comes from."""
    places = 0
    for value in values:
        text = repr(value)
        if "e" in text or "n" in text:
            return 6
        _, _, fraction = text.partition(".")
        places = max(places, len(fraction.rstrip("0")))
    return min(places, 6)


class AlertEngine:
    def __init__(self, rules: dict[str, MetricRules], state: EngineState | None = None) -> None:
        self._rules = rules
        self.state = state or EngineState()

    def observe(self, reading: Reading) -> list[Alert]:
        rules = self._rules.get(reading.metric)
        if rules is None:
            out: list[Alert] = []
            self._advance_stream_time(reading.ts, out)
            return out
        key = (reading.sensor_id, reading.metric)
        known = self.state.keys.get(key)
        out = []
        if known is None:
            known = self.state.keys[key] = _KeyState(reading.ts, reading.value)
            known.rate_from = (reading.ts, reading.value)
            known.same_since = reading.ts
        else:
            if rules.silence is not None:
                out += self._on_reading_after_silence(key, known, reading, rules.silence)
            if rules.rate_limit is not None:
                out += self._rate(key, known, rules, reading, rules.rate_limit)
            if rules.stuck is not None:
                out += self._stuck(key, known, reading, rules.stuck)
            if reading.ts >= known.last_ts:
                known.last_ts, known.last_value = reading.ts, reading.value
        if rules.silence is not None:
            deadline = (known.last_ts + rules.silence, key, known.last_ts)
            heapq.heappush(self.state.deadlines, deadline)
        # After this key's own update, so its stale deadline is skipped, not raised.
        self._advance_stream_time(reading.ts, out)
        if rules.high is not None:
            beyond = reading.value > rules.high
            out += self._step(key, known, "high", beyond, rules, reading, rules.high, None)
        if rules.low is not None:
            beyond = reading.value < rules.low
            out += self._step(key, known, "low", beyond, rules, reading, rules.low, None)
        return out

    def stream_quiet(self, quiet_for: timedelta) -> list[Alert]:
        """No reading at all for ``quiet_for`` (wall time): raise every silence now due."""
        out = []
        for key, known in self.state.keys.items():
            rules = self._rules.get(key[1])
            if rules is None or rules.silence is None or "silence" in known.raised:
                continue
            if quiet_for >= rules.silence:
                known.raised.add("silence")
                out.append(
                    Alert(
                        *key,
                        "silence",
                        "raised",
                        known.last_ts + rules.silence,
                        gap_seconds=quiet_for.total_seconds(),
                        onset=known.last_ts,
                    )
                )
        return out

    def next_quiet_check(self) -> timedelta | None:
        """The shortest silence still to be raised when the stream is quiet, if any."""
        waits = [
            rules.silence
            for (_, metric), known in self.state.keys.items()
            if (rules := self._rules.get(metric)) is not None
            and rules.silence is not None
            and "silence" not in known.raised
        ]
        return min(waits) if waits else None

    # -- the rules ---------------------------------------------------------------------
    def _step(
        self,
        key: Key,
        known: _KeyState,
        rule: str,
        beyond: bool,
        rules: MetricRules,
        reading: Reading,
        limit: float,
        rate: float | None,
    ) -> list[Alert]:
        raised = rule in known.raised
        measure = reading.value if rate is None else rate
        episodes = known.episodes
        if episodes is None:
            episodes = known.episodes = {}
        episode = episodes.get(rule)
        # A streak counts readings that point towards changing the state.
        if beyond != raised:
            known.streak[rule] = known.streak.get(rule, 0) + 1
            if not raised:
                if episode is None:
                    episode = episodes[rule] = _Episode(reading.ts, measure)
                else:
                    episode.peak = _extreme(rule, episode.peak, measure)
            elif episode is not None and episode.ended is None:
                episode.ended = reading.ts
        else:
            known.streak[rule] = 0
            if raised and episode is not None:
                episode.peak = _extreme(rule, episode.peak, measure)
                episode.ended = None
            elif not raised:
                episodes.pop(rule, None)
            return []
        if known.streak[rule] < (rules.clear_after if raised else rules.raise_after):
            return []
        known.streak[rule] = 0
        if raised:
            known.raised.discard(rule)
            episodes.pop(rule, None)
        else:
            known.raised.add(rule)
        state = "cleared" if raised else "raised"
        onset, peak, ended = (
            (None, None, None) if episode is None else (episode.onset, episode.peak, episode.ended)
        )
        return [
            Alert(
                *key, rule, state, reading.ts, reading.value, limit, rate, None, onset, peak, ended
            )
        ]

    def _rate(
        self, key: Key, known: _KeyState, rules: MetricRules, reading: Reading, limit: float
    ) -> list[Alert]:
        start = known.rate_from or (known.last_ts, known.last_value)
        seconds = (reading.ts - start[0]).total_seconds()
        if seconds <= 0 or seconds < rules.rate_span.total_seconds():
            return []
        known.rate_from = (reading.ts, reading.value)
        rate = round(abs(reading.value - start[1]) / seconds, _decimals(reading.value, start[1]))
        return self._step(key, known, "rate", rate > limit, rules, reading, limit, rate)

    def _stuck(self, key: Key, known: _KeyState, reading: Reading, stuck: timedelta) -> list[Alert]:
        since = known.same_since or known.last_ts
        if reading.value != known.last_value:
            known.same_since = reading.ts
            if "stuck" not in known.raised:
                return []
            known.raised.discard("stuck")
            gap = (known.last_ts - since).total_seconds()
            return [
                Alert(
                    *key,
                    "stuck",
                    "cleared",
                    reading.ts,
                    reading.value,
                    gap_seconds=gap,
                    onset=since,
                    peak=known.last_value,
                    ended=reading.ts,
                )
            ]
        held = reading.ts - since
        if "stuck" in known.raised or held < stuck:
            return []
        known.raised.add("stuck")
        seconds = held.total_seconds()
        return [
            Alert(
                *key,
                "stuck",
                "raised",
                reading.ts,
                reading.value,
                gap_seconds=seconds,
                onset=since,
                peak=reading.value,
            )
        ]

    def _on_reading_after_silence(
        self, key: Key, known: _KeyState, reading: Reading, silence: timedelta
    ) -> list[Alert]:
        gap = reading.ts - known.last_ts
        out = []
        if "silence" not in known.raised and gap > silence:
            known.raised.add("silence")
            out.append(
                Alert(
                    *key,
                    "silence",
                    "raised",
                    known.last_ts + silence,
                    gap_seconds=gap.total_seconds(),
                    onset=known.last_ts,
                )
            )
        if "silence" in known.raised:
            known.raised.discard("silence")
            out.append(
                Alert(
                    *key,
                    "silence",
                    "cleared",
                    reading.ts,
                    reading.value,
                    gap_seconds=max(gap.total_seconds(), 0.0),
                    onset=known.last_ts,
                    ended=reading.ts,
                )
            )
        return out

    def _advance_stream_time(self, ts: datetime, out: list[Alert]) -> None:
        state = self.state
        if state.stream_time is not None and ts <= state.stream_time:
            return
        state.stream_time = ts
        deadlines = state.deadlines
        while deadlines and deadlines[0][0] < ts:
            deadline, key, last_ts = heapq.heappop(deadlines)
            known = state.keys.get(key)
            if known is None or known.last_ts != last_ts or "silence" in known.raised:
                continue  # the sensor spoke since, or is already silenced
            known.raised.add("silence")
            out.append(
                Alert(
                    *key,
                    "silence",
                    "raised",
                    deadline,
                    gap_seconds=(ts - last_ts).total_seconds(),
                    onset=last_ts,
                )
            )
