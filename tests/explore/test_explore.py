"""The explorer without a browser: its controls, their checks, the scenarios it makes and saves, its runs."""

import asyncio
import math
import subprocess
import sys
import threading
import time

import numpy as np
import param
import pytest
import xarray as xr

import migsd
from migsd.errors import ScenarioError
from migsd.explore.app import Explorer, Page
from migsd.explore.controls import (
    ExploreError,
    check_phase,
    check_scenario_name,
    check_values,
    explored_scenario,
    lever_controls,
    start_values,
    uncertain_controls,
)
from migsd.explore.runner import Runner, _check_finite
from migsd.indicators import YIELD_VARIABLE
from migsd.names import canonical
from migsd.scenarios import read_scenario, resolve_scenario, write_scenario
from migsd.analysis.sensitivity import SENSITIVITY_DIR, load_problem

from ..conftest import DATA

PROBLEM = SENSITIVITY_DIR / "restrictionism.toml"


@pytest.fixture(scope="module")
def controls(model):
    return lever_controls(model) + uncertain_controls(model, load_problem(PROBLEM, model))


@pytest.fixture(scope="module")
def explorer(model, tmp_path_factory):
    return Explorer.load(model, save_dir=tmp_path_factory.mktemp("saved"))


def test_every_lever_of_the_mdl_gets_a_control_per_element_with_its_declared_range(model):
    by_key = {c.key: c for c in lever_controls(model)}
    levers = [v for v in model.variables.values() if v.is_constant and v.comment.startswith("Lever:")]
    assert len(levers) >= 10
    for variable in levers:
        elements = model.subscripts[variable.subscripts[0]] if variable.subscripts else [None]
        for element in elements:
            control = by_key.pop(f"{variable.name}[{element}]" if element else variable.name)
            assert (control.low, control.high, control.step, control.units) == (*variable.limits, variable.step,
                                                                                variable.units)
            assert control.source == "models/migsd.mdl"
    assert by_key == {}
    funding = next(c for c in lever_controls(model) if c.key == "IOM funding")
    assert (funding.low, funding.high, funding.step, funding.units) == (0.0, 3e10, 1e9, "$/Year")


def test_a_lever_without_a_declared_range_is_refused_naming_it():
    with pytest.raises(ExploreError, match=r"lever_without_range.mdl: lever 'extra loss' declares no range.*"
                                           r"'Person/Year \[0,1\]'"):
        lever_controls(migsd.load_model(DATA / "models" / "lever_without_range.mdl"))


def test_uncertain_controls_take_the_problem_bounds(model):
    problem = load_problem(PROBLEM, model)
    controls = uncertain_controls(model, problem)
    assert [c.key for c in controls] == problem.labels
    for control, parameter in zip(controls, problem.parameters):
        assert (control.low, control.high, control.mode) == (parameter.lower, parameter.upper, parameter.mode)
        assert control.source == "models/sensitivity/restrictionism.toml"


@pytest.mark.parametrize("values, message", [
    ({"tightening time": 50}, r"'tightening time' = 50 is outside its range \[1, 10\] \(Year, declared in "
                              r"models/sensitivity/restrictionism.toml\); not run"),
    ({"enforcement push[North]": -0.1}, r"outside its range \[0, 1\] \(Dmnl, declared in models/migsd.mdl\)"),
    ({"IOM rights conditionality": 0.5}, r"'IOM rights conditionality' = 0.5 is not a step of 1 from 0"),
    ({"IOM funding": float("nan")}, r"'IOM funding': nan is not a finite number"),
    ({"IOM funding": "lots"}, r"'IOM funding': 'lots' is not a number"),
    ({"enforcement push[Mars]": 0.1}, r"'enforcement push\[Mars\]' is not a control"),
    ({"tightening time": 11, "loosening time": 0}, r"'tightening time' = 11 .*; 'loosening time' = 0 "),
])
def test_values_the_controls_do_not_allow_are_refused_not_clamped(controls, values, message):
    with pytest.raises(ExploreError, match=message):
        check_values(controls, values)


def test_the_ends_of_a_range_and_its_steps_are_allowed(controls):
    assert check_values(controls, {"tightening time": 2, "loosening time": 5.0, "IOM rights conditionality": 1,
                                   "IOM funding": 3e10}) == {"tightening time": 2.0, "loosening time": 5.0,
                                                              "IOM rights conditionality": 1.0, "IOM funding": 3e10}


