"""Sensitivity problems, samples, the sweep store and evaluators, and indices."""

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import MigsdError, ScenarioError
from migsd.analysis.sensitivity import analyze, load_problem, sample
from migsd.analysis.sweep import evaluate, open_store, yield_probability

from ..conftest import DATA
from .sweeps import kill_once_partly_done

ISHIGAMI = {"S1": [0.3139, 0.4424, 0.0], "ST": [0.5576, 0.4424, 0.2437]}  # a = 7, b = 0.1


@pytest.fixture(scope="module")
def ishigami():
    return migsd.load_model(DATA / "models" / "ishigami.mdl")


def test_sobol_indices_of_the_ishigami_function_are_recovered(ishigami, tmp_path):
    problem = load_problem(DATA / "sensitivity" / "ishigami.toml", ishigami)
    results = evaluate(problem, sample(problem), model=ishigami, store=tmp_path / "s.zarr", progress=False,
                       chunk_size=4096)
    indices = analyze(problem, results).isel(scenario=0, time=0)
    for key, truth in ISHIGAMI.items():
        found, interval = indices[f"y {key}"].values, indices[f"y {key}_conf"].values
        assert np.all(np.abs(found - truth) <= interval), (key, found, interval)


@pytest.mark.parametrize(
    "text, message",
    [
        ('method = "sobol"\nsamples = 100\n[[parameter]]\nname="x1"\nlower=0\nupper=1\n', r"power of 2 \(e.g. 128\)"),
        ('method = "fast"\n', r"method 'fast' is not one of sobol, morris, lhs, ensemble"),
        ('[[parameter]]\nname="x4"\nlower=0\nupper=1\n', r"\[\[parameter\]\] 1 \('x4'\): 'x4' is not a constant of ishigami.mdl"),
        ('[[parameter]]\nname="x1"\nlower=2\nupper=1\n', r"lower \(2\) must be below upper \(1\)"),
        ('[[parameter]]\nname="x1"\nlower=0\nupper=1\nshape="beta"\n', r"unknown key\(s\) \['shape'\]"),
        ('outputs = ["z"]\n[[parameter]]\nname="x1"\nlower=0\nupper=1\n', r"outputs: 'z' is not a variable"),
    ],
)
def test_bad_problem_files_are_rejected_with_file_and_key(ishigami, tmp_path, text, message):
    path = tmp_path / "problem.toml"
    path.write_text("scenarios = []\n" + ("" if "outputs" in text else 'outputs = ["y"]\n') + text)
    with pytest.raises(ScenarioError, match=message):
        load_problem(path, ishigami)


def test_the_shipped_problem_loads_and_samples_reproducibly(model):
    problem = load_problem("restrictionism", model, samples=4)
    first, second = sample(problem), sample(problem)
    xr.testing.assert_identical(first, second)
    assert first.sizes["run"] == problem.runs
    assert "culturalist weight[SouthUpper,SouthLower] (multiplier)" in first


def small(model, tmp_path, name="run.zarr"):
    problem = load_problem("restrictionism", model, samples=2)
    problem.final_time = 2030
    problem.outputs = ["Restrictiveness", "Northern restrictiveness yield year"]
    return problem, sample(problem), tmp_path / name


def test_results_do_not_depend_on_evaluator_or_chunking(model, tmp_path):
    problem, samples, _ = small(model, tmp_path)
    here = evaluate(problem, samples, model=model, store=tmp_path / "a.zarr", chunk_size=5, progress=False).load()
    spread = evaluate(problem, samples, model=model, store=tmp_path / "b.zarr", chunk_size=8, evaluator="processes",
                      workers=2, progress=False).load()
    assert float(here["status"].min()) == 1
    for name in ("Restrictiveness", "Northern restrictiveness yield year"):
        xr.testing.assert_identical(here[name], spread[name])


@pytest.mark.slow
def test_the_dask_evaluator_on_a_local_cluster_gives_the_same_runs(model, tmp_path):
    problem, samples, _ = small(model, tmp_path)
    here = evaluate(problem, samples, model=model, store=tmp_path / "a.zarr", chunk_size=6, progress=False).load()
    cluster = evaluate(problem, samples, model=model, store=tmp_path / "d.zarr", chunk_size=6, evaluator="dask",
                       workers=2, progress=False).load()
    xr.testing.assert_identical(here["Restrictiveness"], cluster["Restrictiveness"])


def test_an_existing_store_is_not_overwritten(model, tmp_path):
    problem, samples, store = small(model, tmp_path)
    evaluate(problem, samples, model=model, store=store, chunk_size=64, progress=False)
    with pytest.raises(MigsdError, match="exists; pass --resume"):
        evaluate(problem, samples, model=model, store=store, chunk_size=64, progress=False)


