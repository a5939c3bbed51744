"""The README's and the docs' examples: every shell and Python block either runs here, as
written, against the embedded simulator (or a loopback one), or is marked with why it
cannot (a real vendor, make itself, a quote of a vendor's own example); and every setting
any example sets is one the jobs read, so a renamed setting or output path fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows import native
from dataflows.config import JOB_SETTINGS, settings_of
from tests.helpers.oracle import ROOT
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Why a block does not run here, as the comment before it says: <!-- not run: REASON -->.
NOT_RUN = {
    "make itself",  # make run/test/bench: the suite is what they run
    "needs a vendor",  # a real Disruptive Technologies or Obelisk account
    "a vendor's own example",  # quoted from the vendor's docs, for comparison
    "a cluster",  # processes on several hosts
    "runs until stopped",  # a server for the reader to point a job at
    "needs JupyterLab",  # make notebooks installs it; the notebook tests run them
    "needs your own server",  # a stream only the reader has
    "needs a private CA",  # a CA bundle only the reader has
    "run by tests/test_readme.py",  # the reading examples, against a job's output
}
# Settings an example may set that the jobs do not read from the environment.
NOT_JOB_SETTINGS = {"PYTHONPATH"}


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    language: str
    code: str
    marker: str | None  # the comment before the block: "not run: ..." or "file: NAME"

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples() -> list[Example]:
    found = []
    for page in PAGES:
        lines = page.read_text().split("\n")
        i = 0
        while i < len(lines):
            fence = re.match(r"^```(sh|python|toml)\s*$", lines[i])
            if fence:
                end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
                comment = re.match(r"^<!-- (.*) -->$", lines[i - 1]) if i else None
                found.append(
                    Example(
                        page,
                        i + 1,
                        fence.group(1),
                        "\n".join(lines[i + 1 : end]) + "\n",
                        comment.group(1) if comment else None,
                    )
                )
                i = end
            i += 1
    return found


def runnable(language: str) -> list[Example]:
    return [e for e in examples() if e.language == language and e.marker is None]


def test_every_example_runs_or_says_why_not() -> None:
    for example in examples():
        if example.marker is None:
            continue
        kind, _, detail = example.marker.partition(": ")
        if kind == "not run":
            assert detail in NOT_RUN, f"{example.name}: say why, one of {sorted(NOT_RUN)}"
        else:
            assert kind == "file" and example.language == "toml", f"{example.name}: {kind}?"
    assert len(runnable("sh")) >= 3 and len(runnable("python")) >= 1


def test_every_setting_an_example_sets_is_one_the_jobs_read() -> None:
    known = {name for job in JOB_SETTINGS for name, _, _ in settings_of(job)}
    known.add(native.OFF)  # read at import, not by dataflows.config
    for example in examples():
        if example.language != "sh" or example.marker == "not run: make itself":
            continue
        for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]+)=", example.code):
            assert name in known | NOT_JOB_SETTINGS, f"{example.name}: {name} is not a setting"


def _shell(example: Example, cwd: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs a shell example in ``cwd`` as a reader would in a checkout: ``.venv`` there,
    ``python`` the venv's; the embedded simulator fast (no SSE_URL: the job serves it)."""
    (cwd / ".venv").symlink_to(Path(sys.executable).parent.parent)
    for name, text in files.items():
        (cwd / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSE_", "SIM_", "OUTPUT"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        SIM_RATE="2000",
        SIM_EVENTS="400",
    )
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("example", runnable("sh"), ids=lambda e: e.name)
def test_each_shell_example_runs_as_written(example: Example, tmp_path: Path) -> None:
    files = {e.marker[6:]: e.code for e in examples() if e.marker and e.marker.startswith("file:")}
    done = _shell(example, tmp_path, files)
    assert done.returncode == 0, f"{example.name} failed:\n{done.stderr[-3000:]}"
    # An example that names an OUTPUT directory leaves its records there.
    for output in re.findall(r"OUTPUT=(\S+)", example.code):
        runs = list((tmp_path / output).glob("runs/*.json"))
        assert runs, f"{example.name}: nothing written to {output}"


def test_the_connectors_example_reads_a_stream_as_written(simulator: StartSim) -> None:
    # The first Python example of docs/connector.md, its URL the loopback simulator's.
    example = next(e for e in runnable("python") if e.page.name == "connector.md")
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=2, rate=100.0),
            faults=Faults(end_after=20),
            pace=False,
        )
    )
    assert "https://api.example.com/stream" in example.code
    code = example.code.replace("https://api.example.com/stream", sim.url)
    printed: list[str] = []
    scope = {"token": "t0ken", "print": lambda *a: printed.append(" ".join(map(str, a)))}
    exec(compile(code, example.name, "exec"), scope)
    assert [line.split(" ", 1)[0] for line in printed] == [str(n) for n in range(20)]
