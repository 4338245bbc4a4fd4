"""Sensitivity sweeps: problems as files, SALib samples, evaluation on any evaluator, indices.

A problem file (``models/sensitivity/*.toml``)::

    title = "..."
    method = "sobol"            # sobol (Saltelli, first and total order), morris, lhs, ensemble
                                # (the calibrated members) or posterior (`samples` draws of the
                                # newest posterior_vN.nc, chosen with `seed`)
    samples = 256               # base sample size: sobol N (a power of 2; N x (k + 2) runs),
                                # morris trajectories (N x (k + 1) runs), lhs runs
    seed = 2026
    scenarios = ["status_quo", "iom_south_south"]
    outputs = ["Restrictiveness", "Northern restrictiveness yield year"]
    final_time = 2100           # optional
    levels = 4                  # morris only

    [[parameter]]
    name = "tightening time"    # a constant of the .mdl
    lower = 2
    upper = 8
    group = "policy delay"      # optional (Sobol and Morris group indices)

    [[parameter]]
    name = "culturalist weight" # subscripted: every element, or `elements`
    elements = ["North"]        # optional
    mode = "multiplier"         # "value" (default) or "multiplier" of the .mdl's values
    lower = 0.7
    upper = 1.3

Parameters are sampled uniformly within their bounds. ``sample`` gives a Dataset
over ``run`` (one variable per parameter, labelled by its name and elements),
``evaluate`` runs it (see :mod:`migsd.sweep` for evaluators and the store),
``analyze`` computes indices.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import ScenarioError
from ..indicators import YIELD_VARIABLE
from ..names import canonical, did_you_mean
from ..paths import SENSITIVITY_DIR
from ..tomlfiles import check_table, read_toml

METHODS = ("sobol", "morris", "lhs", "ensemble", "posterior")
#: The scenario name of runs with the model's own values (``scenarios = []`` in a problem file).
NO_SCENARIO = "none"
PROBLEM_KEYS = ("title", "description", "method", "samples", "seed", "scenarios", "outputs", "final_time", "levels",
                "parameter")
PARAMETER_KEYS = ("name", "lower", "upper", "elements", "mode", "group", "per_element", "distribution", "peak",
                  "mean", "sd")
DISTRIBUTIONS = ("uniform", "triangular", "normal")


@dataclass
class Parameter:
    name: str
    lower: float
    upper: float
    elements: list[str] | None = None
    mode: str = "value"
    group: str | None = None
    distribution: str = "uniform"
    peak: float | None = None  # triangular: the most likely value

    @property
    def salib_bounds(self) -> list[float]:
        """SALib's bounds: [low, high] (uniform), [low, high, peak share] (triangular), [mean, sd] (normal)."""
        if self.distribution == "triangular":
            return [self.lower, self.upper, (self.peak - self.lower) / (self.upper - self.lower)]
        return [self.lower, self.upper]

    @property
    def label(self) -> str:
        suffix = f"[{','.join(self.elements)}]" if self.elements else ""
        return f"{self.name}{suffix}" + (" (multiplier)" if self.mode == "multiplier" else "")


@dataclass
class Problem:
    title: str
    method: str
    samples: int
    seed: int
    scenarios: list[str]
    outputs: list[str]
    parameters: list[Parameter]
    source: str = ""
    final_time: float | None = None
    levels: int = 4
    description: str = ""
    ensemble: xr.Dataset | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.parameters]

    def salib(self) -> dict:
        problem = {"num_vars": len(self.parameters), "names": self.labels,
                   "bounds": [p.salib_bounds for p in self.parameters]}
        if any(p.distribution != "uniform" for p in self.parameters):
            problem["dists"] = [{"uniform": "unif", "triangular": "triang", "normal": "norm"}[p.distribution]
                                for p in self.parameters]
        groups = [p.group or p.label for p in self.parameters]
        if any(p.group for p in self.parameters):
            problem["groups"] = groups
        return problem

    @property
    def runs(self) -> int:
        k = len({p.group or p.label for p in self.parameters})
        if self.method == "sobol":
            return self.samples * (k + 2)
        if self.method == "morris":
            return self.samples * (k + 1)
        return self.samples


