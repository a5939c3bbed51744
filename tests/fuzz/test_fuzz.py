"""The atheris fuzz target runs (briefly) in the suite; ``make fuzz`` runs it for longer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fuzz.fuzz_parser import check
from tests.helpers.oracle import ROOT, job_env

SEEDS = ROOT / "fuzz" / "seeds"


def test_the_seeds_pass_the_harness_checks() -> None:
    seeds = sorted(SEEDS.iterdir())
    assert len(seeds) >= 3
    for seed in seeds:
        check(seed.read_bytes())


def test_a_short_fuzzing_run_finds_nothing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.fuzz_parser",
            "-runs=20000",
            "-seed=7",
            "-timeout=10",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(SEEDS),
        ],
        cwd=ROOT,
        env=job_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 20000 runs" in run.stderr
    assert not list(tmp_path.glob("crash-*"))
    assert any(corpus.iterdir()), "the fuzzer found new coverage to keep"
