"""Figures of run results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

from .indicators import YIELD_VARIABLE  # noqa: E402

HEADLINE_PANELS = (
    ("Restrictiveness", {"region": "North"}, "Northern admission restrictiveness"),
    ("labour shortage", {"region": "North"}, "Northern labour shortage"),
    ("south south share of flows", {}, "South-South share of arrivals"),
    ("migrant bargaining power", {"region": "North"}, "Migrant bargaining power in the North"),
    ("Rights Observance", {"region": "SouthLower"}, "Rights observance, SouthLower"),
    ("total deaths on routes", {}, "Deaths on migration routes"),
)


def headline_figure(dataset: xr.Dataset, path: str | Path | None = None):
    """Six panels comparing scenarios on the article's chain; the yield year marked on the first."""
    scenarios = list(dataset["scenario"].values) if "scenario" in dataset.dims else [None]
    figure, axes = plt.subplots(2, 3, figsize=(14, 7.5), constrained_layout=True)
    for axis, (name, selection, title) in zip(axes.flat, HEADLINE_PANELS):
        for scenario in scenarios:
            data = dataset[name].sel(selection)
            if scenario is not None:
                data = data.sel(scenario=scenario)
            label = str(dataset["scenario_title"].sel(scenario=scenario).values) if scenario is not None else "run"
            line = axis.plot(data["time"], data, label=label)[0]
            if name == "Restrictiveness" and YIELD_VARIABLE in dataset:
                year = dataset[YIELD_VARIABLE].sel(scenario=scenario) if scenario is not None else dataset[YIELD_VARIABLE]
                if bool(year.notnull()):
                    axis.axvline(float(year), color=line.get_color(), linestyle=":", linewidth=1)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("year")
        axis.set_ylabel(dataset[name].attrs.get("mdl_units", ""))
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7, loc="best")
    figure.suptitle("Does Northern restrictionism yield under labour scarcity? (dotted: yield year)", fontsize=12)
    if path is not None:
        save_figure(figure, path, dpi=110)
    return figure


def save_figure(figure, path: str | Path, dpi: int = 90) -> Path:
    """Write a figure as PNG, whole or not at all (a killed run leaves no half-written picture), and close it."""
    from .outputs import write_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=dpi, format="png"))
    finally:
        plt.close(figure)
    return path
