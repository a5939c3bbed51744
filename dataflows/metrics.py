"""The job's Prometheus metrics, served on Bytewax's own endpoint beside its step metrics.

``python -m bytewax.run`` with ``BYTEWAX_DATAFLOW_API_ENABLED=true`` serves
``:BYTEWAX_DATAFLOW_API_PORT/metrics`` (3030): Bytewax's step histograms, then everything
in ``prometheus_client``'s default registry. The job registers one collector there, once
per process, which reads ``RunStats`` when scraped: nothing is counted per event.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dataflows.run_stats import RunStats

__all__ = ["JobMetrics", "register"]

_registered: list[JobMetrics] = []


class JobMetrics(Collector):
    """``sensorwax_*`` metrics from a job's ``RunStats``; ``stream`` is the redacted URL."""

    def __init__(self, stats: RunStats) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        now = self._stats.now()
        per_stream: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "events": CounterMetricFamily(
                "sensorwax_sse_events", "SSE events received", labels=["stream"]
            ),
            "bytes": CounterMetricFamily(
                "sensorwax_sse_bytes", "Bytes of stream received", labels=["stream"]
            ),
            "reconnects": CounterMetricFamily(
                "sensorwax_sse_reconnects", "Reconnects, for any reason", labels=["stream"]
            ),
            "token_fetches": CounterMetricFamily(
                "sensorwax_sse_token_refreshes",
                "Access tokens fetched from the OAuth2 token endpoint",
                labels=["stream"],
            ),
            "connected": GaugeMetricFamily(
                "sensorwax_sse_connected",
                "1 while a response is being read, else 0",
                labels=["stream"],
            ),
        }
        lag = GaugeMetricFamily(
            "sensorwax_event_lag_seconds",
            "Wall clock minus the timestamp of the newest reading from the stream",
            labels=["stream"],
        )
        for stream in now.streams:
            for name, family in per_stream.items():
                family.add_metric([stream.url], float(getattr(stream, name)))
            if stream.lag is not None:
                lag.add_metric([stream.url], stream.lag)
        yield from per_stream.values()
        yield lag
        yield CounterMetricFamily("sensorwax_readings", "Readings parsed", value=now.readings)
        dead = CounterMetricFamily(
            "sensorwax_dead_letters", "Dead letters, by reason", labels=["reason"]
        )
        for reason, count in sorted(now.dead_letters.items()):
            dead.add_metric([reason], count)
        yield dead
        records = CounterMetricFamily(
            "sensorwax_records", "Records written, by output", labels=["output"]
        )
        for output, count in sorted(now.records.items()):
            records.add_metric([output], count)
        yield records
        yield GaugeMetricFamily(
            "sensorwax_open_windows", "Windows opened and not written yet", value=now.open_windows
        )


def register(stats: RunStats) -> None:
    """Put the job's metrics in the default registry (once per process: it is global)."""
    if _registered:
        return
    metrics = JobMetrics(stats)
    REGISTRY.register(metrics)
    _registered.append(metrics)
