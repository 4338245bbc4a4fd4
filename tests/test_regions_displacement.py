"""A re-cut keeps UNHCR's displaced people: the shipped regions exactly, any split in total."""

import pandas as pd
import pytest

from migsd.paths import CALIBRATION_DIR
from migsd.regions import aggregate_displacement

KEY = ["year", "host_region", "origin_region", "variable"]


def _shipped_in_model_names() -> pd.Series:
    seed = pd.read_csv(CALIBRATION_DIR / "data" / "unhcr_model_regions.csv")
    seed = seed[(seed["origin_region"] != "all") & (seed["host_region"] != "unknown")]
    locations = pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv")
    regions = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    names = dict(zip(locations["model_region"], locations["iso3"].map(regions))) | {"unknown": "unknown"}
    seed = seed.assign(host_region=seed["host_region"].map(names), origin_region=seed["origin_region"].map(names))
    return seed.set_index(KEY)["value"].astype(float).sort_index()


def test_the_default_mapping_gives_the_shipped_table_exactly():
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    recut = aggregate_displacement(mapping).set_index(KEY)["value"].sort_index()
    pd.testing.assert_series_equal(recut, _shipped_in_model_names(), check_exact=True)


@pytest.mark.parametrize("split", ["North", "SouthLower"])
def test_a_split_region_keeps_every_year_s_displaced_and_each_host_region_s_total(split):
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    members = mapping.index[mapping == split]
    mapping = mapping.copy()
    mapping[members[: len(members) // 2]] = split + "A"
    recut = aggregate_displacement(mapping)
    shipped = _shipped_in_model_names()
    by_year = recut.groupby("year")["value"].sum()
    pd.testing.assert_series_equal(by_year, shipped.groupby("year").sum(), rtol=1e-12)
    merged = recut.replace({"host_region": {split + "A": split}})
    hosted = merged.groupby(["year", "host_region"])["value"].sum()
    pd.testing.assert_series_equal(hosted, shipped.groupby(["year", "host_region"]).sum(), rtol=1e-12)
    assert (recut["value"] >= 0).all()
    assert set(recut["host_region"]) == set(mapping)


def test_the_political_series_follow_the_political_data_module():
    from migsd.calibration.political import SERIES
    from migsd.regions import REGION_AGGREGATE_SERIES

    assert REGION_AGGREGATE_SERIES == set(SERIES)
