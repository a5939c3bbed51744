"""The simulator's Obelisk: the Catalog's stream operations over GraphQL, and the streams.

Modelled on Obelisk's own schema and streaming service (github idlab-discover/obelisk,
``pub-catalog-service`` and ``pub-streaming-service``):

- ``createStream``, ``me.activeStreams`` (paged) and ``me.activeStream(id)``, and
  ``onStream(id) { endSession remove }``, answered by graphql-core from a schema with
  Obelisk's type names, so the documents a client sends are validated as Obelisk would.
- A stream sends only the ``fields`` it was created with (Obelisk's default: ``metric``,
  ``source`` and ``value``), timestamps in its ``timestampPrecision``, and only the
  events of its datasets and metrics (``<name>::<type>``, ``*::number`` for all numbers).
- Each stream is a durable subscription: ``receiveBacklog=true`` goes on from the last
  acknowledged event (``ack_lag`` events behind the last sent, redelivered), without it
  from the newest. A new connection replaces the stream's current one; ``remove`` ends it.
- An account has at most ``max_streams`` streams.
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphql import GraphQLSchema

__all__ = ["OBELISK_DEFAULT_FIELDS", "ObeliskCatalog", "ObeliskConfig", "ObeliskStream"]

OBELISK_DEFAULT_FIELDS = ("metric", "source", "value")
_PRECISION_MS = {"SECONDS": 1000, "MILLISECONDS": 1, "MICROSECONDS": 0.001}
# Obelisk's heartbeat: a line of an unknown field, which SSE clients ignore.
HEARTBEAT = b"comment: heartbeat\n\n"
# Obelisk opens each stream with a comment of 512 spaces (against proxy buffering).
PREAMBLE = b":" + b" " * 512 + b"\n\n"
REPLACED = (
    b"comment: An error occurred: The stream was closed using the API or has been "
    b"replaced with a new session.\n\n"
)

_SDL = """
scalar JSON
enum ResponseCode { SUCCESS, BAD_REQUEST, NOT_FOUND, NOT_AUTHORIZED, SERVER_ERROR }
enum EventField {
  timestamp, dataset, metric, producer, source, value, tags, location, geohash,
  elevation, tsReceived
}
enum TimestampPrecision { SECONDS, MILLISECONDS, MICROSECONDS }
type Dataset { id: String!, name: String }
type DataRange { datasets: [Dataset!]!, metrics: [String] }
input DataRangeInput { datasets: [String!], metrics: [String] }
type DataStream {
  id: String!, name: String, dataRange: DataRange!,
  timestampPrecision: TimestampPrecision!, fields: [EventField!]!, filter: JSON!,
  clientConnected: Boolean!
}
type DataStreamPage { items: [DataStream!]!, cursor: String, count: Int }
type StreamResponse { responseCode: ResponseCode!, message: String, item: DataStream }
type StreamMutation { endSession: StreamResponse!, remove: StreamResponse! }
input CreateStreamInput {
  name: String, dataRange: DataRangeInput!,
  timestampPrecision: TimestampPrecision = MILLISECONDS, fields: [EventField!], filter: JSON
}
type User {
  id: String!, activeStream(id: String!): DataStream,
  activeStreams(cursor: String, limit: Int): DataStreamPage!
}
type Query { me: User! }
type Mutation {
  createStream(input: CreateStreamInput!): StreamResponse!
  onStream(id: String!): StreamMutation!
}
"""


@dataclass(frozen=True)
class ObeliskConfig:
    """The account: the datasets it may read (None: every dataset the sequence has),
    how many streams it may have, and how far the acknowledgements trail the events sent."""

    datasets: tuple[str, ...] | None = None
    max_streams: int = 3
    ack_lag: int = 0


@dataclass
class ObeliskStream:
    """A registered stream and its durable subscription."""

    id: str
    name: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    fields: tuple[str, ...]
    precision: str
    filter: Any
    ack_lag: int
    # The next event the subscription gives; the recent ones sent, for the lag.
    position: int = 0
    recent: deque[int] = field(default_factory=deque)
    next_unsent: int = 0
    session: int = 0
    connected: bool = False
    removed: bool = False

    def wants(self, event: dict[str, Any]) -> bool:
        """Whether a metric event is in this stream's datasets and metrics."""
        if event["dataset"] not in self.datasets:
            return False
        metric = event["metric"]
        kind = metric.partition("::")[2]
        return not self.metrics or any(
            m == metric or (m.startswith("*::") and m[3:] == kind) for m in self.metrics
        )

    def body(self, event: dict[str, Any]) -> dict[str, Any]:
        """The event as this stream sends it: its fields, its timestamp unit."""
        shown = {k: v for k, v in event.items() if k in self.fields}
        if "timestamp" in shown:
            unit = _PRECISION_MS[self.precision]
            shown["timestamp"] = int(event["timestamp"] / unit)
        return shown

    def acknowledge(self, ids: list[int]) -> None:
        """Events written; the subscription's position trails them by ``ack_lag``."""
        self.recent.extend(ids)
        self.next_unsent = ids[-1] + 1
        while len(self.recent) > self.ack_lag:
            self.position = self.recent.popleft() + 1

    def acknowledge_all(self) -> None:
        self.recent.clear()
        self.position = max(self.position, self.next_unsent)

    def connect(self, backlog: bool) -> tuple[int, int]:
        """A new session: (its number, the first event it gets)."""
        self.session += 1
        self.connected = True
        if not backlog:  # Obelisk seeks to the newest: the unacknowledged are skipped
            self.position = max(self.position, self.next_unsent)
        self.recent.clear()  # the events after the position come again
        return self.session, self.position

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "dataRange": {"datasets": [{"id": d} for d in self.datasets], "metrics": self.metrics},
            "timestampPrecision": self.precision,
            "fields": list(self.fields),
            "filter": self.filter if self.filter is not None else {},
            "clientConnected": self.connected,
        }


