"""Several scenarios of one model, gathered along a ``scenario`` dimension."""

from __future__ import annotations

import xarray as xr
from tqdm.auto import tqdm

from .errors import MigsdError
from .model import Model, load_model
from .scenarios import resolve_scenario


def run_scenarios(scenarios, model: Model | None = None, *, progress: bool = True, **run_options) -> xr.Dataset:
    """Run each scenario and stack the results along a ``scenario`` dim.

    Examples
    --------
    >>> import migsd
    >>> ds = migsd.run_scenarios(["status_quo", "open_borders"], final_time=2021, time_step=0.5, progress=False)
    >>> ds["scenario"].values.tolist()
    ['status_quo', 'open_borders']
    """
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    resolved = [resolve_scenario(s) for s in scenarios]
    names = [s.name for s in resolved]
    if len(set(names)) != len(names):
        raise MigsdError(f"run_scenarios: scenario names repeat: {names}")
    model = model or load_model()
    results = []
    # one scenario: a bar over its time steps; several: a bar over the scenarios
    step_progress = progress and len(resolved) == 1
    for scenario in tqdm(resolved, desc="scenarios", unit="run", disable=not progress or step_progress):
        results.append(model.run(scenario=scenario, progress=step_progress, **run_options))
    # variables' attrs come from the .mdl, the same in every run: keep the first run's
    combined = xr.concat(
        results, dim=xr.Variable("scenario", names), combine_attrs="override", coords="minimal", compat="override"
    )
    combined = combined.assign_coords(
        scenario_title=("scenario", [s.title for s in resolved], {"long_name": "scenario title"})
    )
    attrs = dict(results[0].attrs)
    for key in ("scenario", "scenario_file", "parameter_sources", "title"):
        attrs.pop(key, None)
    attrs["title"] = "migsd scenarios"
    attrs["scenario_files"] = "; ".join(r.attrs["scenario_file"] for r in results)
    attrs["scenario_sha256"] = "; ".join(r.attrs["scenario_sha256"] for r in results)
    combined.attrs = attrs
    return combined
