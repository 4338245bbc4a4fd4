"""Calibration: fit statistics, recovery of known parameters, resumption, and checks on data and settings."""

import math
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import migsd
from migsd.calibration.fit import (
    EvaluationLog,
    Prior,
    Problem,
    Settings,
    Target,
    ensemble_params,
    fit,
    fit_table,
    load_priors,
    load_settings,
    load_targets,
    make_problem,
    theil,
    write_parameters,
)
from migsd.calibration.data import CALIBRATION_DIR, CalibrationData
from migsd.errors import DataError, ScenarioError

from ..conftest import DATA

YEARS = [1990, 1995, 2000, 2005, 2010]
TRUE = {"emigration propensity multiplier": 1.3, "base return rate[North]": 0.03, "network elasticity": 0.7}


@pytest.fixture(scope="module")
def uncalibrated():
    return migsd.load_model(calibration=None)


def test_theil_fractions_split_the_error():
    data = np.array([1.0, 2.0, 3.0, 4.0])
    perfect = theil(data, data)
    assert perfect["RMSE"] == 0 and perfect["MAPE"] == 0 and perfect["R2"] == 1
    stretched = theil(2.5 + 2 * (data - 2.5), data)  # same mean, double the spread
    assert stretched["U_S"] == pytest.approx(1.0) and stretched["U_M"] == pytest.approx(0.0)
    shifted = theil(data[::-1], data)  # same mean and spread, anti-correlated
    assert shifted["U_C"] == pytest.approx(1.0)
    for stats in (stretched, shifted, theil(data * 1.1 + 0.3, data)):
        assert stats["U_M"] + stats["U_S"] + stats["U_C"] == pytest.approx(1.0)


def synthetic_problem(model, noise: float, seed: int = 0) -> tuple[Problem, Settings]:
    """Data made by the model itself at TRUE parameters, with multiplicative noise."""
    targets = [
        Target("foreign-born by destination", "foreign born population", YEARS, data="synthetic"),
        Target("working-age residents", "residents by age", YEARS, data="synthetic", where={"age": "Working"}),
    ]
    priors = [Prior("emigration propensity multiplier", 0.5, 2.0), Prior("base return rate[North]", 0.005, 0.08),
              Prior("network elasticity", 0.0, 1.0)]
    problem = Problem(model, targets, priors, {})
    truth = problem.simulate(np.array([[TRUE[p.name] for p in priors]]))
    rng = np.random.default_rng(seed)
    for target in targets:
        clean = problem.simulated(target, truth).isel(run=0)
        problem.data[target.name] = clean * np.exp(rng.normal(0.0, noise, size=clean.shape))
    settings = Settings(targets, priors, seed=3, generations=12, population=6, local_evaluations=60, members=5,
                        proposals=100)
    return problem, settings


@pytest.mark.slow
@pytest.mark.parametrize(
    "noise, bounds",
    [
        # noise-free data: the optimiser finds the truth
        (0.0, {"emigration propensity multiplier": 1e-3, "base return rate[North]": 1e-3, "network elasticity": 1e-3}),
        # 1% lognormal noise on 2 targets x 4 regions x 5 years: the volume parameter is pinned down, the
        # return rate and network pull trade off against each other (stated bounds, relative)
        (0.01, {"emigration propensity multiplier": 0.05, "base return rate[North]": 0.2, "network elasticity": 0.2}),
    ],
)
def test_known_parameters_are_recovered_from_synthetic_data(uncalibrated, noise, bounds):
    problem, settings = synthetic_problem(uncalibrated, noise=noise)
    fitted = fit(problem, replace(settings, generations=15, local_evaluations=150))
    recovered = dict(zip((p.name for p in problem.priors), fitted.best))
    for name, value in TRUE.items():
        assert recovered[name] == pytest.approx(value, rel=bounds[name]), (name, recovered[name])
    assert fitted.members.shape == (5, 3)


