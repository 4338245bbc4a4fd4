"""Every output explains itself: names, units and descriptions from the .mdl."""

import numpy as np
import pytest

import migsd
from migsd.errors import MigsdError
from migsd.model import CONTROL_VARIABLES
from migsd.testing import assert_metadata_complete
from migsd.units import ureg

SECTORS = {
    "Population", "Labour", "Sentiment", "Policy", "Rights and bargaining",
    "Destination choice", "IOM redistribution", "Southern development",
}


def test_every_variable_carries_its_mdl_metadata(model, short_run):
    expected = [v for v in model.variables.values() if not v.is_lookup and v.name not in CONTROL_VARIABLES]
    assert len(short_run.data_vars) == len(expected)
    assert_metadata_complete(short_run)
    for name, values in short_run.data_vars.items():
        variable = model.variable(name)
        assert values.attrs["long_name"] == variable.name == name
        assert values.attrs["mdl_units"] == variable.units
        assert values.attrs["description"] == variable.comment
        assert values.attrs["sector"] in SECTORS, f"'{name}' is in no sector view"


def test_yield_year_is_added_only_when_the_run_reaches_its_reference_year(short_run, decay_model):
    assert migsd.indicators.YIELD_VARIABLE not in short_run
    assert migsd.indicators.YIELD_VARIABLE not in decay_model.run()


def test_dims_are_the_snake_case_of_the_mdl_ranges(short_run):
    assert short_run["Foreign Born"].dims == ("time", "destination", "origin")
    assert short_run["Native Population"].dims == ("time", "region", "age")
    assert list(short_run["age"].values) == ["Young", "Working", "Old"]
    assert list(short_run["region"].values) == ["North", "Gulf", "SouthUpper", "SouthLower"]
    assert short_run["enforcement push"].dims == ("region",)


def test_metadata_assertion_names_what_is_missing(short_run):
    broken = short_run.copy(deep=True)
    broken["labour gap"].attrs["description"] = ""
    with pytest.raises(AssertionError, match="'labour gap' lacks description"):
        assert_metadata_complete(broken)


def test_dataset_attrs_record_provenance(model, short_run):
    attrs = short_run.attrs
    assert attrs["model_file"] == "models/migsd.mdl"
    assert attrs["model_sha256"] == model.sha256
    assert attrs["time_step"] == model.time_settings["time_step"]
    assert "pysd" in attrs["versions"] and "Szabla" in attrs["references"]


def test_netcdf_round_trip_keeps_attrs_and_units(short_run, tmp_path):
    path = migsd.to_netcdf(short_run, tmp_path / "run.nc")
    reopened = migsd.open_results(path)
    assert reopened["Foreign Born"].attrs["mdl_units"] == "Person"
    np.testing.assert_allclose(reopened["Foreign Born"], short_run["Foreign Born"])
    quantified = migsd.open_results(path, quantify=True)
    assert str(quantified["labour supply"].pint.units) == "Person"
    assert quantified["income per capita"].pint.units == ureg.parse_units("$/(Person*Year)")


def test_existing_output_is_not_overwritten(short_run, tmp_path):
    path = tmp_path / "run.nc"
    path.write_text("precious")
    with pytest.raises(MigsdError, match="exists; pass overwrite=True"):
        migsd.to_netcdf(short_run, path)
    assert path.read_text() == "precious"
    migsd.to_netcdf(short_run, path, overwrite=True)
    assert migsd.open_results(path)["time"].size == short_run["time"].size


def test_run_scenarios_adds_a_scenario_dim_and_indicators(model):
    ds = migsd.run_scenarios(["status_quo", "open_borders"], model, final_time=2021, time_step=0.5, progress=False)
    assert list(ds["scenario"].values) == ["status_quo", "open_borders"]
    assert ds["Restrictiveness"].dims == ("scenario", "time", "region")
    assert ds[migsd.indicators.YIELD_VARIABLE].dims == ("scenario",)
    assert ds["scenario_title"].sel(scenario="open_borders") == "Open borders"
    assert "status_quo.toml" in ds.attrs["scenario_files"]
    assert_metadata_complete(ds)
