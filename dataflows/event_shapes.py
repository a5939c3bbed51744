"""The usual event of each vendor format as a msgspec struct, for ``fast_formats``.

A module of its own, left as Python: mypyc compiles a class in a compiled module into a
native class, and msgspec cannot read the fields of one (its decoders refused every
event). ``gc=False``: a struct holds decoded JSON only, which cannot refer back to it, so
the collector need not track it (a tenth off the decode).
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["AutoFlat", "AutoObelisk", "DtEnvelope", "DtEvent", "DtResult", "Flat", "Obelisk"]


class Flat(msgspec.Struct, gc=False):
    sensor_id: str
    metric: str
    ts: str | int | float
    value: float


class Obelisk(msgspec.Struct, gc=False):
    source: str
    metric: str
    timestamp: str | int | float
    value: float


class AutoFlat(Flat, gc=False):
    """Flat JSON as ``auto`` reads it: only without a top-level ``result`` (that is DT)."""

    result: Any = msgspec.UNSET


class AutoObelisk(Obelisk, gc=False):
    """Obelisk as ``auto`` reads it: without ``result`` or ``sensor_id`` (DT, flat)."""

    result: Any = msgspec.UNSET
    sensor_id: Any = msgspec.UNSET


class DtEvent(msgspec.Struct, gc=False):
    eventType: str
    targetName: str
    data: dict[str, Any]
    timestamp: Any = None


class DtResult(msgspec.Struct, gc=False):
    event: DtEvent


class DtEnvelope(msgspec.Struct, gc=False):
    result: DtResult
