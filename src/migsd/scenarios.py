"""Scenario files, ``models/scenarios/*.toml``: read, validate, list.

A scenario is a TOML file whose stem is its name::

    title = "IOM South-South programme"
    description = "Why and what it changes."

    [parameters]                      # constants, by .mdl name
    "IOM funding" = [[2025, 0], [2035, 1e10]]     # points over time
    "IOM rights conditionality" = 1
    "enforcement push[North]" = 0.7             # one element

    [initial]                         # initial values of stocks
    "Restrictiveness[North]" = 0.55

Every key is checked against the model before a run (see :mod:`migsd.parameters`).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ScenarioError
from .names import did_you_mean
from .tomlfiles import not_utf8
from .paths import SCENARIOS_DIR

_TOP_LEVEL = {"title", "description", "parameters", "initial"}


@dataclass(frozen=True)
class Scenario:
    """A named set of overrides read from a scenario file."""

    name: str
    title: str
    description: str
    path: Path
    parameters: dict = field(default_factory=dict)
    initial: dict = field(default_factory=dict)


def read_scenario(path: str | os.PathLike) -> Scenario:
    """Read a scenario file, checking its layout (not yet its names: see :func:`validate`)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            content = tomllib.load(handle)
    except FileNotFoundError as error:
        raise ScenarioError(f"scenario file not found: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"{path}: not valid TOML: {error}") from error
    except UnicodeDecodeError as error:
        raise ScenarioError(not_utf8(path, error, "a scenario file")) from error
    unknown = sorted(set(content) - _TOP_LEVEL)
    if unknown:
        raise ScenarioError(
            f"{path}: unknown key(s) {unknown} at top level; a scenario has {sorted(_TOP_LEVEL)}."
            + did_you_mean(unknown[0], _TOP_LEVEL)
        )
    for table in ("parameters", "initial"):
        if table in content and not isinstance(content[table], dict):
            raise ScenarioError(f"{path}: '{table}' must be a table ([{table}])")
    title = content.get("title", path.stem)
    if not isinstance(title, str) or not title.strip():
        raise ScenarioError(f"{path}: 'title' must be non-empty text")
    return Scenario(
        name=path.stem,
        title=title.strip(),
        description=str(content.get("description", "")).strip(),
        path=path,
        parameters=content.get("parameters", {}),
        initial=content.get("initial", {}),
    )


def scenario_path(name: str, directory: Path = SCENARIOS_DIR) -> Path:
    """The file of a shipped scenario, or ``name`` itself if it is a path to a file."""
    candidate = Path(name)
    if candidate.suffix == ".toml" or os.sep in name or "/" in name:
        return candidate
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = [p.stem for p in sorted(directory.glob("*.toml"))]
        raise ScenarioError(
            f"no scenario '{name}' in {directory.name}/ (known: {', '.join(known)})." + did_you_mean(name, known)
        )
    return path


def list_scenarios(directory: Path = SCENARIOS_DIR) -> list[Scenario]:
    """Every scenario shipped in ``directory``, sorted by name."""
    return [read_scenario(path) for path in sorted(directory.glob("*.toml"))]


def validate(scenario: Scenario, model) -> None:
    """Check every key and value of ``scenario`` against ``model``; raise ScenarioError if any is bad."""
    from .parameters import ParameterSet

    layers = ParameterSet(model)
    layers.apply(scenario.parameters, source=str(scenario.path))
    layers.apply_initial(scenario.initial, source=str(scenario.path))


def resolve_scenario(scenario) -> Scenario:
    """A Scenario from a name, a path or a Scenario (its keys are checked when applied)."""
    if isinstance(scenario, Scenario):
        resolved = scenario
    elif isinstance(scenario, (str, os.PathLike)):
        resolved = read_scenario(scenario_path(os.fspath(scenario)))
    else:
        raise ScenarioError(f"scenario must be a name, a path or a Scenario, got {type(scenario).__name__}")
    return resolved


def write_scenario(path: str | os.PathLike, *, title: str, description: str = "", parameters: dict | None = None,
                   initial: dict | None = None) -> Path:
    """Write a scenario file that :func:`read_scenario` reads back to the same values; never overwrites.

    Values are numbers, lists of ``[time, value]`` points or ``{element: value}``
    tables, as in a hand-written file; numbers are written exactly (``repr``).
    """
    path = Path(path)
    if path.suffix != ".toml":
        raise ScenarioError(f"{path}: a scenario file ends in .toml")
    lines = [f"title = {_toml_string(title)}"]
    if description:
        lines.append(f"description = {_toml_string(description)}")
    for table, entries in (("parameters", parameters or {}), ("initial", initial or {})):
        if entries or table == "parameters":
            lines += ["", f"[{table}]"]
            lines += [f"{_toml_string(key)} = {_toml_value(value, f'{path}: {key!r}')}"
                      for key, value in entries.items()]
    text = "\n".join(lines) + "\n"
    try:
        with path.open("x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError as error:
        raise ScenarioError(f"{path} exists; choose another name (scenario files are never overwritten)") from error
    return path


def _toml_string(text: str) -> str:
    # JSON's escapes are all valid in a TOML basic string
    return json.dumps(str(text), ensure_ascii=False)


def _toml_value(value, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple, dict)):
        raise ScenarioError(f"{where}: cannot write {value!r}; use a number, [time, value] points or a table")
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_string(k)} = {_toml_value(v, where)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item, where) for item in value) + "]"
    number = float(value)
    if not math.isfinite(number):
        raise ScenarioError(f"{where}: {number} is not a finite number")
    return repr(number)
