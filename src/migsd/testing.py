"""Assertions about run results that a modeller's own tests can reuse."""

from __future__ import annotations

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
        except Exception as error:  # pint raises several kinds for unparseable text
            problems.append(f"'{name}' has units '{variable.attrs['units']}' that do not parse: {error}")
    if problems:
        raise AssertionError("incomplete output metadata:\n  " + "\n  ".join(problems))
