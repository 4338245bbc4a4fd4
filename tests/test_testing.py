"""The property assertions of migsd.testing fail when the property is broken."""

import numpy as np
import pytest

from migsd.testing import assert_finite, assert_people_conserved, assert_within_declared_ranges, time_step_change


@pytest.fixture(scope="module")
def stepwise_run(model):
    dt = model.time_settings["time_step"]
    columns = ["population", "births", "deaths", "deaths on routes by origin", "net migration", "immigration"]
    return model.run(final_time=1991, saveper=dt, return_columns=columns), dt


def test_conservation_holds_and_a_lost_person_is_caught(stepwise_run):
    ds, dt = stepwise_run
    assert_people_conserved(ds, dt)
    broken = ds.copy(deep=True)
    broken["births"][3, 0] += 1000.0
    with pytest.raises(AssertionError, match="population change differs from its flows"):
        assert_people_conserved(broken, dt)


def test_unbalanced_net_migration_is_caught(stepwise_run):
    ds, dt = stepwise_run
    broken = ds.copy(deep=True)
    broken["net migration"][:, 1] += 5000.0
    broken["population"][1:, 1] += dt * 5000.0 * np.arange(1, ds.sizes["time"])
    with pytest.raises(AssertionError, match="net migration sums to"):
        assert_people_conserved(broken, dt)


def test_negative_stock_and_range_violation_are_caught(model, short_run):
    assert_within_declared_ranges(model, short_run)
    broken = short_run.copy(deep=True)
    broken["Foreign Born"][0, 0, 0] = -1.0
    broken["labour shortage"][1, 2] = 1.5
    with pytest.raises(AssertionError) as caught:
        assert_within_declared_ranges(model, broken)
    assert "'Foreign Born' fell to -1, below 0" in str(caught.value)
    assert "'labour shortage' rose to 1.5, above 1" in str(caught.value)


def test_nan_is_caught_unless_skipped(short_run):
    broken = short_run.copy(deep=True)
    broken["labour gap"][0, 0] = np.nan
    with pytest.raises(AssertionError, match=r"NaN or inf in \['labour gap'\]"):
        assert_finite(broken)
    assert_finite(broken, skip=["labour gap"])


def test_time_step_change_uses_the_declared_range_or_the_magnitude(model, short_run):
    moved = short_run.copy(deep=True)
    moved["labour shortage"] = moved["labour shortage"] + 0.02
    moved["world population"] = moved["world population"] * 1.03
    changes = time_step_change(model, moved, short_run, ["labour shortage", "world population"])
    assert changes["labour shortage"] == pytest.approx(0.02)
    assert changes["world population"] == pytest.approx(0.03)


def test_unparseable_units_are_named(short_run):
    from migsd.testing import assert_metadata_complete

    broken = short_run.copy(deep=True)
    broken["labour gap"].attrs["units"] = "widgets per fortnight"
    with pytest.raises(AssertionError, match="'labour gap' has units 'widgets per fortnight' that do not parse"):
        assert_metadata_complete(broken)