def test_a_fit_started_from_a_calibration_is_at_least_as_good_as_it(uncalibrated, tmp_path):
    from migsd.calibration.fit import start_point

    problem, settings = synthetic_problem(uncalibrated, noise=0.0)
    settings = replace(settings, generations=1, population=3, local_evaluations=5, members=2, proposals=4)
    truth = np.array([TRUE[p.name] for p in problem.priors])
    write_parameters(tmp_path / "calibrated_v1.csv", problem.priors, truth, truth[None])
    cold = fit(problem, settings)
    warm = fit(problem, replace(settings, start=tmp_path / "calibrated_v1.csv"))
    assert warm.payoff <= 1e-20 < cold.payoff  # one generation is far too few to find the truth unaided
    np.testing.assert_allclose(warm.best, truth, rtol=1e-12)
    # narrowed priors clip the start; a parameter the start file lacks begins at its prior's middle
    narrowed = [Prior("emigration propensity multiplier", 0.5, 1.0), problem.priors[1], Prior("volume elasticity", 0, 1)]
    unit = start_point(replace(settings, priors=narrowed, start=tmp_path / "calibrated_v1.csv"))
    np.testing.assert_allclose(unit, [1.0, (0.03 - 0.005) / 0.075, 0.5])


def test_a_start_file_that_is_not_there_is_named(tmp_path, uncalibrated):
    shutil.copytree(CALIBRATION_DIR, tmp_path / "calibration", ignore=shutil.ignore_patterns("parameters", "data"))
    settings = tmp_path / "calibration" / "calibrate.toml"
    text = "\n".join(line for line in settings.read_text().splitlines() if not line.startswith("start ="))
    settings.write_text('start = "parameters/calibrated_v9.csv"\n' + text + "\n")
    with pytest.raises(DataError, match=r"calibrate.toml: start = 'parameters/calibrated_v9.csv': no such file "
                                        r"\(relative to .*calibration\); give a calibrated_vN.csv"):
        load_settings(settings, uncalibrated, CALIBRATION_DIR)


def test_an_interrupted_calibration_resumes_without_recomputing(uncalibrated, tmp_path, monkeypatch):
    problem, settings = synthetic_problem(uncalibrated, noise=0.01)
    settings = replace(settings, generations=2, population=3, local_evaluations=5, members=2, proposals=4)
    log_path = tmp_path / "evaluations.npz"
    first = fit(problem, settings, EvaluationLog(log_path))
    assert log_path.exists()
    computed = []
    original = Problem.payoff
    monkeypatch.setattr(Problem, "payoff", lambda self, thetas: computed.append(len(thetas)) or original(self, thetas))
    again = fit(problem, settings, EvaluationLog(log_path))
    assert computed == []  # every evaluation came from the log
    np.testing.assert_array_equal(first.best, again.best)


def test_an_interrupted_calibration_keeps_its_evaluations(uncalibrated, tmp_path, monkeypatch):
    """The log is written at most every `interval` seconds, and whatever stops the fit, it is written then."""
    problem, settings = synthetic_problem(uncalibrated, noise=0.01)
    settings = replace(settings, generations=3, population=3, local_evaluations=5, members=2, proposals=4)
    log_path = tmp_path / "evaluations.npz"
    calls = []
    original = Problem.payoff

    def payoff(self, thetas):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(len(thetas))
        return original(self, thetas)

    monkeypatch.setattr(Problem, "payoff", payoff)
    log = EvaluationLog(log_path, interval=1e9)
    with pytest.raises(KeyboardInterrupt):
        fit(problem, settings, log)
    assert len(EvaluationLog(log_path).known) == sum(calls) > 0


def test_ensemble_members_feed_a_batch(uncalibrated, tmp_path):
    priors = [Prior("material weight", 1, 5, "x"), Prior("base return rate[North]", 0.01, 0.05, "y")]
    path = tmp_path / "calibrated_v7.csv"
    write_parameters(path, priors, np.array([3.0, 0.02]), np.array([[2.0, 0.03], [4.0, 0.04]]))
    members = ensemble_params(path)
    assert list(members["run"].values) == ["member001", "member002"]
    ds = uncalibrated.run_batch(members, return_columns=["material weight"], final_time=1991)
    np.testing.assert_allclose(ds["material weight"].values, [2.0, 4.0])


