"""The .mdl's data-derived numbers agree with calibration/data."""

import shutil

import numpy as np
import pytest

from migsd.calibration.data import CalibrationData, replace_definitions
from migsd.calibration.inputs import mdl_inputs
from migsd.errors import DataError


def test_mdl_holds_the_numbers_the_data_give(model):
    text = model.path.read_text(encoding="utf-8")
    regenerated = replace_definitions(text, mdl_inputs(CalibrationData(), model.defaults["relative mortality"]))
    assert regenerated == text, "run 'migsd data --write' to refresh the .mdl from calibration/data"


def test_measured_tightness_is_the_structural_tightness_plus_the_cycle_table(model):
    # the .mdl reads the measured cycle as data, so the model's tightness is its stocks' plus the table
    cycle = mdl_inputs(CalibrationData(), model.defaults["relative mortality"])["labour tightness cycle table"]
    run = model.run(return_columns=["labour tightness", "structural labour tightness"], final_time=2040)
    for year in (1995, 2009, 2020, 2022, 2040):
        added = (run["labour tightness"] - run["structural labour tightness"]).sel(time=year)
        expected = cycle.interp(year=year)
        np.testing.assert_allclose(added.values, expected.values, atol=1e-6)


def test_the_wage_bill_table_moves_autonomous_job_growth_by_the_elasticity(model):
    # the .mdl reads the Gulf's wage-bill growth as data: job growth is its smooth path plus elasticity x the table
    table = mdl_inputs(CalibrationData(), model.defaults["relative mortality"])["remittance growth deviation table"]
    columns = ["autonomous job growth"]
    runs = [model.run(return_columns=columns, final_time=2030, params={"remittance demand elasticity": value})
            for value in (0.0, 0.5)]
    for year in (1995, 2008, 2020, 2030):
        added = (runs[1]["autonomous job growth"] - runs[0]["autonomous job growth"]).sel(time=year)
        # the .mdl holds the table to 5 significant digits
        np.testing.assert_allclose(added.values, 0.5 * table.interp(year=year).values, rtol=1e-4, atol=1e-9)


def test_initial_stocks_match_the_un_totals(model):
    data = CalibrationData()
    foreign_born = data.foreign_born(1990)
    assert float(foreign_born.sum()) == pytest.approx(152_986_157, rel=1e-9)  # IMS 2020 world, 1990
    np.testing.assert_allclose(model.defaults["initial foreign born"].values, foreign_born.values, rtol=1e-6)
    residents = data.population_by_age(1990).sum()
    assert float(residents) == pytest.approx(5.3278e9, rel=1e-3)  # WPP 2024, 1 July 1990


def test_unmapped_country_is_an_error_naming_both_files(tmp_path):
    source = CalibrationData().directory
    shutil.copytree(source / "data", tmp_path / "data")
    lines = (source / "regions.csv").read_text().splitlines()
    (tmp_path / "regions.csv").write_text("\n".join(line for line in lines if not line.startswith("FRA,")) + "\n")
    with pytest.raises(DataError, match=r"regions.csv: no region for FRA \(countries listed in .*locations.csv\)"):
        CalibrationData(tmp_path).region_names


def test_a_region_the_mdl_does_not_know_is_refused_before_anything_is_written(model, tmp_path):
    from migsd.calibration.data import check_regions
    from migsd.paths import CALIBRATION_DIR

    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION_DIR / "data", folder / "data")
    (folder / "regions.csv").write_text((CALIBRATION_DIR / "regions.csv").read_text().replace(",SouthLower\n",
                                                                                            ",Africa\n"))
    check_regions(CalibrationData(), model)  # the shipped data fit the shipped model
    with pytest.raises(DataError) as caught:
        check_regions(CalibrationData(folder), model)
    assert str(caught.value) == (
        f"{folder / 'regions.csv'}: region(s) Africa are not elements of Region in migsd.mdl (North, Gulf, SouthUpper, "
        "SouthLower); no country maps to SouthLower: definitions derived from it would not fit the .mdl's Region. "
        "Change the .mdl's subscript first, or map the countries to its elements")


def test_displacement_arrivals_are_the_positive_changes_of_the_unhcr_stock():
    data = CalibrationData()
    stock = data.displacement_stock()
    arrivals = data.displacement_arrivals()
    assert float(arrivals.min()) >= 0
    assert list(arrivals["year"].values) == list(range(1991, 2025))
    north = stock.sel(destination="North", origin="SouthUpper")
    change = float(north.sel(year=2022) - north.sel(year=2021))
    assert change > 5e6  # the 2022 displacement from Ukraine, an upper-middle-income origin
    assert float(arrivals.sel(year=2022, destination="North", origin="SouthUpper")) == pytest.approx(change)
    falling = (stock.diff("year", label="upper") < 0)
    assert bool(falling.any()) and float(arrivals.where(falling).max()) == 0
    # origins UNHCR does not know are shared out: the hosts' totals are kept
    raw = data.displacement
    known_hosts = raw[raw["host_region"].isin(list(data.region_names)) & (raw["origin_region"] != "all")]
    assert float(stock.sum()) == pytest.approx(float(known_hosts["value"].sum()), rel=1e-12)


def _calibration_with_unhcr_edit(tmp_path, old: str, new: str) -> CalibrationData:
    """A copy of the shipped calibration folder whose UNHCR file has ``old`` replaced by ``new`` once."""
    source = CalibrationData().directory
    shutil.copytree(source / "data", tmp_path / "data")
    shutil.copy(source / "regions.csv", tmp_path / "regions.csv")
    path = tmp_path / "data" / "unhcr_model_regions.csv"
    path.write_text(path.read_text().replace(old, new, 1))
    return CalibrationData(tmp_path)


def test_an_unknown_protection_group_is_an_error_naming_the_file(tmp_path):
    data = _calibration_with_unhcr_edit(tmp_path, ",refugees,", ",idps_conflict,")
    with pytest.raises(DataError, match=r"unhcr_model_regions.csv: 'variable' holds \['asylum_seekers', "
                                        r"'idps_conflict', 'other_in_need_of_protection', 'refugees'\]; expected"):
        data.displacement_arrivals()


def test_an_origin_region_the_data_do_not_know_is_an_error(tmp_path):
    data = _calibration_with_unhcr_edit(tmp_path, ",north_hic,gulf_hic,", ",north_hic,mars,")
    with pytest.raises(DataError, match=r"origin region\(s\) \['mars'\] are neither region codes"):
        data.displacement_arrivals()


def test_the_mdl_reads_the_displacement_data_to_their_last_year_then_the_future_path(model):
    data = CalibrationData()
    arrivals = data.displacement_arrivals()
    assert float(model.defaults["last displacement data year"]) == 2024
    future = arrivals.sel(year=slice(2015, 2024)).mean("year")
    np.testing.assert_allclose(model.defaults["future displacement arrivals"].values, future.values, rtol=1e-6)
    ds = model.run(return_columns=["displacement arrivals"], final_time=2030,
                   params={"future displacement arrivals[North,SouthLower]": 123456.0})
    at = ds["displacement arrivals"].sel(destination="North", origin="SouthUpper")
    assert float(at.sel(time=2015)) == pytest.approx(float(arrivals.sel(year=2015, destination="North",
                                                                        origin="SouthUpper")), rel=1e-4)
    assert float(ds["displacement arrivals"].sel(time=2028, destination="North", origin="SouthLower")) == 123456.0
