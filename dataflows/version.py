"""Which sensorwax this is, and on what: for ``python -m dataflows --version`` and the
run record, so that an output can be traced to the code that wrote it."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from dataflows.native import chosen

__all__ = ["version_line", "versions"]


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:  # run from a checkout nobody installed
        return "not installed"


def versions() -> dict[str, str]:
    """sensorwax's version, and Bytewax's and Python's beside it, and which form of the
    hot modules runs (``dataflows/native.py``)."""
    return {
        "sensorwax": _installed("sensorwax"),
        "bytewax": _installed("bytewax"),
        "python": platform.python_version(),
        "native": chosen().describe(),
    }


def version_line() -> str:
    """``sensorwax 0.2.0 (Bytewax 0.21.1, Python 3.11.7; compiled with mypyc (...))``."""
    found = versions()
    return (
        f"sensorwax {found['sensorwax']} (Bytewax {found['bytewax']}, Python "
        f"{found['python']}; {found['native']})"
    )
