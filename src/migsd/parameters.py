"""Parameter layers and their merge: .mdl defaults, calibrated set, scenario, explicit params.

Every override is checked against the model before the first time step: the name
must be a constant of the .mdl (stocks only in an initial-value table), subscripts
must be elements of the variable's ranges, and the value a finite number, a list
of ``[time, value]`` points with increasing times, an ``{element: value}`` table
or a DataArray with the variable's dims, inside the range the .mdl declares for
the variable (``[min,max]`` in its units field; :func:`check_range`, the one check
scenario files, ``--set``, ``params=``, batches, sensitivity problems, priors and
the explorer share). Later layers win element by element.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ModelError, RangeError, ScenarioError
from .names import canonical, did_you_mean

_KEY = re.compile(r"^\s*(?P<name>[^\[\]]+?)\s*(\[(?P<subs>[^\]]*)\])?\s*$")

#: Marks a whole-variable value in the element map (no subscript given).
ALL = ()


def check_range(key: str, value: float, low: float, high: float, *, units: str, declared_in: str,
                where: str = "", error: type[Exception] = RangeError) -> float:
    """``value`` if it lies in ``[low, high]``; else ``error`` naming the value, the range, its units and file.

    The one range check of migsd: the explorer's controls, scenario files, ``--set``,
    ``params=``, initial values, batches, sensitivity bounds and calibration priors
    all call it, so a value is refused (never clamped) the same way wherever it comes from.
    """
    if low <= value <= high:
        return value
    prefix = f"{where}: " if where else ""
    raise error(
        f"{prefix}'{key}' = {value:g} is outside its range [{low:g}, {high:g}] "
        f"({units or 'Dmnl'}, declared in {declared_in}); not run"
    )


def check_declared_range(model, variable, value: float, *, key: str | None = None, where: str = "") -> float:
    """:func:`check_range` against the ``[min,max]`` the .mdl declares for ``variable`` (a .mdl Variable)."""
    low, high = variable.limits
    if low <= value <= high:  # the common case, without building a path
        return value
    from .paths import repo_relative

    return check_range(key or variable.name, value, low, high, units=variable.units,
                       declared_in=repo_relative(model.path), where=where)


@dataclass(frozen=True)
class Points:
    """A time-varying value: linear between points, held before the first and after the last."""

    times: tuple[float, ...]
    values: tuple[float, ...]

    def at(self, times: np.ndarray) -> np.ndarray:
        return np.interp(times, self.times, self.values)


@dataclass
class ParameterSet:
    """Overrides of a model's constants and initial stocks, merged in the order applied."""

    model: object
    values: dict[str, dict[tuple, float | Points]] = field(default_factory=dict)
    initial: dict[str, dict[tuple, float]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    #: Which layer set each entry: (canonical name, element key) -> source; initial values under ("initial", ...).
    origins: dict[tuple, str] = field(default_factory=dict)

    @property
    def time_varying(self) -> set[str]:
        """Canonical names of the constants given as points."""
        return {k for k, v in self.values.items() if any(isinstance(x, Points) for x in v.values())}

    def apply(self, overrides: Mapping, *, source: str) -> None:
        """Merge a layer of overrides (keys are .mdl names, optionally with subscripts)."""
        if not overrides:
            return
        if not isinstance(overrides, Mapping):
            raise ScenarioError(f"{source}: parameters must be a table of name = value, got {type(overrides).__name__}")
        for key, value in overrides.items():
            variable, elements = self._parse_key(key, source)
            where = f"{source}: '{key}'"
            if variable.is_stock:
                raise ScenarioError(
                    f"{where} is a stock; set its initial value in the [initial] table "
                    f"(initial= in Python), not among parameters"
                )
            if not variable.is_constant:
                raise ScenarioError(
                    f"{where} is computed by an equation ({variable.kind.lower()}), not a constant; "
                    f"scenarios set constants only (list them with 'migsd params')"
                )
            for element_key, item in self._expand(variable, elements, value, where).items():
                self._check_range(variable, element_key, item, source)
                entry = self.values.setdefault(canonical(variable.name), {})
                if element_key == ALL:
                    entry.clear()
                entry[element_key] = item
                self.origins[(canonical(variable.name), element_key)] = source
        self.sources.append(source)

    def apply_initial(self, overrides: Mapping, *, source: str) -> None:
        """Merge initial values of stocks."""
        if not overrides:
            return
        if not isinstance(overrides, Mapping):
            raise ScenarioError(f"{source}: [initial] must be a table of stock = value")
        for key, value in overrides.items():
            variable, elements = self._parse_key(key, source)
            where = f"{source}: [initial] '{key}'"
            if not variable.is_stock:
                stocks = [v.name for v in self.model.variables.values() if v.is_stock]
                raise ScenarioError(
                    f"{where} is not a stock; only stocks have initial values." + did_you_mean(variable.name, stocks)
                )
            for element_key, item in self._expand(variable, elements, value, where).items():
                if isinstance(item, Points):
                    raise ScenarioError(f"{where}: an initial value is one number, not points over time")
                self._check_range(variable, element_key, item, f"{source}: [initial]")
                entry = self.initial.setdefault(canonical(variable.name), {})
                if element_key == ALL:
                    entry.clear()
                entry[element_key] = item
                self.origins[("initial", canonical(variable.name), element_key)] = source
        self.sources.append(source)

    def differences(self, skip=()) -> list[str]:
        """Each entry that differs from the .mdl's value, as ``'name[Element]' = value (source)``.

        Sources in ``skip`` (the calibrated set, say) are left out.
        """
        from .paths import repo_relative

        def shown(source):
            return repo_relative(source) if os.path.exists(source) else source

        lines = []
        for key, entries in self.values.items():
            variable = self.model.variables[key]
            default = self.model.defaults[key]
            for element_key, item in entries.items():
                source = self.origins.get((key, element_key), "")
                if source in skip:
                    continue
                name = variable.name if element_key == ALL else f"{variable.name}[{','.join(element_key)}]"
                if isinstance(item, Points):
                    points = ", ".join(f"[{t:g}, {v:g}]" for t, v in zip(item.times, item.values))
                    lines.append(f"'{name}' = [{points}] ({shown(source)})")
                    continue
                base = default if element_key == ALL else default.loc[dict(zip(default.dims, element_key))]
                if not np.all(base.values == item):
                    lines.append(f"'{name}' = {item:g} ({shown(source)})")
        for key, entries in self.initial.items():
            variable = self.model.variables[key]
            for element_key, item in entries.items():
                source = self.origins.get(("initial", key, element_key), "")
                name = variable.name if element_key == ALL else f"{variable.name}[{','.join(element_key)}]"
                lines.append(f"initial '{name}' = {item:g} ({shown(source)})")
        return lines

    def _check_range(self, variable, element_key, item, where) -> None:
        key = variable.name if element_key == ALL else f"{variable.name}[{','.join(element_key)}]"
        for number in (item.values if isinstance(item, Points) else (item,)):
            check_declared_range(self.model, variable, number, key=key, where=where)

    def _parse_key(self, key, source):
        if not isinstance(key, str):
            raise ScenarioError(f"{source}: parameter names must be text, got {key!r}")
        match = _KEY.match(key)
        if not match:
            raise ScenarioError(f"{source}: '{key}' is not a .mdl name (write 'name' or 'name[Element,...]')")
        name = match.group("name")
        try:
            variable = self.model.variable(name)
        except ModelError as error:
            raise ScenarioError(
                f"{source}: '{name}' is not a variable of {self.model.path.name}."
                + did_you_mean(name, [v.name for v in self.model.variables.values()])
            ) from error
        subs = match.group("subs")
        elements = None if subs is None else tuple(s.strip() for s in subs.split(","))
        if elements is not None:
            self._check_elements(variable, elements, f"{source}: '{key}'")
        return variable, elements

    def _check_elements(self, variable, elements, where):
        if not variable.subscripts:
            raise ScenarioError(f"{where}: '{variable.name}' has no subscripts; give it without [...]")
        if len(elements) != len(variable.subscripts):
            raise ScenarioError(
                f"{where}: {len(elements)} subscript(s) given; '{variable.name}' is subscripted by "
                f"[{', '.join(variable.subscripts)}]"
            )
        for element, subscript in zip(elements, variable.subscripts):
            valid = self.model.subscripts[subscript]
            if element not in valid:
                raise ScenarioError(
                    f"{where}: '{element}' is not an element of {subscript} ({', '.join(valid)})."
                    + did_you_mean(element, valid)
                )

    def _expand(self, variable, elements, value, where) -> dict[tuple, float | Points]:
        """Normalise one value to {element tuple (or ALL): number or Points}."""
        if isinstance(value, xr.DataArray):
            return self._from_dataarray(variable, elements, value, where)
        if isinstance(value, pd.Series):
            value = list(zip(value.index, value.values))
        if isinstance(value, Mapping):
            if elements is not None or not variable.subscripts:
                raise ScenarioError(
                    f"{where}: a table of elements fits a subscripted variable given without [...]; "
                    f"'{variable.name}' {'has no subscripts' if not variable.subscripts else 'already has them'}"
                )
            out = {}
            for sub_key, sub_value in value.items():
                sub_elements = tuple(s.strip() for s in str(sub_key).split(","))
                self._check_elements(variable, sub_elements, f"{where}[{sub_key}]")
                out[sub_elements] = _scalar_or_points(sub_value, f"{where}[{sub_key}]")
            return out
        key = ALL if elements is None else elements
        return {key: _scalar_or_points(value, where)}

    def _from_dataarray(self, variable, elements, value, where):
        if elements is not None:
            raise ScenarioError(f"{where}: give a DataArray for the whole variable, without [...]")
        expected = variable.dims
        renamed = value.rename({d: d.lower() for d in value.dims if d.lower() in expected and d != d.lower()})
        if set(renamed.dims) != set(expected):
            raise ScenarioError(
                f"{where}: DataArray has dims {tuple(value.dims)}; '{variable.name}' needs {expected}"
            )
        out = {}
        for index in np.ndindex(*[renamed.sizes[d] for d in expected]):
            labels = tuple(str(renamed[d].values[i]) for d, i in zip(expected, index))
            self._check_elements(variable, labels, where)
            out[labels] = _scalar_or_points(float(renamed.transpose(*expected).values[index]), f"{where}{list(labels)}")
        return out

    def to_pysd(self, settings: dict[str, float]) -> dict:
        """The merged overrides as pysd ``params``: numbers, DataArrays or time series."""
        params = {}
        start, end = settings["initial_time"], settings["final_time"]
        for key, entries in self.values.items():
            variable = self.model.variables[key]
            default = self.model.defaults[key]
            if not any(isinstance(v, Points) for v in entries.values()):
                params[variable.py_name] = _to_pysd_array(_fill(default, entries, None), variable)
                continue
            times = sorted({start, end, *(t for v in entries.values() if isinstance(v, Points) for t in v.times)})
            times = [t for t in times if start <= t <= end] or [start, end]
            frames = [_to_pysd_array(_fill(default, entries, t), variable) for t in times]
            params[variable.py_name] = pd.Series(frames, index=times)
        return params

    def initial_values(self, pysd_model) -> dict:
        """Initial stock values for pysd, filled from the model's own initial state."""
        values = {}
        for key, entries in self.initial.items():
            variable = self.model.variables[key]
            current = self.model._as_dataarray(getattr(pysd_model.components, variable.py_name)(), variable)
            values[variable.py_name] = _to_pysd_array(_fill(current, entries, None), variable)
        return values


def _scalar_or_points(value, where) -> float | Points:
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: {value!r} is not a number (write 1 or 0 for a switch)")
    if isinstance(value, Real):
        number = float(value)
        if not math.isfinite(number):
            raise ScenarioError(f"{where}: {value!r} is not a finite number")
        return number
    if isinstance(value, (list, tuple)):
        if len(value) == 0 or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            raise ScenarioError(
                f"{where}: a list must be points over time, [[year, value], ...]; got {value!r}"
            )
        times, values = [], []
        for time, number in value:
            for item in (time, number):
                if isinstance(item, bool) or not isinstance(item, Real) or not math.isfinite(float(item)):
                    raise ScenarioError(f"{where}: point {[time, number]!r} must hold two finite numbers")
            times.append(float(time))
            values.append(float(number))
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ScenarioError(f"{where}: the times of the points must increase, got {times}")
        return Points(tuple(times), tuple(values))
    raise ScenarioError(
        f"{where}: {value!r} is not a number, a list of [year, value] points or a table of elements"
    )


def _evaluate(item, time: float | None):
    if isinstance(item, Points):
        return float(item.at(np.asarray([time]))[0]) if time is not None else float(item.values[0])
    return item


def _fill_values(default: xr.DataArray, entries: dict, time: float | None) -> np.ndarray:
    """The default's values with the layered ``entries`` (whole variable or one element each) written in.

    numpy positions instead of xarray's ``.loc`` per element: every run packs its constants so, and ``.loc``
    cost more than the simulation itself of a compiled run. Element keys are checked when layered.
    """
    values = default.values.astype(float)  # a copy
    for element_key, item in entries.items():
        index = ... if element_key == ALL else tuple(
            default.indexes[d].get_loc(e) for d, e in zip(default.dims, element_key))
        values[index] = _evaluate(item, time)
    return values


def _fill(default: xr.DataArray, entries: dict, time: float | None) -> xr.DataArray:
    return default.copy(data=_fill_values(default, entries, time))


def _to_pysd_array(values: xr.DataArray, variable):
    if not variable.subscripts:
        return float(values)
    return xr.DataArray(values.values, dims=variable.subscripts, coords={
        s: values[d].values for s, d in zip(variable.subscripts, variable.dims)
    })
