"""Calibration against the UN data in ``calibration/``: targets, priors, payoff, optimiser and ensemble.

The payoff is a weighted sum, over targets, of the mean squared error of the
model against the data on a log scale (``transform = "log"``): population and
migrant stocks span three orders of magnitude across regions, and a log error
weighs a 5% miss in the Gulf like a 5% miss in the North. Shares given as a band
(the world migrant share) add the squared log distance to the band, zero inside
it; soft targets (scattered survey points) add a squared difference scaled by
their stated uncertainty. Political-core series (``political.py``: policy indices,
surveys, salience, deaths on routes, labour tightness) add their mean squared
standardised error (noise and proxy error in quadrature) times
``POLITICAL_SCALE`` squared, transcribed figures at ``TRANSCRIBED_WEIGHT``; a series
scaled by an uncertain factor (IOM's recorded share of deaths) is compared at
the factor that fits it best within its prior bounds (profiled out), and a
one-sided target counts only the side its data bound.

The fit is global then local: scipy's differential evolution, each generation
integrated as one batch of runs, then a bounded Nelder-Mead from its best. The
ensemble is a likelihood-weighted sample (sampling-importance-resampling):
Gaussian errors whose variance is the best fit's, one effective observation per
target series and data year, a proposal around the best, members drawn in
proportion to likelihood over proposal density (uniform priors).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..paths import CALIBRATION_DIR, PARAMETERS_DIR
from .data import CalibrationData
from .likelihood import DISTRIBUTION_KEYS, LIKELIHOOD_KEYS, Likelihood, PriorDistribution, parse_distribution, \
    parse_likelihood
from ..errors import DataError, ScenarioError
from ..names import canonical, did_you_mean
from ..tomlfiles import check_table, read_toml

TARGET_KEYS = ("name", "variable", "where", "data", "scale", "years", "transform", "weight", "band", "value",
               "sigma", "source", "why", "sum", "bound", "transcribed") + LIKELIHOOD_KEYS
#: A transcribed figure (read off a web page, not a publisher's table) counts as this share of an observation,
#: in the payoff (its weight) and in the posterior (its log density): a transcription may be mis-read or mis-dated.
TRANSCRIBED_WEIGHT = 0.5
#: A political-core series' payoff term is its squared standardised error times this squared scale, so that a
#: one-sd miss of a survey point weighs like a 5% miss of a demographic series of the same weight.
POLITICAL_SCALE = 0.05
#: The prefix of a target's ``data`` naming an International Migrant Stock series, and the edition (the
#: ``variant`` of model_regions_timeseries.csv) it reads. IMS 2024 revises 1990-2020 as well as adding 2024.
IMS_EDITIONS = {"ims": "ims2020", "ims2024": "ims2024"}
PRIOR_KEYS = ("name", "why") + DISTRIBUTION_KEYS
SETTINGS_KEYS = ("targets", "priors", "seed", "generations", "population", "local_evaluations", "members",
                 "proposals", "years", "posterior", "start")


@dataclass
class Target:
    name: str
    variable: str
    years: list[int]
    data: str | None = None
    where: dict = field(default_factory=dict)
    scale: float = 1.0
    transform: str = "log"
    weight: float = 1.0
    band: tuple[float, float] | None = None
    value: float | None = None
    sigma: float = 0.1
    #: the posterior's error model (``likelihood.py``); the payoff reads its noise, proxy and factor
    likelihood: Likelihood | None = None
    #: citation key of a political-core series (``political.CITATIONS``); why the target is there
    source: str | None = None
    why: str = ""
    #: dims of the variable summed before comparison (``origin`` of deaths on routes by destination)
    sum: tuple[str, ...] = ()
    #: "lower" or "upper": the data bound the model from one side only (labour tightness)
    bound: str | None = None
    transcribed: bool = False

    @property
    def political(self) -> bool:
        from .political import SERIES

        return self.data in SERIES

    @property
    def kind(self) -> str:
        return "band" if self.band is not None else "soft" if self.value is not None else "series"

    @property
    def standardised(self) -> bool:
        """Its errors are divided by its declared noise: a political-core series, or any series whose errors are
        on its own values (``likelihood = "normal"``, ``transform = "none"``), as a flow that changes sign must
        be (a log, or a share of the data, has no meaning near zero)."""
        normal = self.likelihood is not None and self.likelihood.kind == "normal" and self.transform == "none"
        return self.political or normal


@dataclass
class Prior:
    name: str
    lower: float
    upper: float
    why: str = ""
    #: the posterior's prior density (uniform on [lower, upper] unless declared)
    distribution: PriorDistribution | None = None

    def __post_init__(self):
        if self.distribution is None:
            self.distribution = PriorDistribution("uniform", self.lower, self.upper)


@dataclass
class Settings:
    targets: list[Target]
    priors: list[Prior]
    seed: int = 2026
    generations: int = 30
    population: int = 8
    local_evaluations: int = 150
    members: int = 50
    proposals: int = 2000
    source: Path = CALIBRATION_DIR / "calibrate.toml"
    #: A calibration whose ``best`` row joins the optimiser's first generation (``start`` in calibrate.toml),
    #: so a refit after a small change to the model or the priors begins where the last one ended.
    start: Path | None = None


def load_settings(path: str | Path = CALIBRATION_DIR / "calibrate.toml", model=None,
                  data_directory: Path | None = None) -> Settings:
    """Read ``calibrate.toml`` and the target and prior files it names; checked against ``model``."""
    path = Path(path)
    document = read_toml(path)
    check_table(document, str(path), SETTINGS_KEYS)
    targets = load_targets(path.parent / document.get("targets", "targets.toml"), model, data_directory)
    priors = load_priors(path.parent / document.get("priors", "priors.toml"), model)
    options = {k: int(document[k]) for k in ("seed", "generations", "population", "local_evaluations", "members",
                                             "proposals") if k in document}
    start = None
    if "start" in document:
        start = path.parent / str(document["start"])
        if not start.is_file():
            raise DataError(f"{path}: start = '{document['start']}': no such file (relative to {path.parent}); "
                            "give a calibrated_vN.csv whose 'best' row the fit should start from")
    return Settings(targets, priors, source=path, start=start, **options)


def start_point(settings: Settings) -> np.ndarray | None:
    """The ``start`` calibration's best row in prior units (0 at a prior's lower bound, 1 at its upper).

    A parameter the start file lacks begins at its prior's middle; a value outside the
    present bounds (the priors were narrowed) at the nearer bound.
    """
    if settings.start is None:
        return None
    best = read_parameters(settings.start).loc["best"]
    unit = [(float(best[p.name]) - p.lower) / (p.upper - p.lower) if p.name in best.index else 0.5
            for p in settings.priors]
    return np.clip(np.nan_to_num(np.array(unit), nan=0.5), 0.0, 1.0)


def load_targets(path: Path, model=None, data_directory: Path | None = None) -> list[Target]:
    """The ``[[target]]`` tables of ``path``; political-core series are checked against ``data_directory``'s data."""
    document = read_toml(path)
    targets = []
    for number, table in enumerate(document.get("target", []), start=1):
        where = f"{path}: [[target]] {number}" + (f" ('{table['name']}')" if "name" in table else "")
        check_table(table, where, TARGET_KEYS, ("name", "variable", "years"))
        target = Target(
            name=str(table["name"]), variable=str(table["variable"]), years=[int(y) for y in table["years"]],
            data=table.get("data"), where=dict(table.get("where", {})), scale=float(table.get("scale", 1.0)),
            transform=str(table.get("transform", "log")), weight=float(table.get("weight", 1.0)),
            band=tuple(table["band"]) if "band" in table else None, value=table.get("value"),
            sigma=float(table.get("sigma", 0.1)), source=table.get("source"), why=str(table.get("why", "")),
            sum=tuple(table.get("sum", ())), bound=table.get("bound"), transcribed=bool(table.get("transcribed", False)),
        )
        if target.transform not in ("log", "none"):
            raise ScenarioError(f"{where}: transform '{target.transform}' is not 'log' or 'none'")
        if sum(x is not None for x in (target.data, target.band, target.value)) != 1:
            raise ScenarioError(f"{where}: give exactly one of 'data' (a series), 'band' [low, high] or 'value'")
        target.likelihood = parse_likelihood(table, where, target.kind)
        target.likelihood.bound = target.bound
        target.likelihood.tempering = TRANSCRIBED_WEIGHT if target.transcribed else 1.0
        _check_political(target, table, where, data_directory)
        if model is not None:
            _check_target(model, target, where)
        targets.append(target)
    if not targets:
        raise ScenarioError(f"{path}: no [[target]] tables")
    return targets


