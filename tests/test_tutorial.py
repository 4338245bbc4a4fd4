"""docs/tutorial.md runs as written: every python block, in order, in a scratch folder."""

import re
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


@pytest.mark.slow
def test_the_tutorial_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{TUTORIAL.name} block {number}", "exec"), namespace)
    assert (tmp_path / "fan.png").exists() and (tmp_path / "two_scenarios.nc").exists()


NOTEBOOK = TUTORIAL.with_suffix(".ipynb")


@pytest.mark.slow
def test_the_notebook_runs_on_a_jupyter_kernel(tmp_path):
    import nbclient
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # shipped unexecuted
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                      for output in cell.outputs)
    assert "yields by 2060" in printed and "of the data points lie in the 90% predictive interval" in printed
    assert (tmp_path / "posterior_fan.png").exists() and (tmp_path / "posterior_runs.nc").exists()
