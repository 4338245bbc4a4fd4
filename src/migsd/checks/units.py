"""Dimensional consistency of a .mdl: every equation against its declared units, every stock against its flows.

Units are read with migsd's one pint registry (Vensim spellings: Person, Year,
Dmnl, $, %, 1/Year, and the synonyms in ``units.txt``). The rules are Vensim's:

- terms added, subtracted, compared, or given to MIN/MAX, both branches of
  IF THEN ELSE and the fallback of XIDZ, have the same units;
- an equation's units are its variable's declared units; a stock's inflows and
  outflows are in the stock's units per time unit (the units of TIME STEP);
- EXP, LN, LOG, trigonometric functions and variable exponents take Dmnl;
- a lookup takes a Dmnl input (or ``Time`` itself, for tables over time) and gives
  its own declared units;
- delay, smooth, trend and forecast times, and the times of STEP, RAMP and PULSE,
  are in the time unit.

A bare number takes whatever units its place needs (Vensim's "numbers are
unitless in context" option): ``1 - share`` and ``Time - 1990`` check; a number
multiplying a variable counts as Dmnl.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pint

from ..errors import ModelError
from ..names import canonical, did_you_mean
from ..units import UNIT_DEFINITIONS, parse_units, strip_range, ureg

_TIME_FUNCTIONS_ARGS = {"step": (1,), "ramp": (1, 2), "pulse": (0, 1), "pulse_train": (0, 1, 2, 3)}
_DIMENSIONLESS_FUNCTIONS = {"exp", "ln", "log", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
                            "tanh"}
_SAME_UNITS_FUNCTIONS = {"abs", "integer"}


@dataclass(frozen=True)
class Finding:
    """One problem: an error (the model is inconsistent) or a warning (worth a look)."""

    severity: str
    variable: str
    line: int
    message: str
    file: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: '{self.variable}': {self.message}"


class _Mismatch(Exception):
    """Inconsistent units inside one equation; the equation's remaining checks are skipped."""


@dataclass(frozen=True)
class _U:
    """Units of an expression; ``unit`` None for a bare number, which takes the units its place needs."""

    unit: pint.Unit | None
    number: float | None = None

    @property
    def free(self) -> bool:
        return self.unit is None


def _plain(unit: pint.Unit) -> pint.Unit:
    """``unit`` without Vensim's Dmnl factors, so Dmnl x Person is Person and Dmnl alone is dimensionless."""
    from pint.util import UnitsContainer

    kept = {name: power for name, power in unit._units.items() if name not in ("Dmnl", "dmnl")}
    return ureg.Unit(UnitsContainer(kept)) if kept else ureg.dimensionless


def _show(unit: pint.Unit | None) -> str:
    if unit is None:
        return "a number"
    if unit == ureg.dimensionless:
        return "Dmnl"
    text = f"{unit:~C}"
    return text.replace("dollar", "$")


def definition_lines(text: str) -> dict[str, int]:
    """Line (from 1) where each variable of a .mdl is first defined, by canonical name."""
    lines = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("\\\\\\---///"):
            break
        if not line or line[0] in " \t~|*{:" or line.startswith("\\"):
            continue
        match = re.match(r"^([^=(\[~|:]+?)\s*(\[[^\]]*\])?\s*(:EXCEPT:[^=]*)?\s*(=|\(|:=|$)", line)
        if match:
            name = canonical(match.group(1).strip().strip('"'))
            lines.setdefault(name, number)
    return lines


def check_units(mdl_path: str | Path, abstract=None) -> list[Finding]:
    """Every unit problem of ``mdl_path``: errors first, then warnings, each in .mdl order.

    ``abstract`` is pysd's abstract model of the file, parsed here if not given.
    """
    from ..engine.compiler import parse_abstract

    path = Path(mdl_path)
    if abstract is None:
        abstract = parse_abstract(path)
    checker = _Checker(abstract.sections[0], definition_lines(path.read_text(encoding="utf-8")), path.name)
    return checker.run()