def _check_political(target: Target, table: dict, where: str, data_directory: Path | None) -> None:
    """A political-core target names its citation, and asks only for years and regions its data have."""
    from .political import CITATIONS, SERIES, PoliticalData

    political_keys = [k for k in ("source", "bound", "transcribed") if k in table]
    if target.data is None or ":" not in str(target.data) or str(target.data).split(":")[0] in IMS_EDITIONS:
        if political_keys and not target.political:
            raise ScenarioError(f"{where}: {political_keys} apply to political-core series ({', '.join(SERIES)})")
        return
    if target.data not in SERIES:
        raise ScenarioError(f"{where}: key 'data': unknown series '{target.data}'; political-core series are "
                            f"{', '.join(SERIES)}." + did_you_mean(str(target.data), list(SERIES)))
    pdata = PoliticalData(data_directory or CALIBRATION_DIR)
    file = pdata.path(target.data)
    if target.source is None:
        raise ScenarioError(f"{where}: key 'source' is missing: a target on '{target.data}' ({file.name}) must cite "
                            f"its data: source = \"{pdata.citation_key(target.data)}\" ({CITATIONS[pdata.citation_key(target.data)]})")
    if target.source != pdata.citation_key(target.data):
        raise ScenarioError(f"{where}: key 'source': '{target.source}' is not the citation of '{target.data}' "
                            f"({file.name}); use source = \"{pdata.citation_key(target.data)}\"")
    if target.bound not in (None, "lower", "upper"):
        raise ScenarioError(f"{where}: key 'bound': '{target.bound}' is not \"lower\" or \"upper\"")
    if target.likelihood.kind != "lognormal" and target.transform == "log":
        raise ScenarioError(f"{where}: transform 'log' needs the log-scale likelihood (\"lognormal\")")
    frame = pdata.series(target.data)
    regions = sorted(set(frame["region"]))
    wanted = [element for dim, element in target.where.items()]
    lacking = [r for r in wanted if r not in regions]
    if lacking:
        raise ScenarioError(f"{where}: key 'where': the data '{target.data}' ({file.name}) have no region "
                            f"{', '.join(map(repr, lacking))}; they cover {', '.join(regions)}")
    chosen = frame[frame["region"].isin(wanted)] if wanted else frame
    for region, group in chosen.groupby("region"):
        missing = [y for y in target.years if y not in set(group["year"])]
        if missing:
            raise ScenarioError(f"{where}: key 'years': {missing} are outside the data '{target.data}' ({file.name}) "
                                f"for {region}, which has {_span(sorted(group['year']))}")


