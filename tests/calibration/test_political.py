"""Political-core data and targets: the shipped numbers reproduce their sources, bad targets are refused, and
the error terms (proxy, reporting factor, one-sided bounds, transcribed weight) do what they say."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import migsd
from migsd.calibration.fit import POLITICAL_SCALE, TRANSCRIBED_WEIGHT, Problem, Prior, Target, load_targets
from migsd.calibration.likelihood import Likelihood, Nuisance, PriorDistribution, series_pointwise
from migsd.calibration.political import (
    COPIED_FILES,
    CYCLE_RETURN_YEARS,
    DERIVED_FILES,
    GULF_STATES,
    PARTICIPATION,
    SERIES,
    PoliticalData,
)
from migsd.errors import DataError, ScenarioError
from migsd.paths import CALIBRATION_DIR, SHARED_DIR

BAD_TARGETS = Path(__file__).parents[1] / "data" / "bad" / "targets"
SHARED = SHARED_DIR / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "impic_policy_restrictiveness.csv").exists(),
                                  reason="the shared data folder is not beside the repository")


@pytest.fixture(scope="module")
def uncalibrated():
    return migsd.load_model(calibration=None)


@pytest.fixture(scope="module")
def political():
    return PoliticalData()


# ------------------------------------------------------------------ shipped data
@needs_shared
@pytest.mark.parametrize("name", sorted(DERIVED_FILES))
def test_shipped_aggregates_are_what_the_derivation_makes_of_the_shared_files(name):
    shipped = pd.read_csv(CALIBRATION_DIR / "data" / name)
    again = DERIVED_FILES[name](SHARED).reset_index(drop=True)
    again = pd.read_csv(__import__("io").StringIO(again.to_csv(index=False, float_format="%.6g")))
    pd.testing.assert_frame_equal(shipped, again)


@needs_shared
@pytest.mark.parametrize("name", COPIED_FILES)
def test_copied_files_are_unchanged(name):
    assert (CALIBRATION_DIR / "data" / name).read_bytes() == (SHARED / name).read_bytes()


@needs_shared
@pytest.mark.parametrize("file, keys", [
    ("impic_model_regions.csv", ["region", "year", "variable", "stat"]),
    ("wvs_model_regions.csv", ["region", "wave", "variable", "stat"]),
])
def test_region_aggregates_match_the_source_region_tables(file, keys):
    """IMPIC and WVS region means recomputed from the countries equal the source's own region table."""
    name = "impic_model_regions_used.csv" if file.startswith("impic") else "wvs_model_regions_used.csv"
    shipped = pd.read_csv(CALIBRATION_DIR / "data" / name)
    source = pd.read_csv(SHARED / file)
    merged = shipped.merge(source, on=keys, suffixes=("", "_source"))
    assert len(merged) == len(shipped)
    np.testing.assert_allclose(merged["value"], merged["value_source"], atol=2e-6)


def test_impic_north_falls_while_control_rises(political):
    labour = political.series("impic:regulation_labour").set_index(["region", "year"])["value"]
    control = political.series("impic:control_overall").set_index(["region", "year"])["value"]
    assert labour["North", 1990] == pytest.approx(0.418455, abs=1e-6)
    assert labour["North", 2010] == pytest.approx(0.335445, abs=1e-6)
    assert control["North", 1990] == pytest.approx(0.516414, abs=1e-6)
    assert control["North", 2010] == pytest.approx(0.699936, abs=1e-6)
    assert set(labour.index.get_level_values("region")) == {"North", "SouthUpper"}


def test_iom_totals_are_the_recorded_world_and_route_sums(political):
    deaths = political.series("iom:dead_or_missing").set_index(["region", "year"])["value"]
    # world totals of the shared PROVENANCE (section 5.4)
    assert deaths["world", 2014] == 5446 and deaths["world", 2020] == 4313 and deaths["world", 2024] == 9191
    assert deaths["North", 2016] == 6255 and deaths["Gulf", 2022] == 882
    assert 2025 not in deaths.index.get_level_values("year")  # a partial year


