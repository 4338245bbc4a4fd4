"""The .mdl's data-derived numbers agree with calibration/data."""

import shutil

import numpy as np
import pytest

from migsd.calibration.data import CalibrationData, mdl_inputs, replace_definitions
from migsd.errors import DataError


def test_mdl_holds_the_numbers_the_data_give(model):
    text = model.path.read_text(encoding="utf-8")
    regenerated = replace_definitions(text, mdl_inputs(CalibrationData(), model.defaults["relative mortality"]))
    assert regenerated == text, "run 'migsd data --write' to refresh the .mdl from calibration/data"


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
