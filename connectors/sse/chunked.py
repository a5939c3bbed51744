"""HTTP/1.1 chunked transfer coding, decoded from whatever bytes one socket read returns.

urllib3's ``read_chunked`` hands over one HTTP chunk per call, and servers write one
chunk per event (Flask, Starlette), so a fast stream cost a call, a ``readline`` and a
``read`` per event. Decoding the framing here lets one socket read that holds many
chunks become one piece of body, and a read that holds part of a chunk still gives
that part at once, so no event waits for more bytes to arrive.

RFC 9112, section 7.1:

    chunked-body   = *chunk last-chunk trailer-section CRLF
    chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
    chunk-size     = 1*HEXDIG
    last-chunk     = 1*("0") [ chunk-ext ] CRLF

The body ends at the last chunk; the trailer section after it is not read, as the
connection is closed after an event stream anyway.
"""

from __future__ import annotations

import itertools
import operator
import re

from urllib3.exceptions import ProtocolError

__all__ = ["ChunkedBody"]

# A chunk-size line (with any extensions) longer than this is not a real server's.
MAX_SIZE_LINE = 4096
_HEX_DIGITS = b"0123456789abcdefABCDEF"
# Chunk sizes over 2**63 are no body we could hold; 16 hex digits is the most read.
_MAX_HEX_DIGITS = 16
# A size line with no extension, as servers write it (the rest goes the general way).
_PLAIN_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n").match


def _whole_chunks(raw: bytes, pos: int, pieces: list[bytes]) -> int:
    """Take the usual chunks, each whole in this read (plain size line, data, CRLF), from
    ``pos`` on; return where the first other thing starts. A loop of its own, with no
    state to look at, for the chunks ``_split_chunks`` cannot vouch for."""
    plain_size_line, append, startswith = _PLAIN_SIZE_LINE, pieces.append, raw.startswith
    while (whole := plain_size_line(raw, pos)) is not None:
        start = whole.end()
        end = start + int(whole[1], 16)
        if end == start or not startswith(b"\r\n", end):
            break  # the last chunk, or data that goes on past this read
        append(raw[start:end])
        pos = end + 2
    return pos


def _split_chunks(raw: bytes, pos: int, pieces: list[bytes]) -> int:
    """The run of chunks from ``pos`` whose data holds no CRLF, found by cutting the read
    at every CRLF: size line, data, size line, data. A pair is a chunk exactly when the
    size is 1 to 16 hex digits, not zero, and the data is that long; then the cuts are
    where the framing is, and the pairs before the first that is not one are taken.
    With one event a chunk, this does in C loops over the whole read what would be a
    Python loop's turn per event; it cuts the rest of the read, so once a read is
    enough."""
    parts = raw[pos:].split(b"\r\n") if pos else raw.split(b"\r\n")
    pairs = (len(parts) - 1) // 2  # a pair's data is followed by a CRLF in this read
    if not pairs:
        return pos
    sizes, datas = parts[0 : 2 * pairs : 2], parts[1 : 2 * pairs : 2]
    if (
        b"".join(sizes).translate(None, _HEX_DIGITS)
        or b"" in sizes
        or max(map(len, sizes)) > _MAX_HEX_DIGITS
    ):
        return pos  # a size line with an extension, or not a size: one at a time
    stated = list(map(int, sizes, itertools.repeat(16, pairs)))
    lengths = list(map(len, datas))
    taken = pairs
    if stated != lengths or 0 in stated:
        # The data of the first pair that is not a chunk held a CRLF (or it was the
        # last chunk): the framing from there on is not where the cuts are.
        fits = list(map(operator.eq, stated, lengths))
        taken = min(
            fits.index(False) if False in fits else pairs, stated.index(0) if 0 in stated else pairs
        )
        if not taken:
            return pos
        del datas[taken:]
    pieces += datas
    return pos + sum(lengths[:taken]) + sum(map(len, sizes[:taken])) + 4 * taken


class ChunkedBody:
    """``feed`` the raw bytes after the response head; get the body bytes they carry.

    ``ended`` turns true at the last chunk. A framing error ends the body too, with
    ``error`` set to urllib3's ``ProtocolError`` (as urllib3's own decoder raises) for the
    caller to raise once it has used the body bytes that came before it.
    """

    __slots__ = ("_after_data", "_left", "_line", "ended", "error")

    def __init__(self) -> None:
        self._left = 0  # bytes of the current chunk's data still to come
        self._after_data = False  # the CRLF after a chunk's data is still to come
        self._line = b""  # the part of a chunk-size line (or that CRLF) read so far
        self.ended = False
        self.error: ProtocolError | None = None

    def feed(self, raw: bytes) -> bytes:
        pieces: list[bytes] = []
        try:
            self._feed(raw, pieces)
        except ProtocolError as exc:
            self.error, self.ended = exc, True
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _feed(self, raw: bytes, pieces: list[bytes]) -> None:
        pos, size = 0, len(raw)
        split = False  # whether _split_chunks has had its one go at this read
        while pos < size and not self.ended:
            if self._left:
                end = min(pos + self._left, size)
                pieces.append(raw[pos:end])
                self._left -= end - pos
                pos = end
                self._after_data = not self._left
                continue
            if self._after_data:
                pos = self._end_of_data(raw, pos)
                continue
            if not self._line:
                if not split:
                    pos, split = _split_chunks(raw, pos, pieces), True
                pos = _whole_chunks(raw, pos, pieces)
                if pos == size:
                    break
            pos = self._size_line(raw, pos)

    def _end_of_data(self, raw: bytes, pos: int) -> int:
        """The CRLF after chunk data (a bare LF accepted, as RFC 9112 allows), possibly
        split over two reads."""
        byte = raw[pos]
        if byte == 0x0A:  # LF, or the LF of a CR the last read ended with
            self._line, self._after_data = b"", False
            return pos + 1
        if byte == 0x0D and not self._line:
            if pos + 1 == len(raw):
                self._line = b"\r"
                return pos + 1
            if raw[pos + 1] == 0x0A:
                self._after_data = False
                return pos + 2
        raise ProtocolError(
            f"chunked body: expected CRLF after chunk data, got {raw[pos : pos + 8]!r}"
        )

    def _size_line(self, raw: bytes, pos: int) -> int:
        end = raw.find(b"\n", pos)
        if end < 0:
            self._line += raw[pos:]
            if len(self._line) > MAX_SIZE_LINE:
                raise ProtocolError("chunked body: chunk-size line too long")
            return len(raw)
        line = (self._line + raw[pos:end]).rstrip(b"\r")
        self._line = b""
        digits = line.split(b";", 1)[0].strip(b" \t")
        if not digits or len(digits) > _MAX_HEX_DIGITS or digits.strip(_HEX_DIGITS):
            raise ProtocolError(f"chunked body: invalid chunk size {line[:40]!r}")
        self._left = int(digits, 16)
        self.ended = not self._left
        return end + 1
