"""The batched engine: agreement with pysd, independence of runs, input checks, fallback."""

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import ModelError, ScenarioError
from migsd.testing import assert_runs_agree, relative_difference

from ..conftest import DATA

SCENARIOS = migsd.list_scenarios()


def perturbed(model, runs: int, seed: int) -> xr.Dataset:
    """A batch: run 0 keeps the defaults, the others move uncertain constants (scalar, element, whole range)."""
    rng = np.random.default_rng(seed)
    factors = rng.uniform(0.7, 1.3, size=(runs, 4))
    factors[0] = 1.0
    region = model.subscripts["Region"]
    culturalist = model.defaults["culturalist weight"].values
    return xr.Dataset(
        {
            "material weight": ("run", 3.0 * factors[:, 0]),
            "present bias weight": ("run", 0.7 * factors[:, 1]),
            "tightening time": ("run", 4.0 * factors[:, 2]),
            "culturalist weight": (("run", "region"), culturalist[None, :] * factors[:, 3:4]),
            "route mortality[North]": ("run", 0.008 * factors[:, 0]),
        },
        coords={"region": region},
    )


def as_params(batch: xr.Dataset, run: int) -> dict:
    """The same values as Model.run params."""
    params = {}
    for name, values in batch.data_vars.items():
        row = values.isel(run=run)
        params[name] = row if row.dims else float(row)
    return params


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_batch_agrees_with_separate_pysd_runs(model, scenario):
    batch = perturbed(model, runs=3, seed=SCENARIOS.index(scenario))
    engine = model.run_batch(batch, scenario=scenario, final_time=2000)
    sample = SCENARIOS.index(scenario) % 3  # each scenario checks a different member of its batch
    reference = model.run(scenario=scenario, params=as_params(batch, sample), final_time=2000, engine="pysd")
    assert_runs_agree(engine.isel(run=sample), reference, rtol=1e-9)


@pytest.mark.slow
def test_full_horizon_agrees_with_pysd(model):
    reference = model.run(scenario="status_quo", engine="pysd")
    assert reference.attrs["engine"].startswith("pysd")
    engine = model.run(scenario="status_quo")
    assert engine.attrs["engine"].startswith("migsd batched engine")
    assert_runs_agree(engine, reference, rtol=1e-9)


def test_agreement_check_catches_a_difference(model):
    run = model.run(final_time=1995, return_columns=["Restrictiveness"])
    nudged = run.copy(deep=True)
    nudged["Restrictiveness"][-1, 0] *= 1 + 1e-8
    assert relative_difference(nudged["Restrictiveness"], run["Restrictiveness"]) > 1e-9
    with pytest.raises(AssertionError, match="'Restrictiveness' differs"):
        assert_runs_agree(nudged, run)


def test_runs_do_not_depend_on_their_batch_or_chunk(model):
    batch = perturbed(model, runs=5, seed=7)
    whole = model.run_batch(batch, final_time=2030, chunk_size=5)
    pairs = model.run_batch(batch, final_time=2030, chunk_size=2)
    alone = model.run_batch(batch.isel(run=[3]), final_time=2030)
    for name in whole.data_vars:
        np.testing.assert_array_equal(whole[name].values, pairs[name].values, err_msg=name)
        np.testing.assert_array_equal(whole[name].values[3:4], alone[name].values, err_msg=name)


def test_several_scenarios_in_one_batch_give_each_scenario_alone(model, tmp_path):
    """Scenarios whose constants vary over time at different years share one integration, run for run."""
    late = tmp_path / "late_funding.toml"
    late.write_text('title = "Late funding"\n[parameters]\n"IOM funding" = [[2021, 0.0], [2027.5, 5e9]]\n'
                    '"enforcement push[Gulf]" = 0.3\n')
    batch = perturbed(model, runs=3, seed=5)
    columns = ["Restrictiveness", "IOM funding", "enforcement push", "IOM Capacity"]
    names = ["status_quo", "iom_south_south", late]
    together = model.run_batch(batch, scenario=names, return_columns=columns, final_time=2030)
    assert together["Restrictiveness"].dims == ("scenario", "run", "time", "region")
    assert list(together["scenario"].values) == ["status_quo", "iom_south_south", "late_funding"]
    for name in names:
        alone = model.run_batch(batch, scenario=name, return_columns=columns, final_time=2030)
        label = getattr(name, "stem", name)
        for column in columns:
            joint, single = xr.broadcast(together[column].sel(scenario=label), alone[column])
            # points re-sampled on the union of the scenarios' times: the same line, to rounding
            np.testing.assert_allclose(joint.values, single.values, rtol=1e-13, atol=0, err_msg=f"{label}: {column}")
    assert "models/scenarios/iom_south_south.toml" in together.attrs["scenario_files"]


