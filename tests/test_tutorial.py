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