@pytest.mark.parametrize("phase", [(2030, 2025), (2030, 2030), (1980, 2000), (2090, 2120), ("soon", 2030)])
def test_a_phase_in_outside_the_run_or_backwards_is_refused(model, phase):
    with pytest.raises(ExploreError, match="phase-in"):
        check_phase(phase, model)


@pytest.mark.parametrize("scenario", migsd.list_scenarios(), ids=lambda s: s.name)
def test_an_untouched_page_gives_the_base_scenario_itself(model, controls, scenario):
    starts = start_values(model, controls, scenario)
    for control in controls:
        assert control.low <= starts[control.key] <= control.high, (scenario.name, control.key)
    explored, changes = explored_scenario(model, controls, scenario, starts)
    assert changes == [] and explored.parameters == scenario.parameters


def test_a_moved_lever_keeps_the_base_path_until_the_phase_in_then_reaches_its_value(model, controls):
    base = resolve_scenario("iom_south_south")
    values = start_values(model, controls, base) | {"IOM funding": 2e10}
    explored, changes = explored_scenario(model, controls, base, values, (2027, 2033))
    # base: 0 in 2025, 3e9 in 2030: 1.2e9 in 2027
    assert explored.parameters["IOM funding"] == [[2025.0, 0.0], [2027.0, 1.2e9], [2033.0, 2e10]]
    assert changes == ["IOM funding: 1e+10 -> 2e+10 $/Year over 2027-2033"]
    funding = model.run(scenario=explored, return_columns=["IOM funding"], final_time=2040)["IOM funding"]
    before = model.run(scenario=base, return_columns=["IOM funding"], final_time=2040)["IOM funding"]
    np.testing.assert_allclose(funding.sel(time=slice(None, 2025)), before.sel(time=slice(None, 2025)))
    assert (funding.sel(time=slice(2033, None)) == 2e10).all()


def test_a_multiplier_scales_the_calibrated_value_of_its_elements(model, controls):
    base = resolve_scenario("status_quo")
    key = "culturalist weight[North,Gulf] (multiplier)"
    explored, _ = explored_scenario(model, controls, base, {key: 1.25})
    weights = model.defaults[canonical("culturalist weight")]
    calibrated = model.calibrated_parameters
    assert "culturalist weight[North]" in calibrated, "the test must cover a calibrated element"
    assert explored.parameters == {  # the calibrated value where there is one, else the .mdl's
        "culturalist weight[North]": 1.25 * calibrated["culturalist weight[North]"],
        "culturalist weight[Gulf]": 1.25 * float(weights.sel(region="Gulf")),
    }


def test_a_written_scenario_reads_back_exactly_and_is_never_overwritten(tmp_path):
    parameters = {"IOM funding": [[2025.0, 0.0], [2030.0, 0.1 + 0.2]], "tightening time": 1 / 3,
                  "enforcement push": {"North": 0.7, "Gulf": 1e-12}, "route mortality[North]": 3e10}
    path = write_scenario(tmp_path / "round_trip.toml", title='A "quoted" title', description="two\nlines",
                          parameters=parameters, initial={"IOM Capacity": 5.0})
    back = read_scenario(path)
    assert (back.title, back.description, back.parameters, back.initial) == (
        'A "quoted" title', "two\nlines", parameters, {"IOM Capacity": 5.0})
    with pytest.raises(ScenarioError, match="exists; choose another name"):
        write_scenario(path, title="again")
    with pytest.raises(ScenarioError, match="inf is not a finite number"):
        write_scenario(tmp_path / "bad.toml", title="bad", parameters={"IOM funding": float("inf")})
    assert not (tmp_path / "bad.toml").exists()


@pytest.mark.parametrize("name", ["", "../models/evil", "has space", "x" * 65, "-dash-first"])
def test_a_scenario_name_that_is_not_a_plain_file_stem_is_refused(name):
    with pytest.raises(ExploreError, match="use letters, digits"):
        check_scenario_name(name)


def test_the_band_covers_every_calibrated_member_run_once_each(model):
    members = migsd.calibration.ensemble_params(model.calibration)
    runner = Runner(model, ["Restrictiveness"], members)
    # a resampled ensemble repeats members, posterior draws need not: each distinct one runs once
    assert runner.member_count == members.sizes["run"] >= runner.members.sizes["run"]
    scenario = resolve_scenario("status_quo")
    band = runner.spread(scenario, fixed={"volume elasticity"}).runs
    direct = model.run_batch(members.drop_vars("volume elasticity"), scenario=scenario,
                             return_columns=["Restrictiveness"])
    np.testing.assert_array_equal(band[YIELD_VARIABLE].values, direct[YIELD_VARIABLE].values)
    np.testing.assert_allclose(band["Restrictiveness"].values,
                               direct["Restrictiveness"].quantile([0.05, 0.95], dim="run").values)


