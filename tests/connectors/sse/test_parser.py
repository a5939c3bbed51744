"""The parser against the WHATWG rules, at every chunk boundary, and against sseclient-py."""

from __future__ import annotations

import io
import itertools
import tracemalloc

import pytest
import sseclient
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sse import OversizedEvent, SSEEvent, iter_events
from connectors.sse.parser import LINE_ALLOWANCE, NDJSONParser, SSEParser
from tests.helpers.sse_cases import RULES
from tests.helpers.sse_reference import reference


def parse(chunks: list[bytes], max_bytes: int = 1 << 20) -> list[SSEEvent | OversizedEvent]:
    parser = SSEParser(max_event_bytes=max_bytes)
    return [item for chunk in chunks for item in parser.feed(chunk)]


def splits(stream: bytes) -> list[list[bytes]]:
    """The stream whole, byte by byte, and cut once at every position."""
    cuts = [[stream], [stream[i : i + 1] for i in range(len(stream))]]
    cuts += [[stream[:i], stream[i:]] for i in range(1, len(stream))]
    return cuts


# -- each rule, at every chunk boundary ----------------------------------------------
@pytest.mark.parametrize(("stream", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule_holds_at_every_chunk_boundary(stream: bytes, expected: list[SSEEvent]) -> None:
    for chunks in splits(stream):
        assert parse(chunks) == expected, chunks
    assert reference(stream) == expected


def test_iter_events_yields_events_and_reports_oversized() -> None:
    skipped: list[OversizedEvent] = []
    stream = [b"id: 1\ndata: ", b"x" * 40, b"\n\nid: 2\ndata: ok\n\n"]
    events = list(iter_events(stream, max_event_bytes=16, on_oversize=skipped.append))
    assert events == [SSEEvent("message", "ok", "2")]
    assert skipped == [OversizedEvent("1", 16)]


# -- properties: any bytes, any chunking ---------------------------------------------
_TOKENS = st.sampled_from(
    [
        b"data",
        b"data:",
        b"data: ",
        b"event:",
        b"id:",
        b"id: ",
        b"retry:",
        b"retry: 10",
        b":",
        b" ",
        b"x",
        b"7",
        b"\x00",
        b"\xff",
        b"\xc3\xa9",
        b"\xe2\x9c",
        b"\xef\xbb\xbf",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"y" * 40,
    ]
)
streams = st.lists(_TOKENS, max_size=60).map(b"".join)


@st.composite
def chunked(draw: st.DrawFn, stream: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), stream=streams)
def test_any_chunking_gives_the_reference_events(data: st.DataObject, stream: bytes) -> None:
    chunks = data.draw(chunked(stream))
    assert parse(chunks) == reference(stream)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), stream=streams, limit=st.integers(1, 12))
def test_size_limit_is_independent_of_chunking(
    data: st.DataObject, stream: bytes, limit: int
) -> None:
    chunks = data.draw(chunked(stream))
    assert parse(chunks, limit) == reference(stream, limit)


@settings(max_examples=200, deadline=None)
@given(stream=st.binary(max_size=300), data=st.data())
def test_never_raises_on_arbitrary_bytes(stream: bytes, data: st.DataObject) -> None:
    chunks = data.draw(chunked(stream))
    assert parse(chunks) == reference(stream)


# Whole events in the shapes servers write and near them: the block-at-a-time path and
# its fall-back to the line parser, with the stream cut anywhere.
_FIELD_LINES = st.sampled_from(
    [
        b"id: 7\n",
        b"id:8\n",
        b"id: \n",
        b"id: a\x00b\n",
        b"event: reading\n",
        b"event:\n",
        b"data: x\n",
        b"data:  two spaces\n",
        b"data:\n",
        b"data\n",
        b"data: \xc3\xa9\xff\n",
        # 10 bytes of data, 30 once each is a replacement character: a limit of 24 tells
        b"data:" + b"\xff" * 10 + b"\n",
        b": comment\n",
        b"retry: 250\n",
        b"retry: x\n",
        b"other: 1\n",
        b"\n",
    ]
)
_BLOCKS = st.lists(_FIELD_LINES, max_size=6).map(lambda lines: b"".join(lines) + b"\n")
event_streams = st.lists(_BLOCKS, max_size=12).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), stream=event_streams, limit=st.sampled_from([4, 16, 24, 1 << 20]))
def test_whole_events_give_the_reference_events_at_any_chunking(
    data: st.DataObject, stream: bytes, limit: int
) -> None:
    chunks = data.draw(chunked(stream))
    assert parse(chunks, limit) == reference(stream, limit)


