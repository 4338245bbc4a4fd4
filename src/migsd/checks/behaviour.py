"""Behaviour checks: hold some inputs, run, and test a condition over the run.

Checks come from a TOML file beside the model (``models/checks.toml``) and from
Vensim Reality Checks in the .mdl (``:THE CONDITION: ... :IMPLIES: ...`` with
``:TEST INPUT:`` definitions), which pysd parses but never runs. A check file
holds ``[[check]]`` tables::

    [[check]]
    name = "no IOM funding, no placements"
    description = "..."                 # optional
    scenario = "iom_south_south"        # optional: a shipped scenario or a .toml path
    final_time = 2040                   # optional
    set = { "IOM funding" = 0 }         # constants, as in a scenario's [parameters]
    force = { "Restrictiveness[North]" = 1 }   # any variable held at a number all run
    [[check.expect]]
    variable = "total IOM placements"
    where = { destination = "North" }   # optional: elements by dim (snake_case)
    from = 1995                         # optional time window
    to = 2100
    stat = "abs_max"                    # max, min, abs_max, total, final, max_relative_change
    below = 0.0                         # and/or above: bounds, inclusive
    against = "baseline"                # optional: of the change from the same run without set/force

The statistic is taken over every selected element and time, giving one number.
With ``against = "baseline"`` it is taken of the difference from the check's own
scenario run without its ``set`` and ``force``, so a check of what an input does
holds at any calibration, not only at the one its bounds were read off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import MigsdError, ScenarioError
from ..names import canonical, did_you_mean
from ..tomlfiles import check_table, read_toml

CHECK_KEYS = ("name", "description", "scenario", "final_time", "set", "force", "expect")
EXPECT_KEYS = ("variable", "where", "from", "to", "stat", "below", "above", "against")
AGAINST = ("baseline",)
STATS = ("max", "min", "abs_max", "total", "final", "max_relative_change")


@dataclass
class Expectation:
    variable: str
    stat: str = "max"
    where: dict = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    below: float | None = None
    above: float | None = None
    #: "baseline": the statistic is of the change from the run without the check's set and force
    against: str | None = None

    def describe(self) -> str:
        where = "".join(f"[{k}={v}]" for k, v in self.where.items())
        window = ""
        if self.start is not None or self.end is not None:
            window = f" over {self.start if self.start is not None else '...'}-{self.end if self.end is not None else '...'}"
        bounds = " and ".join(
            text for text in (f">= {self.above:g}" if self.above is not None else "",
                              f"<= {self.below:g}" if self.below is not None else "") if text
        )
        change = " minus its baseline (no set or force)" if self.against == "baseline" else ""
        return f"{self.stat} of '{self.variable}'{where}{change}{window} {bounds}"

    def evaluate(self, dataset: xr.Dataset, baseline: xr.Dataset | None = None) -> tuple[bool, float]:
        values = dataset[self.variable]
        if self.against == "baseline":
            values = values - baseline[self.variable]
        for dim, elements in self.where.items():
            values = values.sel({dim: elements})
        if "time" in values.dims:
            values = values.sel(time=slice(self.start, self.end))
        data = np.asarray(values.values, dtype=float)
        if self.stat == "max":
            number = float(np.max(data))
        elif self.stat == "min":
            number = float(np.min(data))
        elif self.stat == "abs_max":
            number = float(np.max(np.abs(data)))
        elif self.stat == "total":
            number = float(np.sum(data))
        elif self.stat == "final":
            final = values.isel(time=-1) if "time" in values.dims else values
            number = float(np.max(np.abs(np.asarray(final.values, dtype=float))))
        else:
            series = values.transpose("time", ...).values.reshape(values.sizes["time"], -1)
            first = np.where(series[0] == 0, np.finfo(float).tiny, np.abs(series[0]))
            number = float(np.max(np.abs(series - series[0]) / first))
        ok = (self.below is None or number <= self.below) and (self.above is None or number >= self.above)
        return bool(ok and np.isfinite(number)), number


@dataclass
class BehaviourCheck:
    name: str
    source: str
    description: str = ""
    scenario: str | None = None
    final_time: float | None = None
    params: dict = field(default_factory=dict)
    force: dict = field(default_factory=dict)
    expect: list[Expectation] = field(default_factory=list)


@dataclass
class CheckResult:
    check: BehaviourCheck
    passed: bool
    lines: list[str]

    def __str__(self) -> str:
        head = f"{'pass' if self.passed else 'FAIL'}: {self.check.name} ({self.check.source})"
        return "\n".join([head] + [f"    {line}" for line in self.lines])


def checks_file_for(model) -> Path:
    """The behaviour-check file of a model: ``checks.toml`` in the model's folder."""
    return Path(model.path).with_name("checks.toml")


