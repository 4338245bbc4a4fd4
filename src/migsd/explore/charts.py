"""The explorer's linked charts (Bokeh): what each shows, built once, then fed new columns.

Every chart shares one time axis, so panning or zooming one moves them all. A
chart draws, per line (a region, or the one value): the explored scenario
(solid), the status quo (dashed) and, where a calibrated ensemble exists, the
band of its members (shaded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import xarray as xr
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d, Span
from bokeh.palettes import Category10_10
from bokeh.plotting import figure

from ..indicators import YIELD_DEFINITION, YIELD_VARIABLE
from ..names import snake_case


@dataclass(frozen=True)
class Chart:
    """One chart: a .mdl variable, optionally some elements, optionally summed over a dim."""

    variable: str
    select: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (dim, elements kept), ...
    sum_over: str | None = None  # a subscript dim added up

    def title(self, model) -> str:
        units = model.variable(self.variable).units
        name = self.variable
        if self.select:
            name += "[" + ",".join(",".join(elements) for _, elements in self.select) + "]"
        if self.sum_over:
            subscript = next(s for s in model.variable(self.variable).subscripts if snake_case(s) == self.sum_over)
            name += f", summed over {subscript}"
        return f"{name} ({units})" if units else name

    def lines(self, values: xr.DataArray) -> dict[str, np.ndarray]:
        """The chart's lines from a variable over ``time`` (and subscript dims): label -> values over time."""
        if self.select:
            values = values.sel({dim: list(elements) for dim, elements in self.select})
        if self.sum_over:
            values = values.sum(self.sum_over)
        others = [d for d in values.dims if d != "time"]
        if not others:
            return {self.variable: values.transpose("time").values}
        if len(others) > 1:
            raise ValueError(f"chart of '{self.variable}' has dims {others}; select or sum all but one")
        return {str(label): values.sel({others[0]: label}).transpose("time").values
                for label in values[others[0]].values}


#: The charts of the page, in order; the first shows the yield year.
CHARTS = (
    Chart("Restrictiveness", select=(("region", (YIELD_DEFINITION["region"],)),)),
    Chart("Enforcement"),
    Chart("labour tightness"),
    Chart("anti migrant sentiment"),
    Chart("migrant bargaining power"),
    Chart("Rights Observance"),
    Chart("south south share of flows"),
    Chart("irregular arrivals", sum_over="origin"),
)


def chart_columns() -> list[str]:
    return [chart.variable for chart in CHARTS]


class ChartSet:
    """The Bokeh figures of one page, and how new runs reach them."""

    def __init__(self, model, labels: dict[str, list[str]], times: np.ndarray):
        self.model = model
        self.times = np.asarray(times, dtype=float)
        self.x_range = Range1d(float(self.times[0]), float(self.times[-1]))
        self.figures, self.sources, self.labels = [], {}, labels
        self.yield_span = Span(location=0, dimension="height", line_color="#b2182b", line_width=2, visible=False)
        self.threshold_span = Span(location=0, dimension="width", line_color="#b2182b", line_dash="dotted",
                                   visible=False)
        for index, chart in enumerate(CHARTS):
            self.figures.append(self._figure(chart, labels[chart.variable], first=index == 0))

    def _figure(self, chart: Chart, labels: list[str], *, first: bool):
        nan = np.full(self.times.size, np.nan)
        data = {"time": self.times}
        for label in labels:
            for part in ("now", "status quo", "low", "high"):
                data[f"{label}|{part}"] = nan
        source = ColumnDataSource(data, name=f"source {chart.variable}")
        self.sources[chart.variable] = source
        plot = figure(title=chart.title(self.model), height=240, sizing_mode="stretch_width", x_range=self.x_range,
                      tools="pan,xwheel_zoom,box_zoom,reset,save", toolbar_location="right",
                      name=f"chart {chart.variable}")
        plot.xaxis.axis_label = "Year"
        plot.yaxis.formatter = NumeralTickFormatter(format="0.[00]a")
        lines = []
        for number, label in enumerate(labels):
            color = Category10_10[number % 10]
            plot.varea(x="time", y1=f"{label}|low", y2=f"{label}|high", source=source, color=color, alpha=0.15)
            plot.line(x="time", y=f"{label}|status quo", source=source, color=color, line_dash="dashed",
                      line_width=1.5, alpha=0.8)
            lines.append(plot.line(x="time", y=f"{label}|now", source=source, color=color, line_width=2.5,
                                   legend_label=label, name=label))
        # one hover tool for all lines: a tool per line would crowd the toolbar and slow every redraw
        plot.add_tools(HoverTool(renderers=lines, tooltips=[("", "$name"), ("year", "$x{0}"),
                                                            ("explored", "$y{0.[000]a}")]))
        plot.legend.location = "top_left"
        plot.legend.label_text_font_size = "8pt"
        plot.legend.background_fill_alpha = 0.6
        if first:
            plot.add_layout(self.yield_span)
            plot.add_layout(self.threshold_span)
        return plot

    def show_runs(self, runs: xr.Dataset, explored: str, status_quo: str) -> None:
        """Lines of the explored scenario and of the status quo; the band is cleared until :meth:`show_band`.

        Each chart's source gets one update holding only the columns that changed:
        every update of a source makes the browser lay out and repaint its chart,
        and that repaint, not the run, is most of the time from a slider's move to
        its redrawn charts (``benchmarks/explorer_latency.py``).
        """
        for chart in CHARTS:
            changed = {}
            for scenario, part in ((explored, "now"), (status_quo, "status quo")):
                for label, values in chart.lines(runs[chart.variable].sel(scenario=scenario)).items():
                    changed[f"{label}|{part}"] = values
            changed.update(self._band_columns(chart, None))
            self._update(chart, changed)
        year = float(runs[YIELD_VARIABLE].sel(scenario=explored)) if YIELD_VARIABLE in runs else math.nan
        self.yield_span.visible = not math.isnan(year)
        if not math.isnan(year):
            self.yield_span.location = year
        north = runs["Restrictiveness"].sel(scenario=explored, region=YIELD_DEFINITION["region"])
        self.threshold_span.location = float(north.interp(time=YIELD_DEFINITION["reference_year"])) - \
            YIELD_DEFINITION["drop"]
        self.threshold_span.visible = True

    def show_band(self, band: xr.Dataset | None) -> None:
        """The ensemble's spread; ``None`` clears it."""
        for chart in CHARTS:
            self._update(chart, self._band_columns(chart, band))

    def _band_columns(self, chart: Chart, band: xr.Dataset | None) -> dict[str, np.ndarray]:
        columns = {f"{label}|{part}": np.full(self.times.size, np.nan)
                   for label in self.labels[chart.variable] for part in ("low", "high")}
        if band is not None:
            for part, quantile in (("low", 0), ("high", 1)):
                for label, line in chart.lines(band[chart.variable].isel(quantile=quantile)).items():
                    columns[f"{label}|{part}"] = line
        return columns

    def _update(self, chart: Chart, columns: dict[str, np.ndarray]) -> None:
        """Send the source of ``chart`` the columns that differ from what it shows (nothing if none does)."""
        source = self.sources[chart.variable]
        shown = source.data
        changed = {name: values for name, values in columns.items()
                   if not np.array_equal(shown[name], values, equal_nan=True)}
        if changed:
            source.data.update(changed)


def chart_labels(run: xr.Dataset) -> dict[str, list[str]]:
    """The lines each chart draws (by variable), from one run that has every chart's variable."""
    return {chart.variable: list(chart.lines(run[chart.variable]).keys()) for chart in CHARTS}
