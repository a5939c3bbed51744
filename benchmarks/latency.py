"""The main job's dataflow with its SSE source timed: when does an event enter the dataflow?

``BENCH_URL=... BENCH_LATENCY_FILE=... python -m bytewax.run "benchmarks.latency:flow()"``
runs ``sensor_stats``' own dataflow and source. As each batch leaves ``next_batch`` (the
moment Bytewax has the items) it records, per event, now minus the wall-clock time the
server stamped in the event's ``ts`` when it wrote it, and writes the delays (ms) to
``BENCH_LATENCY_FILE`` as JSON when the stream ends. Window records go to stdout as
usual, where the runner times their arrival against each window's end.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.source import StreamItem
from connectors.sse import SSEEvent
from dataflows.config import load_config
from dataflows.pipeline import sse_source
from dataflows.run_stats import RunStats
from dataflows.sensor_stats import build_flow


class _TimedPartition(StatefulSourcePartition[StreamItem, Any]):
    def __init__(self, inner: StatefulSourcePartition[StreamItem, Any], path: str) -> None:
        self._inner = inner
        self._path = path
        self._delays_ms: list[float] = []

    def next_batch(self) -> list[StreamItem]:
        items = list(self._inner.next_batch())
        now_ms = time.time() * 1000
        for _, event in items:
            if isinstance(event, SSEEvent):
                self._delays_ms.append(now_ms - orjson.loads(event.data)["ts"])
        return items

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()
        with open(self._path, "w") as out:
            json.dump(self._delays_ms, out)


class _TimedSource(FixedPartitionedSource[StreamItem, Any]):
    def __init__(self, inner: FixedPartitionedSource[StreamItem, Any], path: str) -> None:
        self._inner = inner
        self._path = path

    def list_parts(self) -> list[str]:
        return self._inner.list_parts()

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any
    ) -> StatefulSourcePartition[StreamItem, Any]:
        return _TimedPartition(self._inner.build_part(step_id, for_part, resume_state), self._path)


def flow() -> Dataflow:
    job = load_config()
    stats = RunStats("latency")
    source = _TimedSource(sse_source(job, stats), os.environ["BENCH_LATENCY_FILE"])
    return build_flow(job, stats, source)
