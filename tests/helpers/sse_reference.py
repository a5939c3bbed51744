"""An independent oracle for the SSE parser: the spec's algorithm written plainly over the
whole stream at once. The tests and the fuzz target compare the incremental parser to it."""

from __future__ import annotations

import re

from connectors.sse import OversizedEvent, SSEEvent
from connectors.sse.parser import LINE_ALLOWANCE

_LINE_END = re.compile(rb"\r\n|\r|\n")


def reference(stream: bytes, max_bytes: int = 1 << 20) -> list[SSEEvent | OversizedEvent]:
    """The spec's algorithm, written plainly over the whole stream at once."""
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    pieces = _LINE_END.split(stream)
    complete, unfinished = pieces[:-1], pieces[-1]
    out: list[SSEEvent | OversizedEvent] = []
    data: list[bytes] | None = None
    etype, id_buffer, last_id, retry, skipping = b"", "", "", None, False
    size = 0

    def skip() -> None:
        nonlocal skipping, data, etype, size
        out.append(OversizedEvent(id_buffer, max_bytes))
        skipping, data, etype, size = True, None, b"", 0

    for line in complete:
        if line == b"":
            last_id = id_buffer
            if skipping:
                skipping = False
            elif data is not None:
                text = b"\n".join(data).decode("utf-8", "replace")
                out.append(
                    SSEEvent(etype.decode("utf-8", "replace") or "message", text, last_id, retry)
                )
            data, etype, size = None, b"", 0
            continue
        if skipping:
            continue
        if len(line) > max_bytes + LINE_ALLOWANCE:
            skip()
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            size += len(value) + 1
            if size - 1 > max_bytes:
                skip()
                continue
            data = [*(data or []), value]
        elif name == b"event":
            etype = value
        elif name == b"id" and b"\0" not in value:
            id_buffer = value.decode("utf-8", "replace")
        elif name == b"retry" and value and all(48 <= c <= 57 for c in value):
            retry = int(value)
    if len(unfinished) > max_bytes + LINE_ALLOWANCE and not skipping:
        skip()
    return out
