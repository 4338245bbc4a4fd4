"""A run or batch whose arrays would not fit is refused before anything is allocated, saying what to change."""

import time

import pytest
import xarray as xr

from migsd.engine.batch import check_size, memory_share
from migsd.errors import SizeError


def test_an_absurd_horizon_is_refused_at_once(decay_model):
    began = time.perf_counter()
    with pytest.raises(SizeError) as caught:
        decay_model.run(final_time=1e308)
    assert time.perf_counter() - began < 5  # never stepped through: refused from the arithmetic
    message = str(caught.value)
    assert message.startswith("the run would need more memory than any machine has for its arrays (1 run(s) x inf "
                              "saved times x ")
    assert message.endswith("; not run. Make it smaller: a longer saveper (now 1), fewer return_columns, a smaller "
                            "chunk_size (now 1 run(s) at once) or an earlier final_time (now 1e+308)")


def test_the_pysd_path_is_refused_the_same_way(decay_model):
    with pytest.raises(SizeError, match=r"^the run would need more memory than any machine has"):
        decay_model.run(final_time=1e308, engine="pysd")


def test_a_batch_over_the_configured_share_is_refused_with_its_size(decay_model, monkeypatch):
    monkeypatch.setattr("migsd.engine.batch.available_memory", lambda: 1024.0**3)  # 1 GiB available
    params = xr.Dataset({"residence time": ("run", [10.0] * 1000)})
    # 1,000 runs x 100,001 saved times x 2 cells of Amount = 1.49 GiB: over half of 1 GiB
    with pytest.raises(SizeError) as caught:
        decay_model.run_batch(params, return_columns=["Amount"], final_time=1e5, saveper=1)
    assert str(caught.value) == (
        "the batch of 1,000 runs would need about 1.5 GiB for its arrays (1,000 run(s) x 1e+05 saved times x 2 cells "
        "of return_columns, 2e+05 time steps), more than 50% of the 1 GiB of memory available "
        "(MIGSD_MEMORY_SHARE=0.5); not run. Make it smaller: a longer saveper (now 1), fewer return_columns, a smaller "
        "chunk_size (now 1,000 run(s) at once) or an earlier final_time (now 100000)")
    smaller = {"return_columns": ["Amount"], "final_time": 1000, "saveper": 1}  # 16 MB of saved values: runs
    decay_model.run_batch(params, **smaller)
    monkeypatch.setenv("MIGSD_MEMORY_SHARE", "0.01")
    with pytest.raises(SizeError, match=r"more than 1% of the 1 GiB of memory available \(MIGSD_MEMORY_SHARE=0.01\)"):
        decay_model.run_batch(params, **smaller)


def test_the_share_is_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("MIGSD_MEMORY_SHARE", "0.25")
    assert memory_share() == 0.25
    monkeypatch.setenv("MIGSD_MEMORY_SHARE", "2")
    with pytest.raises(SizeError, match=r"MIGSD_MEMORY_SHARE='2': give a share of memory between 0 and 1, e.g. 0.5"):
        memory_share()


def test_the_estimate_counts_saved_values_and_working_arrays():
    settings = {"initial_time": 0.0, "final_time": 10.0, "time_step": 0.5, "saveper": 1.0}
    # 3 runs x 11 saved times x 4 cells, 2 constants per run, 3 x (2 runs x 5 cells) working, 21 steps
    assert check_size(settings, 3, saved_cells=4, once_cells=2, chunk=2, working_cells=5) == (
        8.0 * (3 * 11 * 4 + 3 * 2 + 3 * 2 * 5) + 60.0 * 21)
