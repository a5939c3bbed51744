"""Alert rules from a TOML file: one table per metric, validated with file and line in errors.

```toml
[temperature]
high = 30.0          # raise after `raise_after` consecutive readings above
low = 5.0            # ... or below
raise_after = 3
clear_after = 2      # clear after this many consecutive readings back inside
rate_limit = 0.5     # units per second, measured over at least `rate_span`
rate_span = "10s"    # (default 0s: between consecutive readings)
silence = "60s"      # no reading from a sensor for this long (event time)
stuck = "5m"         # the same value, reading after reading, for this long (event time)
```
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from dataflows.config import ConfigError, parse_duration

__all__ = ["MetricRules", "RulesError", "load_rules"]


class RulesError(ConfigError):
    """The rules file is wrong; the message gives the file, the line and what to change."""


@dataclass(frozen=True)
class MetricRules:
    high: float | None = None
    low: float | None = None
    raise_after: int = 1
    clear_after: int = 1
    rate_limit: float | None = None
    rate_span: timedelta = timedelta(0)
    silence: timedelta | None = None
    stuck: timedelta | None = None


_NUMBERS = ("high", "low", "rate_limit")
_COUNTS = ("raise_after", "clear_after")
_DURATIONS = ("rate_span", "silence", "stuck")
_KEYS = (*_NUMBERS, *_COUNTS, *_DURATIONS)


def _line_of(text: str, table: str, key: str | None) -> int | None:
    """Where ``[table]`` (or ``key`` inside it) is written; tomllib keeps no positions."""
    current = None
    header = re.compile(r"^\s*\[\s*(?:\"([^\"]+)\"|'([^']+)'|([^\]\s]+))\s*\]")
    for number, line in enumerate(text.splitlines(), start=1):
        match = header.match(line)
        if match:
            current = next(g for g in match.groups() if g is not None)
            if key is None and current == table:
                return number
            continue
        if (
            current == table
            and key is not None
            and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line)
        ):
            return number
    return None


def load_rules(path: Path) -> dict[str, MetricRules]:
    """Read and check a rules file; raises RulesError naming the file, line and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(
            f"{path}: cannot read the rules file ({exc.strerror}); set ALERT_RULES"
        ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from None

    def fail(table: str, key: str | None, problem: str) -> RulesError:
        line = _line_of(text, table, key)
        where = f"{path}, line {line}" if line else str(path)
        what = f"[{table}] {key}" if key else f"[{table}]"
        return RulesError(f"{where}: {what}: {problem}")

    rules: dict[str, MetricRules] = {}
    for metric, table in document.items():
        if not isinstance(table, dict):
            raise fail(
                metric, None, "expected a table of rules for this metric, like [temperature]"
            )
        rules[metric] = _metric_rules(metric, table, fail)
    if not rules:
        raise RulesError(
            f"{path}: no rules: add a table per metric, like [temperature] with high = 30"
        )
    return rules


def _metric_rules(metric: str, table: dict[str, Any], fail: Any) -> MetricRules:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise fail(metric, key, f"unknown rule; use {', '.join(_KEYS)}")
        if key in _NUMBERS:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise fail(metric, key, f"must be a number, got {value!r}")
            if key == "rate_limit" and value <= 0:
                raise fail(metric, key, f"must be above 0 units per second, got {value!r}")
            values[key] = float(value)
        elif key in _COUNTS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise fail(
                    metric, key, f"must be a whole number of readings, at least 1, got {value!r}"
                )
            values[key] = value
        else:
            try:
                duration = parse_duration(str(value))
            except ValueError as exc:
                raise fail(metric, key, str(exc)) from None
            if duration <= timedelta(0) and key != "rate_span":
                raise fail(metric, key, f"must be longer than 0, got {value!r}")
            values[key] = duration
    high, low = values.get("high"), values.get("low")
    if high is not None and low is not None and low >= high:
        raise fail(metric, "low", f"low ({low:g}) must be below high ({high:g})")
    if "rate_span" in values and "rate_limit" not in values:
        raise fail(metric, "rate_span", "applies to rate_limit, which is not set")
    if not any(k in values for k in ("high", "low", "rate_limit", "silence", "stuck")):
        raise fail(metric, None, "no rule: give high, low, rate_limit, silence or stuck")
    return MetricRules(**values)
