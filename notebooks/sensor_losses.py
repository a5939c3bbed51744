"""How many readings each sensor should have had, how many it lost, and what explains it.

A window's expected count is what its peers had in the same window: the mean count of
the other sensors reporting at about the same rate (their usual counts within a quarter
of each other), each given back what its own matched dead letters cost it, when there
are at least ``MIN_PEERS`` of them. The mean, not the median: sensors read in turn share
a window's readings unevenly by one (16 and 17), and only the mean of such counts sums
to the readings really sent. A sensor with fewer peers is judged by its own windows
around it (a rolling median), which cannot see a steady loss.

The windows are the main job's tumbling ones (``dataflows.sensor_stats``): a lost
reading costs one window one reading. Partial windows, a series' edges (a window
reaching before its first reading or after its last: the stream started, ended, or the
sensor went quiet), are marked and judged by nothing: they are short by nature. Dead
letters are matched to sensors by the sensor id in their data, as each vendor format
carries it; those whose data does not say (cut off before it) explain the shortest
window of any sensor at their time.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MIN_PEERS",
    "UNKNOWN_SENSOR",
    "dead_letter_sensors",
    "expected_counts",
    "low_count_windows",
    "noteworthy_losses",
    "partial_windows",
    "sensor_losses",
]

KEYS = ["sensor_id", "metric"]
MIN_PEERS = 3
UNKNOWN_SENSOR = "unknown sensor"
# Usual counts within this ratio of each other are one rate: peers.
_SAME_RATE = 1.25

# The sensor id in a dead letter's raw data, however cut off: the flat format's
# "sensor_id", Disruptive Technologies' "targetName" (projects/<p>/devices/<id>) and
# Obelisk's "source". The first that matches wins.
_SENSOR_PATTERNS = (
    re.compile(r'"sensor_id"\s*:\s*"([^"]+)"'),
    re.compile(r'"targetName"\s*:\s*"projects/[^/"]+/devices/([^/"]+)"'),
    re.compile(r'"source"\s*:\s*"([^"]+)"'),
)
# The reading's own time, when the data still holds it (a late reading always does).
_TS_PATTERN = re.compile(r'"ts"\s*:\s*"([^"]+)"')


def dead_letter_sensors(dead: pd.DataFrame) -> pd.Series:
    """The sensor each dead letter came from, read from its raw ``data``;
    ``UNKNOWN_SENSOR`` where the data does not say (cut off before it, or empty)."""
    if not len(dead):
        return pd.Series([], dtype=object)
    return dead["data"].fillna("").map(_sensor_in)


def _sensor_in(data: str) -> str:
    for pattern in _SENSOR_PATTERNS:
        found = pattern.search(data)
        if found:
            return found.group(1)
    return UNKNOWN_SENSOR


def partial_windows(aggregates: pd.DataFrame) -> pd.Series:
    """Whether each window is at its series' edge: it starts before the series' first
    full window (starts within one window length of its first start) or ends after its
    last (ends within one length of its last end). Tumbling windows: the first and the
    last; sliding ones: those that cover time before the first reading or after the last."""
    if not len(aggregates):
        return pd.Series([], dtype=bool)
    length = aggregates["window_end"] - aggregates["window_start"]
    groups = aggregates.groupby(KEYS)
    first = groups["window_start"].transform("min")
    last = groups["window_end"].transform("max")
    return (aggregates["window_start"] < first + length) | (
        aggregates["window_end"] > last - length
    )


def _rate_classes(usual: pd.Series) -> pd.Series:
    """A class per series: series whose usual counts are within ``_SAME_RATE`` of the
    next one up share it (gaps between rates split them)."""
    ordered = usual.sort_values()
    jumps = ordered.div(ordered.shift()).fillna(1.0) > _SAME_RATE
    return jumps.cumsum().reindex(usual.index)


def expected_counts(aggregates: pd.DataFrame, dead: pd.DataFrame | None = None) -> pd.DataFrame:
    """The windows with ``partial`` (at the series' edge), ``peers`` (how many sensors of
    its rate had a full window then) and ``expected`` (the readings it should have had:
    its peers' mean count, or its own rolling median where fewer than ``MIN_PEERS``;
    NaN for a partial window).

    With ``dead``, each peer's count first gets back the readings its own matched dead
    letters cost it, so one lossy sensor does not lower what its peers should have had."""
    frame, _ = _judged(aggregates, dead)
    return frame


def _judged(
    aggregates: pd.DataFrame, dead: pd.DataFrame | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``expected_counts`` and the dead letters matched to the windows it judged."""
    frame = _with_absent_windows(aggregates)
    frame["partial"] = partial_windows(frame).to_numpy()
    usual = frame[~frame.partial].groupby(KEYS)["count"].median()
    classes = _rate_classes(usual).rename("rate_class")
    frame = frame.join(classes, on=KEYS)
    frame["rate_class"] = frame["rate_class"].fillna(-1)
    frame["peers"], frame["expected"] = _expected(frame, frame["count"])
    matched = _matched_windows(frame, dead)
    if len(matched):
        cost = matched.groupby("row").size().reindex(frame.index, fill_value=0)
        frame["peers"], frame["expected"] = _expected(frame, frame["count"] + cost)
        matched = _matched_windows(frame, dead)
    return frame.drop(columns="rate_class"), matched


