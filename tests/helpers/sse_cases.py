"""The WHATWG parsing rules as cases: a name, a stream, and the events it must give."""

from __future__ import annotations

from connectors.sse import SSEEvent

__all__ = ["RULES"]

RULES: list[tuple[str, bytes, list[SSEEvent]]] = [
    ("plain", b"data: a\n\n", [SSEEvent("message", "a")]),
    ("leading BOM stripped once", b"\xef\xbb\xbfdata: a\n\n", [SSEEvent("message", "a")]),
    (
        "second BOM is part of the field name",
        b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\ndata: b\n\n",
        [SSEEvent("message", "b")],
    ),
    ("CRLF", b"data: a\r\n\r\n", [SSEEvent("message", "a")]),
    ("CR", b"data: a\r\rdata: b\r\r", [SSEEvent("message", "a"), SSEEvent("message", "b")]),
    (
        "LF then CRLF",
        b"data: a\n\r\ndata: b\r\n\n",
        [SSEEvent("message", "a"), SSEEvent("message", "b")],
    ),
    ("mixed", b"data: a\rdata: b\r\ndata: c\n\r", [SSEEvent("message", "a\nb\nc")]),
    ("comment", b": hi\ndata: a\n:\n\n", [SSEEvent("message", "a")]),
    ("field with no colon", b"data\n\n", [SSEEvent("message", "")]),
    ("one space removed", b"data:  a \n\n", [SSEEvent("message", " a ")]),
    ("no space", b"data:a\n\n", [SSEEvent("message", "a")]),
    ("multi-line data", b"data: a\ndata:\ndata: b\n\n", [SSEEvent("message", "a\n\nb")]),
    ("colon in value", b"data: a:b: c\n\n", [SSEEvent("message", "a:b: c")]),
    (
        "id persists",
        b"id: 1\ndata: a\n\ndata: b\n\n",
        [SSEEvent("message", "a", "1"), SSEEvent("message", "b", "1")],
    ),
    ("id with NUL ignored", b"id: 1\n\nid: 2\x003\ndata: a\n\n", [SSEEvent("message", "a", "1")]),
    ("id-only event updates the id", b"id: 7\n\ndata: a\n\n", [SSEEvent("message", "a", "7")]),
    (
        "empty id resets",
        b"id: 7\ndata: a\n\nid\ndata: b\n\n",
        [SSEEvent("message", "a", "7"), SSEEvent("message", "b")],
    ),
    ("retry digits", b"retry: 1500\ndata: a\n\n", [SSEEvent("message", "a", "", 1500)]),
    (
        "retry not digits ignored",
        b"retry: 1500\n\nretry: 15x\nretry: -1\nretry: 1.5\nretry:\ndata: a\n\n",
        [SSEEvent("message", "a", "", 1500)],
    ),
    ("empty data not dispatched", b"event: x\n\ndata: a\n\n", [SSEEvent("message", "a")]),
    (
        "event type resets",
        b"event: x\ndata: a\n\ndata: b\n\n",
        [SSEEvent("x", "a"), SSEEvent("message", "b")],
    ),
    ("empty event type is message", b"event:\ndata: a\n\n", [SSEEvent("message", "a")]),
    ("unfinished event discarded", b"data: a\n\ndata: b\n", [SSEEvent("message", "a")]),
    ("unfinished line discarded", b"data: a\n\ndata: b", [SSEEvent("message", "a")]),
    ("invalid UTF-8 replaced", b"data: a\xff\xfeb\n\n", [SSEEvent("message", "a\ufffd\ufffdb")]),
    ("UTF-8 kept", "data: zürich ✓\n\n".encode(), [SSEEvent("message", "zürich ✓")]),
    ("unknown field ignored", b"foo: bar\ndata: a\n\n", [SSEEvent("message", "a")]),
    ("field names are case-sensitive", b"Data: a\ndata: b\n\n", [SSEEvent("message", "b")]),
]
