"""Obelisk's Catalog API: the first phase of an Obelisk data stream, over GraphQL.

Obelisk streams are two-phased (https://obelisk.ilabt.imec.be/docs/guides/data_stream.html):
a stream is registered with the Catalog's ``createStream`` mutation at
``<obelisk>/api/v3/catalog/graphql``, then read with an authenticated GET of
``<obelisk>/api/v3/data/streams/<id>`` (``Accept: text/event-stream``). What this module
relies on, from Obelisk's schema (``pub-catalog-service/.../schemas``):

- ``createStream(input: CreateStreamInput!): StreamResponse!``, where the input has
  ``name``, ``dataRange: {datasets, metrics}`` (metrics as ``<name>::<type>``), ``fields``,
  ``timestampPrecision`` and ``filter``; a ``StreamResponse`` is ``{responseCode, message,
  item}`` and ``responseCode`` is ``SUCCESS`` or one of ``BAD_REQUEST``, ``NOT_FOUND``,
  ``NOT_AUTHORIZED``, ``SERVER_ERROR``.
- ``me { activeStreams(cursor, limit) { items {...} cursor } }``: the account's streams,
  a page at a time (``@paged``).
- ``onStream(id) { remove {responseCode message} }``: ends the stream's session and
  removes it (``endSession`` only disconnects a client).

Obelisk streams only the ``fields`` a stream was created with, and its default is
``metric, source, value``: no ``timestamp``. ``STREAM_FIELDS`` is what a reading needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import urllib3
from urllib3.exceptions import HTTPError

from connectors.sse.errors import SSEError
from connectors.sse.proxy import pool_manager, proxy_for
from connectors.sse.redact import Redactor
from connectors.sse.tokens import TokenEndpointUnavailable, TokenProvider

__all__ = [
    "CATALOG_PATH",
    "STREAMS_PATH",
    "STREAM_FIELDS",
    "TOKEN_PATH",
    "CatalogStream",
    "ObeliskCatalog",
    "ObeliskCatalogError",
]

CATALOG_PATH = "/api/v3/catalog/graphql"
STREAMS_PATH = "/api/v3/data/streams"
TOKEN_PATH = "/api/v3/auth/token"
# What a reading is made of; Obelisk's own default leaves out the timestamp.
STREAM_FIELDS = ("timestamp", "dataset", "metric", "source", "value")
# Obelisk writes timestamps in the unit the stream was created with; readings take ms.
STREAM_PRECISION = "MILLISECONDS"
_PAGE = 100
_ANSWER_BYTES = 4 << 20
_STREAM_FIELDS = """id name timestampPrecision fields filter clientConnected
    dataRange { datasets { id } metrics }"""
_CREATE = f"""mutation CreateStream($input: CreateStreamInput!) {{
  createStream(input: $input) {{ responseCode message item {{ {_STREAM_FIELDS} }} }}
}}"""
_LIST = f"""query ActiveStreams($cursor: String, $limit: Int) {{
  me {{ activeStreams(cursor: $cursor, limit: $limit) {{
    items {{ {_STREAM_FIELDS} }} cursor }} }}
}}"""
_REMOVE = """mutation RemoveStream($id: String!) {
  onStream(id: $id) { remove { responseCode message } }
}"""


class ObeliskCatalogError(SSEError):
    """The Catalog refused (a ``responseCode`` other than ``SUCCESS``, a GraphQL error)
    or could not be reached; the message says which, with the Catalog's own words.
    ``transient``: unreachable or overloaded (429, 5xx), so trying again may help."""

    def __init__(
        self, message: str, *, response_code: str | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.response_code = response_code
        self.transient = transient


@dataclass(frozen=True)
class CatalogStream:
    """One of the account's data streams, as the Catalog describes it."""

    id: str
    name: str
    datasets: tuple[str, ...]
    metrics: tuple[str, ...]
    fields: tuple[str, ...] = STREAM_FIELDS
    timestamp_precision: str = STREAM_PRECISION
    filter: Any = field(default=None, compare=False)
    client_connected: bool = False

    def unfit(self) -> list[str]:
        """Why a job cannot make readings of what this stream sends (empty: it can)."""
        reasons = []
        missing = [name for name in STREAM_FIELDS if name not in self.fields]
        if missing:
            reasons.append(f"it leaves out the field(s) {', '.join(missing)}")
        if self.timestamp_precision != STREAM_PRECISION:
            reasons.append(
                f"its timestamps are in {self.timestamp_precision}, not {STREAM_PRECISION}"
            )
        return reasons


def _stream_of(item: Mapping[str, Any]) -> CatalogStream:
    data_range = item.get("dataRange") or {}
    return CatalogStream(
        id=str(item["id"]),
        name=str(item.get("name") or ""),
        datasets=tuple(str(d["id"]) for d in data_range.get("datasets") or ()),
        metrics=tuple(str(m) for m in data_range.get("metrics") or () if m is not None),
        fields=tuple(str(f) for f in item.get("fields") or ()),
        timestamp_precision=str(item.get("timestampPrecision") or ""),
        filter=item.get("filter"),
        client_connected=bool(item.get("clientConnected")),
    )