@needs_shared
def test_iom_route_sums_equal_the_source_region_file(political):
    source = pd.read_csv(SHARED / "iom_missing_migrants_model_regions.csv")
    source = source[(source["grouping"] != "incident_country_region") & (source["partial_year"] == 0)]
    names = {"north_hic": "North", "gulf_hic": "Gulf", "world": "world"}
    source = source[source["region"].isin(names)].assign(region=lambda f: f["region"].map(names))
    ours = political.series("iom:dead_or_missing")
    merged = ours.merge(source, on=["region", "year"], suffixes=("", "_source"))
    assert len(merged) == len(ours)
    np.testing.assert_array_equal(merged["value"], merged["value_source"])


def test_gss_shares_are_the_published_substantive_shares(political):
    gss = political.series("gss:reduced").set_index("year")["value"]
    for year, share in {2004: 0.537, 2016: 0.421, 2021: 0.314, 2024: 0.495}.items():
        assert gss[year] == pytest.approx(share, abs=5e-4)


def test_transcribed_series_average_the_surveys_of_a_year(political):
    euro = political.series("eurobarometer:immigration").set_index("year")["value"]
    assert euro[2015] == pytest.approx((0.38 + 0.58) / 2) and euro[2014] == pytest.approx(0.24)
    gallup = political.series("gallup:decreased").set_index("year")["value"]
    assert gallup[1993] == pytest.approx(0.65) and gallup[2024] == pytest.approx(0.55)


def test_wvs_waves_carry_their_windows(political):
    wvs = political.series("wvs:share_restrictive")
    north = wvs[wvs["region"] == "North"]
    assert list(zip(north["first"], north["last"])) == [(1994, 1998), (1999, 2002), (2004, 2009)]
    assert list(north["value"].round(3)) == [0.522, 0.418, 0.511]


def test_tightness_band_brackets_and_southern_bounds_are_minus_unemployment(political):
    lower = political.series("tightness:lower").set_index(["region", "year"])["value"]
    upper = political.series("tightness:upper").set_index(["region", "year"])["value"]
    north = lower.loc["North"]
    assert (upper.loc["North"] > north).all()
    # the band's width is the vacancy rate's: openings/working-age x (1/0.70 - 1/0.85), positive and small
    width = upper.loc["North"] - north
    assert 0 < width.min() and width.max() < 0.03
    # 2022: record US openings make the North tight even at the low end of participation
    assert north[2022] > 0 and upper.loc["North"][2022] > 0.02
    unemployment = pd.read_csv(CALIBRATION_DIR / "data" / "wdi_unemployment.csv")
    gulf = unemployment[(unemployment["region"] == "gulf_hic") & (unemployment["year"] == 2010)]["value"].item()
    assert lower["Gulf", 2010] == pytest.approx(-gulf / 100)
    assert "Gulf" not in set(upper.index.get_level_values("region"))
    assert PARTICIPATION[0] < PARTICIPATION[1]


REGIONS = ["North", "Gulf", "SouthUpper", "SouthLower"]


def test_the_tightness_cycle_is_the_band_middle_less_a_smooth_trend(political):
    cycle = political.tightness_cycle(REGIONS, 1990, 2100).sel(region="North").to_series()
    lower = political.series("tightness:lower").set_index(["region", "year"])["value"].loc["North"]
    upper = political.series("tightness:upper").set_index(["region", "year"])["value"].loc["North"]
    years = lower.index.to_numpy()
    inside = cycle.loc[years].to_numpy()
    # Hodrick-Prescott's penalty leaves constants and straight lines in the trend: the cycle is orthogonal to both
    assert abs(inside.sum()) < 1e-9
    assert abs((inside * (years - years.mean())).sum()) < 1e-9
    # the trend is the smooth part: its second differences are far smaller than the data's
    trend = 0.5 * (lower + upper).to_numpy() - inside
    assert np.abs(np.diff(trend, 2)).max() < 0.2 * np.abs(np.diff(0.5 * (lower + upper).to_numpy(), 2)).max()
    # recessions are slack, the 2022 boom tight
    assert cycle[2009] < -0.01 and cycle[2020] < -0.01 and cycle[2022] > 0.005


