"""Control variables written as expressions, as Vensim's templates write them, with known answers."""

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import ModelError

from .conftest import DATA


def euler_decay(initial, residence, time_step, elapsed):
    return initial * (1 - time_step / residence) ** (np.asarray(elapsed) / time_step)


@pytest.fixture(scope="module")
def saveper_model():
    return migsd.load_model(DATA / "models" / "saveper_time_step.mdl")


@pytest.fixture(scope="module")
def horizon_model():
    return migsd.load_model(DATA / "models" / "horizon.mdl")


@pytest.mark.parametrize("engine", ["auto", "pysd"])
def test_saveper_equal_to_time_step_saves_every_step(saveper_model, engine):
    assert saveper_model.time_settings == {"initial_time": 0, "final_time": 10, "time_step": 0.5, "saveper": 0.5}
    ds = saveper_model.run(engine=engine)
    np.testing.assert_allclose(ds["time"], np.arange(0, 10.25, 0.5))
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(100, 10, 0.5, ds["time"]), rtol=1e-9)


@pytest.mark.parametrize("engine", ["auto", "pysd"])
def test_saveper_follows_a_time_step_given_to_the_run(saveper_model, engine):
    ds = saveper_model.run(time_step=0.25, engine=engine)
    np.testing.assert_allclose(ds["time"], np.arange(0, 10.1, 0.25))
    assert ds.attrs["saveper"] == 0.25


def test_saveper_equal_to_time_step_in_a_batch(saveper_model):
    params = xr.Dataset({"residence time[North]": ("run", [10.0, 4.0])})
    ds = saveper_model.run_batch(params, return_columns=["Amount"])
    np.testing.assert_allclose(ds["time"], np.arange(0, 10.25, 0.5))
    np.testing.assert_allclose(ds["Amount"].sel(region="North", run=1), euler_decay(100, 4, 0.5, ds["time"]),
                               rtol=1e-12)


@pytest.mark.parametrize("engine", ["auto", "pysd"])
def test_final_time_from_initial_time_and_a_constant(horizon_model, engine):
    settings = horizon_model.time_settings
    assert settings == {"initial_time": 2, "final_time": 8, "time_step": 0.25, "saveper": 1}
    ds = horizon_model.run(engine=engine)
    np.testing.assert_allclose(ds["time"], np.arange(2, 9))
    np.testing.assert_allclose(ds["Amount"].sel(region="South"), euler_decay(50, 5, 0.25, ds["time"] - 2),
                               rtol=1e-9)


@pytest.mark.parametrize("engine", ["auto", "pysd"])
def test_a_constant_a_control_variable_reads_moves_it(horizon_model, engine):
    ds = horizon_model.run(params={"horizon": 3}, engine=engine)
    np.testing.assert_allclose(ds["time"], [2, 3, 4, 5])
    assert ds.attrs["final_time"] == 5


def test_an_explicit_control_variable_wins_and_the_others_follow(horizon_model):
    ds = horizon_model.run(final_time=4, saveper=0.5)
    np.testing.assert_allclose(ds["time"], np.arange(2, 4.1, 0.5))
    assert ds.attrs["time_step"] == 0.125  # TIME STEP = SAVEPER / 4
    np.testing.assert_allclose(ds["Amount"].sel(region="North"), euler_decay(100, 10, 0.125, ds["time"] - 2),
                               rtol=1e-12)


def test_a_batch_with_one_horizon_runs_to_it(horizon_model):
    ds = horizon_model.run_batch(xr.Dataset({"horizon": ("run", [4.0, 4.0])}), return_columns=["Amount"])
    np.testing.assert_allclose(ds["time"], np.arange(2, 7))


def test_a_batch_whose_runs_need_different_final_times_is_refused(horizon_model):
    with pytest.raises(ModelError, match=r"'FINAL TIME' is computed from \['horizon'\], which differ between runs"):
        horizon_model.run_batch(xr.Dataset({"horizon": ("run", [4.0, 5.0])}))


def test_a_control_variable_from_points_over_time_is_refused(horizon_model):
    with pytest.raises(ModelError, match=r"'FINAL TIME' is computed from 'horizon', which is given as points"):
        horizon_model.run(params={"horizon": [[2, 3], [5, 4]]})


def test_a_control_variable_read_from_time_is_refused_by_name():
    model = migsd.load_model(DATA / "models" / "final_time_of_time.mdl")
    assert "'FINAL TIME' uses a control variable computed from other variables or Time" in (
        model.engine_refusal if model.engine is None else "")
    with pytest.raises(ModelError, match=r"final_time_of_time.mdl: 'FINAL TIME' is computed from Time; migsd needs"):
        model.run()


def test_scenarios_of_one_batch_that_need_different_final_times_are_refused(horizon_model, tmp_path):
    paths = []
    for name, horizon in (("short", 3), ("long", 4)):
        path = tmp_path / f"{name}.toml"
        path.write_text(f'title = "{name}"\ndescription = "horizon {horizon}"\n\n[parameters]\nhorizon = {horizon}\n')
        paths.append(path)
    with pytest.raises(ModelError, match=r"run_batch: the scenarios give different time settings"):
        horizon_model.run_batch(None, scenario=paths)
    both = horizon_model.run_batch(None, scenario=paths, final_time=6)
    np.testing.assert_allclose(both["time"], np.arange(2, 7))