@st.composite
def shaped_streams(draw: st.DrawFn) -> bytes:
    """Events as servers write them, their fields in any order: an id (or two), event
    type, one to three data lines (kept in their order), a comment, a retry; with or without the
    space after the colon; LF, CRLF or CR line ends for the whole stream."""
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    space = draw(st.sampled_from([b" ", b""]))
    events = []
    for n in range(draw(st.integers(1, 8))):
        ids = [b"id:" + space + str(n).encode(), b"id:" + space + f"{n}-again".encode()]
        others = [*ids, b"event:" + space + b"reading"]
        others += [b": keep-alive", b"retry:" + space + b"3000"]
        chosen = draw(st.lists(st.sampled_from(others), unique=True))
        data = [b"data:" + space + f'{{"n":{n},"part":{k}}}'.encode() for k in range(3)]
        lines = [*chosen, *data[: draw(st.integers(1, 3))]]
        order = draw(st.permutations(range(len(lines))))
        # Data lines keep their order among themselves: the data is their join.
        data_slots = sorted(i for i in order if lines[i].startswith(b"data"))
        placed = iter(sorted(data_slots))
        shuffled = [
            lines[next(placed)] if lines[i].startswith(b"data") else lines[i] for i in order
        ]
        events.append(eol.join(shuffled) + eol + eol)
    return b"".join(events)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), stream=shaped_streams())
def test_every_field_order_gives_the_reference_events_at_any_chunking(
    data: st.DataObject, stream: bytes
) -> None:
    chunks = data.draw(chunked(stream))
    events = parse(chunks)
    assert events == reference(stream)
    assert events  # every event has data


@pytest.mark.parametrize(
    "stream",
    [
        b"data\ndata:" + b"\xff" * 10 + b"\n\n",  # an unusual shape: read line by line
        b"data:" + b"\xff" * 10 + b"\n\n",
        # found by the fuzzer
        b"ng\r@id7\r\ndata: \x9d\xbd" + b"\x9d" * 14 + b"a\r\ndata:\n\n:\r\x00b \r\n",
    ],
)
def test_the_size_limit_counts_bytes_not_replacement_characters(stream: bytes) -> None:
    # Each invalid byte becomes U+FFFD, three bytes in UTF-8: the limit is on what came.
    for chunks in splits(stream):
        assert parse(chunks, 24) == reference(stream, 24)
        assert parse(chunks, 43) == reference(stream, 43)
    assert "\ufffd" * 10 in parse([stream], 24)[0].data  # type: ignore[union-attr]


# -- against sseclient-py, where it is right -----------------------------------------
_SIMPLE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
    ),
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.sampled_from(["", "reading", "ping"]),
            st.lists(
                _SIMPLE_TEXT.filter(lambda s: s.strip() != "" and not s.startswith(" ")),
                min_size=1,
                max_size=3,
            ),
            st.integers(0, 10**6),
        ),
        max_size=8,
    )
)
def test_agrees_with_sseclient_on_well_formed_streams(
    events: list[tuple[str, list[str], int]],
) -> None:
    # The subset sseclient-py handles right: LF only, every event complete, with an id
    # and data, no BOM, valid UTF-8 and no line that is only white space.
    stream = "".join(
        f"id: {n}\n"
        + (f"event: {etype}\n" if etype else "")
        + "".join(f"data: {d}\n" for d in data)
        + "\n"
        for etype, data, n in events
    ).encode()
    theirs = [(e.event, e.data, e.id) for e in sseclient.SSEClient(io.BytesIO(stream)).events()]
    ours = [(e.event, e.data, e.id) for e in iter_events([stream])]
    assert ours == theirs


@pytest.mark.parametrize(
    ("name", "stream", "sseclient_gives", "spec_gives"),
    [
        ("cut-off event", b'data: a\n\ndata: {"half', ["a", '{"half'], ["a"]),
        ("BOM", b"\xef\xbb\xbfdata: a\n\ndata: b\n\n", ["b"], ["a", "b"]),
        ("LF then CRLF", b"data: a\n\r\ndata: b\n\n", ["a\nb"], ["a", "b"]),
    ],
)
def test_where_sseclient_departs_from_the_spec(
    name: str, stream: bytes, sseclient_gives: list[str], spec_gives: list[str]
) -> None:
    theirs = [e.data for e in sseclient.SSEClient(io.BytesIO(stream)).events()]
    assert theirs == sseclient_gives, name
    assert [e.data for e in iter_events([stream])] == spec_gives