def _span(years: list[int]) -> str:
    if years and years == list(range(years[0], years[-1] + 1)):
        return f"{years[0]}-{years[-1]}"
    return ", ".join(map(str, years))


def _check_target(model, target: Target, where: str) -> None:
    key = canonical(target.variable)
    if key not in model.variables:
        raise ScenarioError(
            f"{where}: '{target.variable}' is not a variable of {model.path.name}."
            + did_you_mean(target.variable, [v.name for v in model.variables.values()])
        )
    variable = model.variables[key]
    for dim, element in target.where.items():
        if dim not in variable.dims:
            raise ScenarioError(f"{where}: '{variable.name}' has no dim '{dim}' (its dims: {list(variable.dims)})")
        valid = model.subscripts[variable.subscripts[variable.dims.index(dim)]]
        if element not in valid:
            raise ScenarioError(f"{where}: '{element}' is not one of {valid}")
    start, end = model.time_settings["initial_time"], model.time_settings["final_time"]
    outside = [y for y in target.years if not start <= y <= end]
    if outside:
        raise ScenarioError(f"{where}: years {outside} are outside the run ({start:g}-{end:g})")


def load_priors(path: Path, model=None) -> list[Prior]:
    from ..parameters import ParameterSet

    document = read_toml(path)
    priors = []
    for number, table in enumerate(document.get("parameter", []), start=1):
        where = f"{path}: [[parameter]] {number}" + (f" ('{table['name']}')" if "name" in table else "")
        check_table(table, where, PRIOR_KEYS, ("name", "lower", "upper", "why"))
        prior = Prior(str(table["name"]), float(table["lower"]), float(table["upper"]), str(table["why"]))
        if not (math.isfinite(prior.lower) and math.isfinite(prior.upper) and prior.lower < prior.upper):
            raise ScenarioError(f"{where}: bounds must be finite with lower < upper, got [{prior.lower}, {prior.upper}]")
        prior.distribution = parse_distribution(table, where, require_bounds=True)
        if model is not None:
            # both bounds, so a prior never searches outside the range the .mdl declares
            ParameterSet(model).apply({prior.name: prior.lower}, source=where)
            ParameterSet(model).apply({prior.name: prior.upper}, source=where)
        priors.append(prior)
    if not priors:
        raise ScenarioError(f"{path}: no [[parameter]] tables")
    return priors


# ------------------------------------------------------------------------ observations
def observed(target: Target, data: CalibrationData) -> xr.DataArray:
    """The data a series target is compared with: dims ``year`` and the variable's remaining dims."""
    years = target.years
    if target.data == "bilateral":
        frames = [data.foreign_born(year) for year in years]
        values = xr.concat(frames, dim=xr.Variable("year", years))
    elif target.data.split(":")[0] in IMS_EDITIONS:
        edition, series = target.data.split(":", 1)
        values = data.series(series, years, variants=(IMS_EDITIONS[edition],))
    else:
        values = data.series(target.data, years)
    values = values * target.scale
    for dim, element in target.where.items():
        if dim in values.dims:
            values = values.sel({dim: element})
    if target.data == "bilateral" and target.transform == "log":
        # IMS lists only corridors with migrants: a corridor absent from it (a zero here, seen once regions
        # are cut finer than the shipped four) is no observation, not a measured zero a log could compare
        values = values.where(values > 0)
    # only a log needs positive numbers: a flow (net migration) changes sign, and a negative stock or
    # population is refused where the file is read (CalibrationData.series), naming its row
    bad = values.where(values <= 0, drop=True)
    if target.transform == "log" and bad.size:
        raise DataError(f"target '{target.name}': data '{target.data}' has non-positive values "
                        f"({bad.to_series().head(3).to_dict()}); a log target needs positive numbers")
    return values


