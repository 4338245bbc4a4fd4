"""Loops that matter: known answers on fixture models, partitions, batches, names and the loop search."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import AnalysisError

from ..conftest import assert_same_loops

MODELS = Path(__file__).parents[1] / "data" / "models"
BAD = Path(__file__).parents[1] / "data" / "bad" / "loops"


def _load(name):
    return migsd.load_model(MODELS / f"{name}.mdl", calibration=None)


@pytest.fixture(scope="module")
def logistic():
    return _load("logistic")


def test_a_first_order_goal_seeking_loop_scores_minus_one_throughout():
    ds = _load("goal_seeking").loops()
    relative = ds["relative loop score"].isel(time=slice(1, None))
    assert ds.sizes["loop"] == 1
    assert str(ds["loop_polarity"].item()) == "B"
    np.testing.assert_allclose(relative.values, -1.0, rtol=1e-12)
    assert np.isnan(ds["relative loop score"].isel(time=0)).all()  # no change yet at the initial time


@pytest.mark.parametrize("time_step", [1.0, 0.25, 0.0625])
def test_an_isolated_loop_scores_one_at_any_time_step(time_step):
    ds = _load("isolated_loop").loops(time_step=time_step)
    np.testing.assert_allclose(ds["loop score"].isel(time=slice(1, None)).values, 1.0, rtol=1e-9)


def test_logistic_growth_switches_from_reinforcing_to_balancing_at_the_inflection(logistic):
    ds = logistic.loops()
    run = logistic.run(return_columns=["births", "deaths"])
    net = (run["births"] - run["deaths"]).values
    times = run["time"].values
    inflection = times[int(np.argmax(net))]
    polarity = ds["loop_polarity"].values.tolist()
    assert sorted(polarity) == ["B", "B", "R"]
    relative = ds["relative loop score"].isel(time=slice(1, None))
    reinforcing = relative.isel(loop=polarity.index("R"))
    # the reinforcing loop dominates while it carries more than half of the behaviour
    switch = float(reinforcing["time"].values[int(np.argmax((reinforcing < 0.5).values))])
    assert (reinforcing.sel(time=slice(None, switch - 0.01)) > 0.5).all()
    assert (reinforcing.sel(time=slice(switch, None)) < 0.5).all()
    step = 0.25
    assert abs(switch - inflection) <= 2 * step, (switch, inflection)


def test_relative_scores_sum_to_one_in_each_partition_per_element():
    ds = migsd.load_model(MODELS / "decay.mdl", calibration=None).loops()
    assert ds.sizes["loop"] == 2  # one loop per element of Region
    assert sorted(ds["loop_partition"].values.tolist()) == [0, 1]
    assert {v.split("[")[1] for v in ds["loop_variables"].values} == {"North] -> outflow", "South] -> outflow"} or \
        all("[" in v for v in ds["loop_variables"].values)
    relative = abs(ds["relative loop score"]).isel(time=slice(1, None))
    total = relative.groupby(ds["loop_partition"]).sum()
    np.testing.assert_allclose(total.values, 1.0, rtol=1e-12)


def test_logistic_partition_sums_to_one(logistic):
    relative = abs(logistic.loops()["relative loop score"]).isel(time=slice(1, None))
    np.testing.assert_allclose(relative.sum("loop").values, 1.0, rtol=1e-12)


def test_each_run_of_a_batch_equals_its_single_run(logistic):
    rates = [0.1, 0.15, 0.3]
    batch = logistic.loops(params=xr.Dataset({"birth rate": ("run", rates)}))
    for k, rate in enumerate(rates):
        single = logistic.loops(params=xr.Dataset({"birth rate": ("run", [rate])})).isel(run=0)
        np.testing.assert_allclose(batch["loop score"].isel(run=k).values, single["loop score"].values,
                                   rtol=1e-12, equal_nan=True)
    plain = logistic.loops()
    np.testing.assert_allclose(batch["relative loop score"].isel(run=0).values, plain["relative loop score"].values,
                               rtol=1e-12, equal_nan=True)
    assert not np.allclose(batch["loop score"].isel(run=0, time=slice(1, None)).values,
                           batch["loop score"].isel(run=2, time=slice(1, None)).values)


def test_quantiles_reduce_over_runs_while_integrating(logistic):
    params = xr.Dataset({"birth rate": ("run", np.linspace(0.1, 0.3, 7))})
    full = logistic.loops(params=params)
    reduced = logistic.loops(params=params, quantiles=[0.1, 0.5, 0.9])
    assert "run" not in reduced.dims
    expected = full["relative loop score"].isel(time=slice(1, None)).quantile([0.1, 0.5, 0.9], dim="run")
    np.testing.assert_allclose(reduced["relative loop score"].isel(time=slice(1, None))
                               .transpose("quantile", "time", "loop").values,
                               expected.transpose("quantile", "time", "loop").values, rtol=1e-6, atol=1e-7,
                               equal_nan=True)  # quantiles are taken in single precision


def test_the_dominant_loop_of_a_variable_and_its_probability():
    ds = _load("goal_seeking").loops(variable="Stock", params=xr.Dataset({"goal": ("run", [50.0, 80.0])}))
    assert (ds["dominant loop"].isel(time=slice(1, None)) == ds["loop"].values[0]).all()
    np.testing.assert_allclose(ds["dominance probability"].isel(time=slice(1, None)).values, 1.0)


def test_link_scores_on_request_multiply_to_the_loop_score(logistic):
    ds = logistic.loops(link_scores=True)
    assert "link score" in ds
    links = ds["link score"].isel(time=slice(1, None))
    for k, text in enumerate(ds["loop_variables"].values):
        nodes = text.split(" -> ")
        names = [f"{a} -> {b}" for a, b in zip(nodes, nodes[1:])]
        product = links.sel(link=names).prod("link")
        np.testing.assert_allclose(product.values, ds["loop score"].isel(loop=k, time=slice(1, None)).values)


def test_past_the_budget_the_strongest_path_search_takes_over_and_says_so():
    model = migsd.load_model(MODELS / "logistic.mdl", calibration=None)
    ds = model.loops(max_loops=1)
    assert "strongest-path search" in ds.attrs["loop_search"]
    assert ds.sizes["loop"] >= 1
    assert model.loops().attrs["loop_search"] == "exhaustive"


def test_loop_ids_are_stable_and_names_come_from_a_loops_file(logistic, tmp_path):
    names = tmp_path / "loops.toml"
    names.write_text('[[loop]]\nname = "R growth"\nthrough = ["births"]\n\n[[loop]]\nname = "B crowding"\n'
                     'through = ["crowding"]\n', encoding="utf-8")
    ds = logistic.loops(names=names)
    again = logistic.loops(names=names)
    assert ds["loop_id"].values.tolist() == again["loop_id"].values.tolist()
    assert "R growth" in ds["loop"].values and "B crowding" in ds["loop"].values
    assert str(ds["loop_polarity"].sel(loop="R growth").item()) == "R"


def test_a_loops_file_naming_an_unknown_variable_is_refused_with_close_matches(logistic):
    with pytest.raises(AnalysisError) as error:
        logistic.loops(names=BAD / "unknown_variable.toml")
    message = str(error.value)
    assert "unknown_variable.toml" in message and "'birth'" in message and "Did you mean 'births'" in message


def test_an_unknown_variable_for_dominance_is_refused(logistic):
    with pytest.raises(AnalysisError, match="Did you mean 'Population'"):
        logistic.loops(variable="Populaton")


def test_the_shipped_loops_file_names_only_variables_of_the_model(model):
    from migsd.analysis.loops import LOOPS_FILE, read_names

    named = read_names(LOOPS_FILE, model)
    assert any(name.startswith("B1 shortage -> restriction") for name, _, _ in named)
    assert any(name.startswith("R2 perceived contribution") for name, _, _ in named)


def test_the_loops_command_writes_scores_and_the_stacked_figure(tmp_path, capsys):
    from migsd.cli import main

    out = tmp_path / "logistic"
    assert main(["loops", "--model", str(MODELS / "logistic.mdl"), "--variable", "Population", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 loops (exhaustive), migsd batched engine" in printed and "loops that matter for Population" in printed
    stored = xr.open_dataset(out / "loops.nc")
    assert set(stored["loop_polarity"].values) == {"R", "B"} and (out / "loops.png").stat().st_size > 0
    stored.close()
    assert main(["loops", "--model", str(MODELS / "logistic.mdl"), "--variable", "Population", "--out", str(out)]) == 2
    assert "exists; add --overwrite" in capsys.readouterr().err


def test_a_smooth_stage_is_a_stock_of_its_own_on_the_loop():
    ds = _load("smooth_loop").loops()
    paths = ds["loop_variables"].values.tolist()
    assert "perceived stock (stage 1) -> perceived stock (stage 1)" in paths  # the stage's own adjustment
    assert any("Stock -> perceived stock (stage 1)" in p and "adjustment -> Stock" in p for p in paths)
    assert set(ds["loop_polarity"].values) == {"B"}
    active = abs(ds["relative loop score"]).sum("loop").isel(time=slice(2, None))
    np.testing.assert_allclose(active.values, 1.0, rtol=1e-12)


def test_a_held_variable_cuts_its_loop():
    ds = migsd.load_model(MODELS / "decay.mdl", calibration=None).loops(force={"outflow[North]": 5.0})
    north = [k for k, v in enumerate(ds["loop_variables"].values) if "[North]" in v]
    south = [k for k, v in enumerate(ds["loop_variables"].values) if "[South]" in v]
    np.testing.assert_array_equal(ds["loop score"].isel(loop=north, time=slice(1, None)).values, 0.0)
    np.testing.assert_allclose(ds["relative loop score"].isel(loop=south, time=slice(1, None)).values, -1.0)


def test_dominance_shifts_count_changes_of_loop_family():
    from migsd.analysis.loops import dominance_shifts

    ds = xr.Dataset(
        {"dominant loop": (("run", "time"), [["", "a1", "a2", "b", "b"], ["", "a1", "a1", "a2", "a1"]])},
        coords={"time": [0, 1, 2, 3, 4], "run": [0, 1], "loop": ["a1", "a2", "b"],
                "loop_family": ("loop", ["A", "A", "b"])})
    shifts = dominance_shifts(ds)
    assert shifts.values[0] == 3 and np.isnan(shifts.values[1])
    assert np.isnan(dominance_shifts(ds, after=3).values).all()


@pytest.mark.parametrize("case", [
    ("logistic", {}),
    ("goal_seeking", {"variable": "Stock", "params": xr.Dataset({"goal": ("run", [50.0, 80.0, 65.0])})}),
    ("decay", {"force": {"outflow[North]": 5.0}}),
    ("smooth_loop", {"link_scores": True}),
    ("logistic", {"params": xr.Dataset({"birth rate": ("run", np.linspace(0.1, 0.3, 5))}),
                  "quantiles": [0.1, 0.5, 0.9]}),
], ids=["one-run", "dominance-over-runs", "held", "smooth-stage-link-scores", "quantiles"])
def test_the_compiled_kernel_gives_the_numpy_backend_s_loop_scores(case):
    name, options = case
    model = _load(name)
    assert_same_loops(model.loops(engine="numpy", **options), model.loops(engine="compiled", **options))


def test_loop_scores_on_the_kernel_do_not_depend_on_how_runs_are_chunked(logistic, monkeypatch):
    from migsd.engine import linkscores

    params = xr.Dataset({"birth rate": ("run", np.linspace(0.1, 0.3, 5))})
    whole = logistic.loops(params=params, engine="compiled")
    monkeypatch.setattr(linkscores, "READBACK_BYTES", 1)  # one run per kernel call
    split = logistic.loops(params=params, engine="compiled")
    np.testing.assert_array_equal(whole["loop score"].values, split["loop score"].values)


def test_loop_scores_refuse_pysd_naming_the_valid_engines(logistic):
    for engine in ("pysd", "fast"):
        with pytest.raises(migsd.ModelError, match=f"'auto', 'compiled', 'numpy', got '{engine}'"):
            logistic.loops(engine=engine)