def test_the_tightness_cycle_is_zero_outside_its_data_and_its_vacancy_regions(political):
    cycle = political.tightness_cycle(REGIONS, 1990, 2100)
    north = cycle.sel(region="North").to_series()
    last = int(political.series("tightness:upper")["year"].max())
    assert north[1990] == 0 and north[int(north.index[1])] == 0 and north[2100] == 0
    assert north[last + CYCLE_RETURN_YEARS] == 0 and north[last] != 0
    assert float(abs(cycle.sel(region=["Gulf", "SouthUpper", "SouthLower"])).max()) == 0
    assert [int(y) for y in cycle["year"]] == sorted(int(y) for y in cycle["year"])


def test_a_vacancy_region_the_model_lacks_is_refused_naming_the_mapping(political):
    with pytest.raises(DataError, match=r"regions.csv: the vacancy countries USA, DEU lie in region\(s\) North, "
                                        r"which the .mdl lacks"):
        political.tightness_cycle(["Gulf", "SouthUpper", "SouthLower"], 1990, 2100)


def test_a_tightness_series_with_a_gap_is_refused_naming_its_file_and_years(tmp_path):
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION_DIR / "data", folder / "data")
    shutil.copy(CALIBRATION_DIR / "regions.csv", folder / "regions.csv")
    jolts = folder / "data" / "us_jolts_job_openings_monthly.csv"
    frame = pd.read_csv(jolts)
    frame[~frame["date"].str.startswith("2010")].to_csv(jolts, index=False)
    # a year without openings leaves no trend to take out across it: refused, not bridged
    with pytest.raises(DataError, match=r"us_jolts_job_openings_monthly.csv: labour tightness of North needs three or "
                                        r"more consecutive years to take its trend out; it has 2001-2022 without \[2010\]"):
        PoliticalData(folder).tightness_cycle(REGIONS, 1990, 2100)


def _copied_calibration(tmp_path) -> Path:
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION_DIR / "data", folder / "data")
    shutil.copy(CALIBRATION_DIR / "regions.csv", folder / "regions.csv")
    return folder


def test_the_wage_bill_deviation_is_the_trend_growth_of_remittances_paid_less_its_mean(political):
    table = political.remittance_growth_deviation(REGIONS, 1990, 2100)
    gulf = table.sel(region="Gulf").to_series()
    paid = pd.read_csv(CALIBRATION_DIR / "data" / "wdi_remittances_paid_gulf.csv")
    years = sorted(paid["year"].unique())
    inside = gulf.loc[years].to_numpy()
    # less its mean over the data years: the .mdl's job growth keeps its average, the table only moves it about
    assert abs(inside.mean()) < 1e-12
    # the oil boom above the mean, the years of cheap oil before and after below it
    assert gulf[2008] > 0.05 and gulf[1997] < -0.02 and gulf[2020] < -0.02
    # a smooth trend's growth: no year-to-year jumps of the raw series (2007: +29%, 2008: +22%)
    assert np.abs(np.diff(inside)).max() < 0.015
    # zero three years after the data and in the regions without the Gulf states
    assert gulf[years[-1]] != 0 and gulf[years[-1] + CYCLE_RETURN_YEARS] == 0 and gulf[2100] == 0
    assert float(abs(table.sel(region=["North", "SouthUpper", "SouthLower"])).max()) == 0
    assert set(paid["iso3"]) <= set(GULF_STATES)


def test_a_gulf_state_entering_the_data_is_not_read_as_growth(tmp_path, political):
    # Qatar reports from 2011 only: the sum runs over the states reporting in every year, so dropping it changes nothing
    folder = _copied_calibration(tmp_path)
    path = folder / "data" / "wdi_remittances_paid_gulf.csv"
    paid = pd.read_csv(path)
    assert paid.loc[paid["iso3"] == "QAT", "year"].min() > paid["year"].min()
    paid[paid["iso3"] != "QAT"].to_csv(path, index=False)
    without = PoliticalData(folder).remittance_growth_deviation(REGIONS, 1990, 2100)
    xr.testing.assert_equal(without, political.remittance_growth_deviation(REGIONS, 1990, 2100))


