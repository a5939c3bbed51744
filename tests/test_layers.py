"""Imports. One direction: the reusable connectors never import the jobs (or the
benchmarks, tests and notebooks built on them), read from the source and checked again
in a fresh interpreter that imports every connector module. And a job's start loads
nothing heavy it may not use."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers.oracle import ROOT

# The layers above the connectors.
ABOVE = ("dataflows", "benchmarks", "tests", "notebooks")


def _imported(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(), path)
    names: set[str] = set()
    for node in ast.walk(tree):  # function-level imports too
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "connectors").rglob("*.py"))


def test_no_connector_module_imports_from_a_layer_above() -> None:
    assert len(_modules()) > 10
    upward = {
        path: sorted(name for name in _imported(path) if name.split(".")[0] in ABOVE)
        for path in _modules()
    }
    assert {path: names for path, names in upward.items() if names} == {}


def test_importing_every_connector_module_loads_nothing_from_above() -> None:
    modules = [
        path.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        for path in _modules()
        if not path.endswith("__main__.py")
    ]
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {ABOVE!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_job_loads_the_simulator_and_pyjwt_only_when_it_uses_them() -> None:
    # Both cost a job's start a tenth of a second or more; a job reading a real stream
    # with a static token (or none) needs neither.
    probe = (
        "import sys\n"
        "import dataflows.sensor_stats, dataflows.features, dataflows.alerts\n"
        "print(sorted(m for m in ('jwt', 'connectors.simulator') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