def observed_political(target: Target, pdata, model) -> tuple[xr.DataArray, list[tuple[int, int]]]:
    """A political-core series as the model's variable will be compared with it, and each year's window of years.

    The data's regions become the variable's remaining dim (``region``, or ``destination`` of a flow summed over
    ``origin``); a variable with no such dim (a world total) is compared with the data's ``world`` row.
    """
    frame = pdata.series(target.data)
    variable = model.variables[canonical(target.variable)] if model is not None else None
    remaining = [d for d in (variable.dims if variable is not None else ("region",))
                 if d not in target.where and d not in target.sum]
    if target.where:
        regions = list(target.where.values())
    elif not remaining:
        regions = ["world"]
    else:
        regions = sorted(r for r in set(frame["region"]) if r != "world")
    rows = frame[frame["region"].isin(regions)].set_index(["region", "year"])
    try:
        values = np.array([[rows.loc[(r, y), "value"] for r in regions] for y in target.years], dtype=float)
        firsts = np.array([[rows.loc[(r, y), "first"] for r in regions] for y in target.years])
        lasts = np.array([[rows.loc[(r, y), "last"] for r in regions] for y in target.years])
    except KeyError as error:
        raise DataError(f"target '{target.name}': data '{target.data}' have no value for {error.args[0]}; "
                        "give a target per region, with years its data have") from error
    if (firsts != firsts[:, :1]).any() or (lasts != lasts[:, :1]).any():
        raise DataError(f"target '{target.name}': the survey windows of '{target.data}' differ between regions "
                        f"{regions}; give a target per region (where = {{ region = ... }})")
    windows = [(int(a), int(b)) for a, b in zip(firsts[:, 0], lasts[:, 0])]
    data = xr.DataArray(values * target.scale, dims=("year", "region"),
                        coords={"year": list(target.years), "region": regions})
    if len(remaining) == 1:
        data = data.rename(region=remaining[0])
    else:
        data = data.isel(region=0, drop=True)
    return data, windows


def _at_years(values: xr.DataArray, years) -> xr.DataArray:
    """``values`` at ``years`` of its ``time``, with ``year`` for ``time`` (``.sel(time=years).rename(time="year")
    .assign_coords(year=years)``, built directly: a posterior asks for it per target and batch, and
    ``assign_coords`` alone took a fifth of a sampler's time outside the engine)."""
    picked = values.sel(time=list(years))
    coords = {name: coord.variable for name, coord in picked.coords.items() if name != "time"}
    coords["year"] = ("year", np.asarray(years))
    return xr.DataArray(picked.variable.data, dims=["year" if d == "time" else d for d in picked.dims],
                        coords=coords, name=picked.name, attrs=picked.attrs)


