"""Scenario discovery: which parameter ranges make an outcome of a sweep likely, by PRIM.

PRIM (Friedman and Fisher 1999) is the EMA Workbench's implementation, run on
the sweep's sample and a yes/no outcome per run, by default "Northern
restrictiveness has yielded by 2060" (a yield year that never comes counts as
no). Each box is reported with coverage (the share of all cases of the outcome
that fall in the box) and density (the share of runs in the box with the
outcome), for the outcome and for its opposite.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import MigsdError
from ..indicators import YIELD_VARIABLE


@dataclass
class Box:
    outcome: str
    share: float  # of all completed runs with the outcome
    coverage: float
    density: float
    mass: float
    limits: pd.DataFrame  # parameter, low, high; only the restricted ones
    trajectory: pd.DataFrame


def _prim():
    with warnings.catch_warnings():
        # the workbench announces optional parallel back ends at import; they are not used here
        warnings.simplefilter("ignore")
        from ema_workbench.analysis import prim

    return prim


def outcome(results: xr.Dataset, scenario: str, by: float) -> np.ndarray:
    years = results[YIELD_VARIABLE].sel(scenario=scenario).values
    return np.nan_to_num(years, nan=np.inf) <= by


def discover(results: xr.Dataset, *, scenario: str, by: float = 2060, threshold: float = 0.8,
             alpha: float = 0.05) -> list[Box]:
    """PRIM boxes for "yields by ``by``" and its opposite, in ``scenario``, over completed runs."""
    if YIELD_VARIABLE not in results:
        raise MigsdError(f"the sweep has no '{YIELD_VARIABLE}': add it to the problem's outputs")
    done = results["status"].sel(scenario=scenario).values == 1
    x = pd.DataFrame({name[len("param "):]: results[name].values[done]
                      for name in results.data_vars if name.startswith("param ")})
    yielded = outcome(results, scenario, by)[done]
    bounds = x.agg(["min", "max"])
    prim = _prim()
    boxes = []
    for label, y in ((f"yields by {by:g}", yielded), (f"has not yielded by {by:g}", ~yielded)):
        if y.sum() == 0 or y.all():
            boxes.append(Box(label, float(y.mean()), float("nan"), float("nan"), float("nan"),
                             pd.DataFrame(columns=["parameter", "low", "high"]), pd.DataFrame()))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the workbench's notices about restricted dimensions
            box = prim.Prim(x, y, threshold=threshold, peel_alpha=alpha).find_box()
        trajectory = box.peeling_trajectory.copy()
        eligible = trajectory[trajectory["density"] >= threshold]
        index = int(eligible["coverage"].idxmax()) if len(eligible) else int(trajectory["density"].idxmax())
        point = trajectory.loc[index]
        limits = box.box_lims[index]
        rows = []
        for parameter in x.columns:
            low, high = float(limits[parameter].iloc[0]), float(limits[parameter].iloc[1])
            if low > bounds[parameter]["min"] or high < bounds[parameter]["max"]:
                rows.append({"parameter": parameter, "low": low, "high": high,
                             "sampled low": bounds[parameter]["min"], "sampled high": bounds[parameter]["max"]})
        boxes.append(Box(label, float(y.mean()), float(point["coverage"]), float(point["density"]),
                         float(point["mass"]), pd.DataFrame(rows), trajectory))
    return boxes


def write(boxes: list[Box], folder: Path, scenario: str) -> list[Path]:
    """A table (CSV) of the boxes and a figure of their peeling trajectories."""
    from ..plotting import plt, save_figure  # imported here: matplotlib is slow to import and few calls draw

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for box in boxes:
        for _, limit in box.limits.iterrows():
            rows.append({"scenario": scenario, "outcome": box.outcome, "share of runs": box.share,
                         "coverage": box.coverage, "density": box.density, "mass": box.mass, **limit.to_dict()})
    table = folder / f"prim_{scenario}.csv"
    pd.DataFrame(rows).to_csv(table, index=False, float_format="%.4g")
    figure, axes = plt.subplots(1, len(boxes), figsize=(5 * len(boxes), 4), squeeze=False)
    for axis, box in zip(axes.flat, boxes):
        if len(box.trajectory):
            points = axis.scatter(box.trajectory["coverage"], box.trajectory["density"],
                                  c=box.trajectory["res_dim"], cmap="viridis", s=18)
            figure.colorbar(points, ax=axis, label="parameters restricted")
            axis.plot([box.coverage], [box.density], "o", markersize=12, markerfacecolor="none", color="C3")
        axis.set_xlabel("coverage")
        axis.set_ylabel("density")
        axis.set_title(f"{scenario}: {box.outcome} ({100 * box.share:.0f}% of runs)", fontsize=9)
    figure.tight_layout()
    picture = folder / f"prim_{scenario}.png"
    return [table, save_figure(figure, picture)]
