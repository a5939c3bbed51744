"""Per-window features of one (sensor, metric), folded one reading at a time in time order.

count, mean, sample std (ddof=1, as pandas), min, max, first, last, least-squares slope
(units per second), an exponentially weighted mean (pandas ``ewm(span).mean()``,
``adjust=True``) and the z-score of the last reading against the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from dataflows.readings import Reading

__all__ = ["FEATURE_COLUMNS", "FeatureState", "add_to_features", "feature_values", "new_features"]

FEATURE_COLUMNS = (
    "count",
    "mean",
    "std",
    "min",
    "max",
    "first",
    "last",
    "slope",
    "ewma",
    "zscore",
)


@dataclass
class FeatureState:
    decay: float  # 1 - alpha of the EWMA
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # Welford's sum of squared deviations
    minimum: float = math.inf
    maximum: float = -math.inf
    first: float = math.nan
    last: float = math.nan
    # Time origin for the slope sums: the first reading. Offsets are taken between
    # datetimes, since epoch seconds as a float keep only about 0.2 µs.
    t0: datetime | None = None
    sum_t: float = 0.0
    sum_tt: float = 0.0
    sum_tx: float = 0.0
    ewm_num: float = 0.0
    ewm_den: float = 0.0


def new_features(span: float) -> FeatureState:
    return FeatureState(decay=1.0 - 2.0 / (span + 1.0))


def add_to_features(state: FeatureState, reading: Reading) -> FeatureState:
    x = reading.value
    if state.t0 is None:
        state.first = x
        state.t0 = reading.ts
    state.count += 1
    delta = x - state.mean
    state.mean += delta / state.count
    state.m2 += delta * (x - state.mean)
    state.minimum = min(state.minimum, x)
    state.maximum = max(state.maximum, x)
    state.last = x
    t = (reading.ts - state.t0).total_seconds()
    state.sum_t += t
    state.sum_tt += t * t
    state.sum_tx += t * x
    state.ewm_num = x + state.decay * state.ewm_num
    state.ewm_den = 1.0 + state.decay * state.ewm_den
    return state


def feature_values(state: FeatureState) -> dict[str, float | int | None]:
    """The feature row's values; None where a feature is undefined (one reading, no spread)."""
    n = state.count
    std = math.sqrt(state.m2 / (n - 1)) if n > 1 else None
    # Least squares over (t, x): cov(t, x) / var(t), from sums around the window mean.
    sxx_t = state.sum_tt - state.sum_t * state.sum_t / n
    sum_x = state.mean * n
    sxy = state.sum_tx - state.sum_t * sum_x / n
    slope = sxy / sxx_t if n > 1 and sxx_t > 0 else None
    zscore = (state.last - state.mean) / std if std else None
    return {
        "count": n,
        "mean": state.mean,
        "std": std,
        "min": state.minimum,
        "max": state.maximum,
        "first": state.first,
        "last": state.last,
        "slope": slope,
        "ewma": state.ewm_num / state.ewm_den,
        "zscore": zscore,
    }
