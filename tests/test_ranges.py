"""Declared ranges are the contract everywhere: a value outside the .mdl's ``[min,max]`` is refused before any run.

The scenario-file fixtures (``tests/data/bad/out_of_range.toml`` and
``initial_out_of_range.toml``) are checked in ``test_scenarios.py``; here every
other way in: ``params=``, ``initial=``, ``--set``, run_batch, sensitivity
problems, calibration priors, the explorer, and the shipped files.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.analysis.sensitivity import load_problem
from migsd.calibration.fit import latest, load_priors, read_parameters
from migsd.errors import RangeError, ScenarioError
from migsd.explore.controls import ExploreError, lever_controls
from migsd.paths import REPO_ROOT, SCENARIOS_DIR, SENSITIVITY_DIR
from migsd.scenarios import list_scenarios, validate

BREAKDOWN = Path(__file__).parent / "data" / "models" / "breakdown.mdl"
SHARE = r"'share kept' = {v} is outside its range \[0, 1\] \(Dmnl, declared in tests/data/models/breakdown.mdl\); not run"


@pytest.fixture(scope="module")
def breakdown():
    return migsd.load_model(BREAKDOWN)


def test_params_outside_the_declared_range_are_refused_before_the_run(breakdown):
    with pytest.raises(RangeError, match="^params=: " + SHARE.format(v="1.5") + "$"):
        breakdown.run(params={"share kept": 1.5})
    with pytest.raises(RangeError, match="^params=: " + SHARE.format(v="2") + "$"):  # any point of a path
        breakdown.run(params={"share kept": [[0, 0.5], [5, 2]]})
    with pytest.raises(RangeError, match=r"'breaking time\[South\]' = -1 is outside its range \[0, 1000\] \(Year,"):
        breakdown.run(params={"breaking time": {"South": -1}})


def test_the_ends_of_a_range_are_inside_it(breakdown):
    breakdown.run(params={"share kept": 0, "breaking time[North]": 1000}, final_time=2)
    breakdown.run(params={"share kept": 1}, final_time=2)


def test_initial_values_outside_the_range_are_refused(model):
    with pytest.raises(RangeError, match=r"^initial=: \[initial\]: 'Restrictiveness\[North\]' = -0.5 is outside its "
                                         r"range \[0, 1\] \(Dmnl, declared in models/migsd.mdl\); not run$"):
        model.run(initial={"Restrictiveness[North]": -0.5}, final_time=1991)


def test_run_batch_values_outside_the_range_are_refused_naming_the_run(breakdown):
    params = xr.Dataset({"share kept": ("run", [0.5, 0.7, -0.25, 3.0])})
    with pytest.raises(RangeError, match=r"^params\['share kept'\], run 2 \(2 value\(s\) outside\): "
                                         + SHARE.format(v="-0.25") + "$"):
        breakdown.run_batch(params)


def test_set_on_the_command_line_is_refused_with_the_range():
    result = subprocess.run([sys.executable, "-m", "migsd.cli", "run", "--set", "enforcement push=1.5",
                             "--final-time", "1991", "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("migsd: error: --set: 'enforcement push' = 1.5 is outside its range [0, 1] "
                                     "(Dmnl, declared in models/migsd.mdl); not run")


@pytest.mark.parametrize("table, message", [
    ('name = "share kept"\nlower = 0.5\nupper = 1.5\n',
     r"parameter 'share kept', upper bound 1.5: " + SHARE.format(v="1.5")),
    ('name = "breaking time"\nelements = ["South"]\nmode = "multiplier"\nlower = 0.5\nupper = 20\n',
     r"parameter 'breaking time\[South\] \(multiplier\)', upper bound 20 \(x 100\): 'breaking time\[South\]' = 2000 "
     r"is outside its range \[0, 1000\]"),
    ('name = "breaking time"\nelements = ["North"]\nlower = 1\nupper = 1001\n',
     r"parameter 'breaking time\[North\]', upper bound 1001: 'breaking time\[North\]' = 1001 is outside"),
    ('name = "share kept"\ndistribution = "normal"\nmean = 0.5\nsd = 0.2\n',
     r"lower bound -0.1: " + SHARE.format(v="-0.1")),  # mean - 3 sd, as the explorer's slider spans
])
def test_sensitivity_bounds_outside_the_range_are_refused(breakdown, tmp_path, table, message):
    path = tmp_path / "problem.toml"
    path.write_text(f'method = "lhs"\nsamples = 4\nscenarios = []\noutputs = ["Stock"]\n[[parameter]]\n{table}')
    with pytest.raises(RangeError, match=message) as caught:
        load_problem(path, breakdown)
    assert str(path) in str(caught.value)


def test_priors_outside_the_range_are_refused(breakdown, tmp_path):
    path = tmp_path / "priors.toml"
    path.write_text('[[parameter]]\nname = "share kept"\nlower = 0.2\nupper = 1.2\nwhy = "x"\n')
    with pytest.raises(RangeError, match=r"priors.toml: \[\[parameter\]\] 1 \('share kept'\): "
                                         + SHARE.format(v="1.2") + "$"):
        load_priors(path, breakdown)


def test_the_explorer_refuses_with_the_same_check(model):
    control = next(c for c in lever_controls(model) if c.key == "enforcement push[North]")
    with pytest.raises(ExploreError, match=r"^'enforcement push\[North\]' = 1.5 is outside its range \[0, 1\] "
                                           r"\(Dmnl, declared in models/migsd.mdl\); not run$"):
        control.check(1.5)
    assert not issubclass(ExploreError, RangeError) and issubclass(RangeError, ScenarioError)


def test_the_shipped_files_keep_to_the_declared_ranges(model):
    for scenario in list_scenarios(SCENARIOS_DIR):
        validate(scenario, model)
    for problem in SENSITIVITY_DIR.glob("*.toml"):
        load_problem(problem, model, samples=4)
    uncalibrated = migsd.load_model(calibration=None)
    load_priors(REPO_ROOT / "calibration" / "priors.toml", uncalibrated)
    calibrated = [p for p in (REPO_ROOT / "calibration" / "parameters").glob("calibrated_v*.csv")
                  if p.stem.removeprefix("calibrated_v").isdigit()]
    assert calibrated
    for path in sorted(calibrated):
        table = read_parameters(path)
        from migsd.parameters import ParameterSet

        for row in table.index:
            ParameterSet(uncalibrated).apply({k: float(v) for k, v in table.loc[row].items()}, source=str(path))
    assert latest() is not None and np.isfinite(read_parameters(latest()).values).all()
