"""The report: its numbers come from the runs, and a rebuild gives the same numbers."""

import numpy as np
import pytest
import xarray as xr

from migsd.report.build import YEARS, build, numbers, to_html


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    return folder, build(folder, progress=False, sweep_samples=2)


@pytest.mark.slow
def test_report_numbers_are_regenerated_from_the_runs(built):
    folder, markdown = built
    text = markdown.read_text()
    ensemble = xr.open_dataset(folder / "ensemble.nc")
    stored = xr.open_dataset(folder / "numbers.nc")
    again = numbers(ensemble, None, {})
    for name in again.data_vars:
        xr.testing.assert_allclose(again[name], stored[name])
    row = next(line for line in text.splitlines() if "(`status_quo`)" in line)
    for year in YEARS:
        share = float(stored[f"P(yield by {year})"].sel(scenario="status_quo"))
        mcse = float(stored[f"P(yield by {year}) MCSE"].sel(scenario="status_quo"))
        low, high = (float(stored[f"P(yield by {year}) {q}"].sel(scenario="status_quo")) for q in ("5%", "95%"))
        assert f"{100 * share:.0f}% ± {100 * mcse:.1f} [{100 * low:.0f}-{100 * high:.0f}%]" in row
        draws = stored.attrs["distinct_members"]
        # Jeffreys' interval stops short of 0 and 1 (by well under one draw in 400) when every member agrees
        assert low - 1 / draws <= share <= high + 1 / draws and mcse <= 0.5 / np.sqrt(draws) + 1e-12
    median = float(stored["median yield year"].sel(scenario="status_quo"))
    if np.isnan(median):  # no member yields (calibration v6's best fit): said once, with no interval
        assert row.endswith("| never (by 2100) |"), row
    else:
        assert f"{median:.0f} (" in row
    for figure in ("yield_probability.png", "restrictiveness_north.png"):
        assert (folder / figure).exists() and f"]({figure})" in text
    assert text.count("*Figure") == 8
    assert "<table" in (folder / "report.html").read_text()


@pytest.mark.slow
def test_the_report_explains_the_yield_by_channel_and_by_loop(built):
    folder, markdown = built
    text = markdown.read_text()
    stored = xr.open_dataset(folder / "numbers.nc")
    cut = stored["P(yield by) with channel cut"]
    assert cut.dims == ("channel", "scenario", "by") and str(cut["channel"].values[0]) == "none"
    assert "labour scarcity" in cut["channel"].values and list(cut["by"].values) == list(YEARS)
    # as modelled, the channel table repeats the headline probabilities
    for year in YEARS:
        xr.testing.assert_allclose(cut.sel(channel="none", by=year, drop=True), stored[f"P(yield by {year})"])
    removed = float(stored["P(yield removed or delayed by cut)"].sel(channel="labour scarcity", scenario="status_quo"))
    assert f"removes or delays the yield in {100 * removed:.0f}% of members" in text
    dominant = stored["dominant loop of Northern restrictiveness"].sel(headline_scenario="status_quo")
    share = stored["P(dominant loop of Northern restrictiveness)"].sel(headline_scenario="status_quo")
    row = next(line for line in text.splitlines() if line.startswith("| 2030s |"))
    assert f"{dominant.sel(decade=2030).item()} ({100 * float(share.sel(decade=2030)):.0f}%)" in row
    for figure in ("attribution.png", "loops_status_quo.png", "dominance_iom_south_south.png"):
        assert (folder / figure).exists() and f"]({figure})" in text


@pytest.mark.slow
def test_a_second_build_gives_identical_numbers(built, tmp_path):
    folder, _ = built
    build(tmp_path, progress=False, sweep_samples=2)
    first, second = xr.open_dataset(folder / "numbers.nc"), xr.open_dataset(tmp_path / "numbers.nc")
    xr.testing.assert_identical(first, second)


@pytest.mark.slow
def test_a_report_on_another_calibration_runs_its_members_not_the_promoted_ones(tmp_path):
    from migsd.calibration.fit import current

    other = current().with_name("calibrated_v4.csv")
    markdown = build(tmp_path, progress=False, sweep_samples=2, calibration=other)
    ensemble = xr.open_dataset(tmp_path / "ensemble.nc")
    assert ensemble.attrs["calibration"] == "calibrated_v4.csv"
    assert "calibration `calibrated_v4.csv`" in markdown.read_text()
    # what changed from v4 to the promoted calibration is not this report's story
    assert "## What changed from the previous calibration" not in markdown.read_text()


def test_a_report_on_a_calibration_that_does_not_exist_is_refused_naming_it(tmp_path):
    from migsd.errors import MigsdError

    with pytest.raises(MigsdError, match=r"calibration file not found: .*calibrated_v99.csv"):
        build(tmp_path, progress=False, calibration=tmp_path / "calibrated_v99.csv")


def _draws(values_by_chain):
    from migsd.calibration.posterior import DRAW_LABEL

    labels = [DRAW_LABEL.format(chain=c, draw=d)
              for c, values in enumerate(values_by_chain) for d in range(len(values))]
    return xr.DataArray(np.concatenate(values_by_chain).astype(bool), dims="run", coords={"run": labels})