def load_checks(path: str | Path, model) -> list[BehaviourCheck]:
    """Read and validate a check file against ``model``; errors name the file, the check and the key."""
    path = Path(path)
    document = read_toml(path, "check file")
    extra = [k for k in document if k != "check"]
    if extra:
        raise ScenarioError(f"{path}: unknown top-level key(s) {extra}; write checks as [[check]] tables")
    checks = []
    for number, table in enumerate(document.get("check", []), start=1):
        where = f"{path}: [[check]] {number}"
        if isinstance(table, dict) and "name" in table:
            where += f" ('{table['name']}')"
        check_table(table, where, CHECK_KEYS, ("name", "expect"))
        check = BehaviourCheck(
            name=str(table["name"]),
            source=f"{path.name} [[check]] {number}",
            description=str(table.get("description", "")).strip(),
            scenario=table.get("scenario"),
            final_time=table.get("final_time"),
            params=dict(table.get("set", {})),
            force=dict(table.get("force", {})),
        )
        for key in list(check.params) + list(check.force):
            _variable(model, re.sub(r"\[.*$", "", key), f"{where}: set/force '{key}'")
        expectations = table["expect"]
        if not isinstance(expectations, list) or not expectations:
            raise ScenarioError(f"{where}: 'expect' must be one or more [[check.expect]] tables")
        for k, item in enumerate(expectations, start=1):
            check.expect.append(_expectation(model, item, f"{where} expect {k}"))
        checks.append(check)
    if not checks:
        raise ScenarioError(f"{path}: no [[check]] tables")
    return checks


def _variable(model, name: str, where: str):
    key = canonical(name)
    if key not in model.variables:
        raise ScenarioError(
            f"{where}: '{name}' is not a variable of {model.path.name}."
            + did_you_mean(name, [v.name for v in model.variables.values()])
        )
    return model.variables[key]


def _expectation(model, item, where: str) -> Expectation:
    check_table(item, where, EXPECT_KEYS, ("variable",))
    variable = _variable(model, str(item["variable"]), where)
    stat = item.get("stat", "max")
    if stat not in STATS:
        raise ScenarioError(f"{where}: stat '{stat}' is not one of {', '.join(STATS)}")
    if "below" not in item and "above" not in item:
        raise ScenarioError(f"{where}: give a bound, 'below' and/or 'above'")
    selection = {}
    for dim, elements in dict(item.get("where", {})).items():
        if dim not in variable.dims:
            raise ScenarioError(f"{where}: '{variable.name}' has no dim '{dim}' (its dims: {list(variable.dims)})")
        subscript = variable.subscripts[variable.dims.index(dim)]
        listed = elements if isinstance(elements, list) else [elements]
        for element in listed:
            if element not in model.subscripts[subscript]:
                raise ScenarioError(
                    f"{where}: '{element}' is not an element of {subscript} ({', '.join(model.subscripts[subscript])})"
                )
        selection[dim] = elements
    bounds = {}
    for key in ("below", "above", "from", "to"):
        if key in item:
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ScenarioError(f"{where}: '{key}' must be a number, got {value!r}")
            bounds[key] = float(value)
    against = item.get("against")
    if against is not None and against not in AGAINST:
        raise ScenarioError(f"{where}: against {against!r} is not one of {', '.join(map(repr, AGAINST))} "
                            "(the run without the check's set and force)")
    return Expectation(variable.name, stat, selection, bounds.get("from"), bounds.get("to"),
                       bounds.get("below"), bounds.get("above"), against)


def run_check(model, check: BehaviourCheck) -> CheckResult:
    """Run one check; a run that fails is a failed check whose message says why."""
    columns = sorted({e.variable for e in check.expect})
    options = {}
    if check.final_time is not None:
        options["final_time"] = float(check.final_time)
    try:
        dataset = model.run(scenario=check.scenario, params=check.params or None, force=check.force or None,
                            return_columns=columns, engine="batched", **options)
        baseline = None
        if any(e.against == "baseline" for e in check.expect):
            baseline = model.run(scenario=check.scenario, return_columns=columns, engine="batched", **options)
    except MigsdError as error:
        return CheckResult(check, False, [f"the run failed: {error}"])
    lines, passed = [], True
    for expectation in check.expect:
        ok, number = expectation.evaluate(dataset, baseline)
        passed &= ok
        lines.append(f"{'ok' if ok else 'violated'}: {expectation.describe()} (found {number:.6g})")
    return CheckResult(check, passed, lines)


