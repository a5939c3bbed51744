"""Bytes to events: the WHATWG "server-sent events" parsing rules, applied incrementally.

Quotes are from https://html.spec.whatwg.org/multipage/server-sent-events.html, section
9.2.6 "Interpreting an event stream". Runs of whole events are decoded at once and read
with one loop over their lines, in whatever order a server writes the fields; an event cut
by a chunk boundary (or holding invalid UTF-8, or near the size limit) goes through the
line parser, which works on bytes and decodes only the values it keeps. UTF-8 never uses
the bytes LF (0x0A), CR (0x0D) or ':' (0x3A) inside a multi-byte sequence, so cutting
lines and fields on bytes gives the same result as decoding the whole stream
first, and the two paths agree (the tests hold both to a whole-stream reference).

sseclient-py is not used here because its framing is wrong (see ``SSECLIENT_DEPARTURES``):
it dispatches a cut-off event at end of stream, keeps no last event ID across events,
drops id-only events, keeps a BOM, returns ``retry`` as a raw string, raises on invalid
UTF-8, misses an event boundary written as LF followed by CRLF, and has no size bound.
The tests check this parser against sseclient-py on the inputs where sseclient-py is right.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "SSECLIENT_DEPARTURES",
    "DecodedEvent",
    "NDJSONParser",
    "OversizedEvent",
    "SSEEvent",
    "SSEParser",
    "iter_events",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENT_BYTES = 1 << 20
# A line may pass the data limit by this much, room for its field name ("data: "), so
# data of exactly max_event_bytes is kept while an endless line still stays bounded.
LINE_ALLOWANCE = 64

SSECLIENT_DEPARTURES = {
    "cut-off event at end of stream": "dispatched; the spec discards it",
    "last event ID": "not carried from one event to the next",
    "id-only event": "dropped without updating the last event ID",
    "leading BOM": "kept, so the first field name is not recognised",
    "retry": "handed over as a raw string, with no digit check",
    "invalid UTF-8": "raises UnicodeDecodeError and ends the stream",
    "LF followed by CRLF": "not seen as an event boundary",
    "event size": "unbounded: one endless line grows memory without limit",
    "urllib3 response": "iterating it waits for 64 KiB on a read-to-close body",
}

_BOM = b"\xef\xbb\xbf"


# The orders servers write an event's fields in, read with one match: comments, an id,
# an event type, data lines, then an id and a retry (simulators, sse-starlette and vendors
# put the id first, Flask-SSE last; where both come, the later one is the one in force, as
# reading the fields one by one gives). "If value starts with a U+0020 SPACE character,
# remove it from value" is the optional space; an id holding NUL is ignored by the spec,
# so it is not this shape. The first two data values are captured, the rest as lines.
# The last alternative is any other block, read by the loop in _fields. Possessive and
# atomic (Python 3.11): a line that matched is never re-read a character at a time.
_EVENT_BLOCK = re.compile(
    r"(?::[^\n]*+\n)*+(?:(?>id: ?([^\n\x00]*+))\n)?(?:(?>event: ?([^\n]*+))\n)?"
    r"(?>data: ?([^\n]*+))\n(?:(?>data: ?([^\n]*+))\n((?:data:[^\n]*+\n)++)?)?"
    r"(?:(?>id: ?([^\n\x00]*+))\n)?(?:retry: ?([0-9]++)\n)?\n"
    r"|((?:[^\n]++\n)*+\n)"
)


class SSEEvent(NamedTuple):
    """One dispatched event.

    ``id`` is the last event ID in force when the event was dispatched (``""`` when
    none), ``retry`` the reconnection time in ms set by the stream so far (or ``None``).
    A named tuple, not a dataclass: a frozen dataclass takes four times as long to
    build, and a stream builds one per event.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


