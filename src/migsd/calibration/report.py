"""``migsd calibrate``: fit, out-of-sample check, and the files a reader checks the fit with.

Writes, for version N, in ``calibration/parameters/``:
``calibrated_vN.csv`` (rows ``best`` then ensemble members; columns .mdl names),
``calibrated_vN.md`` (command, data hashes, payoff, date, fit table),
``calibrated_vN_fit.csv`` (RMSE, MAPE, R^2, Theil fractions per target series,
in sample and out of sample) and ``calibrated_vN_fit/*.png`` (model vs data per
target). Evaluations are logged as they are computed
(``calibrated_vN.evaluations*.npz``), so ``--resume`` continues an interrupted
calibration without recomputing them.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from .fit import (
    PARAMETERS_DIR,
    compared,
    EvaluationLog,
    Target,
    file_digest,
    fit,
    fit_table,
    load_settings,
    make_problem,
    next_version,
    now,
    write_parameters,
)
from ..errors import DataError
from ..paths import CALIBRATION_DIR
from .data import CalibrationData

#: The last year the out-of-sample calibration sees; 2015 and 2020 are then predictions.
HOLDOUT_FROM = 2011
#: WPP estimates after the targets' last year, used only to check the calibrated run.
VALIDATION = Target(name="total population 2021-2023 (validation)", variable="population", data="pop_jul1",
                    scale=1000, years=[2021, 2022, 2023])
#: UN DESA's 2024 edition of the migrant stock, published after the targets' data (IMS 2020): its 2024 stock by
#: destination is a point no calibration has seen. The edition also revises 1990-2020 (the Gulf's 2020 stock
#: from 30.8 to 28.0 million), so a miss mixes forecast error with the revision; the note states both.
#: WPP's net migration in the years the targets leave out: the pandemic's closures, which the model lacks.
VALIDATION_FLOWS = Target(name="net migration 2020-2023 (validation)", variable="net migration",
                          data="net_migration", scale=1000, years=[2020, 2021, 2022, 2023], transform="none")
VALIDATION_IMS2024 = Target(name="foreign-born by destination 2024 (IMS 2024, validation)",
                            variable="foreign born population", data="ims2024:migrant_stock_both", years=[2024])


def calibrate(settings_path: Path | None = None, *, model=None, directory: Path = PARAMETERS_DIR,
              resume: bool = False, progress: bool = True, out_of_sample: bool = True) -> Path:
    """Run a full calibration; returns the path of the written ``calibrated_vN.csv``."""
    from ..model import load_model

    model = model or load_model(calibration=None)
    settings_path = Path(settings_path or CALIBRATION_DIR / "calibrate.toml")
    # the data beside the settings: a model folder written by migsd regions carries its own calibration/, whose
    # political-core series are by its regions
    data = CalibrationData(settings_path.parent) if (settings_path.parent / "regions.csv").is_file() else (
        CalibrationData())
    settings = load_settings(settings_path, model, data_directory=data.directory)
    version = _version(directory, resume)
    stem = directory / f"calibrated_v{version}"
    problem = make_problem(model, settings, data)
    started = time.perf_counter()
    fitted = fit(problem, settings, EvaluationLog(stem.with_name(stem.name + ".evaluations.npz")), progress)
    runs = problem.simulate(fitted.best)
    years = sorted({y for t in problem.targets for y in t.years})
    table = fit_table(problem, runs, label=f"in sample {_period(years)}")
    tables = [table]
    holdout = None
    if out_of_sample:
        early = make_problem(model, settings, data, until=HOLDOUT_FROM - 1)
        # never from ``start``: a calibration that saw the later years would leak them into the check
        holdout = fit(early, replace(settings, members=1, proposals=1, start=None),
                      EvaluationLog(stem.with_name(stem.name + ".evaluations-until-2010.npz")), progress)
        held_runs = problem.simulate(holdout.best)
        in_years = fit_table(early, early.simulate(holdout.best), label="calibrated to 2010: in sample 1990-2010")
        later = make_problem(model, settings, data, since=HOLDOUT_FROM)
        later_years = sorted({y for t in later.targets for y in t.years})
        out_years = fit_table(later, held_runs,
                              label=f"calibrated to 2010: out of sample {_period(later_years)}")
        tables += [in_years, out_years]
    tables.append(validation_table(model, settings, data, fitted.best,
                                   None if holdout is None else holdout.best))
    fit_frame = pd.concat(tables, ignore_index=True)
    integration = integration_error(problem, fitted.best, fitted.members)
    wall = time.perf_counter() - started

    write_parameters(stem.with_suffix(".csv"), settings.priors, fitted.best, fitted.members)
    fit_frame.to_csv(stem.with_name(stem.name + "_fit.csv"), index=False, float_format="%.6g")
    figures = _figures(problem, runs, stem.with_name(stem.name + "_fit"))
    note = _note(version, settings, settings_path, fitted, holdout, fit_frame, figures, stem, wall,
                 data.directory, integration)
    stem.with_suffix(".md").write_text(note, encoding="utf-8")
    return stem.with_suffix(".csv")


def validation_table(model, settings, data, best: np.ndarray, held_out: np.ndarray | None = None) -> pd.DataFrame:
    """Fit rows against data no fit saw (:data:`VALIDATION`, :data:`VALIDATION_FLOWS`,
    :data:`VALIDATION_IMS2024`), at ``best`` and, for
    the 2024 stocks, at the 1990-2010 refit's ``held_out`` parameters."""
    totals = make_problem(model, replace(settings, targets=[VALIDATION]), data)
    flows = make_problem(model, replace(settings, targets=[VALIDATION_FLOWS]), data)
    revised = make_problem(model, replace(settings, targets=[VALIDATION_IMS2024]), data)
    tables = [fit_table(totals, totals.simulate(best), label="validation 2021-2023 (best)"),
              fit_table(flows, flows.simulate(best), label="validation 2020-2023 (best)"),
              fit_table(revised, revised.simulate(best), label="validation 2024 (best)")]
    if held_out is not None:
        tables.append(fit_table(revised, revised.simulate(held_out), label="calibrated to 2010: validation 2024"))
    return pd.concat(tables, ignore_index=True)