def test_sseclient_forgets_the_last_event_id_and_drops_id_only_events() -> None:
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid: 5\n\ndata: c\n\n"
    assert [e.id for e in sseclient.SSEClient(io.BytesIO(stream)).events()] == ["1", None, None]
    assert [e.id for e in iter_events([stream])] == ["1", "1", "5"]


def test_sseclient_raises_on_invalid_utf8_where_the_spec_replaces() -> None:
    stream = b"data: \xff\n\ndata: b\n\n"
    with pytest.raises(UnicodeDecodeError):
        list(sseclient.SSEClient(io.BytesIO(stream)).events())
    assert [e.data for e in iter_events([stream])] == ["\ufffd", "b"]


# -- memory bounds -------------------------------------------------------------------
def test_an_endless_line_does_not_grow_memory() -> None:
    parser = SSEParser(max_event_bytes=1 << 20)
    chunk = b"x" * 65536
    tracemalloc.start()
    try:
        items = parser.feed(b"id: 9\ndata: ")
        for _ in range(320):  # 20 MiB with no line end
            items += parser.feed(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert items == [OversizedEvent("9", 1 << 20)]
    assert peak < 3 * (1 << 20)
    assert parser.feed(b"\n\nid: 10\ndata: next\n\n") == [SSEEvent("message", "next", "10")]
    assert parser.last_event_id == "10"


def test_many_data_lines_over_the_limit_skip_the_event() -> None:
    parser = SSEParser(max_event_bytes=100)
    stream = b"id: 3\n" + b"data: 0123456789\n" * 20 + b"\ndata: small\n\n"
    assert parser.feed(stream) == [OversizedEvent("3", 100), SSEEvent("message", "small", "3")]
    assert parser.oversized == 1


def test_data_exactly_at_the_limit_is_kept() -> None:
    parser = SSEParser(max_event_bytes=10)
    assert parser.feed(b"data:0123456789\n\n") == [SSEEvent("message", "0123456789")]
    assert parser.feed(b"data:01234\ndata:5678\n\n") == [SSEEvent("message", "01234\n5678")]
    assert parser.feed(b"data:01234\ndata:56789\n\n") == [OversizedEvent("", 10)]


def test_parser_rejects_a_limit_below_one() -> None:
    with pytest.raises(ValueError, match="max_event_bytes"):
        SSEParser(max_event_bytes=0)


# -- newline-delimited JSON ----------------------------------------------------------
def test_ndjson_lines_are_events_whatever_the_chunking() -> None:
    stream = b'{"a": 1}\r\n\n  \n{"b": 2}\r{"c": 3}\n{"cut'
    for chunks in splits(stream):
        parser = NDJSONParser(last_event_id="4")
        got = [item for chunk in chunks for item in parser.feed(chunk)]
        assert got == [
            SSEEvent("message", '{"a": 1}', "4"),
            SSEEvent("message", '{"b": 2}', "4"),
            SSEEvent("message", '{"c": 3}', "4"),
        ]


def test_ndjson_skips_an_overlong_line() -> None:
    parser = NDJSONParser(max_event_bytes=8)
    long_line = b'{"x": "' + b"z" * (8 + LINE_ALLOWANCE) + b'"}\n'
    assert parser.feed(long_line + b'{"y":1}\n') == [
        OversizedEvent("", 8),
        SSEEvent("message", '{"y":1}'),
    ]


@pytest.mark.parametrize(
    ("stream", "unfinished"),
    [
        (b"data: a\n\n", False),
        (b"data: a\n\nda", True),
        (b"data: a\n", True),
        (b"event: x\n", True),
        (b": comment\n", False),
        (b"id: 3\n\n", False),
    ],
)
def test_the_parser_knows_when_the_bytes_stop_inside_an_event(
    stream: bytes, unfinished: bool
) -> None:
    parser = SSEParser()
    parser.feed(stream)
    assert parser.unfinished is unfinished
