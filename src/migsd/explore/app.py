"""The explorer's page (Panel): controls, linked charts, the yield year, saving a scenario.

One :class:`Explorer` per server holds the model, the controls and the runner;
one :class:`Page` per browser session holds the widgets and what they show.
Panel (HoloViz) serves the page: it keeps widgets and Bokeh charts in step with
Python over a websocket, so every check and every run happens on the server.
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import panel as pn

from ..errors import MigsdError
from ..indicators import YIELD_DEFINITION, YIELD_VARIABLE
from ..paths import DEFAULT_PROBLEM, SCENARIOS_DIR, repo_relative
from ..scenarios import list_scenarios, read_scenario, validate, write_scenario
from .charts import CHARTS, ChartSet, chart_columns, chart_labels
from .controls import (
    DEFAULT_PHASE,
    Control,
    ExploreError,
    check_scenario_name,
    explored_scenario,
    lever_controls,
    start_values,
    uncertain_controls,
)
from .runner import BAND_QUANTILES, Runner

log = logging.getLogger("migsd.explore")

STATUS_QUO = "status_quo"
EXPLORED = "explored"
#: While a slider is held, the page reruns for where it is at most this often (seconds), one run at a time;
#: positions passed meanwhile are never run (only the latest counts), and releasing it runs the full update.
FOLLOW_INTERVAL = 0.05


@dataclass
class Explorer:
    """What every page of one server shares: the model, its controls, the runs."""

    model: object
    controls: list[Control]
    runner: Runner
    scenarios: dict[str, object]  # name -> Scenario, as the picker lists them
    save_dir: Path
    problem_source: str
    labels: dict = field(default_factory=dict)
    times: object = None
    #: The pages of open browser sessions; a session's page leaves when Bokeh destroys the session.
    open_pages: set = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, model=None, *, problem: str | os.PathLike | None = DEFAULT_PROBLEM,
             save_dir: str | os.PathLike = SCENARIOS_DIR, ensemble: bool = True) -> "Explorer":
        """Load the model (calibrated), its levers, the problem's parameters and the ensemble; run once to warm up."""
        from ..calibration.fit import ensemble_params
        from ..model import load_model
        from ..analysis.sensitivity import load_problem

        model = model or load_model()
        if model.engine is None:
            raise ExploreError(f"{model.path.name}: {model.engine_refusal}; the explorer needs the batched engine")
        controls = lever_controls(model)
        source = ""
        if problem is not None:
            loaded = load_problem(Path(problem), model)
            controls += uncertain_controls(model, loaded)
            source = loaded.source
        members = ensemble_params(model.calibration) if ensemble and model.calibration is not None else None
        runner = Runner(model, chart_columns(), members)
        scenarios = {s.name: s for s in list_scenarios()}
        if Path(save_dir).resolve() != SCENARIOS_DIR.resolve():
            for saved in list_scenarios(Path(save_dir)):
                validate(saved, model)
                scenarios.setdefault(saved.name, saved)
        explorer = cls(model, controls, runner, scenarios, Path(save_dir), source)
        first = model.run_batch(None, scenario=STATUS_QUO, return_columns=chart_columns()).isel(run=0, drop=True)
        explorer.labels = chart_labels(first)
        explorer.times = first["time"].values
        return explorer

    def scenario(self, name: str):
        if name not in self.scenarios:
            raise ExploreError(f"no scenario '{name}' (known: {', '.join(self.scenarios)})")
        return self.scenarios[name]

    def add_scenario(self, path: Path):
        scenario = read_scenario(path)
        validate(scenario, self.model)
        self.scenarios[scenario.name] = scenario
        return scenario


@dataclass(frozen=True)
class Request:
    """What a page asks the runner for."""

    explored: object  # Scenario: the base scenario with the moved controls
    status_quo: object  # Scenario: the status quo with the same uncertain parameters
    status_quo_key: tuple  # the uncertain parameters' values: the status quo's cache key
    fixed: set  # .mdl constants the explored scenario sets on purpose (ensemble members keep them)
    changes: list  # a line per moved control