# ------------------------------------------------------------------ Reality Checks
_CLAUSE = re.compile(r"^\s*(?P<name>[^\[\]<>=]+?)\s*(\[(?P<subs>[^\]]*)\])?\s*(?P<op><=|>=|<>|<|>|=)\s*"
                     r"(?P<value>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


def reality_checks(model) -> tuple[list[BehaviourCheck], list[str]]:
    """Reality Checks of the .mdl that migsd can run, and a note for each it cannot.

    Supported: conditions that name a test input or hold variables at numbers
    (``x[Elem] = 0``), test inputs of the form ``x[...] = number``, and
    consequences comparing a variable with a number, joined by ``:AND:``.
    """
    from ..engine.compiler import parse_abstract

    section = parse_abstract(model.path).sections[0]
    inputs = {canonical(t.name): t for t in section.test_inputs}
    checks, skipped = [], []
    for constraint in section.constraints:
        label = f"{model.path.name} reality check '{constraint.name}'"
        try:
            condition, consequence = re.split(r":IMPLIES:", constraint.expression, maxsplit=1, flags=re.I)
            force = {}
            for clause in re.split(r":AND:", condition, flags=re.I):
                name = canonical(re.sub(r"\[.*$", "", clause.strip()))
                if name in inputs:
                    clause = inputs[name].expression
                key, value, op = _clause(model, clause)
                if op != "=":
                    raise ValueError(f"a condition holds a variable at a number ('{clause.strip()}')")
                force[key] = value
            expectations = []
            for clause in re.split(r":AND:", consequence, flags=re.I):
                key, value, op = _clause(model, clause)
                expectations.extend(_bounds(model, key, op, value))
        except ValueError as error:
            skipped.append(f"{label}: not run: {error}")
            continue
        checks.append(BehaviourCheck(name=constraint.name.replace("_", " "), source=label, force=force,
                                     expect=expectations))
    return checks, skipped


def _clause(model, clause: str) -> tuple[str, float, str]:
    match = _CLAUSE.match(clause.replace("\\\n", "").replace("\n", " "))
    if not match:
        raise ValueError(f"'{clause.strip()}' is not 'variable op number'")
    name = match.group("name").strip().replace("_", " ")
    if canonical(name) not in model.variables:
        raise ValueError(f"'{name}' is not a variable")
    variable = model.variables[canonical(name)]
    subs = match.group("subs")
    key = variable.name
    if subs:
        tokens = [s.strip() for s in subs.split(",")]
        if all(t in model.subscripts for t in tokens):
            key = variable.name  # whole ranges: every element
        else:
            key = f"{variable.name}[{','.join(tokens)}]"
    return key, float(match.group("value")), match.group("op")


def _bounds(model, key: str, op: str, value: float) -> list[Expectation]:
    name = re.sub(r"\[.*$", "", key)
    variable = model.variables[canonical(name)]
    where = {}
    if "[" in key:
        tokens = key[key.index("[") + 1:-1].split(",")
        where = {d: t for d, t in zip(variable.dims, tokens) if t in model.subscripts.get(
            variable.subscripts[variable.dims.index(d)], [])}
    tolerance = 1e-9 * max(1.0, abs(value))
    if op in ("<", "<="):
        return [Expectation(variable.name, "max", where, below=value)]
    if op in (">", ">="):
        return [Expectation(variable.name, "min", where, above=value)]
    if op == "=":
        return [Expectation(variable.name, "max", where, below=value + tolerance),
                Expectation(variable.name, "min", where, above=value - tolerance)]
    raise ValueError(f"the comparison '{op}' is not run")


def all_checks(model, path: str | Path | None = None) -> tuple[list[BehaviourCheck], list[str]]:
    """The model's check file (if present) and its runnable Reality Checks, with notes on the rest."""
    file = Path(path) if path is not None else checks_file_for(model)
    checks = load_checks(file, model) if file.is_file() else []
    found, skipped = reality_checks(model)
    return checks + found, skipped


__all__ = ["BehaviourCheck", "CheckResult", "Expectation", "all_checks", "checks_file_for", "load_checks",
           "reality_checks", "run_check"]