def test_a_region_set_without_the_gulf_states_region_is_refused_naming_the_mapping(political):
    with pytest.raises(DataError, match=r"regions.csv: the Gulf states lie in region Gulf, which the .mdl lacks "
                                        r"\(its regions: North, SouthUpper, SouthLower\)"):
        political.remittance_growth_deviation(["North", "SouthUpper", "SouthLower"], 1990, 2100)


def test_remittances_with_a_missing_year_are_refused_naming_the_file_and_the_year(tmp_path):
    folder = _copied_calibration(tmp_path)
    path = folder / "data" / "wdi_remittances_paid_gulf.csv"
    paid = pd.read_csv(path)
    paid[paid["year"] != 2009].to_csv(path, index=False)
    with pytest.raises(DataError, match=r"wdi_remittances_paid_gulf.csv: remittances paid by the Gulf states of Gulf "
                                        r"need three or more consecutive years .* 1990-2023 without \[2009\]"):
        PoliticalData(folder).remittance_growth_deviation(REGIONS, 1990, 2100)


def test_a_missing_data_file_names_it(tmp_path):
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION_DIR / "data", folder / "data")
    shutil.copy(CALIBRATION_DIR / "regions.csv", folder / "regions.csv")
    (folder / "data" / "iom_missing_migrants_annual.csv").unlink()
    with pytest.raises(DataError, match=r"iom_missing_migrants_annual.csv.*PROVENANCE"):
        PoliticalData(folder).series("iom:dead_or_missing")


def test_an_unknown_series_is_refused_with_the_known_ones(political):
    with pytest.raises(DataError, match=r"unknown political-core series 'iom:dead'.*known: impic"):
        political.series("iom:dead")


# ------------------------------------------------------------------ bad targets
@pytest.mark.parametrize("fixture, key, message", [
    ("unknown_series", "data", r"unknown series 'impic:regulation_labor'.*Did you mean 'impic:regulation_labour'"),
    ("years_outside_data", "years", r"\[2015\] are outside the data 'impic:regulation_labour' "
                                    r"\(impic_model_regions_used.csv\) for North, which has 1980-2010"),
    ("region_lacking", "where", r"have no region 'Gulf'; they cover North, SouthUpper"),
    ("missing_citation", "source", r"is missing: a target on 'impic:regulation_labour' "
                                   r"\(impic_model_regions_used.csv\) must cite its data: source = \"impic\""),
])
def test_bad_political_targets_name_file_target_and_key(uncalibrated, fixture, key, message):
    path = BAD_TARGETS / f"{fixture}.toml"
    with pytest.raises(ScenarioError, match=rf"{fixture}.toml: \[\[target\]\] 1 \('restrictiveness'\): "
                                            rf"key '{key}'[: ].*{message}"):
        load_targets(path, uncalibrated)


def test_shipped_targets_cite_and_explain_every_political_series(uncalibrated):
    targets = load_targets(CALIBRATION_DIR / "targets.toml", uncalibrated)
    political = [t for t in targets if t.political]
    assert {t.data for t in political} >= set(SERIES) - {"impic:control_overall"}
    assert all(t.source and t.why for t in political)


# -------------------------------------------------------------- error terms
def _problem(target: Target, data: xr.DataArray) -> Problem:
    return Problem(None, [target], [Prior("x", 0, 1)], {target.name: data})


def _model(values) -> xr.DataArray:
    values = np.atleast_2d(values)
    return xr.DataArray(values, dims=("run", "year"), coords={"year": np.arange(values.shape[1])})