def load_problem(path: str | Path, model, samples: int | None = None) -> Problem:
    """Read and check a problem file; ``samples`` overrides its sample size (``--n``)."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = SENSITIVITY_DIR / f"{path}.toml"
    document = read_toml(path, "problem file")
    check_table(document, str(path), PROBLEM_KEYS)
    method = document.get("method", "sobol")
    if method not in METHODS:
        raise ScenarioError(f"{path}: method '{method}' is not one of {', '.join(METHODS)}")
    size = int(samples if samples is not None else document.get("samples", 64))
    if size < 2:
        raise ScenarioError(f"{path}: samples must be at least 2, got {size}")
    if method == "sobol" and size & (size - 1):
        raise ScenarioError(
            f"{path}: samples = {size}: a Sobol (Saltelli) sample needs a power of 2 "
            f"(e.g. {2 ** round(math.log2(size))})"
        )
    from ..scenarios import resolve_scenario

    scenarios = [str(s) for s in document.get("scenarios", ["status_quo"])] or [NO_SCENARIO]
    for name in scenarios:
        if name == NO_SCENARIO:
            continue
        try:
            resolve_scenario(name)
        except ScenarioError as error:
            raise ScenarioError(f"{path}: scenarios: {error}") from error
    outputs = [str(o) for o in document.get("outputs", ["Restrictiveness", YIELD_VARIABLE])]
    for name in outputs:
        if name != YIELD_VARIABLE and canonical(name) not in model.variables:
            raise ScenarioError(f"{path}: outputs: '{name}' is not a variable of {model.path.name}."
                                + did_you_mean(name, [v.name for v in model.variables.values()]))
    parameters = []
    sampled = {}  # (canonical name, element or None for all) -> the table that samples it
    for number, table in enumerate(document.get("parameter", []), start=1):
        parameter = _parameter(model, table, f"{path}: [[parameter]] {number}")
        key = canonical(parameter.name)
        for element in parameter.elements or [None]:
            clash = [n for (k, e), n in sampled.items() if k == key and (e is None or element is None or e == element)]
            if clash:
                cell = f"{parameter.name}[{element}]" if element else parameter.name
                raise ScenarioError(f"{path}: [[parameter]] {number} samples '{cell}', which [[parameter]] {clash[0]} "
                                    "already samples; each value is sampled by one [[parameter]] table")
            sampled[(key, element)] = number
        if table.get("per_element"):
            # one sampled value (or multiplier) per element, each its own parameter
            variable = model.variables[canonical(parameter.name)]
            elements = parameter.elements or model.subscripts[variable.subscripts[0]]
            parameters.extend(Parameter(parameter.name, parameter.lower, parameter.upper, [e], parameter.mode,
                                        parameter.group, parameter.distribution, parameter.peak) for e in elements)
        else:
            parameters.append(parameter)
    problem = Problem(
        title=str(document.get("title", path.stem)), method=method, samples=size,
        seed=int(document.get("seed", 2026)), scenarios=scenarios, outputs=outputs, parameters=parameters,
        source=str(path), final_time=document.get("final_time"), levels=int(document.get("levels", 4)),
        description=str(document.get("description", "")).strip(),
    )
    if method in ("ensemble", "posterior"):
        from ..calibration.fit import ensemble_params

        if method == "posterior":
            from ..calibration.posterior import latest_posterior

            found = latest_posterior(model=model)
            if found is None:
                stale = latest_posterior()
                raise ScenarioError(f"{path}: method 'posterior' needs a posterior_vN.nc in calibration/parameters "
                                    f"sampled with this model ({model.path.name}, sha256 {model.sha256[:12]})"
                                    + (f"; {stale.name} was sampled with another version of it" if stale else "")
                                    + "; run 'migsd calibrate --method posterior'")
            problem.ensemble = ensemble_params(found, members=size, seed=problem.seed).drop_vars(["chain", "draw"])
        else:
            problem.ensemble = ensemble_params()
        problem.parameters = [Parameter(name, float(problem.ensemble[name].min()), float(problem.ensemble[name].max()))
                              for name in problem.ensemble.data_vars]
        problem.samples = problem.ensemble.sizes["run"]
    elif not parameters:
        raise ScenarioError(f"{path}: no [[parameter]] tables")
    else:
        check_bounds(model, problem)
    return problem


def check_bounds(model, problem: Problem) -> None:
    """Refuse a problem whose bounds reach outside a range the .mdl declares (multipliers: times the base value).

    A normal distribution has no bounds; its mean +- 3 sd (what the explorer's slider
    spans) must lie inside the range.
    """
    from ..parameters import check_declared_range

    for number, parameter in enumerate(problem.parameters, start=1):
        variable = model.variables[canonical(parameter.name)]
        if parameter.distribution == "normal":
            ends = (parameter.lower - 3 * parameter.upper, parameter.lower + 3 * parameter.upper)
        else:
            ends = (parameter.lower, parameter.upper)
        default = _effective_default(model, parameter.name) if parameter.mode == "multiplier" else None
        for end, label in zip(ends, ("lower", "upper")):
            where = f"{problem.source}: parameter '{parameter.label}', {label} bound {end:g}"
            if default is None:
                check_declared_range(model, variable, float(end), key=parameter.label, where=where)
                continue
            base = default
            if parameter.elements:
                base = default.sel({variable.dims[0]: parameter.elements})
            for index in np.ndindex(*base.shape):
                labels = [str(base[d].values[i]) for d, i in zip(base.dims, index)]
                key = f"{variable.name}[{','.join(labels)}]" if labels else variable.name
                check_declared_range(model, variable, float(base.values[index]) * end, key=key,
                                     where=f"{where} (x {float(base.values[index]):g})")


def _parameter(model, table: dict, where: str) -> Parameter:
    check_table(table, where, PARAMETER_KEYS)
    distribution = table.get("distribution", "uniform")
    if distribution not in DISTRIBUTIONS:
        raise ScenarioError(f"{where}: distribution '{distribution}' is not one of {', '.join(DISTRIBUTIONS)}")
    if distribution == "normal":
        if "mean" not in table or "sd" not in table:
            raise ScenarioError(f"{where}: a normal distribution needs 'mean' and 'sd'")
        table = {**table, "lower": table["mean"], "upper": table["mean"] + table["sd"]}
    for required in ("name", "lower", "upper"):
        if required not in table:
            raise ScenarioError(f"{where}: '{required}' is missing")
    name = str(table["name"])
    where = f"{where} ('{name}')"
    key = canonical(name)
    if key not in model.variables or not model.variables[key].is_constant:
        constants = [v.name for v in model.variables.values() if v.is_constant]
        raise ScenarioError(f"{where}: '{name}' is not a constant of {model.path.name}." + did_you_mean(name, constants))
    variable = model.variables[key]
    lower, upper = table["lower"], table["upper"]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (lower, upper)):
        raise ScenarioError(f"{where}: lower and upper must be finite numbers, got {lower!r}, {upper!r}")
    if not lower < upper:
        raise ScenarioError(f"{where}: lower ({lower}) must be below upper ({upper})")
    mode = table.get("mode", "value")
    if mode not in ("value", "multiplier"):
        raise ScenarioError(f"{where}: mode '{mode}' is not 'value' or 'multiplier'")
    elements = table.get("elements")
    if elements is not None:
        if len(variable.subscripts) != 1:
            raise ScenarioError(f"{where}: 'elements' fits a variable with one subscript; "
                                f"'{variable.name}' has {list(variable.subscripts) or 'none'}")
        valid = model.subscripts[variable.subscripts[0]]
        for element in elements:
            if element not in valid:
                raise ScenarioError(f"{where}: '{element}' is not an element of {variable.subscripts[0]} "
                                    f"({', '.join(valid)})." + did_you_mean(element, valid))
        elements = [str(e) for e in elements]
    peak = None
    if distribution == "triangular":
        peak = table.get("peak", (lower + upper) / 2)
        if not lower <= peak <= upper:
            raise ScenarioError(f"{where}: peak ({peak}) must lie within [{lower}, {upper}]")
    if distribution == "normal":  # SALib's normal takes [mean, sd]
        return Parameter(variable.name, float(table["mean"]), float(table["sd"]), elements, mode, table.get("group"),
                         distribution)
    if per_element_without_range(table, variable):
        raise ScenarioError(f"{where}: 'per_element' fits a variable with one subscript; '{variable.name}' has none")
    return Parameter(variable.name, float(lower), float(upper), elements, mode, table.get("group"), distribution,
                     None if peak is None else float(peak))


def per_element_without_range(table: dict, variable) -> bool:
    return bool(table.get("per_element")) and len(variable.subscripts) != 1


def sample(problem: Problem) -> xr.Dataset:
    """The problem's sample: one variable per parameter (its label) over ``run``; same seed, same sample."""
    if problem.method in ("ensemble", "posterior"):
        values = np.column_stack([problem.ensemble[p.name].values for p in problem.parameters])
    else:
        from SALib.sample import latin, morris, sobol

        spec = problem.salib()
        if problem.method == "sobol":
            values = sobol.sample(spec, problem.samples, calc_second_order=False, seed=problem.seed)
        elif problem.method == "morris":
            values = morris.sample(spec, problem.samples, num_levels=problem.levels, seed=problem.seed)
        else:
            values = latin.sample(spec, problem.samples, seed=problem.seed)
    data = {p.label: ("run", values[:, k]) for k, p in enumerate(problem.parameters)}
    dataset = xr.Dataset(data, coords={"run": np.arange(values.shape[0])})
    dataset.attrs = {"method": problem.method, "seed": problem.seed, "problem": problem.title}
    return dataset