def test_a_run_with_values_that_are_not_numbers_is_reported_naming_the_variable_and_year():
    time = np.arange(2000.0, 2004.0)
    runs = xr.Dataset({"Restrictiveness": (("time", "region"), [[0.5, 0.4], [0.5, np.nan], [np.inf, 0.1],
                                                                  [0.2, 0.1]])},
                      coords={"time": time, "region": ["North", "Gulf"]})
    with pytest.raises(ExploreError, match=r"'Restrictiveness' \(from 2001\)"):
        _check_finite(runs, "explored")


def _year_attribute(year: float) -> str:
    """The page's data-year for a yield year: empty when it never yields (calibration v6's best fit, in every
    scenario but open borders)."""
    return "" if math.isnan(year) else f"{year:.0f}"


def test_the_page_runs_the_model_and_shows_the_yield_year_of_the_scenario(explorer, model):
    page = Page(explorer, "iom_south_south")
    asyncio.run(page.rerun())
    expected = float(model.run(scenario="iom_south_south", return_columns=["Restrictiveness"])[YIELD_VARIABLE])
    assert f"data-year='{_year_attribute(expected)}'" in page.yield_text.object
    assert "data-stage='done'" in page.status.object
    assert not page.error.visible
    titles = [figure.title.text for figure in page.charts.figures]
    assert titles[0] == "Restrictiveness[North] (Dmnl)"
    assert titles[-1] == "irregular arrivals, summed over Origin (Person/Year)"


def test_a_failed_run_is_shown_on_the_page_which_keeps_its_charts(explorer, monkeypatch):
    page = Page(explorer)
    asyncio.run(page.rerun())
    shown = {k: dict(s.data) for k, s in page.charts.sources.items()}

    def fail(*args, **kwargs):
        raise FloatingPointError("overflow in 'Salience'")

    monkeypatch.setattr(explorer.runner, "compare", fail)
    page.sliders["tightening time"].value = 6
    asyncio.run(page.rerun())
    assert page.error.visible and "the run failed: FloatingPointError: overflow in &#x27;Salience&#x27;" in \
        page.error.object
    for key, source in page.charts.sources.items():
        assert all(np.array_equal(source.data[c], shown[key][c], equal_nan=True) for c in shown[key])


def test_the_page_refuses_an_out_of_range_value_before_running(explorer, monkeypatch):
    page = Page(explorer)
    ran = []
    monkeypatch.setattr(explorer.runner, "compare", lambda *a, **k: ran.append(a))
    page.sliders["present bias weight"].value = 1.5
    asyncio.run(page.rerun())
    assert ran == [] and page.error.visible
    assert "&#x27;present bias weight&#x27; = 1.5 is outside its range [0.3, 1]" in page.error.object


def test_save_as_scenario_writes_a_file_that_runs_to_the_same_yield_year(explorer, model):
    page = Page(explorer, "status_quo")
    page.sliders["IOM funding"].value = 5e9
    page.sliders["tightening time"].value = 3
    asyncio.run(page.rerun())
    shown = page.yield_text.object.split("data-year='")[1].split("'")[0]
    page.save_name.value = "saved_from_page"
    asyncio.run(page._save())
    path = explorer.save_dir / "saved_from_page.toml"
    assert path.exists() and "saved_from_page" in page.saved.object
    assert "saved_from_page" in page.picker.options.values()
    ran = model.run(scenario=path, return_columns=["Restrictiveness"])
    assert _year_attribute(float(ran[YIELD_VARIABLE])) == shown
    asyncio.run(page._save())  # the same name again: refused, the file kept
    assert page.error.visible and "exists; choose another name" in page.error.object
    assert math.isclose(read_scenario(path).parameters["tightening time"], 3.0)


def test_only_the_latest_of_quick_successive_moves_is_run_and_shown(explorer, model, monkeypatch):
    page = Page(explorer)
    calls = []
    real = explorer.runner.compare
    # The engine is held until all three moves are asked for: otherwise a fast first
    # run can finish before the second move exists, and nothing was ever stale.
    all_asked = threading.Event()

    def counted(*args, **kwargs):
        assert all_asked.wait(timeout=60), "the three moves were never all asked for"
        outcome = real(*args, **kwargs)
        calls.append(outcome is not None)
        return outcome

    monkeypatch.setattr(explorer.runner, "compare", counted)

    async def three_moves():
        for value in (3, 5, 7):
            page.sliders["tightening time"].value = value
            asyncio.ensure_future(page.rerun())
            await asyncio.sleep(0)
        all_asked.set()
        while "data-stage='done'" not in page.status.object or "data-update='3'" not in page.status.object:
            await asyncio.sleep(0.05)

    asyncio.run(asyncio.wait_for(three_moves(), timeout=60))
    # in whatever order the engine takes them, the two requests gone stale while waiting skip it
    assert sorted(calls) == [False, False, True]
    assert f"tightening time: {model.calibrated_parameters['tightening time']:g} -&gt; 7 Year" in page.status.object


