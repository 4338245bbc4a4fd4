"""Scenario files: every shipped one is valid; every kind of bad one is refused with a clear message."""

import numpy as np
import pytest

import migsd
from migsd.errors import ScenarioError
from migsd.scenarios import list_scenarios, read_scenario, scenario_path, validate

from pathlib import Path

BAD = Path(__file__).parent / "data" / "bad"

SHIPPED = [s.name for s in list_scenarios()]


def test_every_scenario_of_the_design_is_shipped():
    assert set(SHIPPED) >= {
        "status_quo",
        "global_compact",
        "externalization",
        "aid_to_prevent_migration",
        "open_borders",
        "iom_south_south",
        "iom_south_south_unconditional",
        "iom_un_integrated",
        "northern_natalism_automation",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_is_valid(model, name):
    scenario = read_scenario(scenario_path(name))
    assert scenario.title and scenario.description
    validate(scenario, model)


BAD_FILES = {
    "unknown_variable": r"'IOM fundng' is not a variable of migsd.mdl. Did you mean 'IOM funding'",
    "stock_in_parameters": r"'Restrictiveness\[North\]' is a stock; set its initial value in the \[initial\] table",
    "wrong_element": r"'enforcement push\[Nort\]': 'Nort' is not an element of Region "
    r"\(North, Gulf, SouthUpper, SouthLower\). Did you mean 'North'",
    "wrong_shape": r"'enforcement push': a list must be points over time, \[\[year, value\], ...\]",
    "wrong_subscript_count": r"2 subscript\(s\) given; 'enforcement push' is subscripted by \[Region\]",
    "auxiliary_in_parameters": r"'labour gap\[North\]' is computed by an equation \(auxiliary\), not a constant",
    "initial_not_stock": r"\[initial\] 'enforcement push\[North\]' is not a stock",
    "decreasing_points": r"'IOM funding': the times of the points must increase, got \[2030.0, 2025.0\]",
    "not_a_number": r"'IOM funding': nan is not a finite number",
    "unknown_table": r"unknown key\(s\) \['paramters'\] at top level.*Did you mean 'parameters'",
    "element_table_on_scalar": r"'IOM funding': a table of elements fits a subscripted variable",
    "out_of_range": r"out_of_range.toml: 'enforcement push\[North\]' = 1.5 is outside its range \[0, 1\] "
    r"\(Dmnl, declared in models/migsd.mdl\); not run$",
    "initial_out_of_range": r"initial_out_of_range.toml: \[initial\]: 'Restrictiveness\[North\]' = -0.5 is outside "
    r"its range \[0, 1\] \(Dmnl, declared in models/migsd.mdl\); not run$",
    "not_utf8": r"not_utf8.toml: not UTF-8 text \(byte 0xed at offset 12\); a scenario file is TOML text saved as "
                r"UTF-8$",
    "binary": r"binary.toml: not UTF-8 text \(byte 0x89 at offset 0\); a scenario file is TOML text saved as UTF-8$",
}


@pytest.mark.parametrize("stem", sorted(BAD_FILES))
def test_bad_scenario_is_rejected_with_file_key_and_hint(model, stem):
    path = BAD / f"{stem}.toml"
    with pytest.raises(ScenarioError, match=BAD_FILES[stem]) as caught:
        validate(read_scenario(path), model)
    assert str(path) in str(caught.value)


def test_every_bad_fixture_has_a_test():
    assert {p.stem for p in BAD.glob("*.toml")} == set(BAD_FILES)


def test_bad_scenario_fails_before_any_run(model):
    with pytest.raises(ScenarioError, match="IOM fundng"):
        model.run(scenario=BAD / "unknown_variable.toml")


def test_unknown_scenario_name_suggests_close_ones():
    with pytest.raises(ScenarioError, match=r"no scenario 'status_qo'.*Did you mean 'status_quo'"):
        scenario_path("status_qo")


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("title = 'x'\n[parameters\n")
    with pytest.raises(ScenarioError, match=r"broken.toml: not valid TOML"):
        read_scenario(path)


def test_later_layers_win_element_by_element(model):
    from migsd.parameters import ParameterSet

    layers = ParameterSet(model)
    layers.apply({"enforcement push": 0.3}, source="a")
    layers.apply({"enforcement push[North]": 0.9}, source="b")
    value = layers.to_pysd(model.time_settings)[model.variable("enforcement push").py_name]
    assert list(value.values) == [0.9, 0.3, 0.3, 0.3]


def test_scenario_objects_are_public():
    assert isinstance(read_scenario(scenario_path("status_quo")), migsd.Scenario)


def test_packed_constants_are_the_default_with_each_layered_value_written_in():
    import xarray as xr

    from migsd.parameters import ALL, Points, _fill, _fill_values

    default = xr.DataArray(np.arange(12.0).reshape(4, 3), dims=("region", "age"),
                           coords={"region": ["North", "Gulf", "SouthUpper", "SouthLower"], "age": ["0-14", "15-64", "65+"]})
    entries = {ALL: 2.0, ("Gulf", "65+"): 7.5, ("SouthLower", "0-14"): Points((2000.0, 2020.0), (1.0, 3.0))}
    for time, point in ((None, 1.0), (1990.0, 1.0), (2010.0, 2.0), (2030.0, 3.0)):
        expected = np.full((4, 3), 2.0)
        expected[1, 2], expected[3, 0] = 7.5, point
        np.testing.assert_array_equal(_fill_values(default, entries, time), expected)
        filled = _fill(default, entries, time)
        np.testing.assert_array_equal(filled.values, expected)
        assert filled.dims == default.dims and list(filled["age"].values) == ["0-14", "15-64", "65+"]
    packed = _fill_values(default, {("Gulf", "65+"): 7.5}, None)
    assert packed[1, 2] == 7.5 and default.values[1, 2] == 5.0  # the default is not written to
