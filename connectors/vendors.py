"""The vendors' wire formats, by name: what a stream can carry and the simulator serves.

The names live here, below both users: the simulator (``connectors.simulator``) encodes
each, and the jobs' parsers (``dataflows.formats``) decode each, so neither imports the
other and the connectors never import the jobs.

- ``flat``: one JSON object a reading, ``{"sensor_id", "metric", "ts", "value"}``.
- ``dt``: Disruptive Technologies' device event stream (``{"result": {"event": ...}}``).
- ``obelisk``: Obelisk's metric events (``{"source", "metric", "timestamp", "value"}``).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DT_EVENT_TYPES", "VENDOR_FORMATS", "VendorFormat"]

VendorFormat = Literal["flat", "dt", "obelisk"]
VENDOR_FORMATS: tuple[VendorFormat, ...] = ("flat", "dt", "obelisk")

# Disruptive Technologies' event types (its API's ``eventType``, as its Python SDK lists
# them, with the states its documentation adds); ``ping`` is the stream's keep-alive.
DT_EVENT_TYPES: tuple[str, ...] = (
    "touch",
    "temperature",
    "objectPresent",
    "humidity",
    "objectPresentCount",
    "touchCount",
    "waterPresent",
    "co2",
    "pressure",
    "motion",
    "deskOccupancy",
    "contact",
    "probeWireStatus",
    "networkStatus",
    "batteryStatus",
    "labelsChanged",
    "connectionStatus",
    "ethernetStatus",
    "cellularStatus",
)