def test_the_shipped_model_runs_with_the_promoted_calibration():
    from migsd.calibration import current, read_parameters
    from migsd.calibration.posterior import is_posterior, posterior_point

    model = migsd.load_model()
    assert model.calibration == current()
    best = posterior_point(model.calibration) if is_posterior(model.calibration) else \
        read_parameters(model.calibration).loc["best"]
    ds = model.run(final_time=1991, return_columns=["emigration propensity multiplier"])
    assert float(ds["emigration propensity multiplier"]) == pytest.approx(best["emigration propensity multiplier"])
    assert model.calibration.relative_to(model.calibration.parents[2]).as_posix() in ds.attrs["parameter_sources"]


def copy_data(tmp_path):
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION_DIR / "data", folder / "data")
    shutil.copy(CALIBRATION_DIR / "regions.csv", folder / "regions.csv")
    return folder


def test_a_missing_column_names_the_file(tmp_path):
    folder = copy_data(tmp_path)
    path = folder / "data" / "model_regions_timeseries.csv"
    path.write_text(path.read_text().replace("variant,", "kind,", 1))
    with pytest.raises(DataError, match=r"model_regions_timeseries.csv: missing column\(s\) \['variant'\]"):
        CalibrationData(folder).series("pop_total", [1990])


def test_an_unknown_iso3_names_file_and_row(tmp_path):
    folder = copy_data(tmp_path)
    with open(folder / "regions.csv", "a") as stream:
        stream.write("XXA,Atlantis,North\n")
    with pytest.raises(DataError, match=r"regions.csv: row \d+: iso3 'XXA' is not a country of .*locations.csv"):
        CalibrationData(folder).regions


def test_a_region_missing_from_the_mdl_names_both_files(tmp_path, uncalibrated):
    folder = copy_data(tmp_path)
    path = folder / "regions.csv"
    path.write_text(path.read_text().replace(",Gulf\n", ",Arabia\n"))
    settings = Settings([Target("x", "foreign born population", [1990], data="ims:migrant_stock_both")], [])
    with pytest.raises(DataError, match=r"regions.csv: region\(s\) \['Arabia'\] are not elements of Region in migsd.mdl"):
        make_problem(uncalibrated, settings, CalibrationData(folder))


def test_a_negative_population_names_file_and_row(tmp_path):
    folder = copy_data(tmp_path)
    path = folder / "data" / "model_regions_timeseries.csv"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if ",1990,pop_0_14,estimate," in line)
    fields = lines[index].split(",")
    fields[-1] = "-5"
    lines[index] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"row {index + 1}: 'pop_0_14' is -5 .* is zero or more"):
        CalibrationData(folder).series("pop_0_14", [1990])


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[target]]\nname="a"\nvariable="population"\ndata="pop_total"\nyears=[1980]\n', r"years \[1980\] are outside the run"),
        ('[[target]]\nname="a"\nvariable="populaton"\ndata="pop_total"\nyears=[1990]\n', r"'populaton' is not a variable.*population"),
        ('[[target]]\nname="a"\nvariable="population"\nyears=[1990]\n', r"give exactly one of 'data'"),
        ('[[target]]\nname="a"\nvariable="population"\ndata="x"\nyears=[1990]\nweigth=2\n', r"unknown key\(s\) \['weigth'\]"),
    ],
)
def test_bad_targets_are_rejected_naming_the_file(tmp_path, uncalibrated, text, message):
    path = tmp_path / "targets.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=rf"targets.toml: \[\[target\]\] 1 \('a'\): {message}"):
        load_targets(path, uncalibrated)


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[parameter]]\nname="material weight"\nlower=2\nupper=1\nwhy="x"\n', r"lower < upper"),
        ('[[parameter]]\nname="material weight"\nlower=1\nupper=2\n', r"'why' is missing"),
        ('[[parameter]]\nname="materal weight"\nlower=1\nupper=2\nwhy="x"\n', r"'materal weight' is not a variable"),
    ],
)
def test_bad_priors_are_rejected_naming_the_file(tmp_path, uncalibrated, text, message):
    path = tmp_path / "priors.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message):
        load_priors(path, uncalibrated)