def validate(calibration: Path | str, settings_path: Path | None = None) -> pd.DataFrame:
    """:func:`validation_table` at the ``best`` row of a written ``calibrated_vN.csv``: the check for a
    calibration written before a validation series existed, with the code that writes it for later ones."""
    from ..model import load_model
    from .fit import read_parameters

    model = load_model(calibration=None)
    settings = load_settings(Path(settings_path or CALIBRATION_DIR / "calibrate.toml"), model)
    row = read_parameters(Path(calibration)).loc["best"]
    missing = [p.name for p in settings.priors if p.name not in row.index]
    if missing:
        raise DataError(f"{calibration}: no column for the calibrated parameters {missing}")
    best = np.array([float(row[p.name]) for p in settings.priors])
    return validation_table(model, settings, CalibrationData(), best)


def integration_error(problem, best: np.ndarray, members: np.ndarray | None = None,
                      outputs=None) -> pd.DataFrame:
    """How far halving TIME STEP moves each key output at the fitted parameters, to the model's FINAL TIME.

    A fit can settle where feedback gains are so high that the Euler step no longer
    resolves the response (the answer then depends on TIME STEP, not on the data), so
    every calibration states it: one row per output (``outputs``, default those of
    :data:`migsd.testing.KEY_OUTPUTS` the model has), with the change at the best fit,
    the largest over the ensemble's distinct members, and whether both are within
    :data:`migsd.testing.TIME_STEP_TOLERANCE`.
    """
    from ..names import canonical
    from ..testing import KEY_OUTPUTS, TIME_STEP_TOLERANCE, time_step_change

    model = problem.model
    outputs = list(outputs or [name for name in KEY_OUTPUTS if canonical(name) in model.variables])
    thetas = np.atleast_2d(best)
    if members is not None and len(members):
        thetas = np.vstack([thetas, np.unique(np.atleast_2d(members), axis=0)])
    dt = model.time_settings["time_step"]
    coarse, fine = (model.run_batch(problem.batch(thetas), return_columns=outputs, time_step=step, saveper=1.0)
                    for step in (dt, dt / 2))
    # per run: time_step_change takes the largest change over everything it is given
    per_run = [time_step_change(model, coarse.isel(run=[k]), fine.isel(run=[k]), outputs)
               for k in range(thetas.shape[0])]
    frame = pd.DataFrame({"output": outputs, "best": [per_run[0][name] for name in outputs],
                          "worst member": [max(changes[name] for changes in per_run) for name in outputs]})
    frame["within tolerance"] = frame[["best", "worst member"]].max(axis=1) < TIME_STEP_TOLERANCE
    frame.attrs.update(time_step=dt, tolerance=TIME_STEP_TOLERANCE, runs=thetas.shape[0])
    return frame


