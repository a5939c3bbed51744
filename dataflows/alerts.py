"""Rule-driven alerts: one JSON line per change of alert state.

Run: ``python -m bytewax.run dataflows.alerts`` with ``ALERT_RULES`` naming a TOML rules
file (default: ``dataflows/alert_rules.toml``). Alerts go to stdout, or with OUTPUT a
directory to hourly part files under ``OUTPUT/alerts/`` (by alert time).

All readings meet in one stateful step: silence is judged against the whole stream's
event time, which no per-sensor step can see.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulBatchLogic

from dataflows.alert_engine import Alert, AlertEngine, EngineState
from dataflows.alert_rules import MetricRules, load_rules
from dataflows.config import JobConfig, load_alert_config, load_config
from dataflows.outputs import write_dead_letters, write_records
from dataflows.pipeline import read_stream
from dataflows.readings import Reading
from dataflows.run_stats import RunStats
from dataflows.runtime import job_flow, start_job

__all__ = ["build_flow"]


class _AlertLogic(StatefulBatchLogic[Reading, Alert, EngineState]):
    def __init__(self, rules: dict[str, MetricRules], state: EngineState | None) -> None:
        self._engine = AlertEngine(rules, state)
        # Wall time of the newest arrival; a restart counts as one.
        self._last_arrival = datetime.now(UTC)

    def on_batch(self, values: list[Reading]) -> tuple[list[Alert], bool]:
        self._last_arrival = datetime.now(UTC)
        engine = self._engine
        return [alert for reading in values for alert in engine.observe(reading)], self.RETAIN

    def on_notify(self) -> tuple[list[Alert], bool]:
        return self._engine.stream_quiet(datetime.now(UTC) - self._last_arrival), self.RETAIN

    def notify_at(self) -> datetime | None:
        wait = self._engine.next_quiet_check()
        return None if wait is None else self._last_arrival + wait

    def snapshot(self) -> EngineState:
        return self._engine.state


def _one_key(reading: Reading) -> str:
    return "all"


def _record(item: tuple[str, Alert]) -> dict[str, Any]:
    return item[1].to_record()


def build_flow(
    job: JobConfig, rules: dict[str, MetricRules], stats: RunStats | None = None
) -> Dataflow:
    stats = stats or RunStats("alerts")
    flow = Dataflow("alerts")
    readings, dead = read_stream(flow, job, stats)
    together = op.key_on("together", readings, _one_key)
    alerts = op.stateful_batch("alerts", together, partial(_AlertLogic, rules))
    records = op.map("record", alerts, _record)
    settle = job.window.lateness + (job.window.idle_close or timedelta(0))
    write_records(
        "alerts_out", records, "alerts", job.output, stats, time_field="ts", settle=settle
    )
    write_dead_letters(dead, job.output, stats, settle=settle)
    return flow


def _main_flow() -> Dataflow:
    stats, (job, rules) = start_job("alerts", _settings)
    return build_flow(job, rules, stats)


def _settings() -> tuple[JobConfig, dict[str, MetricRules]]:
    return load_config(), load_rules(load_alert_config().rules)


__getattr__ = job_flow(__name__, _main_flow)
