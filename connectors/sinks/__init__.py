"""Where records land: the console, hourly JSON Lines part files (``rolling``), and Delta
Lake tables (``connectors.sinks.delta``, imported on its own: deltalake and pyarrow
take about 90 MiB that a job writing JSON Lines does not need)."""

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