@pytest.mark.parametrize("arguments, message", [
    (["--scenario", "status_qou"], "no scenario 'status_qou' (known: aid_to_prevent_migration,"),
    (["--port", "70000"], "--port 70000: a port is a number from 1 to 65535"),
    (["--save-dir", "no/such/folder"], "--save-dir no/such/folder: no such folder"),
])
def test_explore_refuses_bad_options_before_serving(arguments, message):
    finished = subprocess.run([sys.executable, "-m", "migsd.cli", "explore", *arguments], capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 2 and message in finished.stderr, finished.stderr
    assert "serving" not in finished.stdout


def test_without_a_calibrated_ensemble_the_page_finishes_without_a_band(model, tmp_path):
    page = Page(Explorer.load(model, save_dir=tmp_path, ensemble=False))
    asyncio.run(page.rerun())
    assert "data-stage='done'" in page.status.object and "no calibrated ensemble" in page.status.object
    assert "calibrated ensemble" not in page.yield_text.object
    for source in page.charts.sources.values():
        assert all(np.isnan(v).all() for k, v in source.data.items() if k.endswith(("|low", "|high")))


def test_picking_a_scenario_puts_every_slider_where_that_scenario_starts_and_reruns(explorer, model, controls):
    page = Page(explorer, "status_quo")
    page.sliders["tightening time"].value = 7
    with param.discard_events(page.picker):  # the page's own watcher would run on param's event loop
        page.picker.value = "iom_south_south"
    asyncio.run(page._picked(type("Event", (), {"new": "iom_south_south"})()))
    assert page.values() == start_values(model, controls, resolve_scenario("iom_south_south"))
    expected = float(model.run(scenario="iom_south_south", return_columns=["Restrictiveness"])[YIELD_VARIABLE])
    assert f"data-year='{_year_attribute(expected)}'" in page.yield_text.object and "Moved: none" in page.status.object


class _Release:
    """The event a slider sends when let go (``value_throttled``)."""

    def __init__(self, widget):
        self.obj, self.name, self.new = widget, "value_throttled", widget.value


def _slow_counted(monkeypatch, runner, seconds=0.3):
    """Record each engine call (the explored scenario's 'tightening time', or None when skipped as stale)."""
    compared, spread, running = [], [], []
    real_compare, real_spread = runner.compare, runner.spread

    def compare(explored, *args, **kwargs):
        running.append(1)
        assert len(running) == 1, "one engine call at a time"
        outcome = real_compare(explored, *args, **kwargs)
        time.sleep(seconds)  # an engine slower than the hand, so moves pile up while it runs
        running.pop()
        compared.append(explored.parameters.get("tightening time") if outcome is not None else None)
        return outcome

    def spreading(*args, **kwargs):
        spread.append(args)
        return real_spread(*args, **kwargs)

    monkeypatch.setattr(runner, "compare", compare)
    monkeypatch.setattr(runner, "spread", spreading)
    return compared, spread


async def _until_followed(page):
    await asyncio.sleep(page.follow_interval)
    while page._follower is not None and not page._follower.done():
        await asyncio.sleep(0.02)


def test_a_held_slider_is_followed_to_its_latest_position_one_run_at_a_time_lines_only(explorer, model, monkeypatch):
    page = Page(explorer)
    asyncio.run(page.rerun())
    full_before = page._full
    compared, spread = _slow_counted(monkeypatch, explorer.runner)
    slider = page.sliders["tightening time"]
    positions = [3 + 0.25 * k for k in range(17)]  # 3 ... 7, a move every 20 ms

    async def drag():
        for value in positions:
            slider.value = value
            await asyncio.sleep(0.02)
        await _until_followed(page)

    asyncio.run(asyncio.wait_for(drag(), timeout=120))
    assert 1 <= len(compared) < len(positions) / 2, compared  # passed positions were never run
    assert compared[-1] == 7 and None not in compared  # the latest position, and no run went stale
    assert compared == sorted(compared)  # each run for where the slider was then, in order
    assert spread == [], "the band waits for the release"
    assert "once the slider is let go" in page.yield_text.object
    assert "data-kind='follow'" in page.status.object and "data-stage='lines'" in page.status.object
    assert f"data-full='{full_before}'" in page.status.object
    assert f"tightening time: {model.calibrated_parameters['tightening time']:g} -&gt; 7 Year" in page.status.object

    runs_while_held = len(compared)
    asyncio.run(page._changed(_Release(slider)))  # let go where it was last drawn
    assert len(compared) == runs_while_held and len(spread) == 1  # the lines drawn already; only the band runs
    assert "data-kind='full'" in page.status.object and "data-stage='done'" in page.status.object
    assert f"data-full='{full_before + 1}'" in page.status.object and not page._held


def test_a_release_right_after_a_move_is_left_to_the_full_update(explorer, monkeypatch):
    page = Page(explorer)
    asyncio.run(page.rerun())
    compared, spread = _slow_counted(monkeypatch, explorer.runner, seconds=0)
    slider = page.sliders["tightening time"]

    async def typed():  # a typed value sends its move and its release together
        slider.value = 6
        await page._changed(_Release(slider))
        await _until_followed(page)

    asyncio.run(asyncio.wait_for(typed(), timeout=120))
    assert compared == [6] and len(spread) == 1
    assert "data-kind='full'" in page.status.object and "data-stage='done'" in page.status.object


def test_a_held_slider_beyond_its_range_is_refused_before_running(explorer, monkeypatch):
    page = Page(explorer)
    asyncio.run(page.rerun())
    compared, spread = _slow_counted(monkeypatch, explorer.runner, seconds=0)

    async def beyond():
        page.sliders["present bias weight"].value = 1.5
        await _until_followed(page)

    asyncio.run(asyncio.wait_for(beyond(), timeout=60))
    assert compared == [] and spread == [] and page.error.visible
    assert "&#x27;present bias weight&#x27; = 1.5 is outside its range [0.3, 1]" in page.error.object


def test_a_release_while_its_lines_are_running_waits_for_them_instead_of_running_again(explorer, monkeypatch):
    page = Page(explorer)
    asyncio.run(page.rerun())
    compared, spread = _slow_counted(monkeypatch, explorer.runner, seconds=0.5)
    slider = page.sliders["tightening time"]

    async def hold_then_let_go():
        slider.value = 7
        await asyncio.sleep(page.follow_interval + 0.2)
        assert page._running is not None and not page._running[1].done(), "the follow update should be running"
        await page._changed(_Release(slider))
        await _until_followed(page)

    asyncio.run(asyncio.wait_for(hold_then_let_go(), timeout=120))
    assert compared == [7] and len(spread) == 1
    assert "data-kind='full'" in page.status.object and "data-stage='done'" in page.status.object


def test_a_redraw_sends_each_chart_one_update_holding_only_the_columns_that_changed(explorer):
    """Every update of a chart's source makes the browser lay out and repaint it: one per chart and redraw, and a
    moved lever (which leaves the status quo as it was) sends no status-quo column."""
    from bokeh.document import Document
    from bokeh.document.events import ColumnDataChangedEvent, ModelChangedEvent

    page = Page(explorer)
    document = Document()
    for figure in page.charts.figures:
        document.add_root(figure)
    asyncio.run(page.rerun())
    sent = []
    document.on_change(lambda event: sent.append(event))
    page.sliders["IOM funding"].value = 2e10
    asyncio.run(page.rerun(band=False))
    by_source = {}
    for event in sent:
        if isinstance(event, ColumnDataChangedEvent):
            columns = set(event.model.data) if event.cols is None else set(event.cols)  # None: all of them
            by_source.setdefault(event.model.name, []).append(columns)
        else:
            assert not (isinstance(event, ModelChangedEvent) and event.attr == "data"), "a whole source was resent"
    sources = {source.name: source for source in page.charts.sources.values()}
    assert set(by_source) == set(sources), "every chart shows the explored scenario, so every chart changes"
    for name, updates in by_source.items():
        assert len(updates) == 1, f"{name}: {len(updates)} updates for one redraw"
        assert not any(column.endswith("|status quo") for column in updates[0]), name
        assert all(np.isnan(sources[name].data[c]).all() for c in updates[0] if c.endswith(("|low", "|high")))
    runs = page._lines[1].runs
    restrictiveness = sources["source Restrictiveness"].data["North|now"]
    assert np.array_equal(restrictiveness, runs["Restrictiveness"].sel(scenario="explored", region="North").values)
