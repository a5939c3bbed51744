"""Which form of the hot modules runs: compiled where make could build them, the source
otherwise, and never a compiled module built from other source than the ``.py`` beside it.

``make test`` runs the suite on the compiled modules; ``make pytest-pure`` runs the tests
that hold them to the references again with ``SENSORWAX_NATIVE=0``.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from dataflows import native
from tools.build_native import missing_toolchain

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")


def _loaded_files() -> dict[str, str]:
    return {m: str(importlib.import_module(m).__file__) for m in native.NATIVE_MODULES}


def test_the_form_reported_is_the_form_loaded() -> None:
    form = native.chosen()
    for module, path in _loaded_files().items():
        if form.compiled:
            assert path.endswith(SUFFIX) and path.startswith(str(native.NATIVE_DIR)), module
        else:
            assert path.endswith(".py") and not path.startswith(str(native.NATIVE_DIR)), module


def test_the_compiled_modules_run_wherever_make_can_build_them() -> None:
    """The test that fails when the build breaks on a machine with a C compiler (CI's):
    the rest of the suite would still pass, on the pure-Python modules."""
    if os.environ.get(native.OFF) == "0":
        assert native.chosen() == native.Native(False, f"{native.OFF}=0")
        return
    why_not = missing_toolchain()
    expected = native.Native(True, "") if why_not is None else native.chosen()
    assert native.chosen() == expected, f"{native.chosen().describe()}: run make native"
    assert native.chosen().compiled == (why_not is None)


def _python(code: str, cwd: Path, *, judge: bool = False, **env: str) -> str:
    """``code``'s output in a fresh interpreter run in ``cwd``; ``judge``: without this
    run's SENSORWAX_NATIVE, so the manifest decides."""
    settings = {k: v for k, v in os.environ.items() if not (judge and k == native.OFF)}
    settings.update(env, PYTHONPATH=str(cwd))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=settings, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


_REPORT = (
    "import dataflows.readings as r; from dataflows.native import chosen; "
    "print(chosen().describe(), r.__file__.endswith('.py'))"
)


def test_native_0_runs_the_source() -> None:
    assert _python(_REPORT, ROOT, SENSORWAX_NATIVE="0") == "pure Python (SENSORWAX_NATIVE=0) True"


def test_a_compiled_set_older_than_its_source_is_not_used(tmp_path: Path) -> None:
    """A copy of the checkout with the compiled set in it, then one native module edited:
    the copy runs the source, and says why."""
    shutil.copytree(ROOT / "dataflows", tmp_path / "dataflows")
    shutil.copytree(ROOT / "connectors", tmp_path / "connectors")
    manifest = tmp_path / "build" / "native" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps(native.manifest_for(native.source_digests())))
    if native.NATIVE_DIR.exists():
        shutil.copytree(native.NATIVE_DIR / "dataflows", manifest.parent / "dataflows")
        for runtime in native.NATIVE_DIR.glob("*__mypyc*"):
            shutil.copy(runtime, manifest.parent)
    copied = _python(_REPORT, tmp_path, judge=True)
    if native.NATIVE_DIR.joinpath("dataflows").exists():
        assert copied == f"{native.Native(True, '').describe()} False"

    edited = tmp_path / "dataflows" / "readings.py"
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    assert _python(_REPORT, tmp_path, judge=True) == (
        "pure Python (the source changed since it was built: make rebuilds it) True"
    )
    manifest.unlink()
    assert _python(_REPORT, tmp_path, judge=True).startswith(
        "pure Python (not built: make builds it"
    )


def test_without_a_c_compiler_make_says_so_and_the_job_runs_the_source(tmp_path: Path) -> None:
    for tree in ("dataflows", "connectors", "tools"):
        shutil.copytree(ROOT / tree, tmp_path / tree)
    built = subprocess.run(
        [sys.executable, "tools/build_native.py"],
        cwd=tmp_path,
        env={**os.environ, "CC": "no-such-cc"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert built.stdout == (
        "native: not compiled, the jobs use the pure-Python modules: "
        "no C compiler (no-such-cc) found\n"
    )
    assert not (tmp_path / "build" / "native" / "manifest.json").exists()
    assert _python(_REPORT, tmp_path, judge=True).startswith("pure Python (not built")


def test_the_version_line_says_which_form_runs() -> None:
    line = _python("from dataflows.version import version_line; print(version_line())", ROOT)
    assert line.endswith(f"; {native.chosen().describe()})")
