"""``migsd check``: units, behaviour checks and integration error of a .mdl, in one report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .behaviour import CheckResult, all_checks, run_check
from .units import Finding, check_units


@dataclass
class TimeStepChange:
    """Largest relative change of one stock when TIME STEP is halved."""

    stock: str
    change: float


@dataclass
class CheckReport:
    model: Path
    units: list[Finding]
    behaviour: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    time_step: list[TimeStepChange] | None = None
    #: Mistakes of the .mdl's text (see :mod:`migsd.mdlsource`): undefined names, unclosed definitions,
    #: elements outside their range, algebraic loops, lookups whose x values do not increase.
    source: list[Finding] = field(default_factory=list)
    #: Why the check stopped before units (pysd cannot read the model as written); empty if it did not.
    stopped: str = ""

    @property
    def errors(self) -> list[Finding]:
        return self.source + [f for f in self.units if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.units if f.severity == "warning"]

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.behaviour if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.failed

    def text(self) -> str:
        lines = []
        if self.source:
            lines.append(f"{self.model.name}: model text: {len(self.source)} error(s)")
            lines += [f"  {f}" for f in self.source]
        if self.stopped:
            return "\n".join(lines + [f"{self.model.name}: {self.stopped}"])
        unit_errors = [f for f in self.units if f.severity == "error"]
        lines.append(f"{self.model.name}: units: {len(unit_errors)} error(s), {len(self.warnings)} warning(s)")
        lines += [f"  {f}" for f in unit_errors]
        if self.warnings:
            lines.append("  warnings:")
            lines += [f"  {f}" for f in self.warnings]
        if self.behaviour or self.notes:
            passed = sum(r.passed for r in self.behaviour)
            lines.append(f"{self.model.name}: behaviour checks: {passed} of {len(self.behaviour)} hold")
            lines += ["  " + str(r).replace("\n", "\n  ") for r in self.behaviour]
            lines += [f"  note: {n}" for n in self.notes]
        if self.time_step is not None:
            lines.append(f"{self.model.name}: halving TIME STEP changes each stock by at most (share of its scale):")
            lines += [f"  {c.stock}: {c.change:.3g}" for c in sorted(self.time_step, key=lambda c: -c.change)]
        return "\n".join(lines)


def time_step_changes(model) -> list[TimeStepChange]:
    """Rerun with half the TIME STEP: every stock's largest change, as a share of its scale.

    The scale is the width of a declared range (1 for a ``[0,1]`` index), else the
    stock's largest magnitude (see :func:`migsd.testing.time_step_change`).
    """
    from ..testing import time_step_change

    stocks = [v.name for v in model.variables.values() if v.is_stock]
    dt = model.time_settings["time_step"]
    saveper = model.time_settings["saveper"]
    base = model.run(return_columns=stocks, saveper=saveper)
    fine = model.run(return_columns=stocks, time_step=dt / 2, saveper=saveper)
    return [TimeStepChange(name, change) for name, change in time_step_change(model, base, fine, stocks).items()]


def check_model(path: str | Path | None = None, *, behaviour: bool = True, checks: str | Path | None = None,
                dt: bool = False) -> CheckReport:
    """Check a .mdl (default: the shipped model): units always; behaviour checks and ``dt`` on request.

    Examples
    --------
    >>> import migsd
    >>> report = migsd.check_model(behaviour=False)
    >>> report.ok, len(report.errors)
    (True, 0)
    """
    from ..errors import ModelError
    from ..mdlsource import (SourceError, abstract_problems, lookup_problems, parse_abstract, structure_problems,
                             unreadable)
    from ..model import check_loops, load_model
    from ..paths import DEFAULT_MODEL

    mdl_path = Path(path) if path is not None else DEFAULT_MODEL
    if not mdl_path.is_file():
        raise ModelError(f"model file not found: {mdl_path}")

    def findings(problems) -> list[Finding]:
        return [Finding("error", p.variable, p.line, p.message, mdl_path.name) for p in problems]

    text = mdl_path.read_text(encoding="utf-8", errors="replace")
    stop = "units and behaviour not checked: pysd cannot read the model as written"
    structure = structure_problems(text)
    if structure:
        return CheckReport(mdl_path, [], source=findings(structure), stopped=stop)
    try:
        abstract = parse_abstract(mdl_path)
    except Exception as error:  # pysd's parser raises many kinds for a bad .mdl
        problems = unreadable(text, error)
        if not problems:
            raise ModelError(f"{mdl_path}: pysd cannot read the model: {error}") from error
        return CheckReport(mdl_path, [], source=findings(problems), stopped=stop)
    names = abstract_problems(abstract, text, mdl_path.parent)
    source = findings(names + lookup_problems(text))
    if names:
        return CheckReport(mdl_path, [], source=source, stopped=stop)
    try:
        model = load_model(mdl_path)
        check_loops(model.path)  # also where the translation came from the cache
    except SourceError as error:  # simultaneous equations, found when the engine orders them
        return CheckReport(mdl_path, [], source=source + findings(error.problems),
                           stopped="units and behaviour not checked: the equations cannot be ordered")
    report = CheckReport(model.path, check_units(model.path, abstract), source=source)
    if report.errors:
        return report  # behaviour of a model whose units do not add up is not worth running
    if behaviour:
        found, report.notes = all_checks(model, checks)
        report.behaviour = [run_check(model, check) for check in found]
    if dt:
        report.time_step = time_step_changes(model)
    return report
