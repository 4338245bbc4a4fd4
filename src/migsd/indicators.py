"""Derived indicators of a run, one function each.

The model itself computes the flow-based indicators (``south south share of flows``,
``irregular share of arrivals``, ``total deaths on routes``, ``labour shortage``,
``migrant bargaining power``, ``Rights Observance``); this module adds what needs
the whole trajectory, such as the year Northern restrictiveness yields.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from .errors import MigsdError

#: The default definition of "Northern restrictiveness yields" (see :func:`yield_year`).
YIELD_DEFINITION = {"region": "North", "reference_year": 2020.0, "drop": 0.1, "hold": 5.0}

YIELD_VARIABLE = "Northern restrictiveness yield year"


def yield_year(
    restrictiveness: xr.DataArray,
    *,
    reference_year: float = YIELD_DEFINITION["reference_year"],
    drop: float = YIELD_DEFINITION["drop"],
    hold: float = YIELD_DEFINITION["hold"],
) -> xr.DataArray:
    """First year restrictiveness has fallen by ``drop`` below its ``reference_year`` level and stays there.

    Restrictiveness yields in the first saved year ``t >= reference_year`` such that
    ``R(s) <= R(reference_year) - drop`` for every saved ``s`` in ``[t, t + hold]``,
    with the whole window inside the run. NaN means it never yields.
    Works over any extra dims (scenario, run): the result has them, without ``time``.

    Examples
    --------
    >>> import xarray as xr
    >>> r = xr.DataArray([0.5, 0.5, 0.45, 0.38, 0.35, 0.3], dims="time",
    ...                  coords={"time": [2019, 2020, 2021, 2022, 2023, 2024]})
    >>> float(yield_year(r, drop=0.1, hold=2))
    2022.0
    """
    if "time" not in restrictiveness.dims:
        raise MigsdError("yield_year needs a 'time' dimension")
    if drop <= 0 or hold < 0:
        raise MigsdError(f"yield_year: drop must be > 0 and hold >= 0, got drop={drop}, hold={hold}")
    times = restrictiveness["time"].values.astype(float)
    if not (times[0] <= reference_year <= times[-1]):
        raise MigsdError(f"yield_year: reference year {reference_year} is outside the run ({times[0]}-{times[-1]})")
    values = restrictiveness.transpose("time", ...).values
    # the level at the reference year, linear between the saved years around it (as xarray's interp)
    right = min(int(np.searchsorted(times, reference_year, side="left")), len(times) - 1)
    left = max(right - 1, 0)
    if times[right] == reference_year or right == left:
        reference = values[right]
    else:
        share = (reference_year - times[left]) / (times[right] - times[left])
        reference = values[left] + share * (values[right] - values[left])

    def per_year(flags):  # one value per saved year, against every run
        return flags.reshape((-1,) + (1,) * (values.ndim - 1))

    below = (values <= reference - drop) & per_year(times >= reference_year)
    # a year t qualifies when every saved year of [t, t + hold] is below: with the count of years below
    # up to each year, that is one subtraction per year and run instead of a loop over the runs
    ends = np.searchsorted(times, times + hold, side="right")
    starts = np.arange(len(times))
    counted = np.concatenate([np.zeros((1,) + below.shape[1:], dtype=np.int64), np.cumsum(below, axis=0)])
    qualifies = ((counted[ends] - counted[starts]) == per_year(ends - starts)) & per_year(times + hold <= times[-1])
    first = np.argmax(qualifies, axis=0)
    result = np.where(qualifies.any(axis=0), times[first], np.nan)
    other_dims = [d for d in restrictiveness.dims if d != "time"]
    return xr.DataArray(
        result,
        dims=other_dims,
        coords={d: restrictiveness[d] for d in other_dims if d in restrictiveness.coords},
    )


def indicators_apply(dataset: xr.Dataset) -> bool:
    """Whether :func:`add_indicators` with the default definition can run on ``dataset``."""
    if "Restrictiveness" not in dataset or "time" not in dataset.dims:
        return False
    if "region" in dataset.dims and YIELD_DEFINITION["region"] not in dataset["region"].values:
        return False  # a model cut into other regions (migsd regions) may have no North
    times = dataset["time"].values
    return bool(times[0] <= YIELD_DEFINITION["reference_year"] <= times[-1])


def add_indicators(dataset: xr.Dataset, **definition) -> xr.Dataset:
    """Add the trajectory indicators to a run's Dataset (needs ``Restrictiveness``).

    ``definition`` overrides :data:`YIELD_DEFINITION` (region, reference_year, drop, hold).
    """
    settings = {**YIELD_DEFINITION, **definition}
    unknown = set(settings) - set(YIELD_DEFINITION)
    if unknown:
        raise MigsdError(f"add_indicators: unknown setting(s) {sorted(unknown)}; valid: {sorted(YIELD_DEFINITION)}")
    if "Restrictiveness" not in dataset:
        raise MigsdError("add_indicators needs 'Restrictiveness' among the returned variables")
    restrictiveness = dataset["Restrictiveness"].sel(region=settings["region"], drop=True)
    year = yield_year(
        restrictiveness, reference_year=settings["reference_year"], drop=settings["drop"], hold=settings["hold"]
    )
    text = (
        f"First year from {settings['reference_year']:g} in which Restrictiveness[{settings['region']}] is at least "
        f"{settings['drop']:g} below its {settings['reference_year']:g} level and stays so for "
        f"{settings['hold']:g} years; NaN: never within the run."
    )
    year.attrs = {
        "long_name": YIELD_VARIABLE,
        "units": "Year",
        "mdl_units": "Year",
        "description": text,
        "sector": "Policy",
        "definition": text,
    }
    return dataset.assign({YIELD_VARIABLE: year})


def yield_year_quantile(years: xr.DataArray, q, dim: str = "run") -> xr.DataArray:
    """Quantile ``q`` of the yield year over the runs that yield; NaN where none does.

    "Never yields" is NaN in a yield year; a slice in which no run yields has no
    quantile, which NaN states, so numpy's all-NaN warning says nothing more.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        return years.where(np.isfinite(years)).quantile(q, dim=dim).drop_vars("quantile")
