"""The job's run record: what it was asked to do and what it did, as one JSON file in
``OUTPUT/runs/``, so that a notebook pointed at an output directory knows the run without
a log.

``OUTPUT/runs/<start>-<pid>.json`` holds the job, its start and end (UTC), every setting
it read (secrets masked), per stream the events, bytes and each reconnect (wall time,
reason, the last event id before it and the stream's event time there), the summary
counts, and what retention removed. It is written when the job ends, however it ends,
and rewritten at each status line, so a job that is killed still leaves what it had done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataflows.run_stats import RunStats, peak_rss_bytes
from dataflows.times import from_micros, iso
from dataflows.version import versions

__all__ = ["RunRecord"]


class RunRecord:
    def __init__(
        self, stats: RunStats, directory: Path, settings: Mapping[str, str], started: datetime
    ) -> None:
        self._stats = stats
        self._settings = dict(settings)
        self._started = started
        stamp = started.strftime("%Y%m%dT%H%M%S")
        self.path = directory / "runs" / f"{stamp}Z-{os.getpid()}.json"

    def write(self, ended: bool = False) -> None:
        """Writes the record (a temporary file, then renamed: a reader never sees half)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.tmp")
        partial.write_text(json.dumps(self.content(ended), indent=1, ensure_ascii=False))
        partial.replace(self.path)

    def content(self, ended: bool) -> dict[str, Any]:
        stats = self._stats
        now = stats.now()
        breaks = stats.breaks.breaks()
        peak = peak_rss_bytes()
        return {
            "job": stats.job,
            "versions": versions(),
            "started": iso(self._started),
            "ended": iso(datetime.now(UTC)) if ended else None,
            "seconds": round(now.seconds, 3),
            "settings": self._settings,
            "streams": [
                {
                    "name": stream.name,
                    "url": stream.url,
                    "events": stream.events,
                    "bytes": stream.bytes,
                    "reconnects": [
                        {
                            "at": iso(datetime.fromtimestamp(b.reconnect.at, UTC)),
                            "reason": b.reconnect.reason,
                            "clean_end": b.reconnect.clean,
                            "last_event_id": b.reconnect.last_event_id or None,
                            "event_time": None
                            if b.event_time is None
                            else iso(from_micros(b.event_time)),
                            "delay_seconds": round(b.reconnect.delay, 3),
                            "attempt": b.reconnect.attempt,
                        }
                        for b in breaks
                        if b.stream == stream.name
                    ],
                }
                for stream in now.streams
            ],
            "summary": {
                "events": now.events,
                "readings": now.readings,
                "dead_letters": now.dead_letters,
                "records": now.records,
                "reconnects": now.reconnects,
                "peak_rss_mib": None if peak is None else round(peak / 2**20, 1),
            },
            "outputs": stats.outputs(),
            # What retention (OUTPUT_RETENTION) removed in this run.
            "removed": stats.removals(),
        }
