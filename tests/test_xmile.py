"""XMILE models (Stella's format) load through pysd's XMILE reader into the same engine, with known answers."""

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.errors import ModelError

from .conftest import DATA


@pytest.fixture(scope="module")
def xmile_model():
    return migsd.load_model(DATA / "models" / "decay.xmile")


def euler_decay(initial, residence, time_step, elapsed):
    return initial * (1 - time_step / residence) ** (np.asarray(elapsed) / time_step)


def test_an_xmile_model_compiles_on_the_batched_engine(xmile_model):
    assert xmile_model.engine is not None, xmile_model.engine_refusal
    # sim_specs give no save period: XMILE saves every dt
    assert xmile_model.time_settings == {"initial_time": 0, "final_time": 10, "time_step": 0.5, "saveper": 0.5}
    assert xmile_model.variable("residence time").is_constant
    assert xmile_model.variable("Amount").is_stock


@pytest.mark.parametrize("engine", ["auto", "pysd"])
def test_an_xmile_model_runs_to_the_euler_answer(xmile_model, engine):
    ds = xmile_model.run(params={"residence time": 4}, engine=engine)
    np.testing.assert_allclose(ds["time"], np.arange(0, 10.25, 0.5))
    np.testing.assert_allclose(ds["Amount"], euler_decay(100, 4, 0.5, ds["time"]), rtol=1e-12)
    assert ds["Amount"].attrs["units"] == "Person"
    assert ds["Amount"].attrs["description"] == "What is left."
    assert ds.attrs["engine"].startswith("migsd batched engine" if engine == "auto" else "pysd")


def test_an_xmile_model_runs_in_a_batch(xmile_model):
    ds = xmile_model.run_batch(xr.Dataset({"residence time": ("run", [4.0, 10.0])}), return_columns=["Amount"],
                               final_time=3)
    np.testing.assert_allclose(ds["Amount"].sel(run=1), euler_decay(100, 10, 0.5, ds["time"]), rtol=1e-12)


def test_a_stella_file_loads_like_its_xmile(tmp_path):
    stmx = tmp_path / "decay.stmx"
    stmx.write_bytes((DATA / "models" / "decay.xmile").read_bytes())
    ds = migsd.load_model(stmx).run()
    np.testing.assert_allclose(ds["Amount"], euler_decay(100, 10, 0.5, ds["time"]), rtol=1e-12)


def test_a_file_pysd_cannot_read_is_refused_with_the_formats(tmp_path):
    other = tmp_path / "decay.vpm"
    other.write_text("not a model")
    with pytest.raises(ModelError, match=r"^decay.vpm: not a model file pysd reads; give a Vensim \.mdl or an XMILE "
                                         r"\.xmile, \.xml, \.stmx file$"):
        migsd.load_model(other)