class ObeliskCatalog:
    """A client of one Obelisk's Catalog API, authenticated by ``tokens``.

    ``base_url`` is the Obelisk's root (``https://obelisk.ilabt.imec.be``); requests go
    through ``proxy`` (or the environment's, as curl reads it, unless ``trust_env`` is
    False), with the same TLS trust as the stream.
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        ca_certs: str | None = None,
        verify: bool = True,
        timeout: float = 10.0,
        proxy: str | None = None,
        trust_env: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + CATALOG_PATH
        self._tokens = tokens
        self._proxy = proxy_for(self.url, proxy, os.environ if trust_env else {})
        self._pool = pool_manager(
            self.url, self._proxy, verify=verify, ca_certs=ca_certs, num_pools=1, maxsize=1
        )
        self._timeout = urllib3.Timeout(connect=timeout, read=timeout)

    def __repr__(self) -> str:
        return f"ObeliskCatalog({self.base_url!r})"

    def stream_url(self, stream_id: str) -> str:
        """Where a stream is read. ``receiveBacklog=true``: a reconnect goes on from the
        stream's last acknowledged event, where without it Obelisk skips to its newest
        and the events sent while the client was away are never seen."""
        return f"{self.base_url}{STREAMS_PATH}/{quote(stream_id, safe='')}?receiveBacklog=true"

    def create_stream(
        self,
        name: str,
        datasets: Sequence[str],
        metrics: Sequence[str] = (),
        filter: Any = None,
    ) -> CatalogStream:
        """``createStream`` with the fields and precision readings need."""
        data_range: dict[str, Any] = {"datasets": list(datasets)}
        if metrics:
            data_range["metrics"] = list(metrics)
        stream_input: dict[str, Any] = {
            "name": name,
            "dataRange": data_range,
            "fields": list(STREAM_FIELDS),
            "timestampPrecision": STREAM_PRECISION,
        }
        if filter is not None:
            stream_input["filter"] = filter
        answer = self._run(_CREATE, {"input": stream_input})
        response = self._response(answer, "createStream", f"createStream {name!r}")
        item = response.get("item")
        if not isinstance(item, dict):
            raise ObeliskCatalogError(f"Obelisk catalog {self.url}: createStream gave no stream")
        return _stream_of(item)

    def active_streams(self) -> list[CatalogStream]:
        """Every stream of the account (``me.activeStreams``, page by page)."""
        streams: list[CatalogStream] = []
        cursor: str | None = None
        while True:
            answer = self._run(_LIST, {"cursor": cursor, "limit": _PAGE})
            page = ((answer.get("me") or {}).get("activeStreams")) or {}
            streams += [_stream_of(item) for item in page.get("items") or ()]
            cursor = page.get("cursor")
            if not cursor:
                return streams

    def find_stream(self, name: str) -> CatalogStream | None:
        """The account's stream called ``name``, if there is one."""
        return next((s for s in self.active_streams() if s.name == name), None)

    def remove_stream(self, stream_id: str) -> None:
        """``onStream(id).remove``: disconnects its client and removes the stream."""
        answer = self._run(_REMOVE, {"id": stream_id})
        self._response(answer.get("onStream") or {}, "remove", f"remove stream {stream_id!r}")

    # -- the request ------------------------------------------------------------------
    def _response(self, holder: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
        response = holder.get(key)
        if not isinstance(response, dict):
            raise ObeliskCatalogError(f"Obelisk catalog {self.url}: {what} gave no answer")
        code = response.get("responseCode")
        if code != "SUCCESS":
            message = response.get("message") or "no message"
            raise ObeliskCatalogError(
                f"Obelisk catalog refused to {what}: {code}: {message}", response_code=str(code)
            )
        return response

    def _run(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST one GraphQL operation; its ``data``, or an error naming the first problem.
        A refused token is fetched anew once, as a subscription does on 401."""
        body = orjson.dumps({"query": query, "variables": variables})
        for fresh in (False, True):
            status, answer = self._post(body, fresh)
            if status != 401:
                break
        redactor = self._redactor()
        if status != 200:
            text = " ".join(answer[:512].decode("utf-8", "replace").split())
            hint = "; check the client id and secret" if status in (401, 403) else ""
            raise ObeliskCatalogError(
                f"Obelisk catalog {self.url} answered HTTP {status}"
                + (f" ({redactor.text(text)!r})" if text else "")
                + hint,
                transient=status == 429 or status >= 500,
            )
        try:
            document = orjson.loads(answer)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ObeliskCatalogError(f"Obelisk catalog {self.url} answered with no JSON object")
        errors = document.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = first.get("message") if isinstance(first, dict) else first
            raise ObeliskCatalogError(f"Obelisk catalog {self.url}: {redactor.text(str(message))}")
        data = document.get("data")
        if not isinstance(data, dict):
            raise ObeliskCatalogError(f"Obelisk catalog {self.url} answered with no data")
        return data

    def _post(self, body: bytes, fresh: bool) -> tuple[int, bytes]:
        try:
            token = self._tokens.access_token(fresh=fresh).value
        except TokenEndpointUnavailable as exc:
            raise ObeliskCatalogError(f"Obelisk catalog: {exc}", transient=True) from None
        try:
            response = self._pool.request(
                "POST",
                self.url,
                body=body,
                headers={
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                    "Authorization": f"Bearer {token}",
                },
                retries=False,
                timeout=self._timeout,
                preload_content=False,
            )
            try:
                return response.status, response.read(_ANSWER_BYTES)
            finally:
                response.release_conn()
        except HTTPError as exc:
            reason = self._redactor(token).text(str(exc))
            raise ObeliskCatalogError(
                f"Obelisk catalog {self.url} could not be reached: {reason}", transient=True
            ) from None

    def _redactor(self, *more: str) -> Redactor:
        proxied = () if self._proxy is None else self._proxy.secrets()
        return Redactor([*self._tokens.secrets(), *proxied, *more])
