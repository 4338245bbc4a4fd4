"""Assertions about run results that a modeller's own tests can reuse."""

from __future__ import annotations

import numpy as np
import pint
import xarray as xr

from .units import ureg

REQUIRED_ATTRS = ("long_name", "units", "mdl_units", "description", "sector")


def assert_metadata_complete(dataset: xr.Dataset) -> None:
    """Every data variable has non-empty long_name, units (parseable), mdl_units, description, sector.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"x": ((), 1.0, {"long_name": "x", "units": "Person", "mdl_units": "Person",
    ...                                "description": "a count", "sector": "Population"})})
    >>> assert_metadata_complete(ds)
    """
    problems = []
    for name, variable in dataset.data_vars.items():
        missing = [key for key in REQUIRED_ATTRS if not str(variable.attrs.get(key, "")).strip()]
        if missing:
            problems.append(f"'{name}' lacks {', '.join(missing)}")
            continue
        try:
            ureg.parse_units(variable.attrs["units"])
        except (pint.errors.PintError, ValueError, AttributeError, TypeError) as error:
            problems.append(f"'{name}' has units '{variable.attrs['units']}' that do not parse: {error}")
    if problems:
        raise AssertionError("incomplete output metadata:\n  " + "\n  ".join(problems))


def assert_finite(dataset: xr.Dataset, *, skip=()) -> None:
    """No NaN or inf in any data variable (``skip`` names variables where NaN has a meaning)."""
    bad = [name for name, v in dataset.data_vars.items()
           if name not in skip and v.dtype.kind == "f" and not np.isfinite(v.values).all()]
    if bad:
        raise AssertionError(f"NaN or inf in {bad}")


def assert_within_declared_ranges(model, dataset: xr.Dataset, *, tolerance: float = 1e-12) -> None:
    """Stocks stay non-negative and every variable stays in the range its .mdl units declare.

    A stock whose units declare no lower bound (``Person``) must stay >= 0; one that
    may go negative declares it (``Dmnl [-1,1]``).
    """
    problems = []
    for variable in model.variables.values():
        if variable.name not in dataset:
            continue
        values = dataset[variable.name].values
        low, high = variable.limits
        if variable.is_stock and not np.isfinite(low):
            low = 0.0
        if np.isfinite(low) and (values < low - tolerance).any():
            problems.append(f"'{variable.name}' fell to {values.min():.6g}, below {low:g}")
        if np.isfinite(high) and (values > high + tolerance).any():
            problems.append(f"'{variable.name}' rose to {values.max():.6g}, above {high:g}")
    if problems:
        raise AssertionError("values outside their declared ranges:\n  " + "\n  ".join(problems))


def assert_people_conserved(dataset: xr.Dataset, time_step: float, *, rtol: float = 1e-9) -> None:
    """Each time step, population changes by births - deaths - deaths on routes + net migration,
    and net migration sums to zero over regions.

    ``dataset`` must be saved every time step and hold ``population``, ``births``, ``deaths``,
    ``deaths on routes by origin``, ``net migration`` and ``immigration``.
    """
    change = dataset["population"].diff("time").values
    flows = (dataset["births"] - dataset["deaths"] - dataset["deaths on routes by origin"]
             + dataset["net migration"]).values[:-1]
    np.testing.assert_allclose(change, time_step * flows, rtol=rtol, atol=1e-3,
                               err_msg="population change differs from its flows")
    gross = float(dataset["immigration"].sum(("destination", "origin")).max())
    imbalance = float(abs(dataset["net migration"].sum("region")).max())
    if imbalance > rtol * max(gross, 1.0):
        raise AssertionError(f"net migration sums to {imbalance:.6g} Person/Year over regions, not zero")


#: Halving TIME STEP must move no key output by more than this share of its scale: the width of
#: the range its units declare (1 for a [0,1] index), else its largest magnitude over the run.
TIME_STEP_TOLERANCE = 0.01

#: The outputs the answer is read from, held to :data:`TIME_STEP_TOLERANCE` by the model's tests and
#: reported for every calibration at its fitted parameters (``calibrated_vN.md``).
KEY_OUTPUTS = (
    "Restrictiveness",
    "world population",
    "foreign born population",
    "world migrant share",
    "labour shortage",
    "anti migrant sentiment",
    "Rights Observance",
    "migrant bargaining power",
    "south south share of flows",
    "irregular share of arrivals",
    "total deaths on routes",
    "Enforcement",
    "labour tightness",
)


def time_step_change(model, coarse: xr.Dataset, fine: xr.Dataset, names) -> dict[str, float]:
    """Largest change between two runs of each variable, as a share of its scale.

    The scale is the width of the range the .mdl units declare (1 for a ``[0,1]``
    index), else the variable's largest magnitude over the finer run.
    """
    changes = {}
    for name in names:
        low, high = model.variable(name).limits
        if np.isfinite(low) and np.isfinite(high):
            scale = high - low
        else:
            scale = abs(fine[name]).max("time")
            scale = scale.where(scale > 0, 1)
        changes[name] = float((abs(coarse[name] - fine[name]).max("time") / scale).max())
    return changes


def relative_difference(actual: xr.DataArray, expected: xr.DataArray) -> float:
    """Largest |actual - expected| relative to |expected|, values near zero judged on the variable's scale.

    The denominator is ``max(|expected|, 1e-6 x max|expected|)`` so a variable that
    crosses zero is not judged by its noise at the crossing.

    Examples
    --------
    >>> import xarray as xr
    >>> relative_difference(xr.DataArray([1.0, 2.0]), xr.DataArray([1.0, 2.0 + 2e-12])) < 1.1e-12
    True
    """
    a = np.asarray(actual.transpose(*expected.dims).values, dtype=float)
    b = np.asarray(expected.values, dtype=float)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: {a.shape} and {b.shape}")
    both_nan = np.isnan(a) & np.isnan(b)
    scale = np.nanmax(np.abs(b)) if np.any(np.isfinite(b)) else 0.0
    floor = max(scale * 1e-6, np.finfo(float).tiny)
    difference = np.where(both_nan, 0.0, np.abs(a - b)) / np.maximum(np.abs(b), floor)
    return float(np.max(np.where(both_nan, 0.0, difference), initial=0.0))


def assert_runs_agree(actual: xr.Dataset, expected: xr.Dataset, *, rtol: float = 1e-9) -> None:
    """Every variable of ``expected`` is in ``actual`` and within ``rtol`` (see :func:`relative_difference`)."""
    problems = []
    for name, variable in expected.data_vars.items():
        if name not in actual:
            problems.append(f"'{name}' is missing")
            continue
        difference = relative_difference(actual[name], variable)
        if not difference <= rtol:
            problems.append(f"'{name}' differs by {difference:.3g} (relative)")
    if problems:
        raise AssertionError(f"runs disagree beyond {rtol:g}:\n  " + "\n  ".join(problems))