@dataclass(frozen=True, slots=True)
class OversizedEvent:
    """An event skipped because its data passed ``limit`` bytes (or a line of it
    passed ``limit + LINE_ALLOWANCE``).

    ``id`` is the last event ID buffer when the limit was crossed: the id of the skipped
    event when its ``id:`` line came before the oversized part, as servers write it.
    """

    id: str
    limit: int


class DecodedEvent(NamedTuple):
    """An event, or an oversized event's marker, as a reader process's ``decode`` left it
    (``remote.RemoteSubscription``): its id, and what the decode made of it, so that the
    event's data need not be read again, nor sent."""

    id: str
    decoded: object


_OVERLONG = None  # what _LineSplitter yields in place of a line longer than the limit


class _LineSplitter:
    """Cuts a byte stream into lines, holding at most ``max_line`` bytes of a line.

    "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED (CRLF)
    character pair, a single U+000A LINE FEED (LF) character, or a single U+000D CARRIAGE
    RETURN (CR) character." A CR at the end of one chunk and an LF at the start of the
    next are one line end.
    """

    __slots__ = ("_after_cr", "_bom_head", "_discarding", "_max", "_pending", "_pending_len")

    def __init__(self, max_line: int) -> None:
        self._max = max_line
        self._pending: list[bytes] = []
        self._pending_len = 0
        # None once the start of the stream is past; until then the bytes that may
        # still turn out to be a BOM.
        self._bom_head: bytes | None = b""
        self._after_cr = False
        self._discarding = False

    def feed(self, chunk: bytes) -> list[bytes | None]:
        return self.split(self.normalize(chunk))

    def normalize(self, chunk: bytes) -> bytes:
        """The chunk without a leading BOM, with every line end turned into LF."""
        if not chunk:
            return chunk
        if self._bom_head is not None:
            # "The UTF-8 decode algorithm strips one leading UTF-8 Byte Order Mark (BOM),
            # if any." It may arrive split over chunks.
            chunk = self._bom_head + chunk
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._bom_head = chunk
                return b""
            self._bom_head = None
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
                if not chunk:
                    return chunk
        if self._after_cr:
            self._after_cr = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return chunk
        if b"\r" in chunk:
            self._after_cr = chunk[-1] == 0x0D
            chunk = chunk.replace(b"\r\n", b"\n")
            if b"\r" in chunk:  # a CR alone is a line end too; CRLF streams have none left
                chunk = chunk.replace(b"\r", b"\n")
        return chunk

    def split(self, chunk: bytes) -> list[bytes | None]:
        """The lines a normalized chunk completes (``_OVERLONG`` for one over the limit)."""
        if not chunk:
            return []
        out: list[bytes | None] = []
        if self._discarding:
            end = chunk.find(b"\n")
            if end < 0:
                return out
            self._discarding = False
            chunk = chunk[end + 1 :]

        lines: list[bytes | None] = chunk.split(b"\n")  # type: ignore[assignment]
        tail: bytes = lines.pop()  # type: ignore[assignment]
        limit = self._max
        if self._pending:
            if lines:
                first = b"".join(self._pending) + lines[0]  # type: ignore[operator]
                lines[0] = first if len(first) <= limit else _OVERLONG
                self._pending.clear()
                self._pending_len = 0
            elif self._pending_len + len(tail) > limit:
                return self._start_discarding()
        # A chunk no longer than the limit cannot hold a line longer than it.
        if len(chunk) > limit:
            for i, line in enumerate(lines):
                if line is not None and len(line) > limit:
                    lines[i] = _OVERLONG
        out = lines
        if tail:
            if len(tail) + self._pending_len > limit:
                out.extend(self._start_discarding())
            else:
                self._pending.append(tail)
                self._pending_len += len(tail)
        return out

    @property
    def holding(self) -> bool:
        """Whether part of a line has arrived without its end."""
        return bool(self._pending) or self._discarding

    def _start_discarding(self) -> list[bytes | None]:
        self._pending.clear()
        self._pending_len = 0
        self._discarding = True
        return [_OVERLONG]