@pytest.mark.slow
def test_a_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    """A real interruption: the sweep process is killed once some chunks are stored."""
    store = tmp_path / "killed.zarr"
    command = [sys.executable, "-m", "migsd.cli", "sweep", "restrictionism", "--n", "32", "--out", str(store),
               "--chunk", "16", "--quiet"]
    kill_once_partly_done(command, store)
    partial = open_store(store)["status"].values
    assert 0 < np.sum(partial == 1) < partial.size, "the sweep finished or never started before the kill"
    subprocess.run(command + ["--resume"], check=True)
    resumed = xr.open_zarr(store).load()
    whole = tmp_path / "whole.zarr"
    subprocess.run(command[:command.index("--out") + 1] + [str(whole), "--chunk", "16", "--quiet"], check=True)
    uninterrupted = xr.open_zarr(whole).load()
    assert float(resumed["status"].min()) == 1
    for name in ("Restrictiveness", "Northern restrictiveness yield year", "migrant bargaining power"):
        xr.testing.assert_identical(resumed[name], uninterrupted[name])


def test_yield_probability_counts_completed_runs(model, tmp_path):
    problem, samples, store = small(model, tmp_path)
    problem.final_time = 2100
    results = evaluate(problem, samples, model=model, store=store, chunk_size=64, progress=False)
    probability = yield_probability(results, [2040, 2100])
    assert probability.dims == ("year", "scenario")
    assert np.all((probability >= 0) & (probability <= 1))
    assert np.all(probability.sel(year=2100) >= probability.sel(year=2040))


def test_prim_finds_the_range_that_decides_the_outcome():
    from migsd.analysis.discovery import discover

    rng = np.random.default_rng(4)
    runs = 400
    deciding, noise = rng.uniform(0, 1, runs), rng.uniform(0, 1, runs)
    years = np.where(deciding < 0.3, 2045.0, np.nan)  # yields early only when 'deciding' is low
    results = xr.Dataset(
        {"param deciding": ("run", deciding), "param noise": ("run", noise),
         "Northern restrictiveness yield year": (("scenario", "run"), years[None]),
         "status": (("scenario", "run"), np.ones((1, runs)))},
        coords={"scenario": ["s"]},
    )
    yields, holds = discover(results, scenario="s", by=2060)
    assert yields.share == pytest.approx(np.mean(deciding < 0.3))
    assert list(yields.limits["parameter"]) == ["deciding"]
    # the box with most coverage at density >= 0.8 ends a little above the true edge, 0.3
    assert 0.28 < yields.limits["high"].iloc[0] < 0.4
    assert yields.density >= 0.8 and yields.coverage >= 0.8
    assert list(holds.limits["parameter"]) == ["deciding"]


@pytest.mark.slow
def test_analyze_writes_indices_figures_and_prim_boxes(model, tmp_path, capsys):
    from migsd.cli import main

    store = tmp_path / "r.zarr"
    assert main(["sweep", "restrictionism", "--n", "4", "--out", str(store), "--quiet"]) == 0
    assert main(["analyze", str(store), "--out", str(tmp_path / "report"), "--by", "2070"]) == 0
    out = capsys.readouterr().out
    assert "status_quo: yields by 2070 in" in out
    written = {p.name for p in (tmp_path / "report").iterdir()}
    assert {"indices.nc", "yield_probability.png", "fan_Restrictiveness.png", "prim_status_quo.csv"} <= written
    indices = xr.open_dataset(tmp_path / "report" / "indices.nc")
    assert set(indices["parameter"].values) >= {"policy adjustment delay", "migration volume stability"}
    assert {"Restrictiveness ST", "Restrictiveness ST_conf"} <= set(indices.data_vars)


