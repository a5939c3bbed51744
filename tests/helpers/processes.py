"""Processes a job leaves behind: the readers it started (SSE_READER=process), alive or not."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["alive", "reader_pids"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie is gone, only its exit status is left to collect."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def reader_pids(log: str) -> list[int]:
    """The reader processes a job's log says it started."""
    return [int(pid) for pid in re.findall(r": read by process (\d+)", log)]