class _StreamParser:
    """What every stream parser keeps: the line splitter, the limit, and the resume state.

    One parser reads one connection. ``last_event_id`` and ``retry`` are the state a
    stream keeps across reconnects; pass them to the next connection's parser.
    """

    __slots__ = ("_lines", "_max", "last_event_id", "oversized", "retry")

    def __init__(
        self,
        *,
        last_event_id: str = "",
        retry: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if max_event_bytes < 1:
            raise ValueError(f"max_event_bytes must be at least 1, got {max_event_bytes}")
        self._max = max_event_bytes
        self._lines = _LineSplitter(max_event_bytes + LINE_ALLOWANCE)
        # "the last event ID string of the event source", sent as Last-Event-ID.
        self.last_event_id = last_event_id
        self.retry = retry
        self.oversized = 0

    @property
    def unfinished(self) -> bool:
        """Whether the bytes so far end inside an event (the stream was cut mid-event)."""
        return self._lines.holding


class SSEParser(_StreamParser):
    """An incremental ``text/event-stream`` parser: ``feed`` bytes, get events."""

    __slots__ = ("_at_boundary", "_data", "_data_len", "_event_type", "_id_buffer", "_skipping")

    def __init__(
        self,
        *,
        last_event_id: str = "",
        retry: int | None = None,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(last_event_id=last_event_id, retry=retry, max_event_bytes=max_event_bytes)
        self._id_buffer = last_event_id
        self._data: list[bytes] = []
        self._data_len = 0
        self._event_type = b""
        self._skipping = False
        # Whether the bytes so far end with a blank line (or nothing), so the next bytes
        # start an event with nothing held: the state _take_events needs.
        self._at_boundary = True

    @property
    def unfinished(self) -> bool:
        return self._lines.holding or bool(self._data) or bool(self._event_type) or self._skipping

    def feed(self, chunk: bytes) -> list[SSEEvent | OversizedEvent]:
        """Parse the next bytes; returns the events they complete, in order."""
        out: list[SSEEvent | OversizedEvent] = []
        lines = self._lines
        chunk = lines.normalize(chunk)
        if not chunk:
            return out
        if not self._at_boundary:
            # Line by line up to the first blank line, which leaves nothing held.
            if chunk[0] == 0x0A and not lines.holding:
                cut = 1
            else:
                blank = chunk.find(b"\n\n")
                if blank < 0:
                    self._take_lines(lines.split(chunk), out)
                    return out
                cut = blank + 2
            self._take_lines(lines.split(chunk[:cut]), out)
            self._at_boundary = True
            chunk = chunk[cut:]
        last_blank = chunk.rfind(b"\n\n")
        if last_blank >= 0:
            end = last_blank + 2
            blocks = chunk[:end]
            try:
                # Over the limit it may hold an oversized event: then line by line.
                text = blocks.decode() if end <= self._max else None
            except UnicodeDecodeError:
                # Replacement characters are longer than the bytes they replace, so
                # the size limit must see the bytes: line by line.
                text = None
            if text is None:
                self._take_lines(lines.split(blocks), out)
            else:
                self._take_events(text, out)
            chunk = chunk[end:]
        if chunk:
            self._take_lines(lines.split(chunk), out)
            self._at_boundary = False
        return out

    def _take_events(self, text: str, out: list[SSEEvent | OversizedEvent]) -> None:
        """Whole events: ``text`` starts after a blank line, ends with one, and is decoded
        from valid UTF-8 with every line end already LF, no longer than the size limit.
        Each event in one of the usual orders is one match; any other block goes through
        ``_fields``, which applies the field rules to text lines in any order."""
        new = tuple.__new__
        event_id, retry = self._id_buffer, self.retry
        for block in _EVENT_BLOCK.finditer(text):
            first_id, event_type, data, second, more, last_id, retry_text, other = block.groups()
            if other is not None:
                event_id, retry = _fields(other, out, event_id, retry)
                continue
            if last_id is not None:
                event_id = last_id
            elif first_id is not None:
                event_id = first_id
            if retry_text is not None:
                retry = int(retry_text)
            if second is not None:
                data = f"{data}\n{second}"
                if more is not None:
                    values = [
                        line[6:] if line[5:6] == " " else line[5:] for line in more.split("\n")
                    ]
                    data = "\n".join([data, *values[:-1]])
            out.append(new(SSEEvent, (event_type or "message", data, event_id, retry)))
        self._id_buffer = self.last_event_id = event_id
        self.retry = retry

    def _take_lines(
        self, lines: Sequence[bytes | None], out: list[SSEEvent | OversizedEvent]
    ) -> None:
        """Lines (``_OVERLONG`` for one over the limit) through the field rules."""
        data = self._data
        for line in lines:
            if line is None:
                if not self._skipping:  # one report per event, however many long lines
                    out.append(self._skip())
                continue
            if not line:
                # "If the line is empty (a blank line): Dispatch the event."
                self._dispatch(out)
                continue
            if self._skipping:
                continue
            # "If the line starts with a U+003A COLON character (:): Ignore the line."
            colon = line.find(b":")
            if colon == 0:
                continue
            if colon > 0:
                # "Collect the characters on the line before the first U+003A COLON
                # character (:), and let field be that string. [...] If value starts
                # with a U+0020 SPACE character, remove it from value."
                field = line[:colon]
                value = (
                    line[colon + 2 :] if line[colon + 1 : colon + 2] == b" " else line[colon + 1 :]
                )
            else:
                # "Otherwise, the string is not empty but does not contain a U+003A
                # COLON character (:): [...] using the whole line as the field name,
                # and the empty string as the field value."
                field = line
                value = b""
            if field == b"data":
                # "Append the field value to the data buffer, then append a single
                # U+000A LINE FEED (LF) character to the data buffer."
                self._data_len += len(value) + 1
                if self._data_len - 1 > self._max:
                    out.append(self._skip())
                    continue
                data.append(value)
            elif field == b"event":
                # "Set the event type buffer to field value."
                self._event_type = value
            # "If the field value does not contain U+0000 NULL, then set the last event
            # ID buffer to the field value. Otherwise, ignore the field."
            elif field == b"id" and b"\x00" not in value:
                self._id_buffer = value.decode("utf-8", "replace")
            # "If the field value consists of only ASCII digits, then interpret the field
            # value as an integer in base ten, and set the event stream's reconnection
            # time to that integer. Otherwise, ignore the field." (bytes.isdigit is ASCII.)
            elif field == b"retry" and value.isdigit():
                self.retry = int(value)
            # "Otherwise: The field is ignored."

    def _dispatch(self, out: list[SSEEvent | OversizedEvent]) -> None:
        # "1. Set the last event ID string of the event source to the value of the last
        # event ID buffer." This happens even when no event follows (an id-only event).
        self.last_event_id = self._id_buffer
        if self._skipping:
            self._skipping = False
            return
        data = self._data
        # "2. If the data buffer is an empty string, set the data buffer and the event
        # type buffer to the empty string and return."
        if data:
            # "3. If the data buffer's last character is a U+000A LINE FEED (LF)
            # character, then remove the last character from the data buffer."
            # Joining the values with LF gives exactly that.
            text = (data[0] if len(data) == 1 else b"\n".join(data)).decode("utf-8", "replace")
            etype = self._event_type
            # "Initialize event's type attribute to "message" [...] If the event type
            # buffer has a value other than the empty string, change the type of the
            # newly created event to equal the value of the event type buffer."
            out.append(
                SSEEvent(
                    etype.decode("utf-8", "replace") if etype else "message",
                    text,
                    self.last_event_id,
                    self.retry,
                )
            )
            data.clear()
            self._data_len = 0
        # "5. Set the data buffer and the event type buffer to the empty string."
        self._event_type = b""

    def _skip(self) -> OversizedEvent:
        self._skipping = True
        self._data.clear()  # in place: feed() holds a reference to this list
        self._data_len = 0
        self._event_type = b""
        self.oversized += 1
        log.warning(
            "skipped an event over %d bytes (last event ID %r); raise max_event_bytes "
            "if events this large are expected",
            self._max,
            self._id_buffer,
        )
        return OversizedEvent(self._id_buffer, self._max)


def _fields(
    text: str, out: list[SSEEvent | OversizedEvent], event_id: str, retry: int | None
) -> tuple[str, int | None]:
    """Lines of text ending with a blank line, every line end LF, through the same field
    rules as ``SSEParser._take_lines``, in whatever order the fields come; returns the
    last event ID buffer and the reconnection time after them."""
    new = tuple.__new__
    data: str | None = None  # the first data line's value
    more: list[str] | None = None  # all of them, once there are two
    event_type = ""
    # text ends with "\n\n" (or is "\n"): without its last LF, the split ends on the blank.
    for line in text[:-1].split("\n"):
        # The usual fields by prefix, the rest by the first colon; "If value starts
        # with a U+0020 SPACE character, remove it from value."
        if line[:5] == "data:":
            field, value = "data", line[6:] if line[5:6] == " " else line[5:]
        elif not line:
            # "If the line is empty (a blank line): Dispatch the event."
            if data is not None:
                value = data if more is None else "\n".join(more)
                out.append(new(SSEEvent, (event_type or "message", value, event_id, retry)))
                data = more = None
            event_type = ""
            continue
        elif line[:3] == "id:":
            field, value = "id", line[4:] if line[3:4] == " " else line[3:]
        else:
            # A comment (":...") gives the field "", which matches none below.
            field, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
        if field == "data":
            if data is None:
                data = value
            elif more is None:
                more = [data, value]
            else:
                more.append(value)
        elif field == "id":
            if "\x00" not in value:
                event_id = value
        elif field == "event":
            event_type = value
        elif field == "retry" and value.isascii() and value.isdigit():
            retry = int(value)
    return event_id, retry


class NDJSONParser(_StreamParser):
    """Newline-delimited JSON read as events: each non-blank line is one event's data.

    Some vendors serve ``application/x-ndjson`` or ``application/json`` lines on the same
    endpoint as SSE. Lines carry no id, so ``last_event_id`` and ``retry`` pass through.
    """

    __slots__ = ()

    def feed(self, chunk: bytes) -> list[SSEEvent | OversizedEvent]:
        out: list[SSEEvent | OversizedEvent] = []
        for line in self._lines.feed(chunk):
            if line is None or len(line) > self._max:
                self.oversized += 1
                log.warning("skipped a JSON line over %d bytes", self._max)
                out.append(OversizedEvent(self.last_event_id, self._max))
            elif line.strip():
                out.append(
                    SSEEvent(
                        "message", line.decode("utf-8", "replace"), self.last_event_id, self.retry
                    )
                )
        return out


def iter_events(
    chunks: Iterable[bytes],
    *,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    on_oversize: Callable[[OversizedEvent], None] | None = None,
) -> Iterator[SSEEvent]:
    """Parse a ``text/event-stream`` byte stream, whatever its chunk boundaries.

    An event whose data is over ``max_event_bytes`` is skipped up to the next blank
    line, logged, and passed to ``on_oversize``. An unfinished event at the end of the
    stream is discarded: "If the file ends in the middle of an event, before the final
    empty line, the incomplete event is not dispatched."
    """
    parser = SSEParser(max_event_bytes=max_event_bytes)
    oversized = 0
    for chunk in chunks:
        items = parser.feed(chunk)
        if parser.oversized == oversized:
            yield from items  # type: ignore[misc]  # all of them are SSEEvent
            continue
        oversized = parser.oversized
        for item in items:
            if isinstance(item, SSEEvent):
                yield item
            elif on_oversize is not None:
                on_oversize(item)