class Page:
    """One browser session's page."""

    def __init__(self, explorer: Explorer, scenario: str = STATUS_QUO):
        self.explorer = explorer
        self._update = 0  # the latest update asked for; older ones are dropped when they finish
        self._full = 0  # updates that draw the band too (loads, releases, picks), as the page counts them
        self._resetting = False
        self._held: set[int] = set()  # widgets moved and not yet released
        self._asked = None  # the page's values when the latest update was asked for
        self._lines = None  # (values, outcome) of the latest lines run
        self._running = None  # (values, task) of the lines being run
        self._follower: asyncio.Future | None = None
        self.follow_interval = FOLLOW_INTERVAL
        explorer.scenario(scenario)
        self.picker = pn.widgets.Select(
            label="Scenario", options={s.title: name for name, s in explorer.scenarios.items()}, value=scenario,
            css_classes=["scenario-picker"], sizing_mode="stretch_width",
        )
        starts = start_values(explorer.model, explorer.controls, explorer.scenario(scenario))
        self.sliders: dict[str, pn.widgets.EditableFloatSlider] = {}
        for control in explorer.controls:
            self.sliders[control.key] = pn.widgets.EditableFloatSlider(
                label=control.label, start=control.low, end=control.high, value=starts[control.key],
                step=control.step or _step(control), format=_format(control), sizing_mode="stretch_width",
                css_classes=["control", "control-" + _css(control.key)],
            )
        start, end = explorer.model.time_settings["initial_time"], explorer.model.time_settings["final_time"]
        self.phase = pn.widgets.IntRangeSlider(
            label="Moved levers change over (years)", start=int(start), end=int(end),
            value=tuple(map(int, DEFAULT_PHASE)), step=1, sizing_mode="stretch_width", css_classes=["phase"],
        )
        self.save_name = pn.widgets.TextInput(label="Save as scenario named", placeholder="my_scenario",
                                              css_classes=["save-name"], sizing_mode="stretch_width")
        self.save_button = pn.widgets.Button(label="Save as scenario", color="primary", css_classes=["save"])
        self.saved = pn.pane.HTML("", css_classes=["saved"], sizing_mode="stretch_width")
        self.error = pn.pane.HTML("", visible=False, sizing_mode="stretch_width")
        # fixed heights: text that changes must not make the browser lay out every chart again
        self.yield_text = pn.pane.HTML(_yield_html(None, None, None), css_classes=["yield"], height=90,
                                       sizing_mode="stretch_width")
        self.status = pn.pane.HTML(_status_html(0, "starting", ""), css_classes=["status"], height=40,
                                   sizing_mode="stretch_width")
        self.charts = ChartSet(explorer.model, explorer.labels, explorer.times)

        self._watchers = []
        for widget in [*self.sliders.values(), self.phase]:
            self._watchers.append((widget, widget.param.watch(self._changed, "value_throttled")))
            self._watchers.append((widget, widget.param.watch(self._dragged, "value")))
        self._watchers.append((self.picker, self.picker.param.watch(self._picked, "value")))
        self.save_button.on_click(self._save)

    def close(self) -> None:
        """Release the page when its session ends: no update of it runs on, and the explorer drops it."""
        self._update += 1  # an update still running finds itself unwanted and drops its result
        for widget, watcher in self._watchers:
            widget.param.unwatch(watcher)
        self._watchers = []
        self.explorer.open_pages.discard(self)

    # ---- layout

    def view(self):
        groups, notes = {}, {}
        for control in self.explorer.controls:
            title = ("Lever: " if control.kind == "lever" else "Uncertain: ") + control.group
            groups.setdefault(title, []).append(self.sliders[control.key])
            notes.setdefault(title, {})[control.name] = control.description
        # one note per card, not a tooltip per slider: every widget more slows each redraw
        cards = [pn.Card(pn.pane.HTML(_notes_html(notes[title]), sizing_mode="stretch_width"), *widgets,
                         title=title, sizing_mode="stretch_width", collapsed=False)
                 for title, widgets in groups.items()]
        how = ("<small>Sliders start at the scenario's values (a value that changes over time: its last). "
               "A moved lever keeps the scenario's path until the first year of the range above, then goes in a "
               "straight line to the slider's value by its last year; uncertain parameters hold for the whole run. "
               "Type a value in a slider's box for precision.</small>")
        sidebar = pn.Column(
            self.picker, self.phase, pn.pane.HTML(how, sizing_mode="stretch_width"), *cards,
            pn.layout.Divider(), self.save_name, self.save_button, self.saved,
            width=400, scroll=True, height_policy="max", css_classes=["sidebar"],
        )
        key = ("<p class='key'>Solid: the explored scenario. Dashed: the status quo (same uncertain parameters, "
               f"no moved levers). Shaded: {BAND_QUANTILES[0]:.0%}-{BAND_QUANTILES[1]:.0%} of the calibrated "
               f"ensemble's members. Red line: the yield year; dotted: the level restrictiveness must fall to "
               f"({YIELD_DEFINITION['drop']:g} below its {YIELD_DEFINITION['reference_year']:g} level, held "
               f"{YIELD_DEFINITION['hold']:g} years).</p>")
        panes = [pn.Column(pn.pane.Bokeh(f, sizing_mode="stretch_width"), sizing_mode="stretch_width",
                           css_classes=["chart", "chart-" + _css(c.variable)])
                 for f, c in zip(self.charts.figures, CHARTS)]
        grid = pn.GridBox(*panes[1:], ncols=2, sizing_mode="stretch_width")
        main = pn.Column(
            self.yield_text, self.error,
            panes[0], grid,
            pn.pane.HTML(key, sizing_mode="stretch_width"), self.status, sizing_mode="stretch_width",
        )
        if pn.state.curdoc is not None:
            pn.state.curdoc.title = "migsd explorer"
        pn.state.onload(self.rerun)
        return pn.Row(sidebar, main, sizing_mode="stretch_both")

    # ---- reading and checking the page

    def values(self) -> dict[str, float]:
        return {key: slider.value for key, slider in self.sliders.items()}

    def request(self, name: str = EXPLORED, title: str | None = None) -> "Request":
        """What the page asks for now; ExploreError for any value the controls refuse."""
        explorer = self.explorer
        values = self.values()
        base = explorer.scenario(self.picker.value)
        explored, changes = explored_scenario(explorer.model, explorer.controls, base, values, self.phase.value,
                                              name=name, title=title)
        uncertain = [c for c in explorer.controls if c.kind == "uncertain"]
        chosen = {c.key: values[c.key] for c in uncertain}
        status_quo, _ = explored_scenario(explorer.model, uncertain, explorer.scenario(STATUS_QUO), chosen,
                                          name=STATUS_QUO, title="Status quo")
        by_key = {c.key: c for c in explorer.controls}
        starts = start_values(explorer.model, explorer.controls, base)
        fixed = {by_key[k].name for k, v in values.items() if float(v) != starts[k]}
        return Request(explored, status_quo, tuple(sorted(chosen.items())), fixed, changes)

    # ---- callbacks

    def snapshot(self) -> tuple:
        """Everything an update depends on: scenario, phase-in and every control's value."""
        return self.picker.value, tuple(self.phase.value), tuple(self.values().items())

    async def _changed(self, *events):
        """A slider released (or a value typed): the full update, band included."""
        for event in events:
            self._held.discard(id(event.obj))
        if self._resetting:
            return
        await self.rerun()

    def _dragged(self, *events):
        """A slider moved while held: follow it, throttled, with the lines only (the band waits for the release)."""
        if self._resetting:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # set from Python outside the server's loop: no hand holds it
            return
        for event in events:
            self._held.add(id(event.obj))
        if self._follower is None or self._follower.done():
            self._follower = loop.create_task(self.follow())

    async def follow(self) -> None:
        """While a control is held and has moved since the last update, rerun for where it is now.

        One update at a time: each waits for the one before, so positions passed
        meanwhile are never run; a release (or typed value) arriving within
        :attr:`follow_interval` is left to its own full update.
        """
        while True:
            await asyncio.sleep(self.follow_interval)
            if not self._held or self.snapshot() == self._asked:
                return
            await self.rerun(band=False)

    async def _picked(self, event):
        try:
            starts = start_values(self.explorer.model, self.explorer.controls, self.explorer.scenario(event.new))
        except MigsdError as error:
            self._show_error(error)
            return
        self._resetting = True
        try:
            for key, value in starts.items():
                self.sliders[key].value = value
        finally:
            self._resetting = False
        await self.rerun()

    async def rerun(self, band: bool = True) -> None:
        """Check the page, run the explored scenario and the status quo, redraw; then (``band``) the ensemble band.

        ``band=False`` is an update while a slider is held: the lines only, counted
        apart from full updates (``data-full`` on the status).
        """
        self._update += 1
        ticket = self._update
        if band:
            self._full += 1
        full, kind = self._full, "full" if band else "follow"
        values = self._asked = self.snapshot()

        def wanted() -> bool:  # no newer update was asked for meanwhile
            return ticket == self._update
        try:
            asked = self.request()
        except MigsdError as error:
            self._show_error(error)
            return
        changes = asked.changes
        with pn.io.unlocked():
            self.status.object = _status_html(ticket, "running", "running", changes, full=full, kind=kind)
        try:
            outcome = await self._lines_for(values, asked, wanted)
        except Exception as error:  # the page stays up and says why; the server log keeps the traceback
            self._failed(error)
            return
        if outcome is None or not wanted():
            return
        with pn.io.unlocked():
            self.error.visible = False
            self.charts.show_runs(outcome.runs, EXPLORED, STATUS_QUO)
            self.yield_text.object = _yield_html(outcome.runs, None, self.explorer.runner.member_count, held=not band)
            self.status.object = _status_html(ticket, "lines", f"{outcome.count} run(s) in {outcome.seconds:.2f} s",
                                              changes, full=full, kind=kind)
        if not band:
            return
        try:
            band = await asyncio.to_thread(self.explorer.runner.spread, asked.explored, asked.fixed, wanted)
        except Exception as error:  # as above
            self._failed(error)
            return
        if not wanted():
            return
        timing = f"{outcome.count} run(s) in {outcome.seconds:.2f} s"
        with pn.io.unlocked():
            if band is None:
                self.status.object = _status_html(ticket, "done", f"{timing}; no calibrated ensemble", changes,
                                                  full=full, kind=kind)
                return
            self.charts.show_band(band.runs)
            self.yield_text.object = _yield_html(outcome.runs, band.runs, self.explorer.runner.member_count)
            self.status.object = _status_html(
                ticket, "done", f"{timing}; ensemble: {band.count} distinct members in {band.seconds:.2f} s", changes,
                full=full, kind=kind)

    async def _lines_for(self, values: tuple, asked: "Request", wanted):
        """The explored scenario's and the status quo's runs for the page's ``values``, run at most once.

        A slider is usually let go where it was last drawn, or while the update for
        where it stopped is still running: the release then reuses those runs
        instead of running them again.
        """
        if self._lines is not None and self._lines[0] == values:
            return self._lines[1]
        if self._running is not None and self._running[0] == values:
            outcome = await asyncio.shield(self._running[1])
            if outcome is not None:
                return outcome
        task = asyncio.ensure_future(asyncio.to_thread(self.explorer.runner.compare, asked.explored,
                                                       asked.status_quo, asked.status_quo_key, wanted))
        self._running = (values, task)
        outcome = await task
        if outcome is not None:  # right for these values even when a newer update made it stale
            self._lines = (values, outcome)
        return outcome

    def _failed(self, error: Exception) -> None:
        log.error("explorer run failed", exc_info=error)
        self._show_error(error if isinstance(error, MigsdError) else f"the run failed: {type(error).__name__}: {error}")

    def _show_error(self, error) -> None:
        self.error.object = (f"<div class='error-message' role='alert' style='{_ALERT_STYLE}'>"
                             f"{html.escape(str(error))}</div>")
        self.error.visible = True

    async def _save(self, event=None) -> None:
        try:
            name = check_scenario_name(self.save_name.value)
            title = f"{self.explorer.scenario(self.picker.value).title}, explored ({name})"
            asked = self.request(name=name, title=title)
            explored, changes = asked.explored, asked.changes
            path = self.explorer.save_dir / f"{name}.toml"
            write_scenario(path, title=explored.title, description=explored.description,
                           parameters=explored.parameters, initial=explored.initial)
            saved = self.explorer.add_scenario(path)
            self.picker.options = {**self.picker.options, saved.title: saved.name}
        except MigsdError as error:
            self._show_error(error)
            self.saved.object = ""
            return
        self.error.visible = False
        shown = repo_relative(path) if path.resolve().is_relative_to(SCENARIOS_DIR.parents[1]) else str(path)
        command = f"migsd run --scenario {name if self.explorer.save_dir == SCENARIOS_DIR else shown}"
        self.saved.object = (f"<p class='saved-file' data-path='{html.escape(str(path))}'>Saved <code>"
                             f"{html.escape(shown)}</code> ({len(changes)} change(s)). Run it with "
                             f"<code>{html.escape(command)}</code></p>")


