"""What the explorer lets a user move, how it is checked, and the scenario it makes.

Two kinds of control, and nothing typed twice:

- **levers**: every constant of the .mdl whose comment starts with ``Lever:``, one
  control per element; label, units and range (``[min,max,step]`` of the units
  field) come from the .mdl. A moved lever keeps the base scenario's path until the
  first year of the phase-in, then goes in a straight line to the control's value
  at its last year, and holds it: policies change from a date, history does not.
- **uncertain parameters**: the parameters of a sensitivity problem
  (``models/sensitivity/*.toml``), with its bounds, set for the whole run.

Every value is checked here, on the server, whatever the page allowed: a value
outside its declared range is refused with the range and where it is declared,
never clamped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MigsdError
from ..names import canonical
from ..paths import repo_relative
from ..parameters import ALL, ParameterSet, Points, check_range
from ..scenarios import Scenario

LEVER_PREFIX = "Lever:"
#: The phase-in of moved levers when none is chosen: the shipped scenarios start their policies in 2025.
DEFAULT_PHASE = (2025.0, 2030.0)
#: A saved scenario's name: a file stem that ``migsd run --scenario NAME`` finds.
SCENARIO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ExploreError(MigsdError, ValueError):
    """A value the explorer was sent is not allowed (out of range, unknown, not a number)."""


@dataclass(frozen=True)
class Control:
    """One thing the user can move, described as the .mdl or the problem file declares it."""

    key: str  # as the user reads it: "enforcement push[North]", or the problem's label
    name: str  # the .mdl variable
    elements: tuple[str, ...] | None  # the elements it sets (None: the whole variable)
    kind: str  # "lever" or "uncertain"
    mode: str  # "value", or "multiplier" of the calibrated (else .mdl) value
    low: float
    high: float
    step: float | None
    units: str
    description: str
    group: str
    source: str  # the file that declares the range

    @property
    def label(self) -> str:
        if self.mode == "multiplier":
            return f"{self.key.removesuffix(' (multiplier)')} (× calibrated value)"
        return f"{self.key} ({self.units})" if self.units else self.key

    def check(self, value) -> float:
        """``value`` as a float if the control allows it; else an ExploreError saying what would."""
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ExploreError(f"'{self.key}': {value!r} is not a number")
        number = float(value)
        if not math.isfinite(number):
            raise ExploreError(f"'{self.key}': {number} is not a finite number")
        check_range(self.key, number, self.low, self.high, units=self.units, declared_in=self.source,
                    error=ExploreError)
        if self.step and not _on_grid(number, self.low, self.step):
            raise ExploreError(
                f"'{self.key}' = {number:g} is not a step of {self.step:g} from {self.low:g} "
                f"(declared in {self.source}); not run"
            )
        return number


def _on_grid(value: float, start: float, step: float) -> bool:
    steps = (value - start) / step
    return abs(steps - round(steps)) <= 1e-9 * max(1.0, abs(steps))


def lever_controls(model) -> list[Control]:
    """A control per element of every ``Lever:`` constant of the .mdl, in .mdl order, grouped by view."""
    source = repo_relative(model.path)
    controls = []
    for variable in model.variables.values():
        if not (variable.is_constant and variable.comment.startswith(LEVER_PREFIX)):
            continue
        low, high = variable.limits
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ExploreError(
                f"{source}: lever '{variable.name}' declares no range; give its units field one, "
                f"e.g. '{variable.units or 'Dmnl'} [0,1]' (a slider needs both ends)"
            )
        description = variable.comment[len(LEVER_PREFIX):].strip()
        combinations = [()] if not variable.subscripts else list(
            np.ndindex(*[len(model.subscripts[s]) for s in variable.subscripts]))
        for index in combinations:
            elements = tuple(model.subscripts[s][i] for s, i in zip(variable.subscripts, index)) or None
            key = f"{variable.name}[{','.join(elements)}]" if elements else variable.name
            controls.append(Control(key, variable.name, elements, "lever", "value", low, high, variable.step,
                                    variable.units, description, variable.sector or "Levers", source))
    return controls


def uncertain_controls(model, problem) -> list[Control]:
    """A control per parameter of a sensitivity problem, over the problem's bounds."""
    controls = []
    for parameter in problem.parameters:
        variable = model.variables[canonical(parameter.name)]
        if parameter.distribution == "normal":  # lower, upper hold mean, sd
            low, high = parameter.lower - 3 * parameter.upper, parameter.lower + 3 * parameter.upper
        else:
            low, high = parameter.lower, parameter.upper
        controls.append(Control(
            parameter.label, variable.name, tuple(parameter.elements) if parameter.elements else None, "uncertain",
            parameter.mode, float(low), float(high), None, variable.units, variable.comment,
            parameter.group or parameter.label, repo_relative(Path(problem.source)),
        ))
    return controls


def base_layers(model, scenario: Scenario) -> ParameterSet:
    """The parameter layers under the controls: the calibrated set, then the scenario."""
    layers = ParameterSet(model)
    if model.calibration is not None:
        layers.apply(model.calibrated_parameters, source=str(model.calibration))
    layers.apply(scenario.parameters, source=str(scenario.path))
    return layers


def layered(model, layers: ParameterSet, name: str, elements: tuple[str, ...] | None) -> float | Points:
    """The value ``layers`` give one element of a constant (or a whole unsubscripted one)."""
    key = canonical(name)
    entries = layers.values.get(key, {})
    if elements in entries:
        return entries[elements]
    if ALL in entries:
        return entries[ALL]
    default = model.defaults[key]
    if elements:
        default = default.sel(dict(zip(default.dims, elements)))
    values = np.unique(default.values)
    if values.size != 1:
        raise ExploreError(f"'{name}' differs between its elements; a control must name the elements it sets")
    return float(values[0])


