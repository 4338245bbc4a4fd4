from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import migsd

DATA = Path(__file__).parent / "data"
BAD = DATA / "bad"


@pytest.fixture(scope="session")
def model():
    return migsd.load_model()


@pytest.fixture(scope="session")
def decay_model():
    return migsd.load_model(DATA / "models" / "decay.mdl")


@pytest.fixture(scope="session")
def short_run(model):
    """Every variable of the shipped model over two years: enough for metadata checks."""
    return model.run(final_time=1992)


def pytest_collection_modifyitems(items):
    """Start the full-horizon runs first, longest first, so that parallel workers finish together."""
    def weight(item):
        if item.get_closest_marker("slow") is None:
            return 0
        return 2 if "time_step" in item.name else 1

    items.sort(key=weight, reverse=True)


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests measured (``record_property("figure: ...", value)``); timing never fails a test."""
    lines = []
    for report in terminalreporter.stats.get("passed", []):
        for name, value in getattr(report, "user_properties", []):
            if name.startswith("figure: "):
                lines.append(f"{name[len('figure: '):]}: {value}")
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)


def assert_same_loops(reference: xr.Dataset, compiled: xr.Dataset, tolerance: float = 1e-9) -> None:
    """The same loops, NaNs at the same places and scores equal to rounding (relative ones to ``tolerance``)."""
    assert "numpy" in reference.attrs["engine"] and "compiled" in compiled.attrs["engine"]
    assert reference["loop_variables"].values.tolist() == compiled["loop_variables"].values.tolist()
    for name in ("loop score", "relative loop score"):
        a, b = reference[name].values, compiled[name].values
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        scale = 1.0 if name == "relative loop score" else max(1.0, float(np.nanmax(np.abs(a))))
        np.testing.assert_allclose(b, a, rtol=0, atol=tolerance * scale, equal_nan=True, err_msg=name)
    for name in ("dominant loop", "dominance probability"):
        if name in reference:
            np.testing.assert_array_equal(reference[name].values, compiled[name].values)

