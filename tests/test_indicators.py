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


def _yield_year_by_definition(values, times, reference_year, drop, hold):
    """The definition read literally, one run at a time: the reference the vectorised count must equal."""
    reference = np.interp(reference_year, times, values)
    for time in times:
        if time + hold > times[-1]:
            return np.nan
        window = (times >= time) & (times <= time + hold)
        if time >= reference_year and np.all(values[window] <= reference - drop):
            return time
    return np.nan


@pytest.mark.parametrize("saveper, hold, reference_year", [(1.0, 5.0, 2020.0), (0.5, 2.0, 2020.25), (1.0, 0.0, 2021.0)])
def test_the_yield_year_of_many_runs_is_each_run_s_by_the_definition(saveper, hold, reference_year):
    rng = np.random.default_rng(7)
    times = np.arange(2015.0, 2040.0 + saveper / 2, saveper)
    # random walks downwards from 0.5, some never falling far enough, one broken run (NaN)
    steps = rng.normal(-0.004, 0.03, size=(40, 3, times.size))
    values = 0.5 + np.cumsum(steps, axis=-1)
    values[5, 1, 10:] = np.nan
    r = xr.DataArray(values, dims=("run", "scenario", "time"), coords={"time": times})
    years = yield_year(r, reference_year=reference_year, drop=0.1, hold=hold)
    assert years.dims == ("run", "scenario")
    expected = np.array([[_yield_year_by_definition(values[i, j], times, reference_year, 0.1, hold)
                          for j in range(3)] for i in range(40)])
    np.testing.assert_array_equal(years.values, expected)
    assert np.isfinite(expected).sum() > 10 and np.isnan(expected).sum() > 5  # both outcomes are exercised