def _response(code: str, message: str | None = None, item: Any = None) -> dict[str, Any]:
    return {"responseCode": code, "message": message, "item": item}


class ObeliskCatalog:
    """The Catalog's state and GraphQL endpoint; thread-safe."""

    def __init__(self, config: ObeliskConfig, datasets: tuple[str, ...]) -> None:
        self.config = config
        self.datasets = config.datasets if config.datasets is not None else datasets
        self._lock = threading.Lock()
        self._streams: dict[str, ObeliskStream] = {}
        self.operations: list[str] = []
        self._schema = self._build()

    def stream(self, stream_id: str) -> ObeliskStream | None:
        with self._lock:
            return self._streams.get(stream_id)

    @property
    def streams(self) -> list[ObeliskStream]:
        with self._lock:
            return list(self._streams.values())

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def execute(self, document: Any) -> dict[str, Any]:
        """A GraphQL request body (``query``, ``variables``) to its JSON answer."""
        if not isinstance(document, dict) or not isinstance(document.get("query"), str):
            return {"errors": [{"message": "a GraphQL request needs a 'query' string"}]}
        from graphql import graphql_sync

        variables = document.get("variables")
        result = graphql_sync(
            self._schema,
            document["query"],
            variable_values=variables if isinstance(variables, dict) else None,
            operation_name=document.get("operationName"),
        )
        return dict(result.formatted)

    # -- resolvers --------------------------------------------------------------------
    def _build(self) -> GraphQLSchema:
        # Imported here: every job imports the simulator (for its demo), few serve Obelisk.
        from graphql import GraphQLObjectType, build_schema

        schema = build_schema(_SDL)
        resolvers = {
            ("Query", "me"): lambda *_: {"id": "sensorwax-simulator"},
            ("User", "activeStreams"): self._active_streams,
            ("User", "activeStream"): self._active_stream,
            ("Mutation", "createStream"): self._create,
            ("Mutation", "onStream"): lambda _source, _info, id: {"id": id},
            ("StreamMutation", "endSession"): self._end_session,
            ("StreamMutation", "remove"): self._remove,
        }
        for (type_name, field_name), resolve in resolvers.items():
            owner = schema.type_map[type_name]
            assert isinstance(owner, GraphQLObjectType)
            owner.fields[field_name].resolve = resolve
        return schema

    def _active_streams(
        self, _source: Any, _info: Any, cursor: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        self.operations.append("activeStreams")
        with self._lock:
            streams = [s.describe() for s in self._streams.values()]
        start = int(cursor) if cursor and cursor.isdigit() else 0
        size = limit if limit and limit > 0 else 25
        page = streams[start : start + size]
        more = start + size < len(streams)
        return {"items": page, "cursor": str(start + size) if more else None, "count": len(streams)}

    def _active_stream(self, _source: Any, _info: Any, id: str) -> dict[str, Any] | None:
        found = self.stream(id)
        return found.describe() if found is not None else None

    def _create(self, _source: Any, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        self.operations.append("createStream")
        data_range = input.get("dataRange") or {}
        datasets = tuple(data_range.get("datasets") or ())
        if not datasets:
            return _response("BAD_REQUEST", "A stream needs at least one dataset in its dataRange")
        unknown = [d for d in datasets if d not in self.datasets]
        if unknown:
            return _response("NOT_AUTHORIZED", f"No permission to access dataset {unknown[0]}")
        metrics = tuple(m for m in data_range.get("metrics") or () if m)
        for metric in metrics:
            name, sep, kind = metric.partition("::")
            if not sep or not name or not kind:
                return _response("BAD_REQUEST", f"Metric {metric!r} is not '<name>::<type>'")
        with self._lock:
            if len(self._streams) >= self.config.max_streams:
                return _response(
                    "BAD_REQUEST",
                    f"Maximum number of active streams reached ({self.config.max_streams})",
                )
            stream = ObeliskStream(
                id=secrets.token_hex(12),
                name=input.get("name") or "",
                datasets=datasets,
                metrics=metrics,
                fields=tuple(input.get("fields") or OBELISK_DEFAULT_FIELDS),
                precision=input.get("timestampPrecision") or "MILLISECONDS",
                filter=input.get("filter"),
                ack_lag=self.config.ack_lag,
            )
            self._streams[stream.id] = stream
            return _response("SUCCESS", None, stream.describe())

    def _end_session(self, source: dict[str, Any], _info: Any) -> dict[str, Any]:
        with self._lock:
            stream = self._streams.get(source["id"])
            if stream is None:
                return _response("NOT_FOUND", f"Stream {source['id']} not found")
            stream.session += 1
            return _response("SUCCESS", None, stream.describe())

    def _remove(self, source: dict[str, Any], _info: Any) -> dict[str, Any]:
        self.operations.append("remove")
        with self._lock:
            stream = self._streams.pop(source["id"], None)
            if stream is None:
                return _response("NOT_FOUND", f"Stream {source['id']} not found")
            stream.session += 1
            stream.removed = True
            return _response("SUCCESS", None, stream.describe())