def test_shipped_settings_load(uncalibrated):
    from migsd.calibration import load_settings

    settings = load_settings(CALIBRATION_DIR / "calibrate.toml", uncalibrated)
    # the 2015 soft sentiment point gave way to the survey series of the political core
    assert {t.kind for t in settings.targets} == {"series", "band"}
    assert any(t.political for t in settings.targets)
    assert all(p.why for p in settings.priors)
    problem = make_problem(uncalibrated, settings)
    assert set(problem.data) == {t.name for t in settings.targets if t.kind == "series"}
    assert isinstance(problem.data["foreign-born by origin x destination"], xr.DataArray)


@pytest.mark.slow
def test_calibrate_writes_parameters_note_fit_table_and_figures(uncalibrated, tmp_path):
    from migsd.calibration import read_parameters
    from migsd.calibration.report import _version, calibrate

    (tmp_path / "targets.toml").write_text(
        '[[target]]\nname = "foreign-born by destination"\nvariable = "foreign born population"\n'
        'data = "ims:migrant_stock_both"\nyears = [1990, 2000, 2010, 2020]\n'
    )
    (tmp_path / "priors.toml").write_text(
        '[[parameter]]\nname = "emigration propensity multiplier"\nlower = 0.5\nupper = 2\nwhy = "volume"\n'
        '[[parameter]]\nname = "base return rate[North]"\nlower = 0.01\nupper = 0.1\nwhy = "returns"\n'
    )
    (tmp_path / "calibrate.toml").write_text(
        "generations = 2\npopulation = 3\nlocal_evaluations = 5\nmembers = 3\nproposals = 12\n"
    )
    out = tmp_path / "parameters"
    path = calibrate(tmp_path / "calibrate.toml", model=uncalibrated, directory=out, progress=False)
    assert path.name == "calibrated_v1.csv"
    frame = read_parameters(path)
    assert list(frame.index) == ["best", "member001", "member002", "member003"]
    assert list(frame.columns) == ["emigration propensity multiplier", "base return rate[North]"]
    note = path.with_suffix(".md").read_text()
    assert "sha256" in note and "payoff" in note and "out of sample 2020" in note
    assert "## Integration error at the fitted parameters" in note and "| Restrictiveness |" in note
    fit = pd.read_csv(out / "calibrated_v1_fit.csv")
    assert set(fit["sample"]) == {"in sample 1990-2020", "calibrated to 2010: in sample 1990-2010",
                                  "calibrated to 2010: out of sample 2020", "validation 2021-2023 (best)",
                                  "validation 2020-2023 (best)", "validation 2024 (best)",
                                  "calibrated to 2010: validation 2024"}
    revised = fit[fit["target"] == "foreign-born by destination 2024 (IMS 2024, validation)"]
    assert sorted(revised["series"]) == sorted(["North", "Gulf", "SouthUpper", "SouthLower"] * 2)
    assert (revised["n"] == 1).all() and revised["MAPE"].notna().all()
    assert {"RMSE", "MAPE", "R2", "U_M", "U_S", "U_C"} <= set(fit.columns)
    assert (out / "calibrated_v1_fit" / "foreign-born_by_destination.png").exists()
    # a version whose evaluations are logged but whose results were never written is the one to resume
    (out / "calibrated_v2.evaluations.npz").write_bytes((out / "calibrated_v1.evaluations.npz").read_bytes())
    assert _version(out, resume=True) == 2 and _version(out, resume=False) == 2
    (out / "calibrated_v2.csv").write_text(path.read_text())
    assert _version(out, resume=True) == 3


def _euler_decay_change(residence: float, dt: float, years: int) -> float:
    """Largest gap, as a share of the start, between Euler decays at ``dt`` and ``dt / 2``, read yearly."""
    t = np.arange(years + 1)
    return float(np.max(np.abs((1 - dt / residence) ** (t / dt) - (1 - dt / 2 / residence) ** (2 * t / dt))))


