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
