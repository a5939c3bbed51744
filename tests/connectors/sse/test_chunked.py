"""The chunked-body decoder against an encoder, at every cut of the bytes, and over HTTP."""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.exceptions import ProtocolError

from connectors.sse import subscribe
from connectors.sse.chunked import MAX_SIZE_LINE, ChunkedBody
from connectors.sse.retry import RetryPolicy


def decode(pieces: list[bytes]) -> tuple[bytes, bool]:
    body = ChunkedBody()
    out = b"".join(body.feed(piece) for piece in pieces)
    if body.error is not None:
        raise body.error
    return out, body.ended


@st.composite
def encodings(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(the body, one way a server may frame it): extensions, either hex case, leading
    zeros, bare LF line ends, trailers, and data holding CRLF, mostly among runs of
    plain chunks (the decoder's fast path cuts a read at every CRLF)."""
    data_ = st.one_of(
        st.binary(min_size=1, max_size=40),
        st.sampled_from([b"\r\n", b"a\r\n", b"\r\n\r\n", b"0\r\n", b"\r", b"1\r\nx"]),
    )
    datas = draw(st.lists(data_, max_size=12))
    framed = []
    for data in datas:
        digits = draw(st.sampled_from(["%x", "%x", "%X", "00%x"])) % len(data)
        ext = draw(st.sampled_from(["", "", "", ";a=1", ' ; name="v"']))
        eol = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]))
        framed.append(f"{digits}{ext}{eol}".encode() + data + eol.encode())
    last = draw(st.sampled_from([b"0\r\n\r\n", b"000;x=y\r\n\r\n", b"0\r\nExpires: never\r\n\r\n"]))
    return b"".join(datas), b"".join(framed) + last


@st.composite
def cut(draw: st.DrawFn, raw: bytes) -> list[bytes]:
    cuts = sorted(draw(st.sets(st.integers(0, len(raw)), max_size=10)))
    return [raw[a:b] for a, b in itertools.pairwise([0, *cuts, len(raw)])]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), encoded=encodings())
def test_any_cut_of_the_bytes_decodes_to_the_body(
    data: st.DataObject, encoded: tuple[bytes, bytes]
) -> None:
    body, raw = encoded
    assert decode(data.draw(cut(raw))) == (body, True)


def test_every_single_byte_read_decodes_to_the_body() -> None:
    raw = b"4\r\nabcd\r\n1;x\r\n\n\r\n0\r\n\r\n"
    assert decode([raw[i : i + 1] for i in range(len(raw))]) == (b"abcd\n", True)


def test_the_body_ends_at_the_last_chunk_and_not_before() -> None:
    body = ChunkedBody()
    assert body.feed(b"3\r\nabc\r\n") == b"abc"
    assert not body.ended
    assert body.feed(b"0\r\n") == b""
    assert body.ended
    assert body.feed(b"5\r\nnever\r\n") == b""  # after the end: not body


def test_what_came_before_a_framing_error_is_handed_over() -> None:
    body = ChunkedBody()
    assert body.feed(b"3\r\nabc\r\nzz\r\n3\r\ndef\r\n") == b"abc"
    assert body.ended
    assert isinstance(body.error, ProtocolError)
    assert body.feed(b"3\r\nghi\r\n") == b""


def test_part_of_a_chunk_is_handed_over_at_once() -> None:
    body = ChunkedBody()
    assert body.feed(b"a\r\nhello") == b"hello"
    assert body.feed(b"world\r\n") == b"world"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"zz\r\nab\r\n", "invalid chunk size"),
        (b"+2\r\nab\r\n", "invalid chunk size"),
        (b"0x2\r\nab\r\n", "invalid chunk size"),
        (b"\r\nab\r\n", "invalid chunk size"),
        (b"1_0\r\n", "invalid chunk size"),
        (b"11111111111111111\r\n", "invalid chunk size"),
        (b"2\r\nabc\r\n", "expected CRLF"),
        (b"2\r\nab\rx", "expected CRLF"),
        (b"1" * (MAX_SIZE_LINE + 1), "too long"),
    ],
)
def test_framing_errors_raise_protocol_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode([raw[i : i + 3] for i in range(0, len(raw), 3)])


# -- over a real connection ----------------------------------------------------------
def _serve_once(raw_body: bytes) -> Iterator[str]:
    """A server that answers every request with this chunked body written in one send,
    then 204 to a resume; yields its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )

    def serve() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            with sock:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += sock.recv(4096)
                if b"last-event-id" in request.lower():
                    sock.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                else:
                    sock.sendall(head + raw_body)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/stream"
    listener.close()


def _frame(text: str) -> bytes:
    data = text.encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.fixture
def many_chunks_url() -> Iterator[str]:
    # 500 events, one chunk each, all in one send: reads carry many chunks, and some
    # events are cut between two chunks.
    frames = [_frame(f"id: {i}\ndata: {i * 7}\n\n") for i in range(500)]
    frames.insert(250, _frame("id: 250a\nda") + _frame("ta: split\n\n"))
    yield from _serve_once(b"".join(frames) + b"0\r\n\r\n")


def test_a_stream_of_many_chunks_gives_every_event_in_order(many_chunks_url: str) -> None:
    sub = subscribe(
        many_chunks_url, retry=RetryPolicy(initial_delay=0.0, jitter=0.0, max_attempts=3)
    )
    events = [(e.id, e.data) for e in sub]
    expected = [(str(i), str(i * 7)) for i in range(500)]
    expected.insert(250, ("250a", "split"))
    assert events == expected


@pytest.fixture
def bad_framing_url() -> Iterator[str]:
    yield from _serve_once(_frame("id: 1\ndata: a\n\n") + b"zz\r\n")


def test_a_framing_error_reconnects_with_a_reason(bad_framing_url: str) -> None:
    sub = subscribe(
        bad_framing_url, retry=RetryPolicy(initial_delay=0.0, jitter=0.0, max_attempts=3)
    )
    assert [e.data for e in sub] == ["a"]
    assert list(sub.stats.reconnect_reasons) == [
        "connection lost mid-response (chunked body: invalid chunk size b'zz')"
    ]
