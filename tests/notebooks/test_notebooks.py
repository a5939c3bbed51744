"""The notebooks run headless from a clean state, every cell, and are committed without output."""

from __future__ import annotations

import base64
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers.oracle import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.slow


def test_there_are_the_two_notebooks() -> None:
    assert [n.name for n in NOTEBOOKS] == ["feature_exploration.ipynb", "sensor_analysis.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None, f"{path.name}: strip the execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_every_cell_and_draws_its_figures(path: Path, tmp_path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    # A failing cell raises CellExecutionError here, failing the test.
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    images = [
        base64.b64decode(output["data"]["image/png"])
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert len(images) >= 3
    assert all(image.startswith(b"\x89PNG") for image in images)
    (tmp_path / f"{path.stem}.png").write_bytes(images[0])
