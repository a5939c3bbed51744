"""A stream's ``Content-Encoding``: gzip and deflate decoded as the bytes arrive, any
other encoding refused before a byte reaches the parser.

RFC 9110 8.4: "If one or more encodings have been applied to a representation, the sender
that applied the encodings MUST generate a Content-Encoding header field that lists the
content codings in the order in which they were applied." The client asks for none (it
sends no ``Accept-Encoding``), but proxies and some servers compress anyway. It decodes
every body itself, as each read brings it (urllib3 decodes only the bodies it reads, and
the fast chunked path reads the socket directly), so that all paths decode alike.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["DECODED_ENCODINGS", "StreamDecoder", "decoded", "unsupported_encoding"]

# Codings this client decodes; "x-gzip" is gzip (RFC 9110 8.4.1.3).
DECODED_ENCODINGS = frozenset({"gzip", "x-gzip", "deflate"})
_IDENTITY = frozenset({"", "identity"})


def _codings(header: str) -> list[str]:
    return [c.strip().lower() for c in header.split(",") if c.strip().lower() not in _IDENTITY]


def unsupported_encoding(header: str) -> str | None:
    """The ``Content-Encoding`` header's value when the client cannot decode it (any
    coding but gzip or deflate, or more than one applied); None when it can."""
    codings = _codings(header)
    if len(codings) > 1 or (codings and codings[0] not in DECODED_ENCODINGS):
        return header.strip()
    return None


class StreamDecoder:
    """Decodes one coding incrementally: ``feed`` what arrived, get what it decodes to.

    "deflate" is the zlib format (RFC 9110 8.4.1.2), but some servers send raw deflate;
    as browsers and urllib3 do, a body whose first bytes are not zlib is read as raw."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        # 16 + MAX_WBITS: a gzip header and trailer around the deflate data.
        self._zlib = zlib.decompressobj(
            16 + zlib.MAX_WBITS if coding != "deflate" else zlib.MAX_WBITS
        )
        self._first: bytes | None = b"" if coding == "deflate" else None

    def feed(self, data: bytes) -> bytes:
        if self._first is not None:
            self._first += data
            if len(self._first) < 2:
                return b""
            head, self._first = self._first, None
            # The zlib header: deflate with a window (CM 8), and CMF, FLG a multiple of 31.
            wrapped = head[0] & 0x0F == 8 and ((head[0] << 8) | head[1]) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            return self._zlib.decompress(head)
        return self._zlib.decompress(data)


def decoded(chunks: Iterator[bytes], header: str) -> Iterator[bytes]:
    """``chunks`` of a body with this ``Content-Encoding``, decoded (the same iterator when
    it is not encoded); a corrupt body raises ``zlib.error`` as it is read."""
    codings = _codings(header)
    return _decoding(chunks, StreamDecoder(codings[0])) if codings else chunks


def _decoding(chunks: Iterator[bytes], decoder: StreamDecoder) -> Iterator[bytes]:
    for chunk in chunks:
        if out := decoder.feed(chunk):
            yield out