def test_scenarios_setting_different_initial_stocks_are_refused_together(model, tmp_path):
    seeded = tmp_path / "seeded.toml"
    seeded.write_text('[initial]\n"IOM Capacity" = 5\n')
    with pytest.raises(ScenarioError, match="initial values of different elements of stock 'iom_capacity'"):
        model.run_batch(None, scenario=["status_quo", seeded], final_time=1992)


def test_a_few_kept_outputs_equal_the_same_outputs_of_a_full_run(model):
    """Keeping fewer outputs prunes what each time step computes, never what the kept ones are."""
    batch = perturbed(model, runs=3, seed=11)
    few = model.run_batch(batch, scenario="iom_south_south", final_time=2040,
                          return_columns=["south south share of flows", "Rights Observance"])
    every = model.run_batch(batch, scenario="iom_south_south", final_time=2040)
    for name in few.data_vars:
        np.testing.assert_array_equal(few[name].values, every[name].values, err_msg=name)


def test_batch_output_has_run_dim_and_single_run_metadata(model):
    batch = perturbed(model, runs=2, seed=1)
    ds = model.run_batch(batch, return_columns=["Restrictiveness", "material weight"], final_time=1995)
    single = model.run(return_columns=["Restrictiveness", "material weight"], final_time=1995)
    assert ds["Restrictiveness"].dims == ("run", "time", "region")
    assert ds["material weight"].dims == ("run",)
    np.testing.assert_allclose(ds["material weight"].values, batch["material weight"].values)
    for name in single.data_vars:
        assert ds[name].attrs == single[name].attrs
    migsd.testing.assert_metadata_complete(ds)


def test_a_run_coordinate_is_kept(model):
    batch = perturbed(model, runs=2, seed=1).assign_coords(run=["low", "high"])
    ds = model.run_batch(batch, return_columns=["Restrictiveness"], final_time=1992)
    assert list(ds["run"].values) == ["low", "high"]


def test_stocks_in_a_batch_set_initial_values(model):
    batch = xr.Dataset({"IOM Capacity": ("run", [0.0, 5.0])})
    ds = model.run_batch(batch, return_columns=["IOM Capacity"], final_time=1992)
    np.testing.assert_allclose(ds["IOM Capacity"].sel(time=1990).values, [0.0, 5.0])


@pytest.mark.parametrize(
    "params, message",
    [
        (xr.Dataset({"materal weight": ("run", [1.0])}), r"params\['materal weight'\]: 'materal weight' is not a variable.*material weight"),
        (xr.Dataset({"route mortality[Mars]": ("run", [1.0])}), r"'Mars' is not an element of Region"),
        (xr.Dataset({"material weight": ("run", [1.0, np.nan])}), r"1 value\(s\) are NaN or infinite"),
        (xr.Dataset({"culturalist weight": (("run", "region"), np.ones((2, 3)))}), r"'region' has length 3; Region has 4"),
        (xr.Dataset({"material weight": (("run", "age"), np.ones((2, 3)))}), r"unexpected dim\(s\) \['age'\]"),
        (xr.Dataset({"labour gap": ("run", [0.5])}), r"computed by an equation"),
        (xr.Dataset({"material weight": ("sample", [1.0])}), r"no 'run' dim"),
        (xr.Dataset({"material weight": ("run", ["high"])}), r"must be real numbers"),
    ],
)
def test_bad_batch_input_fails_before_integration(model, params, message):
    with pytest.raises(ScenarioError, match=message):
        model.run_batch(params, final_time=1992)


def test_refused_construct_falls_back_to_pysd_with_a_warning():
    model = migsd.load_model(DATA / "models" / "active_initial.mdl")
    assert model.engine is None
    with pytest.warns(RuntimeWarning, match=r"'inflow' uses the function ACTIVE_INITIAL.*running it with pysd"):
        ds = model.run()
    assert ds.attrs["engine"].startswith("pysd")
    with pytest.raises(ModelError, match="ACTIVE_INITIAL"):
        model.run(engine="batched")
    with pytest.raises(ModelError, match="run_batch needs the batched engine"):
        model.run_batch(xr.Dataset({"TIME STEP": ("run", [1.0])}))