def test_posterior_shares_count_the_draws_the_chains_agree_on():
    from migsd.report.build import effective_draws, probability_error

    rng = np.random.default_rng(0)
    agreeing = _draws([rng.random(100) < 0.6 for _ in range(4)])
    ess = float(effective_draws(agreeing, 400))
    assert 250 < ess <= 400  # independent draws, one share: about all of them count
    # two chains always yield, two never: the share, 0.5, rests on about one draw per chain, not on 400
    split = _draws([np.ones(100), np.ones(100), np.zeros(100), np.zeros(100)])
    few = float(effective_draws(split, 400))
    assert few < 10
    assert float(probability_error(xr.DataArray(0.5), few)["MCSE"]) > 8 * float(
        probability_error(xr.DataArray(0.5), 400)["MCSE"])
    # a calibrated ensemble's members are not chains: its distinct sets count
    members = xr.DataArray(np.ones(50, bool), dims="run", coords={"run": [f"member{k}" for k in range(50)]})
    assert effective_draws(members, 15) == 15


def test_the_share_a_cut_removes_is_given_per_chain_where_chains_disagree_on_why():
    from migsd.report.build import removed_by_chain

    # four chains of three draws, every draw yields in 2040; cutting the channel delays it past 2100 in chain 1 only
    from migsd.calibration.posterior import DRAW_LABEL

    labels = [DRAW_LABEL.format(chain=c, draw=d) for c in range(4) for d in range(3)]
    modelled = np.full(12, 2040.0)
    cut = np.where(np.arange(12) // 3 == 1, np.nan, 2041.0)
    years = xr.DataArray(np.stack([modelled, cut])[:, None, :], dims=("channel", "scenario", "run"),
                         coords={"channel": ["none", "labour scarcity"], "scenario": ["status_quo"], "run": labels})
    shares = removed_by_chain(years).sel(channel="labour scarcity", scenario="status_quo")
    assert shares["chain"].values.tolist() == [0, 1, 2, 3] and shares.values.tolist() == [0.0, 1.0, 0.0, 0.0]
    # an ensemble's members are not chains
    assert removed_by_chain(years.assign_coords(run=[f"m{k}" for k in range(12)])) is None


def test_markdown_tables_lists_and_images_become_html():
    page = to_html("# Title\n\n| a | b |\n|---|---|\n| 1 | `x` |\n\n- one\n- two\n\n![f](f.png)\n\n*caption*")
    assert "<h1>Title</h1>" in page and "<th>a</th>" in page and "<td><code>x</code></td>" in page
    assert "<li>one</li>" in page and '<img alt="f" src="f.png"' in page and "<em>caption</em>" in page
    assert np.char.count(page, "<table") == 1


def test_a_prim_box_is_stated_with_its_ranges_or_as_no_range_at_all():
    import pandas as pd
    from migsd.analysis.discovery import Box
    from migsd.report.build import box_statement

    limits = pd.DataFrame({"parameter": ["volume elasticity"], "low": [0.243], "high": [0.595]})
    narrow = Box("has not yielded by 2060", 0.15, 0.94, 0.81, 0.3, limits, pd.DataFrame())
    assert box_statement(narrow, "iom_south_south", "sobol", 640) == (
        "`iom_south_south` (sobol sweep of 640 runs): restrictiveness has not yielded by 2060 in 15% of runs; PRIM "
        "finds it concentrated where volume elasticity in [0.243, 0.595] (coverage 0.94, density 0.81): where total "
        "migration responds strongly to destinations' appeal, induced migration dilutes Northern scarcity.")
    whole = Box("yields by 2060", 0.85, 1.0, 0.85, 1.0, limits.iloc[:0], pd.DataFrame())
    assert box_statement(whole, "status_quo", "sobol", 640) == (
        "`status_quo` (sobol sweep of 640 runs): restrictiveness yields by 2060 in 85% of runs; PRIM finds no range "
        "of the sampled parameters where it is more concentrated than that.")


def test_the_report_says_what_the_calibration_changed_and_why(tmp_path):
    from migsd.calibration.fit import Prior, write_parameters
    from migsd.report.build import calibration_changes

    old = [Prior("emigration propensity multiplier", 0.5, 2)]
    new = old + [Prior("material weight", 0, 8)]
    write_parameters(tmp_path / "calibrated_v1.csv", old, np.array([1.16]), np.array([[1.2]]))
    write_parameters(tmp_path / "calibrated_v2.csv", new, np.array([1.4, 0.7]), np.array([[1.3, 0.5]]))
    (tmp_path / "calibrated_v2.md").write_text("# Calibration v2\n\n## What changed from v1 and why\n\n"
                                               "Political series joined the targets.\n\n## Data\n\nhashes\n")
    text = "\n".join(calibration_changes(tmp_path / "calibrated_v2.csv"))
    assert "(v1 -> v2)" in text and "Political series joined the targets." in text and "hashes" not in text
    assert "`emigration propensity multiplier` 1.16 -> 1.4" in text
    assert "Newly calibrated in v2 (1; before, the .mdl's assumed values): `material weight` 0.7" in text
    assert calibration_changes(tmp_path / "posterior_v1.nc") == []
    # the same parameters recalibrated: no empty "newly calibrated" line; one left out is named
    write_parameters(tmp_path / "calibrated_v3.csv", old, np.array([1.5]), np.array([[1.5]]))
    text = "\n".join(calibration_changes(tmp_path / "calibrated_v3.csv"))
    assert "Newly calibrated" not in text and "`emigration propensity multiplier` 1.4 -> 1.5" in text
    assert "No longer calibrated in v3 (1; now the .mdl's assumed values): `material weight` (was 0.7)" in text