@dataclass
class Problem:
    """What a payoff needs: the model, the targets with their data, the priors."""

    model: object
    targets: list[Target]
    priors: list[Prior]
    data: dict[str, xr.DataArray]
    #: per political-core target, the (first, last) years each data year averages the model over (survey waves)
    windows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def final_time(self) -> float:
        return float(max(max(t.years) for t in self.targets))

    def batch(self, thetas: np.ndarray) -> xr.Dataset:
        """Parameter sets (rows) as a run_batch Dataset."""
        thetas = np.atleast_2d(thetas)
        return xr.Dataset({p.name: ("run", thetas[:, k]) for k, p in enumerate(self.priors)})

    def simulate(self, thetas: np.ndarray, **options) -> xr.Dataset:
        """One batch; ``options`` (``chunk_size``, ``workers``) go to ``run_batch``."""
        columns = sorted({t.variable for t in self.targets})
        return self.model.run_batch(self.batch(thetas), return_columns=columns, final_time=self.final_time,
                                    saveper=1.0, **options)

    def simulated(self, target: Target, runs: xr.Dataset) -> xr.DataArray:
        values = runs[target.variable]
        for dim, element in target.where.items():
            values = values.sel({dim: element})
        if target.sum:
            values = values.sum(list(target.sum))
        windows = self.windows.get(target.name)
        if windows and any(first != last for first, last in windows):
            parts = [values.sel(time=slice(first, last)).mean("time") for first, last in windows]
            values = xr.concat(parts, dim=xr.Variable("year", list(target.years)))
            values = values.transpose(*[d for d in ("run", "year") if d in values.dims], ...)
        else:
            values = _at_years(values, target.years)
        data = self.data.get(target.name)
        if target.political and data is not None:
            for dim in data.dims:
                if dim != "year" and dim in values.dims:
                    values = values.sel({dim: data[dim].values})
        return values

    def political_residuals(self, target: Target, model: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
        """Standardised errors (run x points) of a political-core (or other standardised) target, and the
        reporting factor per run.

        The error's scale is the noise and the proxy error in quadrature. A ``factor`` (the share of deaths IOM
        records; Eurobarometer shares per unit of relative salience) is set, per run, to the value that fits best
        within its prior bounds (profiled out); a ``bound`` counts only the side of the data the model must not cross.
        """
        data = self.data[target.name]
        model = model.transpose("run", *data.dims)
        m = np.asarray(model.values, dtype=float).reshape(model.sizes["run"], -1)
        d = np.asarray(data.values, dtype=float).reshape(1, -1)
        likelihood = target.likelihood
        scale = math.hypot(_typical(likelihood.noise), likelihood.proxy or 0.0) or 1.0
        log = target.transform == "log"
        with np.errstate(divide="ignore", invalid="ignore"):
            m_t = np.log(np.maximum(m, 1e-300)) if log else m
            d_t = np.log(d) if log else d
            factor = np.ones(m.shape[0])
            prior = likelihood.factor
            if prior is not None:
                if log:
                    best = np.exp(np.mean(d_t - m_t, axis=1))
                else:
                    best = np.sum(m * d, axis=1) / np.sum(m * m, axis=1)
                factor = np.clip(np.nan_to_num(best, nan=prior.lower), prior.lower, prior.upper)
            fitted = m_t + np.log(factor)[:, None] if log else m * factor[:, None]
            residual = d_t - fitted
        if target.bound == "lower":  # the model must reach the data: only a model below them misses
            residual = np.maximum(residual, 0.0)
        elif target.bound == "upper":
            residual = np.minimum(residual, 0.0)
        return residual / scale, factor

    def terms(self, runs: xr.Dataset) -> dict[str, np.ndarray]:
        """Each target's contribution to the payoff, per run."""
        out = {}
        for target in self.targets:
            model = self.simulated(target, runs)
            if target.kind == "series" and target.standardised:
                standard, _ = self.political_residuals(target, model)
                share = TRANSCRIBED_WEIGHT if target.transcribed else 1.0
                out[target.name] = target.weight * share * POLITICAL_SCALE**2 * np.mean(standard**2, axis=1)
            elif target.kind == "series":
                data = self.data[target.name].transpose(*[d for d in model.dims if d != "run"])
                residual = _transform(model, target) - _transform(data, target)
                axes = tuple(range(1, residual.ndim))
                squares = np.asarray(residual.values) ** 2
                observed_cells = np.isfinite(np.asarray(data.values))[None]
                if observed_cells.all():
                    out[target.name] = target.weight * np.mean(squares, axis=axes)
                else:  # cells without an observation (NaN data) are left out of the mean, not counted as misses
                    out[target.name] = target.weight * (
                        np.where(observed_cells, squares, 0.0).sum(axis=axes) / observed_cells.sum())
            elif target.kind == "band":
                low, high = (math.log(b) for b in target.band)
                logs = np.log(np.maximum(np.asarray(model.values), 1e-300))
                excess = np.maximum(logs - high, 0) + np.maximum(low - logs, 0)
                out[target.name] = target.weight * np.mean(excess.reshape(excess.shape[0], -1) ** 2, axis=1)
            else:
                miss = (np.asarray(model.values) - float(target.value)) / target.sigma
                out[target.name] = target.weight * np.mean(miss.reshape(miss.shape[0], -1) ** 2, axis=1)
        return out

    def payoff(self, thetas: np.ndarray) -> np.ndarray:
        runs = self.simulate(thetas)
        total = sum(self.terms(runs).values())
        return np.where(np.isfinite(total), total, np.inf)

    def observations(self) -> int:
        """Effective number of observations: one per target series (element) and data year."""
        count = 0
        for target in self.targets:
            if target.kind == "series":
                count += int(np.isfinite(self.data[target.name].values).sum())
            else:
                count += len(target.years)
        return count


def _typical(noise) -> float:
    """A noise scale's value for the payoff: the number, or the median of its prior."""
    if noise is None:
        return 0.0
    if isinstance(noise, PriorDistribution):
        return float(noise._frozen.ppf(sum(noise._mass) / 2))
    return float(noise)


def _transform(values, target: Target):
    if target.transform == "log":
        return np.log(np.maximum(values, 1e-300))
    return values


def make_problem(model, settings: Settings, data: CalibrationData | None = None,
                 until: int | None = None, since: int | None = None) -> Problem:
    """Targets restricted to years in [``since``, ``until``] (for out-of-sample checks) with their data."""
    data = data or CalibrationData()
    model_regions = model.subscripts.get("Region", [])
    strangers = [r for r in data.regions if r not in model_regions]
    if strangers:
        raise DataError(
            f"{data.directory / 'regions.csv'}: region(s) {strangers} are not elements of Region in "
            f"{model.path.name} ({', '.join(model_regions)})"
        )
    targets = []
    for target in settings.targets:
        years = [y for y in target.years if (until is None or y <= until) and (since is None or y >= since)]
        if years:
            targets.append(Target(**{**target.__dict__, "years": years}))
    from .political import PoliticalData

    political = PoliticalData(data.directory)
    observed_data, windows = {}, {}
    for target in targets:
        if target.kind != "series":
            continue
        if target.political:
            observed_data[target.name], windows[target.name] = observed_political(target, political, model)
        else:
            observed_data[target.name] = observed(target, data)
    return Problem(model, targets, settings.priors, observed_data, windows)


# ------------------------------------------------------------------------------ fitting
class EvaluationLog:
    """Every payoff computed, kept on disk as it is computed, so an interrupted calibration resumes.

    The file is rewritten whole, at most every ``interval`` seconds (and by :meth:`flush`): rewriting tens of
    thousands of evaluations after each single one of the Nelder-Mead polish took longer than the runs. An
    interruption loses at most the last ``interval`` seconds of evaluations.
    """

    def __init__(self, path: Path | None, interval: float = 10.0):
        self.path = path
        self.interval = interval
        self._saved_at = -math.inf
        self._dirty = False
        self.known: dict[bytes, float] = {}
        if path is not None and path.exists():
            stored = np.load(path)
            for theta, value in zip(stored["thetas"], stored["payoffs"]):
                self.known[np.asarray(theta, dtype=float).tobytes()] = float(value)

    def evaluate(self, problem: Problem, thetas: np.ndarray) -> np.ndarray:
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        keys = [row.tobytes() for row in thetas]
        missing = [i for i, k in enumerate(keys) if k not in self.known]
        if missing:
            values = problem.payoff(thetas[missing])
            for i, value in zip(missing, values):
                self.known[keys[i]] = float(value)
            self._dirty = True
            if time.monotonic() - self._saved_at >= self.interval:
                self.flush()
        return np.array([self.known[k] for k in keys])

    def flush(self) -> None:
        """Write every evaluation not yet on disk."""
        if self.path is None or not self._dirty:
            return
        self._saved_at = time.monotonic()
        self._dirty = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        thetas = np.array([np.frombuffer(k) for k in self.known])
        payoffs = np.array(list(self.known.values()))
        temporary = self.path.with_name(self.path.name + ".partial.npz")
        np.savez(temporary, thetas=thetas, payoffs=payoffs)
        os.replace(temporary, self.path)


@dataclass
class Fit:
    best: np.ndarray
    payoff: float
    members: np.ndarray
    effective_sample_size: float
    evaluations: int


def fit(problem: Problem, settings: Settings, log: EvaluationLog | None = None, progress: bool = False) -> Fit:
    """Differential evolution (each generation one batch), Nelder-Mead polish, then the ensemble."""
    log = log or EvaluationLog(None)
    try:
        return _fit(problem, settings, log, progress)
    finally:  # an interrupted calibration keeps every evaluation it made, for --resume
        log.flush()


def _fit(problem: Problem, settings: Settings, log: EvaluationLog, progress: bool) -> Fit:
    from scipy.optimize import differential_evolution, minimize

    lower = np.array([p.lower for p in problem.priors])
    upper = np.array([p.upper for p in problem.priors])
    width = upper - lower
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.generations + 1, desc="calibration (generations)", unit="gen")

    def batch_payoff(unit):  # differential_evolution's vectorised form: unit has shape (k, S)
        thetas = lower + np.asarray(unit).T * width
        return log.evaluate(problem, thetas)

    def generation(*_args, **_kwargs):
        if bar is not None:
            bar.update(1)

    dimension = len(problem.priors)
    result = differential_evolution(
        batch_payoff, [(0.0, 1.0)] * dimension, seed=settings.seed, maxiter=settings.generations,
        popsize=settings.population, vectorized=True, updating="deferred", polish=False, tol=1e-8,
        callback=generation, init="latinhypercube", x0=start_point(settings),
    )
    local = minimize(
        lambda u: float(log.evaluate(problem, lower + np.clip(u, 0, 1) * width)[0]), result.x,
        method="Nelder-Mead", bounds=[(0.0, 1.0)] * dimension,
        options={"maxfev": settings.local_evaluations, "xatol": 1e-4, "fatol": 1e-8},
    )
    if bar is not None:
        bar.update(1)
        bar.close()
    best_unit = np.clip(local.x if local.fun <= result.fun else result.x, 0, 1)
    best = lower + best_unit * width
    best_payoff = float(log.evaluate(problem, best)[0])
    members, ess = ensemble(problem, settings, best_unit, best_payoff, lower, width, log)
    return Fit(best, best_payoff, members, ess, len(log.known))


