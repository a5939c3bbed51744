"""Compressed stream bodies: gzip and deflate (zlib or raw) decoded as they arrive, on
every read path, the events equal to the uncompressed stream's; any other coding refused
with one line before the parser sees a byte."""

from __future__ import annotations

import itertools
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from connectors.sse import SSEContentEncodingError, subscribe
from connectors.sse.encoding import StreamDecoder, unsupported_encoding
from tests.helpers.servers import StartSim
from tests.helpers.streams import FAST_RETRY

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "raw-deflate": -zlib.MAX_WBITS}


def _compressed(body: bytes, coding: str, flushes: list[int]) -> bytes:
    """``body`` compressed with a sync flush at each of ``flushes``, as a server that
    flushes every event sends it."""
    compressor = zlib.compressobj(wbits=_WBITS[coding])
    out, at = [], 0
    for cut in [*sorted(set(flushes)), len(body)]:
        out.append(compressor.compress(body[at:cut]) + compressor.flush(zlib.Z_SYNC_FLUSH))
        at = cut
    out.append(compressor.flush())
    return b"".join(out)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=4000),
    coding=st.sampled_from(sorted(_WBITS)),
    flushes=st.lists(st.integers(0, 4000), max_size=8),
    cuts=st.lists(st.integers(0, 6000), max_size=12),
)
def test_any_compressed_body_cut_anywhere_decodes_to_itself(
    body: bytes, coding: str, flushes: list[int], cuts: list[int]
) -> None:
    wire = _compressed(body, coding, [f for f in flushes if f <= len(body)])
    decoder = StreamDecoder("deflate" if coding == "raw-deflate" else coding)
    bounds = [0, *sorted(c for c in set(cuts) if c < len(wire)), len(wire)]
    got = b"".join(decoder.feed(wire[a:b]) for a, b in itertools.pairwise(bounds))
    assert got == body


@pytest.mark.parametrize(
    ("header", "refused"),
    [
        ("", None),
        ("identity", None),
        ("gzip", None),
        ("x-gzip", None),
        ("Deflate", None),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate", "gzip, deflate"),  # two codings applied: not decoded
    ],
)
def test_which_codings_are_decoded(header: str, refused: str | None) -> None:
    assert unsupported_encoding(header) == refused


def _events(sim_url: str) -> list[tuple[str, str, str]]:
    return [(e.id, e.event, e.data) for e in subscribe(sim_url, retry=FAST_RETRY)]


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "read-to-close"])
@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
def test_a_compressed_stream_gives_the_events_of_the_plain_one(
    simulator: StartSim, coding: str, chunked: bool
) -> None:
    def config(encoding: str | None) -> SimulatorConfig:
        return SimulatorConfig(
            sequence=SequenceSpec(sensors=5, format="dt", samples=4, seed=2),
            # A drop mid-event, then a resume: the second body starts a new compression.
            faults=Faults(end_after=300, drop_every=120, drop_mid_event=True),
            pace=False,
            chunked=chunked,
            events_per_write=3,
            content_encoding=encoding,  # type: ignore[arg-type]
        )

    plain = _events(simulator(config(None)).url)
    compressed = simulator(config(coding))
    assert _events(compressed.url) == plain
    assert len(plain) == 300
    assert sum(1 for r in compressed.requests if r.status == 200) == 3


def test_a_coding_the_client_does_not_decode_stops_with_one_line(simulator: StartSim) -> None:
    sim = simulator(SimulatorConfig(faults=Faults(end_after=10), pace=False, content_encoding="br"))
    with pytest.raises(SSEContentEncodingError) as caught:
        list(subscribe(sim.url, retry=FAST_RETRY))
    message = str(caught.value)
    assert "Content-Encoding 'br'" in message and "gzip and deflate" in message
    assert "\n" not in message
    assert caught.value.content_encoding == "br"
    assert len(sim.requests) == 1  # fatal: no reconnect