def _with_absent_windows(aggregates: pd.DataFrame) -> pd.DataFrame:
    """The windows, ``absent`` False, and with ``absent`` True and a count of 0 the window
    starts between a series' first and last that other series had but it did not: a
    window whose every reading was lost is not written at all (a sensor reporting once a
    window loses windows, not readings)."""
    frame = aggregates.reset_index(drop=True).assign(absent=False)
    if not len(frame):
        return frame
    starts = np.unique(_naive(frame["window_start"]))
    groups = frame.groupby(KEYS, sort=False)["window_start"]
    bounds = groups.agg(["min", "max", "size"])
    low = np.searchsorted(starts, _naive(bounds["min"]))
    high = np.searchsorted(starts, _naive(bounds["max"]), side="right")
    gappy = set(bounds.index[(high - low) > bounds["size"].to_numpy()])
    if not gappy:
        return frame
    where = dict(zip(bounds.index, zip(low, high, strict=True), strict=True))
    rows: list[tuple[str, str, np.datetime64]] = []
    for key, present in groups:
        if key in gappy:
            first, last = where[key]
            for start in np.setdiff1d(starts[first:last], _naive(present)):
                rows.append((key[0], key[1], start))
    absent = pd.DataFrame(rows, columns=[*KEYS, "window_start"])
    dtype = frame["window_start"].dtype
    absent["window_start"] = pd.to_datetime(absent["window_start"]).dt.tz_localize("UTC")
    absent["window_start"] = absent["window_start"].astype(dtype)
    length = (frame["window_end"] - frame["window_start"]).median()
    absent["window_end"] = absent["window_start"] + length
    absent["count"] = 0
    absent["absent"] = True
    return pd.concat([frame, absent], ignore_index=True)