#: Proposal scales (share of each prior's width) the ensemble tries, widest first.
PROPOSAL_SCALES = (0.05, 0.025, 0.0125, 0.00625, 0.003125)


def ensemble(problem: Problem, settings: Settings, best_unit, best_payoff, lower, width, log) -> tuple[np.ndarray, float]:
    """Members drawn by likelihood-weighted resampling of proposals around the best fit.

    The widest proposal of :data:`PROPOSAL_SCALES` whose weights keep an effective sample size of at least half
    the members is used (the narrowest if none does): with thirty and more calibrated parameters, proposals 5% of
    the prior's width away in every direction left an effective sample of 3 of 2000.
    """
    observations = problem.observations()
    variance = max(best_payoff, 1e-12) / observations
    for step, scale in enumerate(PROPOSAL_SCALES):
        rng = np.random.default_rng(settings.seed + 1 + step)
        proposals = np.clip(best_unit + rng.normal(0.0, scale, size=(settings.proposals, len(best_unit))), 0.0, 1.0)
        payoffs = log.evaluate(problem, lower + proposals * width)
        log_likelihood = -(payoffs - best_payoff) / (2.0 * variance) / observations * len(problem.targets)
        log_proposal = -np.sum((proposals - best_unit) ** 2, axis=1) / (2 * scale**2)
        log_weight = np.where(np.isfinite(payoffs), log_likelihood - log_proposal, -np.inf)
        weights = np.exp(log_weight - np.max(log_weight))
        weights /= weights.sum()
        ess = float(1.0 / np.sum(weights**2))
        if ess >= settings.members / 2:
            break
    chosen = rng.choice(len(proposals), size=settings.members, replace=True, p=weights)
    return lower + proposals[chosen] * width, ess


