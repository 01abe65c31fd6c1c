"""The notebooks in examples/ run top to bottom on the current interpreter, so they never rot.

Each builds its own small demo store in a temporary folder (no network, no shared data).
Committed without outputs: a notebook saved with outputs fails here too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import install as install_kernelspec
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
KERNEL = "python3"


def test_the_three_notebooks_are_there() -> None:
    names = [path.stem for path in NOTEBOOKS]
    assert names == ["01_explore", "02_baselines", "03_experiments"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == KERNEL
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                f"{path.name}: strip outputs before committing"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cell runs without an error (nbclient raises CellExecutionError on the first)."""
    # the notebooks' kernel name, pointing at this interpreter, found first on JUPYTER_PATH
    prefix = tmp_path / "jupyter"
    spec = Path(install_kernelspec(kernel_name=KERNEL, prefix=str(prefix)))
    assert json.loads((spec / "kernel.json").read_text())["argv"][0] == sys.executable
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # the notebook's own temporary home (tempfile.mkdtemp) under this test's, removed with it
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=300,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    executed = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in executed)
    images = [
        output
        for cell in executed
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    assert images, f"{path.name} draws no plot"
    assert any(scratch.glob("matchwise-notebook-*")), "the notebook's home was not in TMPDIR"
