"""The runner machinery on a fixture model with a known Euler answer."""

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import ModelError, ScenarioError

from .conftest import DATA


def euler_decay(initial, residence, time_step, times):
    return initial * (1 - time_step / residence) ** (np.asarray(times) / time_step)


def test_run_matches_the_euler_solution(decay_model):
    ds = decay_model.run()
    assert ds["Amount"].dims == ("time", "region")
    expected = np.stack(
        [euler_decay(100, 10, 0.5, ds["time"]), euler_decay(50, 5, 0.5, ds["time"])], axis=1
    )
    np.testing.assert_allclose(ds["Amount"].values, expected, rtol=1e-12)


def test_element_override_keeps_the_other_elements(decay_model):
    ds = decay_model.run(params={"residence time[South]": 2.5})
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(100, 10, 0.5, ds["time"]), rtol=1e-12)
    np.testing.assert_allclose(ds["Amount"].sel(region="South"), euler_decay(50, 2.5, 0.5, ds["time"]), rtol=1e-12)
    assert ds["residence time"].sel(region="South") == 2.5


def test_element_table_and_dataarray_overrides_agree(decay_model):
    by_table = decay_model.run(params={"residence time": {"North": 4, "South": 8}})
    array = xr.DataArray([4.0, 8.0], dims="region", coords={"region": ["North", "South"]})
    by_array = decay_model.run(params={"residence time": array})
    xr.testing.assert_identical(by_table["Amount"], by_array["Amount"])


def test_points_are_interpolated_and_held_at_the_ends(decay_model):
    ds = decay_model.run(params={"extra loss": [[2, 0.0], [6, 4.0]]})
    loss = ds["extra loss"]
    assert loss.dims == ("time",)
    np.testing.assert_allclose(loss.sel(time=[0, 2, 4, 6, 10]), [0, 0, 2, 4, 4])


def test_initial_value_of_one_element(decay_model):
    ds = decay_model.run(initial={"Amount[North]": 10})
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(10, 10, 0.5, ds["time"]), rtol=1e-12)
    np.testing.assert_allclose(ds["Amount"].sel(region="South"), euler_decay(50, 5, 0.5, ds["time"]), rtol=1e-12)


def test_overrides_do_not_leak_into_the_next_run(decay_model):
    decay_model.run(params={"residence time": 1.0})
    ds = decay_model.run()
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(100, 10, 0.5, ds["time"]), rtol=1e-12)


def test_time_settings_can_be_overridden(decay_model):
    ds = decay_model.run(time_step=0.25, final_time=4)
    assert float(ds["time"][-1]) == 4
    assert ds.attrs["time_step"] == 0.25
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(100, 10, 0.25, ds["time"]), rtol=1e-12)


def test_return_columns_limit_the_dataset(decay_model):
    ds = decay_model.run(return_columns=["amount", "residence time"])
    assert set(ds.data_vars) == {"Amount", "residence time"}
    assert ds["residence time"].dims == ("region",)


def test_unknown_return_column_names_close_matches(decay_model):
    with pytest.raises(ModelError, match=r"'outflw' is not a variable of decay.mdl. Did you mean 'outflow'\?"):
        decay_model.run(return_columns=["outflw"])


def test_bad_time_step_is_rejected(decay_model):
    with pytest.raises(ModelError, match="time_step must be a positive number"):
        decay_model.run(time_step=0)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"residence time[East]": 1}, r"'East' is not an element of Region \(North, South\)"),
        ({"residence time": [1, 2]}, r"a list must be points over time"),
        ({"residence time": float("nan")}, r"is not a finite number"),
        ({"Amount": 3}, r"'Amount' is a stock; set its initial value in the \[initial\] table"),
        ({"outflow": 3}, r"'outflow' is computed by an equation \(auxiliary\), not a constant"),
        ({"residence time": xr.DataArray([1.0], dims="age")}, r"DataArray has dims \('age',\); 'residence time' needs \('region',\)"),
    ],
)
def test_bad_params_fail_before_the_run(decay_model, params, message):
    with pytest.raises(ScenarioError, match=message):
        decay_model.run(params=params)


@pytest.mark.parametrize("name", ["decay.mdl", "decay.xmile"])
def test_translation_is_cached_outside_the_models_folder(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path))
    path = DATA / "models" / name
    fresh = migsd.load_model(path)
    assert tmp_path in fresh._translation.parents
    assert {p.suffix for p in path.parent.iterdir()} == {".mdl", ".xmile"}  # nothing written beside the models
    again = migsd.load_model(path)
    assert again._translation == fresh._translation


def test_missing_model_file_is_an_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        migsd.load_model(tmp_path / "none.mdl")


def test_progress_bar_reports_on_standard_error(decay_model, capfd):
    decay_model.run(progress=True)
    captured = capfd.readouterr()
    assert "100%" in captured.err
    decay_model.run()
    assert capfd.readouterr().err == ""
