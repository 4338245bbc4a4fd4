"""run_batch(force=...): held values per run, and held from a given time on."""

import numpy as np
import xarray as xr


def test_force_holds_each_run_at_its_own_value_from_the_given_time(decay_model):
    params = xr.Dataset({"residence time": ("run", [10.0, 20.0])})
    free = decay_model.run_batch(params, return_columns=["outflow"])
    held = xr.DataArray([1.0, 2.0], dims="run")
    forced = decay_model.run_batch(params, return_columns=["outflow"], force={"outflow[North]": held}, force_from=5)
    before = dict(time=slice(None, 4.5))
    xr.testing.assert_identical(forced["outflow"].sel(before), free["outflow"].sel(before))
    after = forced["outflow"].sel(time=slice(5, None), region="North")
    np.testing.assert_array_equal(after.sel(run=0).values, 1.0)
    np.testing.assert_array_equal(after.sel(run=1).values, 2.0)
    # the other element keeps its equation
    xr.testing.assert_identical(forced["outflow"].sel(region="South"), free["outflow"].sel(region="South"))


def test_force_per_run_values_by_scenario_in_one_batch(model):
    params = xr.Dataset({"material weight": ("run", [1.0, 3.0])})
    value = xr.DataArray([[0.1, 0.2], [0.3, 0.4]], dims=("scenario", "run"),
                         coords={"scenario": ["status_quo", "iom_south_south"]})
    ds = model.run_batch(params, scenario=["status_quo", "iom_south_south"], return_columns=["shortage pressure"],
                         force={"shortage pressure[North]": value}, force_from=2020, final_time=2022)
    held = ds["shortage pressure"].sel(region="North", time=2021)
    np.testing.assert_array_equal(held.transpose("scenario", "run").values, value.values)
