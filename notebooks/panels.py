"""What the notebooks' figures share: which series get a panel, the axis span of the usual
values and the tails beyond it, windows drawn as steps over the time they cover, and the
stream's breaks as lines or, past a handful, a rug of ticks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BREAK_LINES",
    "PANELS",
    "keys_to_draw",
    "mark_breaks",
    "tails",
    "usual_range",
    "window_steps",
]

# Panels drawn one per sensor at most: a fleet's thousands would be unreadable and slow.
PANELS = 12
# Breaks drawn as a line each up to this many; more would fence the panel off.
BREAK_LINES = 10


def keys_to_draw(
    keys: Iterable[tuple[str, str]],
    sensors: Iterable[str] | None = None,
    limit: int = PANELS,
    interest: Mapping[str, Iterable[str]] | None = None,
) -> list[tuple[str, str]]:
    """The (sensor_id, metric) pairs to draw a panel or a colour each for: those of
    ``sensors`` when given; else up to ``limit``, first the series of the sensors each
    reason of ``interest`` names (reason -> sensor ids, in the order given: an alert,
    say, before a loss), then the rest by id. Says what it drew and what it left out."""
    ordered = sorted(keys)
    if sensors is not None:
        wanted = set(sensors)
        picked = [key for key in ordered if key[0] in wanted]
        if len(picked) < len(ordered):
            print(f"Drawing {len(picked)} of {len(ordered)} sensor series: those of SENSORS.")
        return picked
    reasons = {reason: set(named) for reason, named in (interest or {}).items()}
    # Each drawn key and why, in the order drawn: reason by reason, each by id.
    why: dict[tuple[str, str], str] = {}
    for reason, chosen in reasons.items():
        for key in ordered:
            if key[0] in chosen and key not in why and len(why) < limit:
                why[key] = reason
    for key in ordered:
        if len(why) >= limit:
            break
        why.setdefault(key, "the first by id")
    left_out = {
        reason: sum(1 for key in ordered if key[0] in chosen and key not in why)
        for reason, chosen in reasons.items()
    }
    if len(why) < len(ordered):
        counts = pd.Series(why).value_counts(sort=False)
        drawn = ", ".join(f"{n} {reason}" for reason, n in counts.items())
        missed = ", ".join(f"{n} more {reason}" for reason, n in left_out.items() if n)
        print(
            f"Drawing {len(why)} of {len(ordered)} sensor series ({drawn})"
            + (f"; not drawn: {missed}" if missed else "")
            + ": set SENSORS to choose."
        )
    return list(why)


def usual_range(values: pd.Series, fences: float = 3.0) -> tuple[float, float]:
    """The span of the usual values: ``fences`` interquartile ranges beyond the quartiles
    (Tukey's far-out fences), within the values' own range, so an axis set to it is not
    squeezed by a few outliers. All the values when they have no spread."""
    q1, q3 = values.quantile([0.25, 0.75])
    spread = fences * (q3 - q1)
    low, high = max(values.min(), q1 - spread), min(values.max(), q3 + spread)
    if high <= low:
        low, high = values.min(), values.max()
    if high <= low:  # every value the same: a span around it
        low, high = low - 0.5, high + 0.5
    return float(low), float(high)


def tails(values: pd.Series, low: float, high: float, sep: str = "; ") -> str:
    """The values beyond ``[low, high]``, each tail counted apart with its extreme:
    "3 below, lowest -4.1; 1 above, highest 9.2" ("" when there are none)."""
    below, above = values[values < low], values[values > high]
    parts = []
    if len(below):
        parts.append(f"{len(below)} below, lowest {below.min():.3g}")
    if len(above):
        parts.append(f"{len(above)} above, highest {above.max():.3g}")
    return sep.join(parts)


def window_steps(
    starts: pd.Series, ends: pd.Series, *columns: pd.Series
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Windows as steps over the time each covers, for ``plot`` and ``fill_between``: a
    window's value holds from its start (or the previous window's end, when windows
    slide and overlap) to its end, and the line breaks where no window covers the time.
    A line through window starts would turn a flat two-second spike into a triangle.
    Returns the x values and, for each column, its y values (NaN at the breaks)."""
    begin = starts.to_numpy()
    finish = ends.to_numpy()
    values = [column.to_numpy(dtype=float) for column in columns]
    if not len(begin):
        return finish, values
    previous = np.concatenate([begin[:1], finish[:-1]])
    left = np.maximum(begin, previous)
    gap = begin > previous
    # Each window gives two points (its left and its end); a gap before it adds a third,
    # at the previous end with NaN, where the line stops.
    x: list[Any] = []
    ys: list[list[float]] = [[] for _ in values]
    for i in range(len(begin)):
        if gap[i]:
            x.append(previous[i])
            for y in ys:
                y.append(np.nan)
        x.extend((left[i], finish[i]))
        for y, column in zip(ys, values, strict=True):
            y.extend((column[i], column[i]))
    return np.array(x, dtype=finish.dtype), [np.array(y) for y in ys]


def mark_breaks(ax: Any, moments: pd.Series, label: str = "stream broke") -> None:
    """The stream's breaks on a time axis: a dashed line each up to ``BREAK_LINES``,
    else a rug of ticks along the bottom, so a flapping stream does not fence the data."""
    moments = moments.dropna()
    if len(moments) <= BREAK_LINES:
        for n, moment in enumerate(moments):
            ax.axvline(
                moment,
                color="tab:red",
                linestyle="--",
                linewidth=1,
                label=label if n == 0 else None,
            )
        return
    ax.plot(
        moments,
        np.zeros(len(moments)),
        "|",
        color="tab:red",
        markersize=12,
        transform=ax.get_xaxis_transform(),
        clip_on=False,
        label=f"{label} ({len(moments)}, ticks)",
    )
