"""The README's and the docs' examples: every shell and Python block either runs here, as
written, against the embedded simulator (or a loopback one, or one playing Disruptive
Technologies or Obelisk, with the placeholders filled in), or is marked with why it
cannot (make itself, a quote of a vendor's own example, a cluster); and every setting any
example sets is one the jobs read, so a renamed setting or output path fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.obelisk_catalog import ObeliskCatalog
from connectors.simulator import (
    Faults,
    OAuth2Server,
    SensorSimulator,
    SequenceSpec,
    SimulatorConfig,
)
from connectors.simulator.obelisk import ObeliskConfig
from connectors.sse import ClientCredentials
from tests.helpers.doc_blocks import Example, examples, known_settings, page_files
from tests.helpers.oracle import ROOT
from tests.helpers.servers import StartSim

pytestmark = pytest.mark.slow

# Why a block does not run here, as the comment before it says: <!-- not run: REASON -->.
NOT_RUN = {
    "make itself",  # make run/test/bench: the suite is what they run
    "a vendor's own example",  # quoted from the vendor's docs, for comparison
    "a cluster",  # processes on several hosts
    "runs until stopped",  # a server for the reader to point a job at
    "needs JupyterLab",  # make notebooks installs it; the notebook tests run them
    "needs your own server",  # a stream only the reader has
    "needs a private CA",  # a CA bundle only the reader has
    "run by tests/test_readme.py",  # the reading examples, against a job's output
    "a directory tree",  # a sketch of the output layout; tests/dataflows check the names
    "a Prometheus query",  # for a Prometheus server scraping the job
    "scraped by tests/dataflows/test_metrics.py",  # the metrics shown, against a scrape
}
# A vendor's example (<!-- simulated: dt, obelisk -->) runs against the simulator playing
# that vendor: the vendor's hosts become the simulator's, and the placeholders a reader
# fills in (`...`, PROJECT, KEY_ID, ACCOUNT, STREAM_ID, a stream's id) the test account's.
VENDORS = ("dt", "obelisk")
DT_PROJECT, DT_KEY_ID, DT_ACCOUNT = "c0md3mm0c7pet3vico8g", "c18rs36olv9021epsv2g", "c15uar79"
DT_SECRET = "239dcd912b8041a58054f843a2a633a4"
DT_EMAIL = f"{DT_ACCOUNT}@{DT_PROJECT}.serviceaccount.d21s.com"
DT_HOSTS = (
    "https://api.disruptive-technologies.com",
    "https://identity.disruptive-technologies.com",
)
OBELISK_CLIENT, OBELISK_SECRET = "60a6665536e9be3139e58f7c", "4b0c8e1d2f3a45e6b7c8d9e0f1a2b3c4"
OBELISK_DATASET = "60a6665536e9be3139e58f7b"  # the dataset of obelisk-py's example
OBELISK_HOST = "https://obelisk.ilabt.imec.be"
OBELISK_STREAM_IDS = ("STREAM_ID", "65a1bb2389051f78a66b9b8f")
FILLED = {
    "DT_PROJECT_ID": DT_PROJECT,
    "DT_SERVICE_ACCOUNT_KEY_ID": DT_KEY_ID,
    "DT_SERVICE_ACCOUNT_SECRET": DT_SECRET,
    "DT_SERVICE_ACCOUNT_EMAIL": DT_EMAIL,
    "SSE_OAUTH2_JWT_SECRET": DT_SECRET,
    "OBELISK_CLIENT_ID": OBELISK_CLIENT,
    "OBELISK_CLIENT_SECRET": OBELISK_SECRET,
    "SSE_OAUTH2_CLIENT_ID": OBELISK_CLIENT,
    "SSE_OAUTH2_CLIENT_SECRET": OBELISK_SECRET,
}
VENDOR_EVENTS = 120
# Settings an example may set that the jobs do not read from the environment.
NOT_JOB_SETTINGS = {"PYTHONPATH"}


def runnable(language: str) -> list[Example]:
    return [e for e in examples() if e.language == language and e.marker is None]


def test_every_example_runs_or_says_why_not() -> None:
    for example in examples():
        if example.marker is None:
            # A bare block shows what something prints: tests/test_printed.py runs that.
            assert example.language != "", f"{example.name}: say what prints it, or why not"
            continue
        kind, _, detail = example.marker.partition(": ")
        if kind == "not run":
            assert detail in NOT_RUN, f"{example.name}: say why, one of {sorted(NOT_RUN)}"
        elif kind == "simulated":
            assert set(example.vendors) <= set(VENDORS), f"{example.name}: one of {VENDORS}"
            assert example.language == "sh", f"{example.name}: only shell examples are simulated"
        elif kind == "printed by":
            assert example.language == "", f"{example.name}: only output is printed by a job"
        elif kind == "in the run record":
            # tests/dataflows/test_run_record.py holds it to a real record's entry.
            assert example.language == "json", f"{example.name}: a run record's part is JSON"
        else:
            assert kind == "file" and example.language == "toml", f"{example.name}: {kind}?"
    assert len(runnable("sh")) >= 3 and len(runnable("python")) >= 1


def test_every_setting_an_example_sets_is_one_the_jobs_read() -> None:
    known = known_settings()
    for example in examples():
        if example.language != "sh" or example.marker == "not run: make itself":
            continue
        for name in re.findall(r"(?:^|\s)([A-Z][A-Z0-9_]+)=", example.code):
            assert name in known | NOT_JOB_SETTINGS, f"{example.name}: {name} is not a setting"


def _shell(
    example: Example, cwd: Path, files: dict[str, str], code: str | None = None, **more: str
) -> subprocess.CompletedProcess[str]:
    """Runs a shell example in ``cwd`` as a reader would in a checkout: ``.venv`` there,
    ``python`` the venv's; the embedded simulator fast (no SSE_URL: the job serves it)."""
    (cwd / ".venv").symlink_to(Path(sys.executable).parent.parent)
    for name, text in files.items():
        (cwd / name).write_text(text)
    ours = ("SSE_", "SIM_", "OUTPUT", "DT_", "OBELISK_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(more)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        SIM_RATE="2000",
        SIM_EVENTS="400",
    )
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.code if code is None else code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("example", runnable("sh"), ids=lambda e: e.name)
def test_each_shell_example_runs_as_written(example: Example, tmp_path: Path) -> None:
    done = _shell(example, tmp_path, page_files())
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