# ------------------------------------------------------------------------ fit statistics
def theil(model: np.ndarray, data: np.ndarray) -> dict[str, float]:
    """RMSE, MAPE, R^2 and Theil's decomposition of the MSE (Sterman 1984) of one series.

    Examples
    --------
    >>> stats = theil(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]) + 0.5)
    >>> round(stats["U_M"], 6), round(stats["U_S"], 6), round(stats["U_C"], 6)
    (1.0, 0.0, 0.0)
    """
    model = np.asarray(model, dtype=float)
    data = np.asarray(data, dtype=float)
    error = model - data
    mse = float(np.mean(error**2))
    s_model, s_data = float(np.std(model)), float(np.std(data))
    r = float(np.corrcoef(model, data)[0, 1]) if s_model > 0 and s_data > 0 else 1.0
    bias = (float(np.mean(model)) - float(np.mean(data))) ** 2
    variation = (s_model - s_data) ** 2
    covariation = 2 * (1 - r) * s_model * s_data
    total = bias + variation + covariation
    fractions = (bias / total, variation / total, covariation / total) if total > 0 else (0.0, 0.0, 0.0)
    residual = float(np.sum(error**2))
    spread = float(np.sum((data - data.mean()) ** 2))
    return {
        "RMSE": math.sqrt(mse),
        "MAPE": float(np.mean(np.abs(error) / np.abs(data))) * 100.0,
        "R2": 1.0 - residual / spread if spread > 0 else float("nan"),
        "U_M": fractions[0],
        "U_S": fractions[1],
        "U_C": fractions[2],
        "n": int(data.size),
    }


def compared(problem: Problem, target: Target, runs: xr.Dataset) -> tuple[xr.DataArray, np.ndarray | None]:
    """The model as its data see it (times the fitted reporting factor, if any), and that factor per run."""
    model = problem.simulated(target, runs)
    if not (target.political and target.likelihood is not None and target.likelihood.factor is not None):
        return model, None
    _, factor = problem.political_residuals(target, model)
    return model * xr.DataArray(factor, dims="run"), factor


def fit_table(problem: Problem, runs: xr.Dataset, run: int = 0, label: str = "in sample") -> pd.DataFrame:
    """Fit statistics per target series (one row per target and element).

    A political series with a reporting factor is scored as the model times its fitted factor (in ``factor``);
    a one-sided target (``bound``) by its ``coverage``, the share of data years on the side the model must keep
    to (its MAPE is left empty: the data are a limit, not a value), as is the MAPE of data that are zero or
    negative anywhere (net migration).
    """
    rows = []
    for target in problem.targets:
        if target.kind != "series":
            continue
        model, factor = compared(problem, target, runs)
        model = model.isel(run=run)
        data = problem.data[target.name].transpose(*model.dims)
        other = [d for d in model.dims if d != "year"]
        stacked_model = model.stack(series=other) if other else model.expand_dims(series=[""])
        stacked_data = data.stack(series=other) if other else data.expand_dims(series=[""])
        for index in range(stacked_model.sizes["series"]):
            label_values = stacked_model["series"].values[index]
            element = ",".join(map(str, label_values)) if isinstance(label_values, tuple) else str(label_values)
            m, d = stacked_model.isel(series=index).values, stacked_data.isel(series=index).values
            stats = theil(m, d)
            extra = {"factor": float(factor[run]) if factor is not None else float("nan"), "coverage": float("nan")}
            if target.bound is not None:
                inside = m >= d - 1e-12 if target.bound == "lower" else m <= d + 1e-12
                extra["coverage"] = float(np.mean(inside))
                stats["MAPE"] = float("nan")
            elif np.any(d <= 0):  # a share of data that cross zero (a flow) means nothing: RMSE tells the miss
                stats["MAPE"] = float("nan")
            rows.append({"target": target.name, "series": element, "sample": label, **stats, **extra})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ outputs
