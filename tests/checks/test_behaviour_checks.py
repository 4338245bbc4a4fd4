"""The shipped behaviour checks, collected as tests, and each shown to fail on a model built to break it."""

import re
import tomllib
from pathlib import Path

import pytest

import migsd
from migsd.checks.behaviour import all_checks, run_check

from ..conftest import DATA

MODEL = migsd.load_model()
CHECKS, NOT_RUN = all_checks(MODEL)
BREAKERS = tomllib.loads((DATA / "check_breakers.toml").read_text(encoding="utf-8"))


def test_every_reality_check_of_the_model_is_run():
    assert NOT_RUN == []


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_shipped_check_holds(check):
    result = run_check(MODEL, check)
    assert result.passed, str(result)


def broken_copy(folder: Path, replacements: dict[str, str]) -> Path:
    """migsd.mdl with some equations replaced (the equation runs from the '=' to the units line)."""
    text = MODEL.path.read_text(encoding="utf-8")
    for head, equation in replacements.items():
        pattern = re.compile(rf"^({re.escape(head)}\s*=)\n\t.*?(?=\n\t~\t)", re.MULTILINE | re.DOTALL)
        text, count = pattern.subn(lambda m: f"{m.group(1)}\n\t{equation}", text)
        assert count == 1, f"'{head}' is not defined exactly once in migsd.mdl"
    path = folder / "migsd.mdl"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_check_has_a_breaker():
    assert sorted(BREAKERS) == sorted(c.name for c in CHECKS)


@pytest.mark.slow
@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_check_fails_on_a_model_built_to_break_it(check, tmp_path):
    broken = migsd.load_model(broken_copy(tmp_path, BREAKERS[check.name]))
    result = run_check(broken, check)
    assert not result.passed, f"'{check.name}' still holds on a model built to break it:\n{result}"
