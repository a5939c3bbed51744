"""Compile ``dataflows.native.NATIVE_MODULES`` with mypyc into ``build/native/``.

Run by ``make`` before a job or the tests. Where no C compiler (or no Python headers) is
found, or the build fails, it says so and leaves no manifest, and the jobs use the
pure-Python modules: slower, the same output. ``dataflows/native.py`` decides at import
which form is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dataflows.native import (  # noqa: E402
    MANIFEST,
    NATIVE_DIR,
    NATIVE_MODULES,
    built,
    manifest_for,
    source_digests,
    source_path,
)

TEMP = ROOT / "build" / "native-temp"


def missing_toolchain() -> str | None:
    """Why a C extension cannot be built here, or None."""
    # setuptools compiles with $CC when it is set, else with the compiler Python was built with.
    compiler = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) found"
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    if not headers.exists():
        return f"no Python headers ({headers}; on Debian or Ubuntu: apt install python3-dev)"
    return None


def build() -> str | None:
    """Build the compiled set and its manifest; why not, or None when built."""
    MANIFEST.unlink(missing_ok=True)
    reason = missing_toolchain()
    if reason is not None:
        return reason
    digests = source_digests()
    paths = [str(source_path(m).relative_to(ROOT)) for m in NATIVE_MODULES]
    shutil.rmtree(NATIVE_DIR, ignore_errors=True)
    # A child process: mypyc's setup() reads its own argv and may exit on an error.
    script = (
        "import sys; from setuptools import setup; from mypyc.build import mypycify; "
        f"setup(name='sensorwax-native', ext_modules=mypycify({paths!r}, "
        f"target_dir={str(TEMP / 'c')!r}), script_args=['build_ext', '--build-lib', "
        f"{str(NATIVE_DIR)!r}, '--build-temp', {str(TEMP)!r}])"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return f"mypyc failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    if source_digests() != digests:
        return "the source changed while it was built: run make again"
    MANIFEST.write_text(json.dumps(manifest_for(digests), indent=2) + "\n")
    return None


def main() -> int:
    modules = ", ".join(NATIVE_MODULES)
    if built().compiled:
        print(f"native: {modules} compiled, up to date")
        return 0
    reason = build()
    if reason is None:
        print(f"native: compiled {modules} with mypyc into {NATIVE_DIR.relative_to(ROOT)}")
    else:
        print(f"native: not compiled, the jobs use the pure-Python modules: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