def test_the_reporting_factor_is_profiled_within_its_bounds():
    data = xr.DataArray([5.0, 10.0, 20.0], dims="year", coords={"year": [0, 1, 2]})
    likelihood = Likelihood("lognormal", noise=0.1, factor=PriorDistribution("uniform", 0.3, 1.0))
    target = Target("deaths", "v", [0, 1, 2], data="iom:dead_or_missing", transform="log", likelihood=likelihood)
    problem = _problem(target, data)
    # the model at twice the data: a recorded share of one half fits exactly
    standard, factor = problem.political_residuals(target, _model([[10.0, 20.0, 40.0], [100.0, 200.0, 400.0]]))
    assert factor[0] == pytest.approx(0.5) and np.allclose(standard[0], 0.0)
    # twenty times the data needs a share of 0.05, below the bound: the factor stops at 0.3 and the miss counts
    assert factor[1] == pytest.approx(0.3)
    np.testing.assert_allclose(standard[1], (np.log(0.05) - np.log(0.3)) / 0.1)


def test_proxy_error_widens_the_error_in_quadrature_and_transcribed_points_count_half():
    data = xr.DataArray([0.5, 0.5], dims="year", coords={"year": [0, 1]})
    plain = Target("s", "v", [0, 1], data="gss:reduced", transform="none",
                   likelihood=Likelihood("normal", noise=0.03))
    proxied = Target("s", "v", [0, 1], data="gss:reduced", transform="none",
                     likelihood=Likelihood("normal", noise=0.03, proxy=0.04))
    model = _model([[0.6, 0.6]])
    assert _problem(plain, data).political_residuals(plain, model)[0] == pytest.approx(np.full((1, 2), -0.1 / 0.03))
    assert _problem(proxied, data).political_residuals(proxied, model)[0] == pytest.approx(np.full((1, 2), -2.0))
    runs = xr.Dataset({"v": (("run", "time"), [[0.6, 0.6]])}, coords={"time": [0, 1]})
    term = _problem(proxied, data).terms(runs)["s"]
    proxied.transcribed = True
    halved = _problem(proxied, data).terms(runs)["s"]
    assert term[0] == pytest.approx(4.0 * POLITICAL_SCALE**2)
    assert halved[0] == pytest.approx(TRANSCRIBED_WEIGHT * term[0])


def test_one_sided_bounds_count_only_the_side_the_model_must_not_cross():
    data = xr.DataArray([0.0, 0.0, 0.0], dims="year", coords={"year": [0, 1, 2]})
    model = _model([[-0.01, 0.0, 0.02]])
    for bound, expected in (("lower", [0.01, 0.0, 0.0]), ("upper", [0.0, 0.0, -0.02])):
        target = Target("t", "v", [0, 1, 2], data="tightness:lower", transform="none", bound=bound,
                        likelihood=Likelihood("normal", noise=0.01, bound=bound))
        standard, _ = _problem(target, data).political_residuals(target, model)
        np.testing.assert_allclose(standard[0], np.array(expected) / 0.01)
        density = series_pointwise(target.likelihood, model.values, data.values, Nuisance(noise=0.01))
        np.testing.assert_allclose(density[0], -0.5 * (np.array(expected) / 0.01) ** 2)


def test_the_posterior_density_divides_by_the_factor_and_tempers_transcribed_points():
    data = np.array([5.0, 10.0])
    model = np.array([[10.0, 20.0]])
    likelihood = Likelihood("lognormal", noise=0.1, factor=PriorDistribution("uniform", 0.3, 1.0))
    at_truth = series_pointwise(likelihood, model, data, Nuisance(noise=0.1, factor=0.5))
    elsewhere = series_pointwise(likelihood, model, data, Nuisance(noise=0.1, factor=0.8))
    assert (at_truth > elsewhere).all()
    assert "factor" in likelihood.estimated()
    likelihood.tempering = TRANSCRIBED_WEIGHT
    np.testing.assert_allclose(series_pointwise(likelihood, model, data, Nuisance(noise=0.1, factor=0.5)),
                               TRANSCRIBED_WEIGHT * at_truth)


# ------------------------------------------------------------ synthetic recovery
SYNTHETIC = Path(__file__).parents[1] / "data" / "calibration" / "synthetic_political_targets.toml"
KNOWN = {"initial restrictiveness[North]": 0.42, "initial anti migrant sentiment[North]": 0.55,
         "cohort contribution learning": 5.0}