def start_values(model, controls: list[Control], scenario: Scenario) -> dict[str, float]:
    """Where each control starts for ``scenario``: a lever at its final value, a multiplier at 1."""
    layers = base_layers(model, scenario)
    starts = {}
    for control in controls:
        if control.mode == "multiplier":
            starts[control.key] = 1.0
            continue
        elements = [control.elements] if control.kind == "lever" or not control.elements else [
            (e,) for e in control.elements]
        found = {_final(layered(model, layers, control.name, e)) for e in elements}
        if len(found) != 1:
            raise ExploreError(f"'{control.key}': scenario '{scenario.name}' gives its elements different values "
                               f"({sorted(found)}); one control cannot show them")
        starts[control.key] = found.pop()
    return starts


def _final(value: float | Points) -> float:
    return float(value.values[-1]) if isinstance(value, Points) else float(value)


def check_phase(phase, model) -> tuple[float, float]:
    """The lever phase-in (first year, last year), checked against the run's years."""
    try:
        first, last = (float(x) for x in phase)
    except (TypeError, ValueError) as error:
        raise ExploreError(f"phase-in must be two years (first, last), got {phase!r}") from error
    start, end = model.time_settings["initial_time"], model.time_settings["final_time"]
    if not (start <= first < last <= end):
        raise ExploreError(
            f"phase-in {first:g}-{last:g}: needs INITIAL TIME {start:g} <= first year < last year <= FINAL TIME {end:g}"
        )
    return first, last


def check_values(controls: list[Control], values: dict) -> dict[str, float]:
    """Every value checked against its control; all problems reported at once."""
    by_key = {c.key: c for c in controls}
    problems, checked = [], {}
    for key, value in values.items():
        control = by_key.get(key)
        if control is None:
            problems.append(f"'{key}' is not a control of the explorer")
            continue
        try:
            checked[key] = control.check(value)
        except ExploreError as error:
            problems.append(str(error))
    if problems:
        raise ExploreError("; ".join(problems))
    return checked


def check_scenario_name(name: str) -> str:
    name = str(name).strip()
    if not SCENARIO_NAME.match(name):
        raise ExploreError(
            f"scenario name {name!r}: use letters, digits, '_' and '-' (up to 64, starting with a letter or digit); "
            f"it becomes the file name and what 'migsd run --scenario' takes"
        )
    return name


def explored_scenario(model, controls: list[Control], base: Scenario, values: dict, phase=DEFAULT_PHASE, *,
                      name: str = "explored", title: str | None = None) -> tuple[Scenario, list[str]]:
    """The base scenario with every moved control applied, and a line per change.

    Only controls moved away from where they start for ``base`` change anything, so
    an untouched page gives back the base scenario's own runs.
    """
    checked = check_values(controls, values)
    first, last = check_phase(phase, model)
    layers = base_layers(model, base)
    starts = start_values(model, controls, base)
    by_key = {c.key: c for c in controls}
    overrides, changes = {}, []
    for key, value in checked.items():
        if value == starts[key]:
            continue
        control = by_key[key]
        if control.kind == "lever":
            overrides[key] = _phased(layered(model, layers, control.name, control.elements), value, first, last)
            changes.append(f"{key}: {starts[key]:g} -> {value:g} {control.units} over {first:g}-{last:g}")
        else:
            overrides.update(_uncertain(model, layers, control, value))
            changes.append(f"{key}: {starts[key]:g} -> {value:g}" + (" (multiplier)" if control.mode == "multiplier"
                                                                     else f" {control.units}"))
    # later keys win element by element: the changes go after the base scenario's own values
    parameters = {k: v for k, v in base.parameters.items() if k not in overrides} | overrides
    description = f"Explored from scenario '{base.name}' ({base.title})."
    if changes:
        description += " Changed: " + "; ".join(changes) + "."
    scenario = Scenario(name=name, title=title or f"{base.title}, explored", description=description,
                        path=Path(f"{name}.toml"), parameters=parameters, initial=dict(base.initial))
    return scenario, changes


def _phased(base: float | Points, value: float, first: float, last: float) -> list[list[float]]:
    """Points: the base path up to ``first``, then a straight line to ``value`` at ``last``, held after."""
    if isinstance(base, Points):
        before = [[t, v] for t, v in zip(base.times, base.values) if t < first]
        at_first = float(base.at(np.asarray([first]))[0])
    else:
        before, at_first = [], float(base)
    return before + [[first, at_first], [last, value]]


def _uncertain(model, layers: ParameterSet, control: Control, value: float) -> dict:
    if control.mode == "value":
        if control.elements:
            return {f"{control.name}[{e}]": value for e in control.elements}
        return {control.name: value}
    if control.elements:
        return {f"{control.name}[{e}]": _scaled(layered(model, layers, control.name, (e,)), value)
                for e in control.elements}
    variable = model.variables[canonical(control.name)]
    if not variable.subscripts:
        return {control.name: _scaled(layered(model, layers, control.name, None), value)}
    table = {}
    for index in np.ndindex(*[len(model.subscripts[s]) for s in variable.subscripts]):
        elements = tuple(model.subscripts[s][i] for s, i in zip(variable.subscripts, index))
        table[",".join(elements)] = _scaled(layered(model, layers, control.name, elements), value)
    return {control.name: table}


def _scaled(base: float | Points, factor: float):
    if isinstance(base, Points):
        return [[t, v * factor] for t, v in zip(base.times, base.values)]
    return base * factor