def _dt(simulator: StartSim) -> SensorSimulator:
    return simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=20.0, format="dt", project=DT_PROJECT),
            faults=Faults(end_after=VENDOR_EVENTS),
            pace_rate=400,
            oauth2=OAuth2Server(jwt_keys={DT_KEY_ID: (DT_SECRET, DT_EMAIL)}),
        )
    )


def _obelisk(simulator: StartSim) -> tuple[SensorSimulator, str]:
    """An Obelisk whose one dataset is obelisk-py's, and a stream created before."""
    sim = simulator(
        SimulatorConfig(
            sequence=SequenceSpec(sensors=6, rate=20.0, format="obelisk", project=OBELISK_DATASET),
            faults=Faults(end_after=VENDOR_EVENTS),
            pace_rate=400,
            oauth2=OAuth2Server(clients={OBELISK_CLIENT: OBELISK_SECRET}),
            obelisk=ObeliskConfig(),
        )
    )
    credentials = ClientCredentials(sim.token_url, OBELISK_CLIENT, OBELISK_SECRET)
    created = ObeliskCatalog(sim.base_url, credentials).create_stream("before", [OBELISK_DATASET])
    return sim, created.id


def as_simulated(
    code: str, dt: SensorSimulator | None, obelisk: tuple[SensorSimulator, str] | None
) -> str:
    """The example with the vendors' hosts the simulators' and its placeholders filled."""
    for name, value in FILLED.items():
        code = re.sub(rf"\b{name}=\S*\.\.\.\S*", f"{name}={value}", code)
    words = {"PROJECT": DT_PROJECT, "KEY_ID": DT_KEY_ID, "ACCOUNT": DT_ACCOUNT}
    if dt is not None:
        for host in DT_HOSTS:
            code = code.replace(host, dt.base_url)
    if obelisk is not None:
        code = code.replace(OBELISK_HOST, obelisk[0].base_url)
        words.update(dict.fromkeys(OBELISK_STREAM_IDS, obelisk[1]))
    for word, value in words.items():
        code = re.sub(rf"\b{word}\b", value, code)
    assert "..." not in code and "example" not in code, f"a placeholder is left:\n{code}"
    return code


@pytest.mark.parametrize("example", [e for e in examples() if e.vendors], ids=lambda e: e.name)
def test_each_vendor_example_runs_against_the_simulator_playing_the_vendor(
    example: Example, simulator: StartSim, tmp_path: Path
) -> None:
    dt = _dt(simulator) if "dt" in example.vendors else None
    obelisk = _obelisk(simulator) if "obelisk" in example.vendors else None
    code = as_simulated(example.code, dt, obelisk)
    # DT's examples do not name DT's API: the job's DT_API_URL and DT_TOKEN_URL point it.
    urls = {}
    if dt is not None:
        urls = {"DT_API_URL": f"{dt.base_url}/v2", "DT_TOKEN_URL": dt.token_url}
    done = _shell(example, tmp_path, {}, code, **urls)
    assert done.returncode == 0, f"{example.name} failed:\n{code}\n{done.stderr[-3000:]}"
    secrets = (DT_SECRET, OBELISK_SECRET)
    assert not any(s in done.stdout + done.stderr for s in secrets), "a secret was printed"
    jobs = code.count("dataflows.sensor_stats")
    for sim in [s for s in (dt, obelisk[0] if obelisk else None) if s is not None]:
        if jobs:
            # The job read the vendor's stream to its end, with a token it fetched.
            assert sorted(sim.sent_ids)[-1] == VENDOR_EVENTS - 1, sim.requests
            assert sim.tokens is not None and sim.tokens.requests
    outputs = re.findall(r"OUTPUT=(\S+)", code)
    assert len(outputs) == jobs
    for output in set(outputs):
        written = tmp_path / output
        assert len(list(written.glob("runs/*.json"))) == outputs.count(output)
        aggregates = [p for p in written.rglob("*") if "aggregates" in p.parts and p.is_file()]
        assert aggregates, f"{example.name}: no aggregates in {output}"
        assert not any(s in p.read_text() for p in written.rglob("*.json*") for s in secrets)
    if "dataflows.obelisk" in code and obelisk is not None:
        # create-stream made one, list-streams showed both, remove-stream took the one before.
        assert "created Obelisk stream" in done.stdout and "by-hand" in done.stdout
        assert f"removed Obelisk stream {obelisk[1]}" in done.stdout
        assert obelisk[0].catalog is not None
        assert [s.name for s in obelisk[0].catalog.streams] == ["by-hand"]
