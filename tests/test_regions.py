"""Region sets: the country-level data, the model folder a mapping makes, and the mappings refused."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import migsd
from migsd.calibration.data import CalibrationData
from migsd.errors import RegionError, ScenarioError
from migsd.paths import CALIBRATION_DIR, DEFAULT_MODEL, MODELS_DIR
from migsd.regions import COUNTRY_DIR, _carry_blocks, aggregate, build_region_model, read_mapping, read_region_set

BAD = Path(__file__).parent / "data" / "bad" / "regions"
AGES = ["pop_0_14", "pop_15_64", "pop_65plus"]


@pytest.fixture(scope="module")
def default_built(tmp_path_factory):
    return build_region_model(CALIBRATION_DIR / "regions.csv", tmp_path_factory.mktemp("default") / "model",
                              check=False)


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory):
    """North (high income, non-GCC) against the rest of the world."""
    folder = tmp_path_factory.mktemp("two")
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv")
    mapping["region"] = mapping["region"].where(mapping["region"] == "North", "Rest")
    mapping.to_csv(folder / "north_rest.csv", index=False)
    return build_region_model(folder / "north_rest.csv", folder / "model")


def test_country_files_sum_to_the_shipped_region_totals():
    codes = pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv").set_index("iso3")["model_region"]
    timeseries, od = aggregate(codes)
    shipped = pd.read_csv(CALIBRATION_DIR / "data" / "model_regions_timeseries.csv")
    keys = ["region", "year", "variable", "variant"]
    joined = shipped.merge(timeseries, on=keys, suffixes=("_shipped", "_countries"))
    wanted = shipped[shipped["variable"].isin(["births", "deaths", "pop_jul1", "net_migration", *AGES, "migrant_stock_both"])
                     & shipped["variant"].isin(["estimate", "medium", "ims2020", "ims2024"]) & shipped["year"].between(1990, 2100)
                     & (shipped["region"] != "world")]
    assert len(joined) == len(wanted) == len(timeseries) > 1000  # every kept series, and nothing else
    np.testing.assert_allclose(joined["value_countries"], joined["value_shipped"], rtol=1e-9, atol=2e-3)
    shipped_od = pd.read_csv(CALIBRATION_DIR / "data" / "model_regions_od_ims2020.csv")
    joined = shipped_od.merge(od, on=["year", "orig_region", "dest_region"], suffixes=("_shipped", "_countries"))
    assert len(joined) == len(shipped_od) == len(od) == 140
    assert (joined["stock_both_countries"] == joined["stock_both_shipped"]).all()


def test_default_mapping_regenerates_the_shipped_mdl_byte_for_byte(default_built):
    # byte-equal, not equal as parsed: a change in how numbers are written or where a definition sits would
    # otherwise pass unseen, and the shipped file is what the generator's output is compared with in review
    assert default_built.mdl.read_bytes() == DEFAULT_MODEL.read_bytes()
    assert default_built.regions == ["North", "Gulf", "SouthUpper", "SouthLower"]
    assert default_built.left_out == []
    for name in ("checks.toml", "loops.toml", "channels.toml"):
        assert (default_built.folder / name).read_text() == (MODELS_DIR / name).read_text()
    for name in ("targets.toml", "priors.toml"):
        assert (default_built.folder / "calibration" / name).read_text() == (CALIBRATION_DIR / name).read_text()
    carried = {s.name: (s.parameters, s.initial) for s in migsd.list_scenarios(default_built.folder / "scenarios")}
    shipped = {s.name: (s.parameters, s.initial) for s in migsd.list_scenarios()}
    assert carried == shipped


def test_default_mapping_writes_the_shipped_political_series(default_built):
    from migsd.calibration.political import SERIES, PoliticalData

    ours, shipped = PoliticalData(default_built.folder / "calibration"), PoliticalData()
    for name in SERIES:
        pd.testing.assert_frame_equal(ours.series(name), shipped.series(name), obj=name)


def test_regenerated_default_model_reproduces_the_shipped_results_exactly(default_built):
    from migsd.calibration.fit import current

    calibration = current()
    shipped = migsd.load_model(calibration=calibration).run(scenario="iom_south_south", final_time=2030)
    regenerated = migsd.load_model(default_built.mdl, calibration=calibration).run(
        scenario=default_built.folder / "scenarios" / "iom_south_south.toml", final_time=2030)
    for name in ("population", "Foreign Born", "Restrictiveness", "IOM placements"):
        np.testing.assert_array_equal(regenerated[name].values, shipped[name].values)


def _by_region(mapping: pd.Series):
    """1990 residents and foreign-born by region straight from the country files (not through migsd.regions)."""
    wpp = pd.read_csv(COUNTRY_DIR / "wpp2024_countries.csv.gz")
    wpp = wpp[(wpp["year"] == 1990) & wpp["variable"].isin(AGES)]
    residents = (wpp.groupby("iso3")["value"].sum() * 1000).groupby(mapping).sum()
    od = pd.read_csv(COUNTRY_DIR / "ims2020_od_countries.csv.gz")
    od = od[od["year"] == 1990]
    foreign_born = od.groupby(od["dest_iso3"].map(mapping))["stock_both"].sum()  # unknown origin included
    return residents, foreign_born


def _random_mapping(seed: int, count: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv")
    # the most populous countries first, one to each region, so that none is empty
    people = _by_region(pd.Series(mapping["iso3"].values, index=mapping["iso3"]))[0]
    order = people.sort_values(ascending=False).index[:count]
    regions = np.array([f"R{k}" for k in range(count)])
    mapping["region"] = regions[rng.integers(0, count, len(mapping))]
    mapping.loc[mapping["iso3"].isin(order), "region"] = [regions[list(order).index(i)]
                                                         for i in mapping.loc[mapping["iso3"].isin(order), "iso3"]]
    return mapping


@pytest.mark.parametrize("seed,count", [(1, 3), (2, 6)])
def test_any_mapping_keeps_the_world_and_each_region_summed_over_its_countries(tmp_path, seed, count):
    mapping = _random_mapping(seed, count)
    mapping.to_csv(tmp_path / "random.csv", index=False)
    built = build_region_model(tmp_path / "random.csv", tmp_path / "model", check=False)
    run = migsd.load_model(built.mdl).run(final_time=1991, return_columns=[
        "population", "foreign born population", "world population", "Foreign Born"]).sel(time=1990)
    residents, foreign_born = _by_region(mapping.set_index("iso3")["region"])
    np.testing.assert_allclose(run["population"].sel(region=residents.index).values, residents.values, rtol=1e-6)
    np.testing.assert_allclose(run["foreign born population"].sel(region=foreign_born.index).values,
                               foreign_born.values, rtol=1e-6)
    # totals do not depend on the cut: the world of WPP 2024 and of IMS 2020 in 1990
    assert float(run["world population"]) == pytest.approx(5_327_801_900, rel=1e-6)
    assert float(run["Foreign Born"].sum()) == pytest.approx(152_986_157, rel=1e-6)


def test_two_regions_run_every_shipped_scenario_with_people_conserved(two_regions):
    model = migsd.load_model(two_regions.mdl)
    assert model.subscripts["Region"] == ["North", "Rest"]
    scenarios = sorted((two_regions.folder / "scenarios").glob("*.toml"))
    assert [p.name for p in scenarios] == sorted(p.name for p in (MODELS_DIR / "scenarios").glob("*.toml"))
    closed = {"natalism birth multiplier": 0, "relative mortality": 0, "route mortality": 0}
    for path in scenarios:
        world = model.run(scenario=path, params=closed, final_time=2050, return_columns=["world population"])
        values = world["world population"].values
        assert np.abs(values / values[0] - 1).max() < 1e-9, path.name
        people = model.run(scenario=path, final_time=2050, return_columns=["population", "Foreign Born"])
        assert float(people["population"].min()) > 0 and float(people["Foreign Born"].min()) >= 0, path.name


def test_a_setting_for_a_region_nobody_inherits_is_left_out_and_said_so(two_regions):
    assert "scenarios/open_borders.toml: open borders[Gulf]" in two_regions.left_out
    scenario = migsd.read_scenario(two_regions.folder / "scenarios" / "open_borders.toml")
    assert set(scenario.parameters) == {"open borders[North]"}
    assert "Not carried over to north_rest.csv (no region of it inherits the region named): open borders[Gulf]." \
        in scenario.description


def test_a_recut_calibrates_afresh_not_from_the_parent_calibration(two_regions):
    parent = (CALIBRATION_DIR / "calibrate.toml").read_text().splitlines()
    carried = (two_regions.folder / "calibration" / "calibrate.toml").read_text().splitlines()
    assert any(line.startswith("start =") for line in parent), "the check needs a parent that starts somewhere"
    assert not any(line.startswith("start =") for line in carried)
    assert [a for a in parent if not a.startswith("start =")] == [b for b in carried if not b.startswith("# start:")]
    from migsd.calibration.fit import load_settings

    own = two_regions.folder / "calibration"
    assert load_settings(own / "calibrate.toml", data_directory=own).start is None


def test_a_scenario_naming_an_element_the_new_model_lacks_is_refused_naming_it(two_regions, tmp_path):
    model = migsd.load_model(two_regions.mdl)
    path = tmp_path / "gulf.toml"
    path.write_text('title = "Gulf"\n[parameters]\n"open borders[Gulf]" = 1\n')
    with pytest.raises(ScenarioError, match=r"gulf.toml.*open borders\[Gulf\].*Gulf"):
        model.run(scenario=path, final_time=1992)


def test_targets_for_a_split_region_are_one_per_heir(tmp_path):
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv")
    europe = pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv").set_index("iso3")["un_region"] == "Europe"
    mapping.loc[mapping["iso3"].map(europe).fillna(False).astype(bool) & (mapping["region"] == "North"),
                "region"] = "Europe"
    mapping["region"] = mapping["region"].replace("North", "OtherNorth")
    mapping.to_csv(tmp_path / "europe.csv", index=False)
    built = build_region_model(tmp_path / "europe.csv", tmp_path / "model", check=False)
    assert built.parents["Europe"] == built.parents["OtherNorth"] == "North"
    targets = (built.folder / "calibration" / "targets.toml").read_text()
    assert '"North"' not in targets
    # political series are re-aggregated: IMPIC has countries in both heirs, the US surveys attach to OtherNorth
    assert 'name = "Northern admission restrictiveness (IMPIC labour regulation) (Europe)"' in targets
    assert 'name = "Northern admission restrictiveness (IMPIC labour regulation) (OtherNorth)"' in targets
    assert any("target 'Northern anti-migrant sentiment (GSS, US proxy)' for Europe ('gss:reduced': it samples USA, "
               "which the mapping puts in OtherNorth)" in line for line in built.left_out)
    # a soft target splits
    soft = tmp_path / "soft.toml"
    soft.write_text('[[target]]\nname = "Northern sentiment 2015 (soft)"\nvariable = "anti migrant sentiment"\n'
                    'where = { region = "North" }\nvalue = 0.52\nsigma = 0.1\nyears = [2015]\n')
    left_out: list[str] = []
    _carry_blocks(soft, tmp_path / "split.toml", "target", read_region_set(tmp_path / "europe.csv"), left_out,
                  split=True)
    split = (tmp_path / "split.toml").read_text()
    assert 'name = "Northern sentiment 2015 (soft) (OtherNorth)"' in split
    assert 'name = "Northern sentiment 2015 (soft) (Europe)"' in split
    assert split.count('where = { region = "Europe" }') == split.count('where = { region = "OtherNorth" }') == 1
    assert '"North"' not in split and not left_out
    priors = (built.folder / "calibration" / "priors.toml").read_text()
    assert 'name = "base return rate[Europe]"' in priors and 'name = "base return rate[OtherNorth]"' in priors
    assert "[North]" not in priors
    data = CalibrationData(built.folder / "calibration", order=tuple(built.regions))
    assert data.regions == built.regions
    stock = data.series("migrant_stock_both", [2020], variants=("ims2020",))
    assert float(stock.sum()) == pytest.approx(280_598_105, rel=1e-3)  # IMS 2020 world, by destination


@pytest.mark.parametrize("fixture,message", [
    ("country_in_no_region.csv", "country_in_no_region.csv: no region for FRA (1 countries of "
                                 "calibration/data/locations.csv); add a row 'iso3,name,region' for each"),
    ("country_in_two_regions.csv", "country_in_two_regions.csv: row 240: FRA is already mapped to North at row 72; a "
                                   "country belongs to exactly one region"),
    ("unknown_iso3.csv", "unknown_iso3.csv: row 56: iso3 'DEX' is not a country of calibration/data/locations.csv; "
                         "use the ISO 3166 alpha-3 codes listed there."),
    ("region_without_people.csv", "region_without_people.csv: row 226: region 'HolySee' has no residents in 1990 "
                                  "(WPP 2024) in any of its 1 countries; a region needs people to run: merge it into "
                                  "another"),
    ("not_a_subscript_element.csv", "not_a_subscript_element.csv: row 3: region 'South Asia' is not a valid Vensim "
                                    "subscript element; an element is a letter followed by letters, digits or '_' "
                                    "(like SouthUpper)"),
])
def test_bad_mappings_are_refused_naming_the_file_and_row(fixture, message):
    with pytest.raises(RegionError) as caught:
        read_mapping(BAD / fixture)
    assert str(caught.value).startswith(f"{BAD / fixture}: ")
    assert message in str(caught.value)


def test_an_existing_folder_is_not_overwritten(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(RegionError, match="exists and is not empty"):
        build_region_model(CALIBRATION_DIR / "regions.csv", tmp_path, check=False)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_the_shipped_fine_region_folder_is_what_its_mapping_writes(tmp_path):
    """Refresh with: migsd regions calibration/regions_fine.csv --out models/regions/fine --overwrite"""
    shipped = MODELS_DIR / "regions" / "fine"
    built = build_region_model(CALIBRATION_DIR / "regions_fine.csv", tmp_path / "fine", check=False)
    written = sorted(p.relative_to(built.folder) for p in built.folder.rglob("*") if p.is_file())
    in_repo = sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()
                     and "parameters" not in p.relative_to(shipped).parts)
    assert written == in_repo
    for path in written:
        assert (built.folder / path).read_bytes() == (shipped / path).read_bytes(), path
    assert built.regions[:5] == ["Europe", "NorthAmerica", "EastAsiaHigh", "OtherNorth", "Oceania"]
    assert {r: built.parents[r] for r in ("EastAsiaHigh", "Gulf")} == {"EastAsiaHigh": "North", "Gulf": "Gulf"}
    text = built.mdl.read_text()
    assert "initial restrictiveness[Region]=\n\t0.418, 0.45, 0.7, 0.418, 0.45, 0.35, 0.529, 0.3\n" in text  # the table's
    assert "LN(Productivity[NorthAmerica] / Productivity[Region])" in text  # stand_in North = NorthAmerica
    # a sensitivity group over North's elements covers every Northern region
    problem = (built.folder / "sensitivity" / "restrictionism.toml").read_text()
    assert 'elements = ["Europe", "NorthAmerica", "EastAsiaHigh", "OtherNorth", "Oceania", "Gulf"]' in problem
    assert (built.folder / "scenarios" / "east_asian_automation.toml").read_bytes() == (
        CALIBRATION_DIR / "regions_fine_scenarios" / "east_asian_automation.toml").read_bytes()


def test_overwriting_a_folder_keeps_its_calibrations(tmp_path):
    built = build_region_model(CALIBRATION_DIR / "regions.csv", tmp_path / "model", check=False)
    parameters = built.folder / "calibration" / "parameters"
    parameters.mkdir()
    (parameters / "calibrated_v1.csv").write_text("config\nbest\n")
    (built.folder / "scenarios" / "mine.toml").write_text('title = "mine"\n')
    build_region_model(CALIBRATION_DIR / "regions.csv", tmp_path / "model", check=False, overwrite=True)
    assert (parameters / "calibrated_v1.csv").read_text() == "config\nbest\n"
    assert not (built.folder / "scenarios" / "mine.toml").exists()


@pytest.mark.parametrize("table,message", [
    ('[regions.Nowhere]\ninherit = "North"\n', "[regions.Nowhere]: no such region in cut.csv."),
    ('[regions.North]\ninherit = "Antarctica"\n',
     "[regions.North] inherit = 'Antarctica' is not a region of the template (North, Gulf, SouthUpper, SouthLower)"),
    ('[regions.North.values]\n"initial restrictivness" = 0.7\n',
     "[regions.North.values] 'initial restrictivness' is not a constant of the .mdl with a number per "
     "region. Did you mean 'initial restrictiveness'?"),
    ('colour = "blue"\n', "unknown key(s) ['colour']; a region table has regions, stand_in, order, scenarios, "
                          "targets"),
    ('targets = "nowhere.toml"\n', "targets = 'nowhere.toml' is not a file beside it"),
])
def test_a_bad_region_table_is_refused_naming_it(tmp_path, table, message):
    (tmp_path / "cut.csv").write_text((CALIBRATION_DIR / "regions.csv").read_text())
    (tmp_path / "cut.toml").write_text(table)
    with pytest.raises(RegionError) as caught:
        build_region_model(tmp_path / "cut.csv", tmp_path / "model", check=False)
    assert message in str(caught.value) and str(tmp_path / "cut.toml") in str(caught.value)