def _integration_section(integration: pd.DataFrame | None) -> str:
    if integration is None:
        return ""
    failing = integration.loc[~integration["within tolerance"], "output"].tolist()
    verdict = ("every key output is within it" if not failing else
               f"**not met** by {', '.join(failing)}: at these parameters the answer depends on TIME STEP; "
               "narrow the gains' priors or integrate finer before relying on it")
    table = _markdown(integration.assign(**{c: integration[c].map(lambda v: f"{v:.2%}")
                                            for c in ("best", "worst member")}))
    return f"""
## Integration error at the fitted parameters

Halving TIME STEP {integration.attrs['time_step']:g} moves each key output by at most this share of its scale (the
width of its declared range, else its largest magnitude), at the best fit and over the
{integration.attrs['runs'] - 1} distinct ensemble members; tolerance {integration.attrs['tolerance']:.0%}
(the model's tests hold the promoted calibration to it): {verdict}.

{table}
"""


#: A fitted value within this share of its prior's width from a bound is reported as at that bound.
AT_BOUND = 0.02


def bounds_section(priors, best: np.ndarray) -> str:
    """The parameters the fit pushed to a bound of their prior: there the prior, not the data, sets the value,
    and a structure that needs a value the evidence behind the prior rules out shows itself."""
    rows = []
    for prior, value in zip(priors, best):
        share = (float(value) - prior.lower) / (prior.upper - prior.lower)
        side = "lower" if share <= AT_BOUND else "upper" if share >= 1 - AT_BOUND else None
        if side:
            rows.append(f"| `{prior.name}` | {value:.4g} | {side} ({prior.lower:g}, {prior.upper:g}) | {prior.why} |")
    if not rows:
        return ""
    table = "\n".join(rows)
    return f"""
## Parameters at a bound of their prior

{len(rows)} of {len(priors)} fitted values lie within {AT_BOUND:.0%} of their prior's width from a bound. There
the prior, not the data, sets the value: either the bound is too narrow, or the structure needs a value
that the evidence behind the bound rules out.

| parameter | best | bound (prior) | why the prior |
|---|---|---|---|
{table}
"""


def _period(years: list[int]) -> str:
    return f"{years[0]}-{years[-1]}" if years[-1] > years[0] else str(years[0])


def _version(directory: Path, resume: bool) -> int:
    if resume:
        logs = sorted(directory.glob("calibrated_v*.evaluations.npz"))
        pending = [int(p.name.split("_v")[1].split(".")[0]) for p in logs
                   if not (directory / f"calibrated_v{p.name.split('_v')[1].split('.')[0]}.csv").exists()]
        if pending:
            return max(pending)
    return next_version(directory)


