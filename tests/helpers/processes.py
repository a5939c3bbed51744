"""A job's processes from /proc: the readers it started (SSE_READER=process), alive or
not, and the CPU a process used."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["alive", "cpu_seconds", "reader_pids"]


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command's name (which may hold spaces): state first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie is gone, only its exit status is left to collect."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def cpu_seconds(pid: int) -> float:
    """The CPU time ``pid`` has used, user and system."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def reader_pids(log: str) -> list[int]:
    """The reader processes a job's log says it started."""
    return [int(pid) for pid in re.findall(r": read by process (\d+)", log)]
