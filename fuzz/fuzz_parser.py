"""Coverage-guided fuzzing of the SSE and NDJSON parsers with atheris: ``make fuzz``.

Each input is read as: which parser, an event size limit, where to cut the stream into
chunks, then the stream itself. The incremental parser must never raise, must give the
same items however the stream is chunked, and (SSE) must equal the whole-stream
reference in ``tests/sse_reference.py``. libFuzzer's own ``-timeout`` catches a hang.

    python -m fuzz.fuzz_parser -runs=100000 .fuzz-corpus fuzz/seeds
"""

from __future__ import annotations

import itertools
import sys

import atheris

with atheris.instrument_imports():
    from connectors.sse.parser import NDJSONParser, SSEParser

from tests.helpers.sse_reference import reference


def _chunks(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


def check(data: bytes) -> None:
    """One fuzz input; raises AssertionError (a finding) when the parser is wrong."""
    provider = atheris.FuzzedDataProvider(data)
    ndjson = provider.ConsumeBool()
    limit = provider.ConsumeIntInRange(1, 64)
    cuts = provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 12), 0, 1 << 16)
    stream = provider.ConsumeBytes(provider.remaining_bytes())
    make = NDJSONParser if ndjson else SSEParser

    whole = make(max_event_bytes=limit).feed(stream)
    parser = make(max_event_bytes=limit)
    pieces = [item for chunk in _chunks(stream, cuts) for item in parser.feed(chunk)]
    assert pieces == whole, (stream, cuts, limit)
    if not ndjson:
        assert whole == reference(stream, limit), (stream, limit)


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