def _figures(problem, runs, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for target in problem.targets:
        if target.kind != "series":
            continue
        model = runs[target.variable].isel(run=0)
        for dim, element in target.where.items():
            model = model.sel({dim: element})
        if target.sum:
            model = model.sum(list(target.sum))
        data = problem.data[target.name]
        if target.political:
            for dim in data.dims:
                if dim != "year" and dim in model.dims:
                    model = model.sel({dim: data[dim].values})
            _, factor = compared(problem, target, runs.isel(run=[0]))
            if factor is not None:
                model = model * float(factor[0])
        other = [d for d in model.dims if d != "time"]
        combos = list(np.ndindex(*[model.sizes[d] for d in other])) if other else [()]
        columns = min(4, len(combos))
        rows = int(np.ceil(len(combos) / columns))
        figure, axes = plt.subplots(rows, columns, figsize=(max(6.4, 3.2 * columns), 2.4 * rows + 0.6), squeeze=False)
        for axis, combo in zip(axes.flat, combos):
            selection = dict(zip(other, combo))
            series = model.isel(selection)
            points = data.isel({d: i for d, i in selection.items()})
            axis.plot(series["time"], series.values, color="C0", label="model")
            marker = {"lower": "^", "upper": "v"}.get(target.bound, "o")
            axis.plot(points["year"], points.values, marker, color="C3", markersize=4,
                      label=f"data ({target.bound} bound)" if target.bound else "data")
            axis.set_xlim(float(points["year"].min()) - 5, float(points["year"].max()) + 3)
            axis.set_title(", ".join(str(model[d].values[i]) for d, i in selection.items()) or target.name,
                           fontsize=9)
            axis.tick_params(labelsize=7)
            axis.xaxis.get_major_locator().set_params(integer=True)
        for axis in list(axes.flat)[len(combos):]:
            axis.set_visible(False)
        axes.flat[0].legend(fontsize=7)
        scaled = " x fitted factor" if target.political and target.likelihood is not None and \
            target.likelihood.factor is not None else ""
        figure.suptitle(f"{target.name}: model{scaled} (line) and data (points), "
                        f"{runs[target.variable].attrs.get('units', '')}",
                        fontsize=10)
        figure.tight_layout()
        path = folder / f"{target.name.replace(' ', '_').replace('/', '-')}.png"
        figure.savefig(path, dpi=90)
        plt.close(figure)
        written.append(path)
    return written


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value):
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _note(version, settings, settings_path, fitted, holdout, fit_frame, figures, stem, wall: float = float("nan"),
          folder: Path = CALIBRATION_DIR, integration: pd.DataFrame | None = None) -> str:
    # ``folder``: the calibration folder whose data/ calibrate() read
    hashes = "\n".join(f"- `{p.relative_to(folder).as_posix()}`: sha256 {file_digest(p)}"
                       for p in sorted((folder / "data").glob("*.csv")))
    columns = [c for c in ("MAPE", "coverage", "factor", "U_M", "U_S", "U_C", "R2") if c in fit_frame]
    summary = _markdown(fit_frame.groupby(["sample", "target"], sort=False)[columns].mean().reset_index())
    priors = "\n".join(f"| `{p.name}` | {p.lower:g} | {p.upper:g} | {b:.4g} | {p.why} |"
                       for p, b in zip(settings.priors, fitted.best))
    holdout_line = ""
    if holdout is not None:
        holdout_line = f"- calibrated on 1990-2010 only: payoff {holdout.payoff:.6g} over those years\n"
    figure_list = "\n".join(f"- [{p.stem}]({p.parent.name}/{p.name})" for p in figures)
    start_line = (f"; the first generation holds the best row of `{settings.start.name}` (sha256 "
                  f"{file_digest(settings.start)[:16]}), the 1990-2010 refit does not" if settings.start else "")
    command = "migsd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[0].endswith(("migsd", "cli.py")) else \
        "migsd calibrate"
    return f"""# Calibration v{version}

- date: {now()}
- command: `{command}`
- settings: `{settings_path.name}` (targets, priors, seed {settings.seed}, {settings.generations} generations,
  population {settings.population} per parameter, {settings.local_evaluations} Nelder-Mead evaluations{start_line})
- payoff (weighted mean squared error: log errors of stocks, standardised errors of political series and flows, see src/migsd/calibration/fit.py): **{fitted.payoff:.6g}**
  after {fitted.evaluations} evaluations
- ensemble: {len(fitted.members)} members resampled from {settings.proposals} proposals,
  effective sample size {fitted.effective_sample_size:.1f}
- wall time: {wall:.0f} s (fit, ensemble, out-of-sample refit and fit tables) on {os.cpu_count()} cores
{holdout_line}
## Data

{hashes}

## Calibrated parameters (uniform priors)

| parameter | lower | upper | best | why |
|---|---|---|---|---|
{priors}

## Fit, by target (mean over its series; per series in `{stem.name}_fit.csv`)

MAPE in %; `coverage`, for a one-sided target, the share of data years on its side; `factor`, for a series
scaled by an uncertain factor (IOM's recorded share of deaths, Eurobarometer's share per unit of salience), its
fitted value, the model being scored times it; Theil fractions U_M (bias), U_S (unequal variation), U_C (unequal covariation) of the MSE.
`validation` rows score data no fit saw: WPP's totals for 2021-2023, its net migration for 2020-2023 (RMSE in
persons a year: a MAPE has no meaning for a flow near zero) and the 2024 foreign-born stock of UN
DESA's 2024 edition (which also revises 1990-2020, so that miss mixes forecast error with the revision).

{summary}
{_integration_section(integration)}{bounds_section(settings.priors, fitted.best)}
## Figures

{figure_list}
"""