_ALERT_STYLE = ("color:#842029;background:#f8d7da;border:1px solid #f5c2c7;border-radius:4px;padding:0.6em 1em;"
                "white-space:pre-wrap")


def _step(control: Control) -> float:
    """A slider step where the .mdl gives none: a hundredth of the range."""
    return (control.high - control.low) / 100


def _format(control: Control) -> str:
    return "0.[00]a" if max(abs(control.low), abs(control.high)) >= 1e4 else "0.[000]"


def _notes_html(descriptions: dict[str, str]) -> str:
    items = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>" for name, text in descriptions.items())
    return f"<ul style='margin:0;padding-left:1.1em;font-size:0.85em;color:#444'>{items}</ul>"


def _css(key: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in key)


def _year(value) -> str:
    return "never (by the end of the run)" if math.isnan(value) else f"{value:.0f}"


def _yield_html(runs, band, members: int | None, held: bool = False) -> str:
    if runs is None:
        return "<div class='yield-year'>Running…</div>"
    explored = float(runs[YIELD_VARIABLE].sel(scenario=EXPLORED)) if YIELD_VARIABLE in runs else math.nan
    status_quo = float(runs[YIELD_VARIABLE].sel(scenario=STATUS_QUO)) if YIELD_VARIABLE in runs else math.nan
    headline = ("Northern restrictiveness yields in " if not math.isnan(explored)
                else "Northern restrictiveness does not yield by ")
    shown = f"{explored:.0f}" if not math.isnan(explored) else f"{float(runs['time'][-1]):.0f}"
    if math.isnan(explored) or math.isnan(status_quo):
        compare = f"status quo: {_year(status_quo)}"
    else:
        gap = explored - status_quo
        compare = f"status quo: {status_quo:.0f}" + (f" ({abs(gap):.0f} years {'earlier' if gap < 0 else 'later'})"
                                                      if gap else " (the same year)")
    spread = ""
    if band is not None and YIELD_VARIABLE in band:
        years = band[YIELD_VARIABLE].values
        yielded = years[~np.isnan(years)]
        if yielded.size:
            low, high = (float(x) for x in np.quantile(yielded, BAND_QUANTILES))
            spread = (f"calibrated ensemble: yields in {yielded.size} of {years.size} members, "
                      f"{low:.0f}-{high:.0f} ({BAND_QUANTILES[0]:.0%}-{BAND_QUANTILES[1]:.0%} of those)")
        else:
            spread = f"calibrated ensemble: yields in none of {years.size} members"
    elif members:
        spread = f"calibrated ensemble ({members} members): " + ("once the slider is let go" if held else "running…")
    return (f"<div class='yield-year' data-year='{'' if math.isnan(explored) else f'{explored:.0f}'}'>"
            f"<span class='yield-headline' style='font-size:1.8em;font-weight:600'>{headline}"
            f"<span class='yield-value'>{shown}</span></span><br>"
            f"<span class='yield-compare'>{html.escape(compare)}</span>"
            + (f"<br><span class='yield-band'>{html.escape(spread)}</span>" if spread else "") + "</div>")