def test_the_integration_error_at_the_fitted_parameters_is_the_euler_answer():
    from migsd.calibration.report import _integration_section, integration_error

    model = migsd.load_model(DATA / "models" / "decay.mdl")  # TIME STEP 0.5, FINAL TIME 10
    problem = Problem(model, [], [Prior("residence time[North]", 0.5, 100), Prior("residence time[South]", 0.5, 100)],
                      {})
    slow, stiff = [50.0, 50.0], [1.0, 50.0]
    frame = integration_error(problem, np.array(slow), np.array([slow, stiff]), outputs=["Amount"]).set_index("output")
    # Amount declares no range, so each region's change is a share of its largest value: its start
    np.testing.assert_allclose(frame.loc["Amount", "best"], _euler_decay_change(50.0, 0.5, 10), rtol=1e-9)
    np.testing.assert_allclose(frame.loc["Amount", "worst member"], _euler_decay_change(1.0, 0.5, 10), rtol=1e-9)
    assert frame.loc["Amount", "best"] < 0.01 < frame.loc["Amount", "worst member"]
    assert not frame.loc["Amount", "within tolerance"]
    assert "**not met** by Amount" in _integration_section(frame.reset_index())
    calm = integration_error(problem, np.array(slow), outputs=["Amount"])
    assert bool(calm["within tolerance"].all()) and "every key output is within it" in _integration_section(calm)


def test_the_ensemble_narrows_its_proposal_until_enough_members_are_distinct(monkeypatch):
    """A payoff that falls off fast around the best: the widest proposal leaves few effective members."""
    from migsd.calibration import fit as fitting

    class Sharp:
        targets = [Target("t", "v", [1990])]

        def observations(self):
            return 1

    class Log:
        def evaluate(self, problem, thetas):
            distance = np.sum((np.asarray(thetas) - 0.5) ** 2, axis=1)
            return 1.0 + 4000.0 * distance

    settings = Settings([], [], seed=1, members=20, proposals=400)
    best = np.full(6, 0.5)
    members, ess = fitting.ensemble(Sharp(), settings, best, 1.0, np.zeros(6), np.ones(6), Log())
    assert ess >= settings.members / 2
    assert members.shape == (20, 6)
    # with the widest proposal only, the same payoff would have left fewer
    monkeypatch.setattr(fitting, "PROPOSAL_SCALES", (0.05,))
    _, wide = fitting.ensemble(Sharp(), settings, best, 1.0, np.zeros(6), np.ones(6), Log())
    assert wide < ess


@pytest.mark.parametrize("select", [{}, {"region": "b"}, {"region": ["a", "c"]}])
def test_a_target_at_its_years_is_the_selection_with_year_for_time(select):
    """Built directly for speed, it must be what ``.sel(time=years).rename(time="year").assign_coords(...)`` gives."""
    from migsd.calibration.fit import _at_years

    rng = np.random.default_rng(3)
    values = xr.DataArray(rng.random((3, 35, 4)), dims=("run", "time", "region"),
                          coords={"time": np.arange(1990.0, 2025.0), "region": list("abcd")}, name="Residents",
                          attrs={"units": "Person"}).sel(select)
    years = (1990, 2000, 2010, 2020)
    expected = values.sel(time=list(years)).rename(time="year").assign_coords(year=list(years))
    xr.testing.assert_identical(_at_years(values, years), expected)


def test_each_migrant_stock_edition_reads_its_own_figures_and_refuses_years_it_lacks():
    from migsd.calibration.fit import observed

    # UN DESA's figures for the GCC states (shared/data/PROVENANCE.md, section 7.3): the 2024 edition revises 2020
    data = CalibrationData()
    revised = observed(Target("x", "foreign born population", [2020, 2024], data="ims2024:migrant_stock_both"), data)
    first = observed(Target("x", "foreign born population", [2020], data="ims:migrant_stock_both"), data)
    assert revised.sel(region="Gulf").values.tolist() == [28_020_114, 30_624_600]
    assert float(first.sel(region="Gulf", year=2020)) == 30_816_455
    with pytest.raises(DataError, match=r"series 'migrant_stock_both' has no value for years \[2024\]"):
        observed(Target("x", "foreign born population", [2024], data="ims:migrant_stock_both"), data)