class _Checker:
    def __init__(self, section, lines: dict[str, int], file: str):
        from pysd.builders.python.namespace import NamespaceManager

        self.section = section
        self.lines = lines
        self.file = file
        self.findings: list[Finding] = []
        namespace = NamespaceManager()
        self.elements = {}
        for element in section.elements:
            namespace.add_to_namespace(element.name)
        by_identifier = {namespace.namespace[e.name]: e for e in section.elements}
        self.by_clean = {clean: by_identifier[ident] for clean, ident in namespace.cleanspace.items()
                         if ident in by_identifier}
        self.declared: dict[str, pint.Unit | None] = {}
        for element in section.elements:
            self.declared[element.name] = self._declared(element)
        time_step = next((e for e in section.elements if canonical(e.name) == canonical("TIME STEP")), None)
        self.time_unit = self.declared.get(time_step.name) if time_step is not None else None
        self.current = None

    # ----------------------------------------------------------------- findings
    def _add(self, severity: str, element, message: str) -> None:
        line = self.lines.get(canonical(element.name), 0)
        self.findings.append(Finding(severity, element.name, line, message, self.file))

    def _declared(self, element) -> pint.Unit | None:
        text = strip_range(element.units or "")
        if not text:
            kind = type(element.components[0]).__name__ if element.components else ""
            if kind != "AbstractLookup":
                self._add("warning", element, "has no units")
            return None
        try:
            return _plain(parse_units(text, element.name))
        except ModelError as error:
            cause = error.__cause__ or error
            known = re.findall(r"[A-Za-z_$%]+", UNIT_DEFINITIONS.read_text(encoding="utf-8"))
            hint = did_you_mean(text, [k for k in known if k[0].isupper()] + ["Month", "Week", "Day", "$"])
            self._add("error", element, f"units '{element.units.strip()}' are not defined ({cause}).{hint}")
            return None

    def run(self) -> list[Finding]:
        for element in self.section.elements:
            self.current = element
            declared = self.declared[element.name]
            for component in element.components:
                if type(component).__name__ == "AbstractLookup":
                    continue
                try:
                    self._component(element, component, declared)
                except _Mismatch as mismatch:
                    self._add("error", element, str(mismatch))
        errors = [f for f in self.findings if f.severity == "error"]
        warnings_ = [f for f in self.findings if f.severity == "warning"]
        return sorted(errors, key=lambda f: f.line) + sorted(warnings_, key=lambda f: f.line)

    def _component(self, element, component, declared) -> None:
        ast = component.ast
        kind = type(ast).__name__
        if kind == "IntegStructure":
            self._stock(element, ast, declared)
            return
        if declared is None:
            self.units(ast)
            return
        found = self.units(ast)
        if not found.free and found.unit != declared:
            raise _Mismatch(f"the equation gives {_show(found.unit)}; the .mdl declares {_show(declared)}")

    def _stock(self, element, ast, declared) -> None:
        flow = self.units(ast.flow)
        initial = self.units(ast.initial)
        if declared is None:
            return
        if self.time_unit is not None and not flow.free:
            expected = _plain(declared / self.time_unit)
            if flow.unit != expected:
                raise _Mismatch(
                    f"its flows are in {_show(flow.unit)}; a stock in {_show(declared)} needs flows in {_show(expected)}"
                )
        if not initial.free and initial.unit != declared:
            raise _Mismatch(f"its initial value is in {_show(initial.unit)}; the stock is in {_show(declared)}")

    # -------------------------------------------------------------- expressions
    def units(self, ast) -> _U:
        if isinstance(ast, bool):
            return _U(None, float(ast))
        if isinstance(ast, (int, float)):
            return _U(None, float(ast))
        if hasattr(ast, "shape"):  # an array of numbers
            return _U(None)
        method = getattr(self, f"_u_{type(ast).__name__}", None)
        if method is None:
            return _U(None)  # a construct without a unit rule (GET DATA...): not checked
        return method(ast)

    def _same(self, values: list[_U], what: str) -> _U:
        known = [v for v in values if not v.free]
        for value in known[1:]:
            if value.unit != known[0].unit:
                raise _Mismatch(f"{what} {_show(known[0].unit)} and {_show(value.unit)}")
        return known[0] if known else _U(None)

    def _time(self, value: _U, what: str) -> None:
        if value.free or self.time_unit is None:
            return
        if value.unit != self.time_unit:
            raise _Mismatch(f"{what} is in {_show(value.unit)}; it must be in the time unit, {_show(self.time_unit)}")

    def _dimensionless(self, value: _U, what: str) -> None:
        if not value.free and value.unit != ureg.dimensionless:
            raise _Mismatch(f"{what} is in {_show(value.unit)}; it must be Dmnl")

    def _u_ReferenceStructure(self, ast) -> _U:
        if ast.reference == "time":
            return _U(self.time_unit)
        element = self.by_clean.get(ast.reference)
        if element is None:
            return _U(ureg.dimensionless)  # a subscript range used as a number
        declared = self.declared.get(element.name)
        return _U(declared) if declared is not None else _U(None)

    def _arith(self, ast) -> _U:
        operators = list(ast.operators)
        arguments = list(ast.arguments)
        if len(arguments) == 1:
            value = self.units(arguments[0])
            if operators[0] == ":NOT:":
                return _U(ureg.dimensionless)
            if operators[0] == "negative" and value.number is not None:
                return _U(None, -value.number)
            return value
        values = [self.units(a) for a in arguments]
        # evaluate with precedence: ^ first (right to left), then * /, then + -, then comparisons, then logic
        for group in (("^",), ("*", "/"), ("+", "-"), ("=", "<>", "<", "<=", ">", ">="), (":AND:", ":OR:")):
            if group == ("^",):
                index = len(operators) - 1
                while index >= 0:
                    if operators[index] == "^":
                        values[index:index + 2] = [self._power(values[index], values[index + 1])]
                        del operators[index]
                    index -= 1
                continue
            index = 0
            while index < len(operators):
                if operators[index] in group:
                    values[index:index + 2] = [self._binary(operators[index], values[index], values[index + 1])]
                    del operators[index]
                else:
                    index += 1
        return values[0]

    _u_ArithmeticStructure = _arith
    _u_LogicStructure = _arith

    def _binary(self, operator: str, left: _U, right: _U) -> _U:
        if operator in ("*", "/"):
            if left.free and right.free:
                return _U(None)
            a = ureg.dimensionless if left.free else left.unit
            b = ureg.dimensionless if right.free else right.unit
            return _U(_plain(a * b if operator == "*" else a / b))
        if operator in ("+", "-"):
            return self._same([left, right], "adds" if operator == "+" else "subtracts")
        if operator in (":AND:", ":OR:"):
            return _U(ureg.dimensionless)
        self._same([left, right], "compares")
        return _U(ureg.dimensionless)

    def _power(self, base: _U, exponent: _U) -> _U:
        if exponent.free and exponent.number is not None:
            return _U(None) if base.free else _U(_plain(base.unit ** exponent.number))
        self._dimensionless(exponent, "an exponent")
        if not base.free:
            self._dimensionless(base, "the base of a power with a variable exponent")
        return _U(ureg.dimensionless) if not base.free else _U(None)

    def _u_CallStructure(self, ast) -> _U:
        name = ast.function.reference
        element = self.by_clean.get(name)
        if element is not None and any(type(c).__name__ == "AbstractLookup" for c in element.components):
            return self._lookup(element, ast.arguments[0])
        args = [self.units(a) for a in ast.arguments]
        upper = name.upper().replace("_", " ")
        if name in _DIMENSIONLESS_FUNCTIONS:
            for value in args:
                self._dimensionless(value, f"the argument of {upper}")
            return _U(ureg.dimensionless)
        if name in _SAME_UNITS_FUNCTIONS:
            return args[0]
        if name == "sqrt":
            return args[0] if args[0].free else _U(_plain(args[0].unit ** 0.5))
        if name == "power":
            return self._power(args[0], args[1])
        if name in ("min", "max", "modulo", "quantum"):
            return self._same(args, f"{upper} takes arguments in")
        if name == "if_then_else":
            return self._same(args[1:], "IF THEN ELSE has branches in")
        if name in ("xidz", "zidz"):
            ratio = self._binary("/", args[0], args[1])
            if name == "xidz":
                return self._same([ratio, args[2]], "XIDZ divides to")
            return ratio
        if name in ("sum", "vmin", "vmax"):
            return args[0]
        if name == "prod":
            # the product's units depend on how many elements it multiplies: only Dmnl is checked
            return args[0] if args[0].free or args[0].unit == ureg.dimensionless else _U(None)
        if name in ("elmcount", "pi"):
            return _U(ureg.dimensionless)
        if name in _TIME_FUNCTIONS_ARGS:
            for position in _TIME_FUNCTIONS_ARGS[name]:
                if position < len(args):
                    self._time(args[position], f"argument {position + 1} of {upper}")
            if name == "step":
                return args[0]
            if name == "ramp":
                return args[0] if args[0].free or self.time_unit is None else _U(_plain(args[0].unit * self.time_unit))
            return _U(ureg.dimensionless)
        return _U(None)  # a function without a unit rule

    def _lookup(self, element, argument) -> _U:
        value = self.units(argument)
        is_time = type(argument).__name__ == "ReferenceStructure" and argument.reference == "time"
        if not value.free and not is_time and value.unit != ureg.dimensionless:
            raise _Mismatch(
                f"the input to the lookup '{element.name}' is in {_show(value.unit)}; "
                "a lookup takes a Dmnl input (divide by a reference value) or Time"
            )
        declared = self.declared.get(element.name)
        return _U(declared) if declared is not None else _U(None)

    def _u_InlineLookupsStructure(self, ast) -> _U:
        value = self.units(ast.argument)
        is_time = type(ast.argument).__name__ == "ReferenceStructure" and ast.argument.reference == "time"
        if not value.free and not is_time and value.unit != ureg.dimensionless:
            raise _Mismatch(f"the input to WITH LOOKUP is in {_show(value.unit)}; it must be Dmnl or Time")
        return _U(None)  # the table's output takes its variable's units

    def _u_IntegStructure(self, ast) -> _U:
        self.units(ast.flow)
        return self.units(ast.initial)

    def _u_InitialStructure(self, ast) -> _U:
        return self.units(ast.initial)

    def _smoothing(self, ast, time_field: str, what: str) -> _U:
        source = self.units(ast.input)
        self._time(self.units(getattr(ast, time_field)), f"the {what} time")
        initial = self.units(ast.initial)
        return self._same([source, initial], f"{what} has input and initial value in")

    def _u_SmoothStructure(self, ast) -> _U:
        return self._smoothing(ast, "smooth_time", "SMOOTH")

    _u_SmoothNStructure = _u_SmoothStructure

    def _u_DelayStructure(self, ast) -> _U:
        return self._smoothing(ast, "delay_time", "DELAY")

    _u_DelayNStructure = _u_DelayStructure
    _u_DelayFixedStructure = _u_DelayStructure

    def _u_TrendStructure(self, ast) -> _U:
        self.units(ast.input)
        self._time(self.units(ast.average_time), "the TREND average time")
        return _U(None) if self.time_unit is None else _U(_plain(1 / self.time_unit))

    def _u_ForecastStructure(self, ast) -> _U:
        source = self.units(ast.input)
        self._time(self.units(ast.average_time), "the FORECAST average time")
        self._time(self.units(ast.horizon), "the FORECAST horizon")
        return source

    def _u_SampleIfTrueStructure(self, ast) -> _U:
        self.units(ast.condition)
        return self._same([self.units(ast.input), self.units(ast.initial)],
                          "SAMPLE IF TRUE has input and initial value in")
