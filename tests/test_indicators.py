"""The yield year against hand-made trajectories."""

import numpy as np
import pytest
import xarray as xr

from migsd.errors import MigsdError
from migsd.indicators import YIELD_VARIABLE, add_indicators, yield_year


def trajectory(values, start=2018):
    return xr.DataArray(values, dims="time", coords={"time": np.arange(start, start + len(values), dtype=float)})


def test_never_yields_is_nan():
    assert np.isnan(float(yield_year(trajectory([0.5] * 20))))


def test_yields_when_the_drop_holds_for_the_whole_window():
    # 2018, 2019, 2020 (reference 0.5), 2021 drop 0.12 but rebounds in 2022, sustained from 2023
    r = trajectory([0.5, 0.5, 0.5, 0.38, 0.45, 0.38, 0.37, 0.36, 0.35, 0.3, 0.3])
    assert float(yield_year(r, hold=3)) == 2023


def test_a_drop_too_late_for_the_hold_window_is_not_a_yield():
    r = trajectory([0.5, 0.5, 0.5, 0.5, 0.5, 0.3, 0.3])
    assert np.isnan(float(yield_year(r, hold=3)))
    assert float(yield_year(r, hold=1)) == 2023


def test_extra_dims_are_kept():
    r = xr.concat([trajectory([0.5] * 10), trajectory([0.5, 0.5, 0.5] + [0.2] * 7)], dim="scenario")
    years = yield_year(r, hold=2)
    assert years.dims == ("scenario",)
    assert np.isnan(years.values[0]) and years.values[1] == 2021


def test_bad_definitions_are_refused():
    with pytest.raises(MigsdError, match="drop must be > 0"):
        yield_year(trajectory([0.5] * 5), drop=0)
    with pytest.raises(MigsdError, match="reference year 2050.0 is outside the run"):
        yield_year(trajectory([0.5] * 5), reference_year=2050.0)


def test_add_indicators_documents_its_definition():
    ds = xr.Dataset({"Restrictiveness": trajectory([0.5] * 12).expand_dims(region=["North", "Gulf"], axis=1)})
    out = add_indicators(ds, drop=0.2)
    assert "at least 0.2 below its 2020 level" in out[YIELD_VARIABLE].attrs["definition"]
    with pytest.raises(MigsdError, match=r"unknown setting\(s\) \['dorp'\]"):
        add_indicators(ds, dorp=0.2)


def test_a_yield_year_quantile_over_runs_none_of_which_yield_is_nan_without_a_warning():
    import warnings

    import numpy as np
    import xarray as xr

    from migsd.indicators import yield_year_quantile

    years = xr.DataArray([[np.nan, np.nan], [2050.0, np.nan]], dims=("scenario", "run"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        median = yield_year_quantile(years, 0.5)
    assert np.isnan(median.values[0]) and median.values[1] == 2050.0
