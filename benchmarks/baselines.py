"""Two baselines, each feeding the main job's own dataflow (same parsing, same windows):

- ``classic``: the classic Bytewax SSE pattern: sseclient-py over a urllib3 response,
  one event per ``next_batch``.
- ``example``: Bytewax's current example pattern: aiohttp-sse-client's ``EventSource`` as
  an async generator, batched by ``bytewax.inputs.batch_async`` (0.25 s / 1000).

Run: ``BENCH_URL=... python -m bytewax.run "benchmarks.baselines:classic()"`` (or
``example()``). Only the source differs from ``dataflows.sensor_stats``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import sseclient
import urllib3
from aiohttp_sse_client.client import EventSource
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition, batch_async

from connectors.source import StreamItem
from connectors.sse import SSEEvent
from dataflows.config import load_config
from dataflows.sensor_stats import build_flow

STREAM = "bench"


def _url() -> str:
    return os.environ["BENCH_URL"]


class _ClassicPartition(StatefulSourcePartition[StreamItem, None]):
    def __init__(self) -> None:
        response = urllib3.PoolManager().request(
            "GET", _url(), preload_content=False, headers={"Accept": "text/event-stream"}
        )
        self._events: Iterator[Any] = iter(sseclient.SSEClient(response).events())

    def next_batch(self) -> list[StreamItem]:
        event = next(self._events)  # blocks; StopIteration at the end ends the partition
        return [(STREAM, SSEEvent(event.event, event.data, event.id or "", None))]

    def snapshot(self) -> None:
        return None


async def _sse_agen(url: str) -> AsyncIterator[StreamItem]:
    try:
        async with EventSource(url) as source:
            async for event in source:
                yield (
                    STREAM,
                    SSEEvent(event.type or "message", event.data, event.last_event_id or "", None),
                )
    except ConnectionAbortedError as exc:
        # EventSource reconnects when the body ends and raises on the 204 that follows:
        # the one change made to the pattern, so that the stream can end.
        if "204" not in str(exc):
            raise


class _ExamplePartition(StatefulSourcePartition[StreamItem, None]):
    def __init__(self) -> None:
        self._batcher = batch_async(_sse_agen(_url()), timedelta(seconds=0.25), 1000)

    def next_batch(self) -> list[StreamItem]:
        return next(self._batcher)

    def snapshot(self) -> None:
        return None


class _OnePartition(FixedPartitionedSource[StreamItem, None]):
    def __init__(self, kind: type[StatefulSourcePartition[StreamItem, None]]) -> None:
        self._kind = kind

    def list_parts(self) -> list[str]:
        return [STREAM]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> StatefulSourcePartition[StreamItem, None]:
        return self._kind()


def classic() -> Dataflow:
    return build_flow(load_config(), source=_OnePartition(_ClassicPartition))


def example() -> Dataflow:
    return build_flow(load_config(), source=_OnePartition(_ExamplePartition))