def test_a_written_calibration_is_validated_by_the_code_that_writes_the_check(tmp_path):
    from migsd.calibration.fit import current
    from migsd.calibration.report import validate

    path = current()
    table = validate(path)
    written = pd.read_csv(path.with_name(path.stem + "_fit.csv"))
    written = written[written["sample"] == "validation 2021-2023 (best)"].set_index("series")["MAPE"]
    totals = table[table["sample"] == "validation 2021-2023 (best)"].set_index("series")["MAPE"]
    np.testing.assert_allclose(totals.loc[written.index], written, rtol=1e-5)
    revised = table[table["sample"] == "validation 2024 (best)"]
    assert sorted(revised["series"]) == sorted(["North", "Gulf", "SouthUpper", "SouthLower"])
    assert (revised["MAPE"] > 0).all()
    lacking = tmp_path / "calibrated_v1.csv"
    pd.read_csv(path, index_col="config").drop(columns=["job opportunity weight"]).to_csv(lacking)
    with pytest.raises(DataError, match=r"calibrated_v1.csv: no column for the calibrated parameters "
                                        r"\['job opportunity weight'\]"):
        validate(lacking)


def test_a_flow_on_its_own_values_is_scored_by_its_noise_and_its_negative_data_are_kept():
    from migsd.calibration.fit import POLITICAL_SCALE, observed
    from migsd.calibration.likelihood import Likelihood

    flow = Target("net migration", "v", [0, 1], data="net_migration", scale=1000, transform="none",
                  likelihood=Likelihood("normal", noise=500_000.0), weight=2.0)
    data = xr.DataArray([-1_000_000.0, 250_000.0], dims="year", coords={"year": [0, 1]})
    problem = Problem(None, [flow], [Prior("x", 0, 1)], {flow.name: data})
    runs = xr.Dataset({"v": (("run", "time"), [[0.0, 250_000.0], [-1_000_000.0, -750_000.0]])}, coords={"time": [0, 1]})
    # misses of 2 and 0 noise scales, then 0 and 2: in persons a year the same term would be ~1e12
    assert flow.standardised
    np.testing.assert_allclose(problem.terms(runs)["net migration"], 2.0 * POLITICAL_SCALE**2 * np.array([2.0, 2.0]))
    logged = Target("x", "v", [0, 1], data="net_migration", scale=1000)
    assert not logged.standardised
    # a region that loses people has negative net migration: data for a flow, refused only on a log scale
    southlower = observed(replace(flow, years=[2010, 2011]), CalibrationData()).sel(region="SouthLower")
    assert (southlower < 0).all()
    with pytest.raises(DataError, match=r"target 'x': data 'net_migration' has non-positive values .* a log target"):
        observed(replace(logged, years=[2010]), CalibrationData())
    # a share of data that cross zero means nothing: the fit table leaves the MAPE of a flow empty
    table = fit_table(problem, runs.isel(run=[0]))
    assert table["MAPE"].isna().all() and table["RMSE"].iloc[0] == pytest.approx(1_000_000.0 / math.sqrt(2))


def test_the_note_names_the_parameters_the_fit_pushed_to_a_bound_of_their_prior():
    from migsd.calibration.report import bounds_section

    priors = [Prior("a", 0.0, 10.0, "why a"), Prior("b", 1.0, 2.0, "why b"), Prior("c", -1.0, 1.0, "why c")]
    text = bounds_section(priors, np.array([9.9, 1.5, -0.97]))
    assert "2 of 3 fitted values" in text
    assert "| `a` | 9.9 | upper (0, 10) | why a |" in text and "| `c` | -0.97 | lower (-1, 1) | why c |" in text
    assert "`b`" not in text
    assert bounds_section(priors, np.array([5.0, 1.5, 0.0])) == ""
