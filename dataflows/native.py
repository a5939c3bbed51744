"""Which form of the hot modules a job runs: compiled by mypyc, or the Python source.

``make`` compiles ``NATIVE_MODULES`` with mypyc into ``build/native/`` (``tools/
build_native.py``) when a C compiler is found. The source stays the source: the compiled
set is used only when it was built from exactly the ``.py`` files beside it (their
SHA-256 is in the build's manifest) for this interpreter, and ``SENSORWAX_NATIVE=0``
turns it off; otherwise every module is the pure-Python one, which gives the same
output, slower. The choice is made once, in ``dataflows/__init__.py``, before any of
these modules is imported, and all or none of them are compiled: mypyc compiles them
as one group that calls across modules directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "MANIFEST",
    "NATIVE_DIR",
    "NATIVE_MODULES",
    "Native",
    "built",
    "choose",
    "chosen",
    "import_settings",
    "manifest_for",
    "source_digests",
    "source_path",
]

# The modules where a job spends its time per event and per window (the profile of
# issue 25): compiled, the checked parsers, the key of each reading and the windows'
# arithmetic are C calls rather than interpreted bytecode.
NATIVE_MODULES = (
    "dataflows.formats",
    "dataflows.fast_formats",
    "dataflows.readings",
    "dataflows.key_groups",
)
ROOT = Path(__file__).resolve().parent.parent
NATIVE_DIR = ROOT / "build" / "native"
MANIFEST = NATIVE_DIR / "manifest.json"
OFF = "SENSORWAX_NATIVE"


def import_settings() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of the settings read here, at import, rather than by
    ``dataflows.config``: for the help and the settings page beside the jobs' own."""
    meaning = "0: run the pure-Python form of the hot modules even where the compiled one is built"
    return [(OFF, "unset", meaning)]


@dataclass(frozen=True)
class Native:
    """The form in use: ``compiled``, and if not, why not (one sentence)."""

    compiled: bool
    reason: str

    def describe(self) -> str:
        if self.compiled:
            return f"compiled with mypyc ({', '.join(m.rsplit('.', 1)[1] for m in NATIVE_MODULES)})"
        return f"pure Python ({self.reason})"


def source_path(module: str) -> Path:
    """A native module's ``.py`` file."""
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_digests() -> dict[str, str]:
    """Each native module's source file, by module name, as SHA-256 hex."""
    return {
        module: hashlib.sha256(source_path(module).read_bytes()).hexdigest()
        for module in NATIVE_MODULES
    }


def manifest_for(digests: dict[str, str]) -> dict[str, object]:
    """What the build's manifest says of a set built from sources with these digests."""
    return {"ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"), "sources": digests}


def built() -> Native:
    """Whether the compiled set in ``NATIVE_DIR`` may be used: built, for this Python,
    from the source beside it (``SENSORWAX_NATIVE`` aside)."""
    try:
        manifest = json.loads(MANIFEST.read_text())
    except FileNotFoundError:
        return Native(False, "not built: make builds it where a C compiler is found")
    except (OSError, ValueError) as exc:
        return Native(False, f"{MANIFEST} unreadable: {exc}")
    expected = manifest_for(source_digests())
    if manifest.get("ext_suffix") != expected["ext_suffix"]:
        return Native(
            False,
            f"built for {manifest.get('ext_suffix')}, this Python is {expected['ext_suffix']}",
        )
    if manifest.get("sources") != expected["sources"]:
        return Native(False, "the source changed since it was built: make rebuilds it")
    return Native(True, "")


def _judge() -> Native:
    if os.environ.get(OFF, "1") == "0":
        return Native(False, f"{OFF}=0")
    return built()


_chosen: Native | None = None


def choose(package_path: list[str]) -> Native:
    """Put the compiled modules first on the ``dataflows`` package's path when they may
    be used; called once by the package itself."""
    global _chosen
    if _chosen is None:
        _chosen = _judge()
        if _chosen.compiled:
            package_path.insert(0, str(NATIVE_DIR / "dataflows"))
            # mypyc's runtime for the group is one top-level module beside the package.
            sys.path.append(str(NATIVE_DIR))
    return _chosen


def chosen() -> Native:
    """The form in use (the pure one when the package has not chosen: not imported)."""
    return _chosen if _chosen is not None else _judge()