def _expected(frame: pd.DataFrame, counts: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per window: its peers, and the count it should have had given these counts."""
    full = ~frame["partial"]
    counted = counts.where(full, 0)
    groups = (
        pd.DataFrame({"rate_class": frame["rate_class"], "window_start": frame["window_start"]})
        .assign(counted=counted, full=full)
        .groupby(["rate_class", "window_start"])
    )
    peers = groups["full"].transform("sum") - full.astype(int)
    peer_mean = (groups["counted"].transform("sum") - counted) / peers.where(peers > 0)
    expected = peer_mean.where(peers >= MIN_PEERS)
    few = full & (peers < MIN_PEERS)
    if few.any():
        # Series with too few peers somewhere: such windows are judged by their own around.
        keys = pd.MultiIndex.from_frame(frame[KEYS])
        alone = keys.isin(pd.MultiIndex.from_frame(frame.loc[few, KEYS]))
        own = frame.loc[full & alone, [*KEYS, "window_start"]].assign(counts=counts)
        rolling = (
            own.sort_values("window_start")
            .groupby(KEYS)["counts"]
            .rolling(5, center=True, min_periods=1)
        )
        median = rolling.median().reset_index(level=list(range(len(KEYS))), drop=True)
        expected = expected.where(~few, median.reindex(frame.index))
    return peers, expected.where(full)


def _naive(moments: pd.Series) -> np.ndarray:
    """UTC times as plain datetime64[ns], for numpy's searches."""
    return moments.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _matched_windows(frame: pd.DataFrame, dead: pd.DataFrame | None) -> pd.DataFrame:
    """Each dead letter with its sensor and, for each metric of that sensor, the ``row``
    of ``frame`` (the window) it most likely cost a reading: the one holding the
    reading's time when the data still says it, else the one holding the stream's time
    when it came or the next (the lost reading came after the stream's newest),
    whichever is shorter of its expected count."""
    columns = ["letter", "sensor_id", "reason", "metric", "window_start", "row"]
    if dead is None or not len(dead):
        return pd.DataFrame(columns=columns)
    sensors = dead_letter_sensors(dead).to_numpy()
    stamps = dead["data"].fillna("").str.extract(_TS_PATTERN, expand=False)
    own_time = pd.to_datetime(stamps, utc=True, format="ISO8601", errors="coerce").dt.as_unit("ns")
    stream_time = pd.to_datetime(dead["stream_time"], utc=True, format="ISO8601").dt.as_unit("ns")
    moments = _naive(own_time.fillna(stream_time))
    short = (frame["expected"] - frame["count"]).fillna(0).to_numpy()
    # Only the series of sensors that have dead letters: a few of a fleet.
    ordered = frame[frame["sensor_id"].isin(set(sensors))].sort_values([*KEYS, "window_start"])
    all_starts, all_ends = _naive(ordered["window_start"]), _naive(ordered["window_end"])
    all_rows = ordered.index.to_numpy()
    series: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {}
    for (sensor, metric), at in ordered.groupby(KEYS, sort=False).indices.items():
        series.setdefault(sensor, []).append((metric, all_starts[at], all_ends[at], all_rows[at]))
    taken: dict[int, float] = {}
    found = []
    for n in np.argsort(moments, kind="stable"):
        at = moments[n]
        if np.isnat(at):
            continue
        for metric, starts, ends, rows in series.get(sensors[n], ()):
            # The last window starting at or before the moment, if it still holds it.
            i = int(np.searchsorted(starts, at, side="right")) - 1
            candidates = [rows[i]] if i >= 0 and at < ends[i] else []
            if pd.isna(own_time.iloc[n]) and i + 1 < len(rows):
                candidates.append(rows[i + 1])
            if not candidates:
                continue
            best = max(candidates, key=lambda row: short[row] - taken.get(row, 0))
            taken[best] = taken.get(best, 0) + 1
            start = frame.at[best, "window_start"]
            found.append((n, sensors[n], dead["reason"].iloc[n], metric, start, best))
    found += _matched_by_time(frame, dead, sensors, moments, short, taken)
    return pd.DataFrame(found, columns=columns)


def _matched_by_time(
    frame: pd.DataFrame,
    dead: pd.DataFrame,
    sensors: np.ndarray,
    moments: np.ndarray,
    short: np.ndarray,
    taken: dict[int, float],
) -> list[tuple[Any, ...]]:
    """The dead letters whose data does not name their sensor (an Obelisk event cut off
    before its ``source``), each matched to the window, of any sensor, still shortest of
    its expected count among those holding its moment or just after it: the loss it
    most likely explains. None where no window then is short."""
    unknown = [n for n in np.argsort(moments, kind="stable") if sensors[n] == UNKNOWN_SENSOR]
    wanting = np.flatnonzero(short >= 0.5)
    if not unknown or not len(wanting):
        return []
    starts = _naive(frame["window_start"].iloc[wanting])
    ends = _naive(frame["window_end"].iloc[wanting])
    found = []
    for n in unknown:
        at = moments[n]
        if np.isnat(at):
            continue
        left = short[wanting] - np.array([taken.get(row, 0) for row in wanting])
        near = (starts <= at + (ends - starts)) & (at < ends) & (left >= 0.5)
        if not near.any():
            continue
        best = int(wanting[np.flatnonzero(near)[np.argmax(left[near])]])
        taken[best] = taken.get(best, 0) + 1
        row = frame.loc[best]
        found.append(
            (n, row["sensor_id"], dead["reason"].iloc[n], row["metric"], row["window_start"], best)
        )
    return found


def low_count_windows(
    aggregates: pd.DataFrame, dead: pd.DataFrame, marks: pd.DataFrame
) -> pd.DataFrame:
    """The full windows with at least one reading fewer than expected
    (``expected_counts``), each with what explains it: the dead letters of that sensor
    matched to it, a stream break in it. A drop with ``Last-Event-ID`` resume loses
    nothing, so "unexplained" is worth a look. Partial windows are never listed."""
    frame, matched = _judged(aggregates, dead)
    frame["missing"] = frame["expected"] - frame["count"]
    jitter = _own_jitter(frame)
    low = frame[~frame.partial & (frame["missing"] >= 1 + jitter)].copy()
    reasons = {
        row: ", ".join(f"{reason} x{n}" for reason, n in letters.value_counts().items())
        for row, letters in matched.groupby("row")["reason"]
    }
    breaks = np.sort(_naive(marks["event_time"].dropna()))
    broke = np.searchsorted(breaks, _naive(low["window_end"])) - np.searchsorted(
        breaks, _naive(low["window_start"])
    )
    causes = []
    for row, times in zip(low.index, broke, strict=True):
        cause = [reasons[row]] if row in reasons else []
        if times:
            cause.append(f"stream broke x{times}")
        causes.append(", ".join(cause) or "unexplained")
    low["missing"] = low["missing"].round(2)
    low["expected"] = low["expected"].round(2)
    low["explained_by"] = causes
    columns = [*KEYS, "window_start", "count", "expected", "peers", "missing", "explained_by"]
    return low[columns].sort_values(["window_start", *KEYS]).reset_index(drop=True)


def _own_jitter(frame: pd.DataFrame) -> pd.Series:
    # A series judged by its own windows whose counts naturally alternate (16 and 17) is
    # not short by the one between them: one whose full windows are off their median in
    # more than a third of them varies by one anyway. Peers' means need no such slack.
    alone = frame[~frame.partial & (frame["peers"] < MIN_PEERS)]
    varies = alone.groupby(KEYS)["count"].transform(
        lambda c: 1 if (c != c.median()).mean() > 1 / 3 else 0
    )
    return varies.reindex(frame.index, fill_value=0)


def sensor_losses(aggregates: pd.DataFrame, dead: pd.DataFrame) -> pd.DataFrame:
    """One row per sensor and metric, over its full ``windows`` (``absent_windows`` of
    them not written at all, every reading lost): ``expected`` readings (the
    sum of its windows' expected counts), ``received``, ``lost`` (the difference, 0 when
    it had more), ``dead_letters`` (those of that sensor matched to those windows),
    ``unexplained`` (lost beyond them), ``lost_share`` (lost / expected), ``judged_by``
    (peers, or its own windows when it has too few) and ``reported_until`` (its last
    window's end: early for a sensor that went quiet). Most unexplained first."""
    frame, matched = _judged(aggregates, dead)
    full = frame[~frame.partial]
    matched = matched[~frame["partial"].to_numpy()[matched["row"].to_numpy(dtype=int)]]
    table = full.groupby(KEYS).agg(
        windows=("count", "size"),
        absent_windows=("absent", "sum"),
        expected=("expected", "sum"),
        received=("count", "sum"),
        peers=("peers", "median"),
    )
    table["expected"] = table["expected"].round().astype(int)
    table["lost"] = (table["expected"] - table["received"]).clip(lower=0)
    table["dead_letters"] = matched.groupby(KEYS).size().reindex(table.index, fill_value=0)
    table["unexplained"] = (table["lost"] - table["dead_letters"]).clip(lower=0)
    table["lost_share"] = (table["lost"] / table["expected"]).round(4)
    table["judged_by"] = np.where(table["peers"] >= MIN_PEERS, "peers", "own windows")
    table["reported_until"] = frame.groupby(KEYS)["window_end"].max()
    table = table.drop(columns="peers")
    return table.sort_values(["unexplained", "lost"], ascending=False)


def noteworthy_losses(losses: pd.DataFrame) -> pd.DataFrame:
    """The sensors that lost more than chance would: over two readings and over 1% of
    what they should have had."""
    return losses[(losses["lost"] > 2) & (losses["lost_share"] > 0.01)]