def batch_params(model, problem: Problem, samples: xr.Dataset) -> xr.Dataset:
    """Samples as ``Model.run_batch`` parameters: multipliers applied to the .mdl's values, elements set."""
    out = {}
    for parameter in problem.parameters:
        values = samples[parameter.label].values
        variable = model.variables[canonical(parameter.name)]
        default = _effective_default(model, parameter.name)
        if parameter.elements:
            for element in parameter.elements:
                base = float(default.sel({variable.dims[0]: element})) if parameter.mode == "multiplier" else 1.0
                out[f"{parameter.name}[{element}]"] = ("run", values * base if parameter.mode == "multiplier"
                                                       else values)
        elif parameter.mode == "multiplier":
            out[parameter.name] = (("run",) + default.dims, values.reshape((-1,) + (1,) * default.ndim) * default.values)
        else:
            out[parameter.name] = ("run", values)
    coords = {d: model.subscripts[s] for v in model.variables.values() for s, d in zip(v.subscripts, v.dims)}
    dataset = xr.Dataset(out)
    return dataset.assign_coords({d: coords[d] for d in dataset.dims if d in coords})


def _effective_default(model, name: str) -> xr.DataArray:
    """A constant's value before any scenario: the .mdl's, with the model's calibration applied."""
    from ..parameters import ParameterSet, _fill

    layers = ParameterSet(model)
    if model.calibration is not None:
        layers.apply(model.calibrated_parameters, source=str(model.calibration))
    key = canonical(name)
    return _fill(model.defaults[key], layers.values.get(key, {}), None)


