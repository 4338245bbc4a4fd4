from pathlib import Path

import pytest

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