def test_one_multiplier_per_element_and_other_distributions(model, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(
        'method = "lhs"\nsamples = 200\nscenarios = ["status_quo"]\noutputs = ["Restrictiveness"]\n'
        '[[parameter]]\nname = "culturalist weight"\nmode = "multiplier"\nper_element = true\nlower = 0.5\nupper = 1.5\n'
        '[[parameter]]\nname = "material weight"\ndistribution = "triangular"\nlower = 1\nupper = 5\npeak = 2\n'
        '[[parameter]]\nname = "tightening time"\ndistribution = "normal"\nmean = 4\nsd = 0.5\n'
    )
    problem = load_problem(path, model)
    assert [p.label for p in problem.parameters][:4] == [
        f"culturalist weight[{r}] (multiplier)" for r in model.subscripts["Region"]]
    samples = sample(problem)
    assert samples["material weight"].min() >= 1 and samples["material weight"].max() <= 5
    assert float(samples["tightening time"].mean()) == pytest.approx(4, abs=0.1)
    assert float(samples["tightening time"].std()) == pytest.approx(0.5, abs=0.1)
    from migsd.analysis.sensitivity import batch_params

    params = batch_params(model, problem, samples)
    default = model.defaults["culturalist weight"].sel(region="Gulf").item()
    base = model.calibrated_parameters.get("culturalist weight[Gulf]", default)
    np.testing.assert_allclose(params["culturalist weight[Gulf]"].values,
                               samples["culturalist weight[Gulf] (multiplier)"].values * base)


def test_the_calibrated_ensemble_is_a_sample(model, tmp_path):
    from migsd.calibration import ensemble_params

    path = tmp_path / "e.toml"
    path.write_text('method = "ensemble"\nscenarios = ["status_quo"]\noutputs = ["Restrictiveness"]\n')
    problem = load_problem(path, model)
    members = ensemble_params()
    samples = sample(problem)
    assert samples.sizes["run"] == members.sizes["run"]
    np.testing.assert_array_equal(samples["emigration propensity multiplier"].values,
                                  members["emigration propensity multiplier"].values)


def test_multipliers_scale_the_calibrated_values(model, tmp_path):
    from migsd.analysis.sensitivity import batch_params

    path = tmp_path / "m.toml"
    path.write_text('method = "lhs"\nsamples = 4\nscenarios = ["status_quo"]\noutputs = ["Restrictiveness"]\n'
                    '[[parameter]]\nname = "base return rate"\nelements = ["North"]\nmode = "multiplier"\n'
                    'lower = 0.5\nupper = 1.5\n')
    problem = load_problem(path, model)
    samples = sample(problem)
    params = batch_params(model, problem, samples)
    calibrated = model.calibrated_parameters["base return rate[North]"]
    np.testing.assert_allclose(params["base return rate[North]"].values,
                               samples["base return rate[North] (multiplier)"].values * calibrated)


def test_a_failing_chunk_is_recorded_with_its_parameters_and_reported(tmp_path):
    import json

    model = migsd.load_model(DATA / "models" / "fixed_delay.mdl")
    path = tmp_path / "lag.toml"
    path.write_text('method = "lhs"\nsamples = 4\nscenarios = []\noutputs = ["delayed"]\n'
                    '[[parameter]]\nname = "lag"\nlower = 1\nupper = 3\n')
    problem = load_problem(path, model)
    samples = sample(problem)
    store = tmp_path / "lag.zarr"
    # chunks of 3 runs: the first mixes delay times (which DELAY FIXED refuses); the last run is alone and runs
    with pytest.warns(RuntimeWarning, match=r"1 chunk\(s\) of the sweep failed"):
        results = evaluate(problem, samples, model=model, store=store, chunk_size=3, progress=False)
    np.testing.assert_array_equal(results["status"].values, [[-1, -1, -1, 1]])
    (line,) = [json.loads(x) for x in (store / "errors.jsonl").read_text().splitlines()]
    assert line["runs"] == [0, 3] and "DELAY FIXED needs one delay time" in line["error"]
    np.testing.assert_allclose(line["parameters"]["lag"], samples["lag"].values[:3])


def test_resume_refuses_a_store_of_another_problem(model, tmp_path):
    problem, samples, store = small(model, tmp_path)
    evaluate(problem, samples, model=model, store=store, chunk_size=64, progress=False)
    bigger = load_problem("restrictionism", model, samples=4)
    bigger.final_time, bigger.outputs = 2030, problem.outputs
    with pytest.raises(MigsdError, match="holds another sweep"):
        evaluate(bigger, sample(bigger), model=model, store=store, resume=True, progress=False)
    from migsd.report.build import sweep_matches

    assert sweep_matches(store, problem) and not sweep_matches(store, bigger)


def test_a_store_left_by_a_killed_write_opens_without_its_half_written_files(tmp_path):
    store = tmp_path / "interrupted.zarr"
    xr.Dataset({"status": ("run", [1.0, np.nan])}).to_zarr(store, zarr_format=2)
    leftover = store / ".zattrs.7d8e1e8b5d9444edb2fa1622462a5354.partial"
    leftover.write_text('{"half":')
    with pytest.warns(Warning, match="not recognized"):  # what zarr says of it when opened as it is
        xr.open_zarr(store, consolidated=False)
    assert open_store(store, consolidated=False)["status"].values[0] == 1 and not leftover.exists()
