"""What the README and the docs show a job printing is what it prints: each bare block
says which run prints it (<!-- printed by: JOB SETTINGS ; JOB SETTINGS -->), the test
makes that run against the embedded simulator (or a loopback server the settings name:
``SSE_URL=@flat``, ``@401``, ``@refused``), and every line shown must be the shape of a line
printed: the same words, with numbers, URLs and ports free to differ. A reworded log
line, a renamed field or a changed error message fails here."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.simulator import Faults, SequenceSpec, SimulatorConfig
from dataflows.config import JOB_SETTINGS
from tests.helpers.doc_blocks import Example, examples, known_settings, page_files
from tests.helpers.oracle import ROOT
from tests.helpers.servers import StartSim, free_port

pytestmark = pytest.mark.slow

PRINTED = "printed by: "
# The loopback servers a marker's SSE_URL=@NAME stands for.
SERVERS = ("@flat", "@401", "@refused")


def printed_blocks() -> list[Example]:
    return [e for e in examples() if (e.marker or "").startswith(PRINTED)]


def runs_of(example: Example) -> list[tuple[str, dict[str, str]]]:
    """The marker's runs: each a job and the settings it is given."""
    runs = []
    for run in (example.marker or "")[len(PRINTED) :].split(" ; "):
        job, *settings = shlex.split(run)
        runs.append((job, dict(setting.split("=", 1) for setting in settings)))
    return runs


def shape(line: str) -> str:
    """A line with what varies from run to run made alike: URLs, then every number."""
    line = re.sub(r"https?://\S*[^\s:,)'\"]", "URL", line)
    return re.sub(r"\d+(?:\.\d+)?", "N", line)


def test_every_printed_block_names_jobs_and_settings_that_exist() -> None:
    known = known_settings()
    blocks = printed_blocks()
    assert len(blocks) >= 10
    for example in blocks:
        for job, settings in runs_of(example):
            assert job in JOB_SETTINGS, f"{example.name}: {job} is not a job"
            unknown = set(settings) - known
            assert not unknown, f"{example.name}: {sorted(unknown)} are not settings"


def test_shapes_keep_words_and_free_numbers_and_urls() -> None:
    shown = "WARNING connectors.sse.client: http://127.0.0.1:39097/stream: reconnecting in 0.64 s"
    got = "2026-12-04T20:41:39.012Z " + shown.replace("39097", "5").replace("0.64", "1.2")
    assert shape(shown) in shape(got)
    assert shape("reconnecting in 0.64 s") not in shape("reconnected in 0.64 s")
    assert shape("stopped: https://api.example.com/s?token=***: HTTP 401") == "stopped: URL: HTTP N"


def _url(name: str, simulator: StartSim) -> str:
    if name == "@flat":
        # The embedded simulator's stream, served apart, as a stream with a URL is.
        sim = simulator(
            SimulatorConfig(sequence=SequenceSpec(rate=2000), faults=Faults(end_after=400))
        )
        return sim.url
    if name == "@401":
        # A stream that wants a bearer token, given none (the token in the URL is not it).
        sim = simulator(SimulatorConfig(bearer_token="the-right-one", faults=Faults(end_after=1)))
        return f"{sim.url}?token=a-wrong-one"
    assert name == "@refused", name
    return f"http://127.0.0.1:{free_port()}/stream"


@pytest.mark.parametrize("example", printed_blocks(), ids=lambda e: e.name)
def test_each_output_shown_is_what_the_job_prints(
    example: Example, simulator: StartSim, tmp_path: Path
) -> None:
    for name, text in page_files().items():
        (tmp_path / name).write_text(text)
    ours = ("SSE_", "SIM_", "OUTPUT", "DT_", "OBELISK_", "STATUS_", "ALERT_", "LOG_")
    base = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    # The embedded simulator as make run serves it, only faster (the shapes do not count).
    base.update(PYTHONPATH=str(ROOT), SIM_RATE="2000")
    printed: list[str] = []
    for job, settings in runs_of(example):
        env = {**base, **settings}
        if env.get("SSE_URL") in SERVERS:
            env["SSE_URL"] = _url(env["SSE_URL"], simulator)
        done = subprocess.run(
            [sys.executable, "-m", "bytewax.run", f"dataflows.{job}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        printed += (done.stdout + done.stderr).splitlines()
    shapes = [shape(line) for line in printed]
    shown = [line for line in example.code.splitlines() if line.strip() not in ("", "...")]
    assert shown
    for line in shown:
        assert any(shape(line) in got for got in shapes), (
            f"{example.name}: no printed line is like\n  {line}\nprinted:\n" + "\n".join(printed)
        )