def analyze(problem: Problem, results: xr.Dataset, *, every: int = 10) -> xr.Dataset:
    """Indices over ``parameter`` (and scenario, time every ``every`` saved steps, subscripts).

    Sobol: S1, S1_conf, ST, ST_conf (Saltelli/Jansen estimators, bootstrap 95% intervals);
    Morris: mu_star, mu_star_conf, sigma; LHS and ensemble: Spearman rank correlation.
    A yield year that never comes is counted as the year after the run.
    """
    from scipy.stats import spearmanr

    spec = problem.salib()
    names = spec.get("groups") and list(dict.fromkeys(spec["groups"])) or problem.labels
    samples = np.column_stack([results[f"param {label}"].values for label in problem.labels])
    indices = {}
    for output in problem.outputs:
        values = results[output]
        if "time" in values.dims:
            values = values.isel(time=slice(None, None, every))
        if output == YIELD_VARIABLE:
            values = values.fillna(float(results.attrs.get("final_time", 2100)) + 1)
        other = [d for d in values.dims if d not in ("run",)]
        stacked = values.transpose("run", *other).values.reshape(values.sizes["run"], -1)
        keys = _index_names(problem.method)
        table = {k: np.full((len(names), stacked.shape[1]), np.nan) for k in keys}
        for column in range(stacked.shape[1]):
            y = stacked[:, column]
            if not np.all(np.isfinite(y)) or np.ptp(y) == 0:
                continue
            if problem.method == "sobol":
                from SALib.analyze import sobol

                with warnings.catch_warnings():
                    # bootstrap resamples of an output that rarely varies can be constant; the interval shows it
                    warnings.filterwarnings("ignore", message="Constant values encountered")
                    found = sobol.analyze(spec, y, calc_second_order=False, seed=problem.seed)
            elif problem.method == "morris":
                from SALib.analyze import morris

                found = morris.analyze(spec, samples, y, num_levels=problem.levels, seed=problem.seed)
            else:
                found = {"rank_correlation": [spearmanr(samples[:, k], y).statistic for k in range(samples.shape[1])]}
            for key in keys:
                table[key][:, column] = np.asarray(found[key], dtype=float)
        shape = (len(names),) + tuple(values.sizes[d] for d in other)
        coords = {d: values[d].values for d in other if d in values.coords}
        for key in keys:
            indices[f"{output} {key}"] = xr.DataArray(table[key].reshape(shape), dims=("parameter", *other),
                                                      coords={"parameter": names, **coords})
    dataset = xr.Dataset(indices)
    dataset.attrs = {"method": problem.method, "problem": problem.title, "seed": problem.seed,
                     "runs": int(results.sizes["run"])}
    return dataset


def _index_names(method: str) -> tuple[str, ...]:
    return {"sobol": ("S1", "S1_conf", "ST", "ST_conf"), "morris": ("mu_star", "mu_star_conf", "sigma")}.get(
        method, ("rank_correlation",))