def next_version(directory: Path = PARAMETERS_DIR) -> int:
    found = [int(p.stem.split("_v")[-1]) for p in directory.glob("calibrated_v*.csv") if p.stem.split("_v")[-1].isdigit()]
    return max(found, default=0) + 1


def latest(directory: Path = PARAMETERS_DIR) -> Path | None:
    """The newest ``calibrated_vN.csv``, or None."""
    found = sorted((int(p.stem.split("_v")[-1]), p) for p in directory.glob("calibrated_v*.csv")
                   if p.stem.split("_v")[-1].isdigit())
    return found[-1][1] if found else None


#: The file in a parameters folder that names its promoted parameter file: the default of every run.
CURRENT = "CURRENT"


def current(directory: Path = PARAMETERS_DIR) -> Path | None:
    """The promoted parameter file, named by ``directory/CURRENT``; None where nothing was ever calibrated.

    A new calibration never becomes the default by being newest: a modeller
    promotes it (``migsd promote FILE``, or ``migsd calibrate --promote``).
    """
    directory = Path(directory)
    marker = directory / CURRENT
    if not marker.exists():
        found = sorted(p.name for p in directory.glob("calibrated_v*.csv"))
        if found:
            raise DataError(f"{marker} is missing: no calibration is promoted among {', '.join(found)}; promote one "
                            f"with 'migsd promote {directory.name}/{found[-1]}', or load_model(calibration=None)")
        return None
    name = marker.read_text(encoding="utf-8").strip()
    path = directory / name
    if not name or Path(name).name != name or not path.is_file():
        known = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CURRENT)
        raise DataError(f"{marker} names {name!r}, which is not a file in {directory.name}/; "
                        f"'migsd promote FILE' names one of: {', '.join(known)}")
    return path


def promote(path: str | os.PathLike, directory: Path = PARAMETERS_DIR) -> Path:
    """Make ``path`` (a parameter file in ``directory``) the default calibration; returns it.

    ``CURRENT`` is rewritten whole (a temporary file renamed over it), so a reader
    sees the old name or the new one, never half of one.
    """
    directory = Path(directory).resolve()
    candidate = Path(path)
    if not candidate.is_file() and (directory / candidate.name).is_file():
        candidate = directory / candidate.name
    if not candidate.is_file():
        raise DataError(f"cannot promote {path}: no such file")
    candidate = candidate.resolve()
    if candidate.parent != directory:
        raise DataError(f"cannot promote {path}: a promoted file lives in {directory.name}/ beside {CURRENT} "
                        f"(copy it there first)")
    if candidate.name == CURRENT:
        raise DataError(f"cannot promote {CURRENT} itself; name a parameter file")
    temporary = directory / f".{CURRENT}.{os.getpid()}"
    temporary.write_text(candidate.name + "\n", encoding="utf-8")
    os.replace(temporary, directory / CURRENT)
    return candidate


def write_parameters(path: Path, priors: list[Prior], best: np.ndarray, members: np.ndarray) -> None:
    rows = [best] + list(members)
    index = ["best"] + [f"member{k:03d}" for k in range(1, len(members) + 1)]
    frame = pd.DataFrame(rows, index=pd.Index(index, name="config"), columns=[p.name for p in priors])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, float_format="%.10g")


def read_parameters(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, index_col="config")
    if "best" not in frame.index:
        raise DataError(f"{path}: no 'best' row (rows: {list(frame.index)[:5]})")
    return frame


def ensemble_params(path: Path | None = None, include_best: bool = False, members: int | None = None,
                    seed: int = 0) -> xr.Dataset:
    """The calibrated ensemble as run_batch parameters over ``run`` (members only, unless ``include_best``).

    By default the promoted calibration's (see :func:`current`). From a
    ``posterior_vN.nc``: ``members`` draws of the posterior (default: ``members``
    of calibrate.toml's [posterior], 400), chosen with ``seed``, their chain and
    draw as coordinates on ``run``; the posterior median is the ``best`` row.
    """
    from .posterior import is_posterior, load_posterior_settings, posterior_members

    path = path or current()
    if path is None:
        raise DataError(f"no promoted calibration in {PARAMETERS_DIR}; run 'migsd calibrate --promote'")
    if is_posterior(path):
        count = members if members is not None else load_posterior_settings().members
        return posterior_members(path, members=count, seed=seed, include_median=include_best)
    frame = read_parameters(path)
    if not include_best:
        frame = frame.drop(index="best")
    return xr.Dataset({name: ("run", frame[name].to_numpy(dtype=float)) for name in frame.columns},
                      coords={"run": list(frame.index)})


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


__all__ = ["CURRENT", "EvaluationLog", "Fit", "Prior", "Problem", "Settings", "Target", "current", "ensemble_params",
           "fit", "fit_table", "latest", "load_settings", "make_problem", "promote", "read_parameters", "theil",
           "write_parameters"]
