"""Every notebook in notebooks/ runs headless from start to end, as CI runs it.

Each is executed by nbclient in a fresh ``python3`` kernel (ipykernel, from this environment)
from a temporary working directory, with TMPDIR pointing there too, so nothing is written
into the repository; any cell error fails the test.
"""
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebook in {NOTEBOOK_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_shows_figures(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not any(cell.outputs or cell.execution_count for cell in code), \
        f"{path.name}: stored with outputs; clear them before committing"
    assert any(".fit(" in cell.source for cell in code), f"{path.name}: no model.fit call"

    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel inherits it: tempfile writes here
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    images = [output for cell in code for output in cell.outputs
              if output.output_type in ("display_data", "execute_result")
              and "image/png" in output.get("data", {})]
    assert images, f"{path.name}: no figure was shown"
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before
