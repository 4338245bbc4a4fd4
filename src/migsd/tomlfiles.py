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
    except UnicodeDecodeError as error:
        raise ScenarioError(not_utf8(path, error, f"a {what}")) from error


def not_utf8(path, error: UnicodeDecodeError, what: str) -> str:
    """The message for a file that is not UTF-8 text (binary, or saved in another encoding)."""
    return (f"{path}: not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start}); "
            f"{what} is TOML text saved as UTF-8")


def check_table(table, where: str, valid: tuple[str, ...], required: tuple[str, ...] = ()) -> None:
    """``table`` is a table with only ``valid`` keys and every ``required`` one; errors say where and what is valid."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: must be a table")
    unknown = [k for k in table if k not in valid]
    if unknown:
        from .names import did_you_mean

        raise ScenarioError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(valid)}."
                            + did_you_mean(str(unknown[0]), valid))
    for key in required:
        if key not in table:
            raise ScenarioError(f"{where}: '{key}' is missing")
