"""Reading the project's TOML files (checks, calibration settings, sensitivity problems) with clear errors."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import ScenarioError


def read_toml(path: str | Path, what: str = "file") -> dict:
    """A TOML document; a missing file or bad syntax is an error naming the file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ScenarioError(f"{what} not found: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from error


def check_table(table, where: str, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """``table`` is a table with only ``valid`` keys and every ``required`` one; errors say where and what is valid."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: must be a table")
    unknown = [k for k in table if k not in valid]
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(valid)}")
    for key in required:
        if key not in table:
            raise ScenarioError(f"{where}: '{key}' is missing")
