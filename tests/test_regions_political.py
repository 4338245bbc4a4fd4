"""A re-cut's political-core data: IMPIC and WVS aggregated by the mapping from the shared data, WDI unemployment
from the shipped country file, single-country series and IOM routes attached to the region holding their country,
and targets the data cannot support left out, saying why."""

import io

import numpy as np
import pandas as pd
import pytest

import migsd.regions
from migsd.calibration.political import (
    PARTICIPATION,
    PoliticalData,
    impic_region_aggregates,
    wdi_region_unemployment,
    wvs_region_aggregates,
)
from migsd.paths import CALIBRATION_DIR, SHARED_DIR
from migsd.regions import COUNTRY_DIR, _carry_blocks, read_region_set, write_calibration_folder

SHARED = SHARED_DIR / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "impic_policy_restrictiveness.csv").exists(),
                                  reason="the shared data folder is not beside the repository")
SERIES = ["impic:regulation_labour", "impic:control_overall", "wvs:share_restrictive", "gallup:decreased",
          "gss:reduced", "eurobarometer:immigration", "iom:dead_or_missing", "tightness:lower", "tightness:upper"]


def _as_written(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as the shipped files are written and read back (6 significant digits)."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format="%.6g")))


def _cut(tmp_path, name: str, regions: pd.Series):
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv")
    mapping["region"] = mapping["iso3"].map(regions).fillna(mapping["region"])
    mapping.to_csv(tmp_path / f"{name}.csv", index=False)
    region_set = read_region_set(tmp_path / f"{name}.csv")
    folder = write_calibration_folder(region_set, tmp_path / name / "calibration")
    return region_set, folder


@pytest.fixture(scope="module")
def north_rest(tmp_path_factory):
    """North (high income, non-GCC) against the rest of the world, its calibration folder written."""
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    return _cut(tmp_path_factory.mktemp("two"), "north_rest", mapping.where(mapping == "North", "Rest"))


@pytest.fixture(scope="module")
def fine(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fine") / "calibration"
    region_set = read_region_set(CALIBRATION_DIR / "regions_fine.csv")
    return region_set, write_calibration_folder(region_set, folder)


# ------------------------------------------------------------------ the shipped mapping
@needs_shared
def test_the_shipped_mapping_gives_the_shipped_impic_and_wvs_aggregates():
    names = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    codes = pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv").set_index("iso3")["model_region"]
    code_names = dict(zip(codes, codes.index.map(names)))
    for make, name in ((impic_region_aggregates, "impic_model_regions_used.csv"),
                       (wvs_region_aggregates, "wvs_model_regions_used.csv")):
        shipped = pd.read_csv(CALIBRATION_DIR / "data" / name)
        by_names = _as_written(make(SHARED, mapping=names).reset_index(drop=True))
        expected = shipped.assign(region=shipped["region"].map(code_names))
        key = [c for c in shipped.columns if c != "value"]
        pd.testing.assert_frame_equal(by_names.sort_values(key).reset_index(drop=True),
                                      expected.sort_values(key).reset_index(drop=True))


def test_the_wdi_country_file_averages_to_the_shipped_region_means():
    """The trimmed country file reproduces the source: by the shipped codes, its means are the shipped ones."""
    countries = pd.read_csv(COUNTRY_DIR / "wdi_unemployment_countries.csv.gz")
    wpp = pd.read_csv(COUNTRY_DIR / "wpp2024_countries.csv.gz")
    population = wpp.loc[wpp["variable"] == "pop_jul1", ["iso3", "year", "value"]]
    codes = pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv").set_index("iso3")["model_region"]
    means = wdi_region_unemployment(countries, population, codes)
    shipped = pd.read_csv(CALIBRATION_DIR / "data" / "wdi_unemployment.csv")
    regions = shipped[shipped["region"].notna()]
    merged = regions.merge(means, on=["region", "year"], suffixes=("", "_countries"))
    assert len(merged) == len(regions) == len(means) == 4 * 33
    np.testing.assert_array_equal(merged["value_countries"], merged["value"])
    usa = shipped[shipped["iso3"] == "USA"].set_index("year")["value"]
    assert (countries[countries["iso3"] == "USA"].set_index("year")["value"] == usa).all()


def test_without_the_shared_folder_the_shipped_mapping_keeps_the_shipped_series(tmp_path, monkeypatch):
    monkeypatch.setattr(migsd.regions, "SHARED_DIR", tmp_path / "absent")
    region_set = read_region_set(CALIBRATION_DIR / "regions.csv")
    folder = write_calibration_folder(region_set, tmp_path / "calibration")
    ours, shipped = PoliticalData(folder), PoliticalData()
    for name in SERIES:
        pd.testing.assert_frame_equal(ours.series(name), shipped.series(name), obj=name)


# ------------------------------------------------------------------ another mapping
@needs_shared
def test_two_regions_get_population_weighted_impic_and_wvs_as_computed_by_hand(north_rest):
    _, folder = north_rest
    data = PoliticalData(folder)
    wpp = pd.read_csv(SHARED / "wpp2024_annual.csv", usecols=["iso3", "year", "variable", "variant", "value"])
    wpp = wpp[(wpp["variable"] == "pop_jul1") & (wpp["variant"] == "estimate")].set_index(["iso3", "year"])["value"]
    impic = pd.read_csv(SHARED / "impic_policy_restrictiveness.csv")
    labour = impic[impic["variable"] == "regulation_labour"].set_index(["iso3", "year"])["value"]
    # the Rest's IMPIC countries are Mexico and Turkey
    by_hand = (labour["MEX", 2000] * wpp["MEX", 2000] + labour["TUR", 2000] * wpp["TUR", 2000]) / (
        wpp["MEX", 2000] + wpp["TUR", 2000])
    series = data.series("impic:regulation_labour").set_index(["region", "year"])["value"]
    assert series["Rest", 2000] == pytest.approx(by_hand, abs=1e-6)
    assert series["North", 2000] == pytest.approx(PoliticalData().series("impic:regulation_labour").set_index(
        ["region", "year"])["value"]["North", 2000], abs=1e-12)
    wvs = pd.read_csv(SHARED / "wvs_immigration_policy_preference.csv")
    wvs = wvs[(wvs["variable"] == "share_restrictive") & (wvs["wave"] == 5)]
    north = set(pd.read_csv(CALIBRATION_DIR / "regions.csv").query("region == 'North'")["iso3"])
    rest = wvs[~wvs["iso3"].isin(north)]
    weights = np.array([wpp[iso3, year] for iso3, year in zip(rest["iso3"], rest["year"])])
    shares = data.series("wvs:share_restrictive")
    wave5 = shares[(shares["region"] == "Rest") & (shares["first"] == rest["year"].min())]
    assert len(wave5) == 1 and int(wave5["last"].iloc[0]) == rest["year"].max()
    assert float(wave5["value"].iloc[0]) == pytest.approx(np.average(rest["value"], weights=weights), abs=1e-6)


def test_single_country_series_attach_to_the_region_holding_their_country(fine):
    _, folder = fine
    data, shipped = PoliticalData(folder), PoliticalData()
    for name, region in {"gss:reduced": "NorthAmerica", "gallup:decreased": "NorthAmerica",
                         "eurobarometer:immigration": "Europe"}.items():
        assert set(data.series(name)["region"]) == {region}, name
        assert set(shipped.series(name)["region"]) == {"North"}, name
        np.testing.assert_array_equal(data.series(name)["value"], shipped.series(name)["value"])
    # JOLTS (USA) and German vacancies (DEU) give each its region's band; the shipped North's is their mean
    # weighted by working-age population
    upper = data.series("tightness:upper").set_index(["region", "year"])["value"]
    assert set(upper.index.get_level_values("region")) == {"NorthAmerica", "Europe"}
    working = pd.read_csv(CALIBRATION_DIR / "data" / "wpp2024_working_age_usa_deu.csv")
    north = shipped.series("tightness:upper").set_index("year")["value"]
    for year in (2010, 2022):
        weight = {iso3: np.interp(year, rows["year"], rows["value"]) for iso3, rows in working.groupby("iso3")}
        mean = (weight["USA"] * upper["NorthAmerica", year] + weight["DEU"] * upper["Europe", year]) / (
            weight["USA"] + weight["DEU"])
        assert north[year] == pytest.approx(mean, abs=1e-12)
    # a region with no vacancy count has only the unemployment floor
    lower = data.series("tightness:lower").set_index(["region", "year"])["value"]
    rates = pd.read_csv(folder / "data" / "wdi_unemployment.csv").query("region == 'EastAsiaHigh'")
    assert lower["EastAsiaHigh", 2010] == pytest.approx(-rates.set_index("year")["value"][2010] / 100)
    assert lower["NorthAmerica", 2022] < upper["NorthAmerica", 2022]
    assert PARTICIPATION[0] < PARTICIPATION[1]


def test_deaths_on_routes_go_to_the_region_the_route_leads_to(fine):
    _, folder = fine
    deaths = PoliticalData(folder).series("iom:dead_or_missing").set_index(["region", "year"])["value"].unstack(0)
    shipped = PoliticalData().series("iom:dead_or_missing").set_index(["region", "year"])["value"].unstack(0)
    assert set(deaths.columns) == {"Europe", "NorthAmerica", "Gulf", "world"}
    # the shipped North's routes are Europe's and North America's (the Central American route)
    pd.testing.assert_series_equal(deaths["Europe"] + deaths["NorthAmerica"], shipped["North"], check_names=False)
    pd.testing.assert_series_equal(deaths["Gulf"], shipped["Gulf"])
    pd.testing.assert_series_equal(deaths["world"], shipped["world"])


def test_carried_targets_say_what_the_data_stand_for_and_which_are_left_out(fine, tmp_path):
    region_set, folder = fine
    left_out: list[str] = []
    _carry_blocks(CALIBRATION_DIR / "targets.toml", folder / "targets.toml", "target", region_set, left_out,
                  split=True)
    text = (folder / "targets.toml").read_text()
    assert 'name = "Northern anti-migrant sentiment (GSS, US proxy) (NorthAmerica)"' in text
    assert "for NorthAmerica the data are the USA's (90% of its 1990 residents), a proxy: its proxy error stays" in text
    assert "(GSS, US proxy) (Europe)" not in text
    assert ("calibration/targets.toml: target 'Northern anti-migrant sentiment (GSS, US proxy)' for Europe "
            "('gss:reduced': it samples USA, which the mapping puts in NorthAmerica)") in left_out
    assert ("calibration/targets.toml: target 'Northern labour tightness, upper bound (JOLTS and German vacancies)' "
            "for Oceania ('tightness:upper': no vacancy count in Oceania (only USA in NorthAmerica, DEU in Europe), "
            "so no band like the shipped North's)") in left_out
    block = text.split('name = "Northern anti-migrant sentiment (WVS strict limits or prohibit) (EastAsiaHigh)"')[1]
    block = block.split("[[target]]")[0]
    # a wave is dated by its last survey year in the region: the heir's own years
    windows = PoliticalData(folder).series("wvs:share_restrictive").query("region == 'EastAsiaHigh'")
    assert f"years = [{', '.join(map(str, windows['last']))}]" in block
    from migsd.calibration.fit import load_targets

    targets = load_targets(folder / "targets.toml", data_directory=folder)  # every carried target has its data
    assert sum(t.data == "impic:regulation_labour" for t in targets) == 6  # five Northern regions and SouthUpper


@needs_shared
def test_a_region_with_no_impic_country_has_its_impic_targets_left_out_saying_why(tmp_path):
    impic = set(pd.read_csv(SHARED / "impic_policy_restrictiveness.csv")["iso3"].dropna())
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    north = mapping[mapping == "North"]
    split = pd.Series(np.where(north.index.isin(list(impic)), "Oecd", "NorthRest"), index=north.index)
    region_set, folder = _cut(tmp_path, "oecd", split)
    left_out: list[str] = []
    _carry_blocks(CALIBRATION_DIR / "targets.toml", folder / "targets.toml", "target", region_set, left_out,
                  split=True)
    assert ("calibration/targets.toml: target 'Northern admission restrictiveness (IMPIC labour regulation)' for "
            "NorthRest ('impic:regulation_labour': no IMPIC country lies in NorthRest (IMPIC codes 33 OECD members))"
            ) in left_out
    text = (folder / "targets.toml").read_text()
    assert 'name = "Northern admission restrictiveness (IMPIC labour regulation) (Oecd)"' in text
    assert "(IMPIC labour regulation) (NorthRest)" not in text


def test_without_the_shared_folder_a_recut_leaves_impic_and_wvs_out_naming_each(tmp_path, monkeypatch):
    monkeypatch.setattr(migsd.regions, "SHARED_DIR", tmp_path / "absent")
    region_set = read_region_set(CALIBRATION_DIR / "regions_fine.csv")
    folder = write_calibration_folder(region_set, tmp_path / "calibration")
    assert not (folder / "data" / "impic_model_regions_used.csv").exists()
    assert "IMPIC and WVS: not written (the shared data folder" in (folder / "data" / "PROVENANCE.md").read_text()
    left_out: list[str] = []
    _carry_blocks(CALIBRATION_DIR / "targets.toml", folder / "targets.toml", "target", region_set, left_out,
                  split=True)
    for label, file in (("Northern admission restrictiveness (IMPIC labour regulation)", "impic_model_regions_used"),
                        ("Gulf anti-migrant sentiment (WVS)", "wvs_model_regions_used"),
                        ("Northern enforcement (IMPIC control)", "impic_model_regions_used")):
        assert any(line.startswith(f"calibration/targets.toml: target '{label}' (its data, ")
                   and f"from {file}.csv: the shared data folder (../shared/data beside the repository) is absent"
                   in line for line in left_out), label
    text = (folder / "targets.toml").read_text()
    assert 'data = "impic:' not in text and 'data = "wvs:' not in text
    assert 'name = "Northern anti-migrant sentiment (GSS, US proxy) (NorthAmerica)"' in text  # shipped data: kept


def test_calibrating_a_region_folder_compares_with_its_own_political_series(fine):
    """``migsd calibrate --model FOLDER/migsd.mdl`` checks and fits targets against the folder's data."""
    import migsd
    from migsd.calibration.report import calibrate
    from migsd.paths import MODELS_DIR

    _, folder = fine
    (folder / "targets.toml").write_text(
        '[[target]]\nname = "European salience"\nvariable = "Salience"\nwhere = { region = "Europe" }\n'
        'data = "eurobarometer:immigration"\nsource = "eurobarometer"\nwhy = "EU proxy"\n'
        'years = [2014, 2015, 2016]\ntransform = "none"\nlikelihood = "normal"\nnoise = 0.1\n')
    (folder / "priors.toml").write_text(
        '[[parameter]]\nname = "emigration propensity multiplier"\nlower = 0.5\nupper = 2\nwhy = "volume"\n')
    (folder / "calibrate.toml").write_text(
        "generations = 1\npopulation = 2\nlocal_evaluations = 2\nmembers = 1\nproposals = 2\n")
    model = migsd.load_model(MODELS_DIR / "regions" / "fine" / "migsd.mdl", calibration=None)
    path = calibrate(folder / "calibrate.toml", model=model, directory=folder / "parameters", progress=False,
                     out_of_sample=False)
    fit = pd.read_csv(path.with_name("calibrated_v1_fit.csv"))
    assert "European salience" in set(fit["target"])


def test_a_region_that_is_the_sampled_country_drops_the_proxy_error(tmp_path):
    mapping = pd.read_csv(CALIBRATION_DIR / "regions.csv").set_index("iso3")["region"]
    north = mapping[mapping == "North"].index
    region_set, folder = _cut(tmp_path, "usa", pd.Series(np.where(north == "USA", "Usa", "NorthRest"), index=north))
    left_out: list[str] = []
    _carry_blocks(CALIBRATION_DIR / "targets.toml", folder / "targets.toml", "target", region_set, left_out,
                  split=True)
    text = (folder / "targets.toml").read_text()
    blocks = {b.split('"')[1]: b for b in text.split("[[target]]\nname = ")[1:]}
    gss = blocks["Northern anti-migrant sentiment (GSS, US proxy) (Usa)"]
    assert "for Usa the data are the USA's, its own: no proxy error" in gss and "\nproxy =" not in gss
    # the rest of the North keeps Germany's vacancy band, a proxy for it
    band = blocks["Northern labour tightness, upper bound (JOLTS and German vacancies) (NorthRest)"]
    assert "the vacancy band of DEU (" in band and "\nproxy = 0.01\n" in band