def test_generated_code_lives_in_the_cache_not_beside_the_model(model, tmp_path, monkeypatch):
    monkeypatch.setenv("MIGSD_CACHE_DIR", str(tmp_path))
    fresh = migsd.load_model(DATA / "models" / "decay.mdl")
    fresh.run()
    written = list(tmp_path.rglob("engine*.py"))
    assert written and all(path.read_text().startswith("# Generated by migsd") for path in written)
    assert not list((DATA / "models").glob("*.py"))


def test_points_over_time_vary_a_constant_inside_the_engine(decay_model):
    flat = decay_model.run(return_columns=["total loss"])
    ramped = decay_model.run(params={"extra loss": [[0, 0], [10, 10]]}, return_columns=["total loss", "extra loss"])
    np.testing.assert_allclose(ramped["extra loss"].values, np.arange(11.0))
    np.testing.assert_allclose(ramped["total loss"] - flat["total loss"], np.arange(11.0))


@pytest.mark.filterwarnings("ignore:_hardcodedlookup_response")  # pysd: the lookup is held at its end value
def test_common_vensim_constructs_agree_with_pysd():
    """STEP, RAMP, PULSE (TRAIN), SMOOTH(3I), DELAY1/3I/FIXED, TREND, INITIAL, SAMPLE IF TRUE, XIDZ/ZIDZ,
    MIN/MAX, IF THEN ELSE with :AND:, VMIN/VMAX/PROD/SUM over ranges and subranges, mappings,
    :EXCEPT:, lookups held at their ends and WITH LOOKUP, in tests/data/models/functions.mdl."""
    model = migsd.load_model(DATA / "models" / "functions.mdl")
    assert model.engine is not None, model.engine_refusal
    assert_runs_agree(model.run(), model.run(engine="pysd"), rtol=1e-9)
    batch = xr.Dataset({"region weight": (("run", "region"), [[1, 2, 3, 4], [2, 0.5, 1, 3]])})
    varied = model.run_batch(batch)
    reference = model.run(params={"region weight": {"A": 2, "B": 0.5, "C": 1, "D": 3}}, engine="pysd")
    assert_runs_agree(varied.isel(run=1), reference, rtol=1e-9)


def test_chunks_in_several_processes_give_the_same_runs(model):
    batch = perturbed(model, runs=4, seed=3)
    here = model.run_batch(batch, final_time=1995, chunk_size=2, return_columns=["Restrictiveness", "IOM Capacity"])
    spread = model.run_batch(
        batch, final_time=1995, chunk_size=2, workers=2, return_columns=["Restrictiveness", "IOM Capacity"]
    )
    for name in here.data_vars:
        np.testing.assert_array_equal(here[name].values, spread[name].values, err_msg=name)


def test_every_variable_of_a_batch_output_takes_pint_units(model, tmp_path):
    import pint_xarray  # noqa: F401  (registers the .pint accessor)

    ds = model.run_batch(perturbed(model, runs=2, seed=5), final_time=1991)
    quantified = ds.pint.quantify(unit_registry=migsd.ureg)
    assert all(quantified[name].pint.units is not None for name in ds.data_vars)
    migsd.to_netcdf(ds, tmp_path / "batch.nc")
    reopened = migsd.open_results(tmp_path / "batch.nc", quantify=True)
    assert reopened["Foreign Born"].pint.units == migsd.ureg.person
    assert reopened["Foreign Born"].dims == ("run", "time", "destination", "origin")


@pytest.mark.parametrize("grid", [[2000.0, 2010.0, 2025.0, 2050.0], [2000.0]])
def test_a_lookup_of_time_for_every_step_at_once_equals_one_step_at_a_time(grid):
    from migsd.engine.runtime import _lookup_grid, _lookup_grid_steps

    grid = np.asarray(grid)
    tables = np.random.default_rng(3).uniform(0.01, 2.0, size=(1, 4, 3, grid.size))
    times = [1990.0, 2000.0, 2003.125, 2010.0, 2024.875, 2050.0, 2100.0]
    at_once = _lookup_grid_steps(times, grid, tables)
    for step, time in enumerate(times):
        np.testing.assert_array_equal(at_once[step], _lookup_grid(time, grid, tables), err_msg=str(time))
