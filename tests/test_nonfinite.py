"""A run whose values turn NaN or infinite fails, saying where it broke and with which inputs.

The fixture ``breakdown.mdl`` divides by zero at a known time: ``growth[North]`` is
``1 / MAX(0, breaking time[North] - Time)``, infinite from the first time step
(TIME STEP 1) at or after ``breaking time[North]`` (4 by default), and ``Stock``
infinite one step later. A breaking time after FINAL TIME 10 gives a finite run.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.analysis.sensitivity import load_problem, sample
from migsd.analysis.sweep import evaluate
from migsd.calibration.fit import PARAMETERS_DIR
from migsd.errors import SimulationError
from migsd.explore.controls import ExploreError
from migsd.explore.runner import Runner
from migsd.scenarios import Scenario

DATA = Path(__file__).parent / "data"
MODEL = DATA / "models" / "breakdown.mdl"
FIRST = "'growth'[North] is the first variable to turn non-finite: infinite at time {t:g} (1 more variable(s) non-finite by then)"


@pytest.fixture(scope="module")
def breakdown():
    return migsd.load_model(MODEL)


def _message(time, inputs="none"):
    return f"breakdown.mdl: the run failed: {FIRST.format(t=time)}. Inputs that differ from the .mdl's: {inputs}"


def test_a_run_that_divides_by_zero_raises_naming_variable_element_and_time(breakdown):
    with pytest.raises(SimulationError) as caught:
        breakdown.run()
    assert str(caught.value) == _message(4)


def test_the_message_lists_the_inputs_that_differ_from_the_mdl(breakdown):
    with pytest.raises(SimulationError) as caught:
        breakdown.run(params={"breaking time[North]": 6, "breaking time[South]": 100, "share kept": 0.25},
                      time_step=0.5, saveper=1)
    # South's value is the .mdl's own: not listed; the time step is
    assert str(caught.value) == _message(6, "'breaking time[North]' = 6 (params=); 'share kept' = 0.25 (params=); "
                                            "TIME STEP = 0.5")


def test_pysd_runs_fail_the_same_way(breakdown):
    with pytest.raises(SimulationError, match=r"'growth'\[North\] is the first variable to turn non-finite: "
                                              r"infinite by time 4"):
        breakdown.run(engine="pysd")


def test_non_finite_runs_are_kept_only_when_asked(breakdown):
    with pytest.warns(RuntimeWarning, match=r"'growth'\[North\] .* \(kept: allow_nonfinite=True\)"):
        ds = breakdown.run(allow_nonfinite=True)
    assert np.isinf(ds["growth"].sel(region="North", time=4)) and np.isfinite(ds["Stock"].sel(time=4)).all()


def test_run_batch_marks_the_broken_runs_failed_and_keeps_the_others(breakdown):
    params = xr.Dataset({"breaking time[North]": ("run", [4.0, 50.0, 5.5, 11.0])})
    ds = breakdown.run_batch(params)
    assert ds["failed"].values.tolist() == [True, False, True, False]
    assert ds["failure"].values[0] == _message(4, "'breaking time[North]' = 4 (run_batch params, run 0)")
    assert ds["failure"].values[2] == _message(6, "'breaking time[North]' = 5.5 (run_batch params, run 2)")
    assert ds["failure"].values[1] == ""
    # nothing of a failed run is to be read as a result, not even what is computed once per run
    assert np.isnan(ds["Stock"].isel(run=[0, 2])).all() and np.isnan(ds["doubled share"].isel(run=[0, 2])).all()
    assert float(ds["doubled share"].isel(run=1, time=0)) == 1.0 and (ds["share kept"] == 0.5).all()
    alone = breakdown.run(params={"breaking time[North]": 11.0})
    np.testing.assert_array_equal(ds["Stock"].isel(run=3).values, alone["Stock"].values)
    kept = breakdown.run_batch(params, allow_nonfinite=True)
    assert kept["failed"].values.tolist() == [True, False, True, False]
    assert np.isfinite(kept["Stock"].isel(run=0).sel(time=4)).all()


def test_several_scenarios_in_one_batch_are_marked_per_scenario(breakdown, tmp_path):
    early, late = tmp_path / "early.toml", tmp_path / "late.toml"
    early.write_text('title = "early"\n[parameters]\n"breaking time[North]" = 3\n')
    late.write_text('title = "late"\n[parameters]\n"breaking time[North]" = 30\n')
    ds = breakdown.run_batch(None, scenario=[early, late])
    assert ds["failed"].dims == ("scenario", "run")
    assert ds["failed"].values.tolist() == [[True], [False]]
    assert ds["failure"].values[0, 0] == _message(3, "'breaking time[North]' = 3 (early.toml)")
    assert ds["failure"].values[1, 0] == ""


def migsd_cli(*args):
    return subprocess.run([sys.executable, "-m", "migsd.cli", *args], capture_output=True, text=True)


def test_the_cli_exits_non_zero_with_the_message(tmp_path):
    result = migsd_cli("run", "--time-step", "22", "--quiet")
    assert result.returncode == 2
    # which variable breaks first, and when, depends on the promoted calibration's values; the form does not
    promoted = (PARAMETERS_DIR / "CURRENT").read_text().strip()
    message = re.fullmatch(
        r"migsd: error: migsd\.mdl: the run failed: '([^']+)'\[(\w+)\] is the first variable to turn non-finite: "
        r"NaN at time (\d+) \((\d+) more variable\(s\) non-finite by then\)\. Inputs that differ from the "
        rf"\.mdl's \(on calibration calibration/parameters/{re.escape(promoted)}\): TIME STEP = 22; SAVEPER = 22",
        result.stderr.strip())
    assert message, result.stderr
    assert migsd.load_model().variable(message.group(1)) and 1990 < int(message.group(3)) <= 2100
    assert "yields in" not in result.stdout
    kept = migsd_cli("run", "--time-step", "22", "--quiet", "--keep-nonfinite", "--out", str(tmp_path / "k.nc"))
    assert kept.returncode == 1 and (tmp_path / "k.nc").exists()
    assert "kept for diagnosis" in kept.stderr


def test_a_sweep_counts_broken_runs_failed_with_their_reason_and_keeps_the_rest(breakdown, tmp_path):
    path = tmp_path / "breaking.toml"
    path.write_text('method = "lhs"\nsamples = 6\nscenarios = []\noutputs = ["Stock"]\n'
                    '[[parameter]]\nname = "breaking time"\nelements = ["North"]\nlower = 1\nupper = 12\n')
    problem = load_problem(path, breakdown)
    samples = sample(problem)
    samples[problem.labels[0]] = ("run", [2.0, 11.0, 5.0, 10.5, 11.0, 12.0])  # up to FINAL TIME 10 they break
    store = tmp_path / "breaking.zarr"
    with pytest.warns(RuntimeWarning, match=r"of the sweep failed"):
        results = evaluate(problem, samples, model=breakdown, store=store, chunk_size=4, progress=False)
    np.testing.assert_array_equal(results["status"].values, [[-1, 1, -1, 1, 1, 1]])
    assert np.isnan(results["Stock"].isel(run=[0, 2])).all()
    assert np.isfinite(results["Stock"].isel(run=[1, 3, 4, 5])).all()
    lines = [json.loads(x) for x in (store / "errors.jsonl").read_text().splitlines()]
    assert [line["runs"] for line in lines] == [[0, 1], [2, 3]]
    assert lines[1]["error"] == _message(5, "'breaking time[North]' = 5 (run_batch params, run 2)")
    assert lines[1]["parameters"] == {problem.labels[0]: [5.0]}


def test_the_explorer_shows_the_engine_s_reason(breakdown):
    runner = Runner(breakdown, ["Stock"])
    base = Scenario("base", "base", "", Path("base.toml"), {"breaking time[North]": 30})
    broken = Scenario("explored", "explored", "", Path("explored.toml"), {"breaking time[North]": 3})
    with pytest.raises(ExploreError) as caught:
        runner.compare(broken, base, ("key",))
    assert str(caught.value) == "the run of 'explored' failed: " + _message(
        3, "'breaking time[North]' = 3 (explored.toml)")


# ---------------------------------------------------------------- property: never a non-finite success
BREAKING = np.round(np.random.default_rng(15).uniform(0, 14, 12) * 2) / 2  # half years: some land on a step


@pytest.mark.parametrize("breaking", BREAKING)
def test_no_entry_point_returns_non_finite_values_without_failing(breakdown, breaking, tmp_path):
    params = {"breaking time[North]": float(breaking)}
    try:
        ds = breakdown.run(params=params)
    except SimulationError:
        pass
    else:
        assert all(np.isfinite(v).all() for v in ds.data_vars.values())
    batch = breakdown.run_batch(xr.Dataset({"breaking time[North]": ("run", [float(breaking), 30.0])}))
    for run in range(2):
        one = batch.isel(run=run)
        assert bool(one["failed"]) or all(np.isfinite(v).all() for v in one.data_vars.values())
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'title = "s"\n[parameters]\n"breaking time[North]" = {float(breaking)}\n')
    try:
        both = migsd.run_scenarios([scenario], breakdown, progress=False)
    except SimulationError:
        pass
    else:
        assert all(np.isfinite(v).all() for v in both.data_vars.values())


@pytest.mark.parametrize("breaking", [4.5, 12.0])
def test_the_cli_never_exits_zero_with_non_finite_values(breaking, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(f'title = "s"\n[parameters]\n"breaking time[North]" = {breaking}\n')
    out = tmp_path / "out.nc"
    result = migsd_cli("run", "--model", str(MODEL), "--scenario", str(scenario), "--quiet", "--out", str(out))
    if result.returncode == 0:
        with xr.open_dataset(out) as ds:
            assert all(np.isfinite(v).all() for v in ds.data_vars.values())
    else:
        assert "the first variable to turn non-finite" in result.stderr and not out.exists()
    assert result.returncode == (2 if breaking < 10 else 0)


def test_a_cli_sweep_prints_the_failed_count_and_exits_non_zero(breakdown, tmp_path):
    path = tmp_path / "breaking.toml"
    path.write_text('method = "lhs"\nsamples = 8\nseed = 3\nscenarios = []\noutputs = ["Stock"]\n'
                    '[[parameter]]\nname = "breaking time"\nlower = 2\nupper = 20\n')
    broken = int((sample(load_problem(path, breakdown))["breaking time"] <= 10).sum())
    assert 0 < broken < 8
    result = migsd_cli("sweep", str(path), "--model", str(MODEL), "--out", str(tmp_path / "s.zarr"), "--quiet")
    assert result.returncode == 1
    assert f"done: {8 - broken} runs stored, {broken} failed" in result.stdout
