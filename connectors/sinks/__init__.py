"""Where records land: the console, and hourly JSON Lines part files (``rolling``)."""

from connectors.sinks.console import StdErrSink, StdOutSink
from connectors.sinks.layout import hour_folder, part_files
from connectors.sinks.rolling import Chunk, Cluster, HourlyPartSink, PartState

__all__ = [
    "Chunk",
    "Cluster",
    "HourlyPartSink",
    "PartState",
    "StdErrSink",
    "StdOutSink",
    "hour_folder",
    "part_files",
]