#: IOM's recorded share and Eurobarometer's share per unit of relative salience behind the synthetic data
KNOWN_FACTORS = {"world deaths on routes": 0.5, "Northern salience (Eurobarometer)": 0.2}


def synthetic_political_problem(model, noisy: bool, seed: int = 1):
    """The fixture's targets with data made by the model at KNOWN, through their own error model.

    Each series gets its declared noise per point and, where declared, one proxy offset for the whole series
    (the sampled country's gap from the region); factor targets are the model times the known factor.
    """
    from migsd.calibration.fit import Settings, make_problem

    targets = load_targets(SYNTHETIC, model)
    priors = [Prior("initial restrictiveness[North]", 0.3, 0.6), Prior("initial anti migrant sentiment[North]", 0.35, 0.7),
              Prior("cohort contribution learning", 0.0, 10.0)]
    settings = Settings(targets, priors, seed=5, generations=12, population=6, local_evaluations=200, members=3,
                        proposals=30)
    problem = make_problem(model, settings)
    truth = problem.simulate(np.array([[KNOWN[p.name] for p in priors]]))
    rng = np.random.default_rng(seed)
    for target in targets:
        clean = problem.simulated(target, truth).isel(run=0) * KNOWN_FACTORS.get(target.name, 1.0)
        likelihood = target.likelihood
        error = 0.0
        if noisy:
            error = rng.normal(0.0, likelihood.noise, size=clean.shape) + rng.normal(0.0, likelihood.proxy or 0.0)
        values = clean * np.exp(error) if target.transform == "log" else clean + error
        problem.data[target.name] = values.transpose(*problem.data[target.name].dims)
    return problem, settings


@pytest.mark.slow
@pytest.mark.parametrize("noisy, tolerance", [
    # noise-free: the levels, the cohort learning (through the drift of sentiment) and both factors come back
    (False, {"initial restrictiveness[North]": 0.005, "initial anti migrant sentiment[North]": 0.005,
             "cohort contribution learning": 0.1, "factors": 0.02}),
    # with the declared noise (1-2%) and proxy offsets (1 point): the levels within a few per cent; cohort learning
    # moves Northern sentiment by 0.001 per unit by 2016 on main's model, below the noise, so it is then not
    # identified (not checked); the deaths factor inherits the restrictiveness error
    (True, {"initial restrictiveness[North]": 0.05, "initial anti migrant sentiment[North]": 0.05,
            "factors": 0.15}),
])
def test_known_parameters_and_factors_are_recovered_through_the_political_targets(uncalibrated, noisy, tolerance):
    from migsd.calibration.fit import fit

    problem, settings = synthetic_political_problem(uncalibrated, noisy)
    fitted = fit(problem, settings)
    recovered = dict(zip((p.name for p in problem.priors), fitted.best))
    for name, value in KNOWN.items():
        if name in tolerance:
            assert recovered[name] == pytest.approx(value, rel=tolerance[name]), (name, recovered[name])
    runs = problem.simulate(fitted.best)
    for target in problem.targets:
        if target.name in KNOWN_FACTORS:
            _, factor = problem.political_residuals(target, problem.simulated(target, runs))
            assert factor[0] == pytest.approx(KNOWN_FACTORS[target.name], rel=tolerance["factors"]), target.name


def test_a_posterior_of_another_model_is_never_picked_for_this_one(tmp_path):
    """posterior_v1.nc predates the political core: asked for this model's posterior, nothing is found."""
    from types import SimpleNamespace

    from migsd.calibration.posterior import latest_posterior, read_posterior

    shutil.copy(CALIBRATION_DIR / "parameters" / "posterior_v1.nc", tmp_path / "posterior_v1.nc")
    recorded = read_posterior(tmp_path / "posterior_v1.nc").attrs["model_sha256"]
    assert latest_posterior(tmp_path, model=SimpleNamespace(sha256=recorded)) == tmp_path / "posterior_v1.nc"
    assert latest_posterior(tmp_path, model=SimpleNamespace(sha256="0" * 64)) is None
    assert latest_posterior(tmp_path) == tmp_path / "posterior_v1.nc"  # asked for any, it is still there
