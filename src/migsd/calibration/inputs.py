"""The data-derived constants and tables of the .mdl, by .mdl name.

``migsd data --write`` and ``migsd regions`` put these numbers into a .mdl, and a
test keeps the shipped .mdl and the data in agreement. Demography and forced
displacement come from the UN series (:mod:`.data`); the business cycle of labour
tightness and the Gulf's migrant wage bill from the political-core series
(:mod:`.political`). This module is the one place that joins the two, so that neither imports the other.
"""

from __future__ import annotations

import xarray as xr

from .data import FUTURE_DISPLACEMENT_YEARS, INITIAL_YEAR, TABLE_YEARS, CalibrationData
from .political import PoliticalData


def mdl_inputs(data: CalibrationData, relative_mortality: xr.DataArray) -> dict[str, xr.DataArray]:
    """The data-derived constants and tables of the .mdl, by .mdl name."""
    rates = data.ageing_rates(relative_mortality)
    arrivals = data.displacement_arrivals()
    political = PoliticalData(data.directory)  # one region mapping read for both of its tables
    last_year = int(arrivals["year"].values[-1])
    # the table spans the run, as the demographic ones do: its ends hold the first and last data years
    # (pysd warns on any lookup read outside its points, and the model reads this one only to the data end)
    ends = [arrivals.isel(year=[0]).assign_coords(year=[INITIAL_YEAR]), arrivals,
            arrivals.isel(year=[-1]).assign_coords(year=[TABLE_YEARS[-1]])]
    return {
        "initial residents by age": data.population_by_age(INITIAL_YEAR).drop_vars("year"),
        "initial foreign born": data.foreign_born(INITIAL_YEAR),
        "births per working age person table": data.births_per_working_age_person(),
        "mortality level table": data.mortality_level(relative_mortality),
        "maturing rate table": rates["maturing"],
        "retiring rate table": rates["retiring"],
        "displacement arrivals table": xr.concat(ends, dim="year"),
        "last displacement data year": xr.DataArray(float(last_year)),
        "future displacement arrivals": arrivals.isel(year=slice(-FUTURE_DISPLACEMENT_YEARS, None)).mean("year"),
        "labour tightness cycle table": political.tightness_cycle(data.regions, INITIAL_YEAR, TABLE_YEARS[-1]),
        "remittance growth deviation table": political.remittance_growth_deviation(
            data.regions, INITIAL_YEAR, TABLE_YEARS[-1]),
    }


__all__ = ["mdl_inputs"]
