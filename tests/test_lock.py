"""The lock: what make installs is uv.lock's versions, with hashes, and they satisfy
pyproject.toml's ranges; the environment the tests run in is that lock; the version
the package says is the CHANGELOG's newest."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.oracle import ROOT

# Each file make installs, and the extras (beside the build group) it was exported with.
EXPORTS = {"dev": ("dev",), "bench": ("dev", "bench"), "notebooks": ("dev", "notebooks")}
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^ ;\\]+)(?: ; ([^\\]+?))? \\$")


def _pins(export: str) -> dict[str, tuple[str, str | None, int]]:
    """name: (version, marker, how many hashes) for each package in an export."""
    lines = (ROOT / "requirements" / f"{export}.txt").read_text().splitlines()
    pins: dict[str, tuple[str, str | None, int]] = {}
    for i, line in enumerate(lines):
        found = _PIN.match(line)
        if found:
            hashes = 0
            for after in lines[i + 1 :]:
                if not after.strip().startswith("--hash=sha256:"):
                    break
                hashes += 1
            pins[canonicalize_name(found[1])] = (found[2], found[3], hashes)
    return pins


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _wanted(extras: tuple[str, ...]) -> list[Requirement]:
    project = _pyproject()
    declared = project["project"]
    texts = list(declared["dependencies"])
    for extra in extras:
        texts += declared["optional-dependencies"][extra]
    texts += project["dependency-groups"]["build"]
    return [Requirement(text) for text in texts]


def test_every_export_pins_uv_locks_versions_with_hashes() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked: dict[str, set[str]] = {}
    for package in lock["package"]:
        locked.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
    for export in EXPORTS:
        pins = _pins(export)
        assert len(pins) > 50, export
        for name, (pinned, _, hashes) in pins.items():
            assert pinned in locked.get(name, set()), f"{export}: {name}=={pinned} not in uv.lock"
            assert hashes > 0, f"{export}: {name} has no hash"


def test_the_pinned_versions_satisfy_pyprojects_ranges() -> None:
    for export, extras in EXPORTS.items():
        pins = _pins(export)
        for requirement in _wanted(extras):
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{requirement} is not in requirements/{export}.txt: make lock"
            assert requirement.specifier.contains(pins[name][0], prereleases=True), (
                f"requirements/{export}.txt pins {name}=={pins[name][0]}, outside {requirement}"
                ": make lock"
            )


def test_the_environment_the_tests_run_in_is_the_lock() -> None:
    here = default_environment()
    differ = []
    for name, (pinned, marker, _) in _pins("dev").items():
        if marker and not Requirement(f"x ; {marker}").marker.evaluate(here):
            continue
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            differ.append(f"{name}: {installed}, locked {pinned}")
    assert differ == []


def test_the_version_is_the_changelogs_newest_and_the_cli_says_it() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    newest = re.findall(r"^## (\d+\.\d+\.\d+) - \d{4}-\d{2}-\d{2}", changelog, re.M)[0]
    assert _pyproject()["project"]["version"] == newest
    done = subprocess.run(
        [sys.executable, "-m", "dataflows", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"sensorwax {newest} (Bytewax 0.21.1, Python 3.1")