def _status_html(update: int, stage: str, timing: str, changes=(), *, full: int = 0, kind: str = "full") -> str:
    changed = "; ".join(changes) if changes else "none"
    held = " (following the slider)" if kind == "follow" else ""
    return (f"<div class='run-status' data-update='{update}' data-stage='{stage}' data-full='{full}' "
            f"data-kind='{kind}'><small>Update {update}{held}: "
            f"{html.escape(timing)}. Moved: {html.escape(changed)}.</small></div>")


def session_page(explorer: Explorer, scenario: str = STATUS_QUO):
    """The view of one browser session's page, released when Bokeh destroys the session (a tab closed).

    Without the release every page load would keep its widgets, charts and
    watchers alive for the life of the server.
    """
    page = Page(explorer, scenario)
    explorer.open_pages.add(page)
    pn.state.on_session_destroyed(lambda context: page.close())
    return page.view()


def serve(explorer: Explorer, scenario: str = STATUS_QUO, *, port: int = 5006, address: str = "127.0.0.1",
          show: bool = False) -> None:
    """Serve the explorer's page at http://ADDRESS:PORT/ until interrupted (this machine only, unless told)."""
    explorer.scenario(scenario)
    pn.extension(notifications=False)
    origins = [f"{address}:{port}"] + ([f"localhost:{port}"] if address in ("127.0.0.1", "localhost") else [])
    pn.serve({"/": lambda: session_page(explorer, scenario)}, port=port, address=address, websocket_origin=origins,
             show=show, title="migsd explorer", print=False, threaded=False)
