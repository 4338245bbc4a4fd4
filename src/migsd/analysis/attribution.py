"""Attribution of the yield: the year Northern restrictiveness yields with each causal channel cut.

``models/channels.toml`` names the article's causal channels as cuts a modeller
reads and edits: each holds variables at a number (``set``) or at each run's own
value in the reference year (``freeze``), from that year on, through ``force=``.
For every scenario and ensemble member the yield year is computed as modelled
(channel ``none``) and with each channel cut, so "does restrictionism yield under
labour scarcity?" has a number: the share of members whose yield disappears (or
comes at least ``margin`` years later) when scarcity is cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import AnalysisError, ScenarioError
from ..indicators import YIELD_VARIABLE, yield_year_quantile
from ..names import canonical, did_you_mean
from ..paths import MODELS_DIR

CHANNELS_FILE = MODELS_DIR / "channels.toml"
AS_MODELLED = "none"
#: A yield that comes this many years later when a channel is cut counts as caused by it.
MARGIN = 10.0


@dataclass
class Channel:
    """One causal channel: what it holds, and how."""

    name: str
    description: str = ""
    set: dict[str, float] = field(default_factory=dict)
    freeze: list[str] = field(default_factory=list)


@dataclass
class Channels:
    path: Path
    reference_year: float
    channels: dict[str, Channel]

    def select(self, names) -> list[Channel]:
        """The channels called ``names`` (all when None); an unknown name is refused with close matches."""
        if names is None:
            return list(self.channels.values())
        chosen = []
        for name in names:
            if name not in self.channels:
                raise AnalysisError(f"{self.path}: no channel '{name}' (channels: {', '.join(self.channels)})."
                                    + did_you_mean(name, self.channels))
            chosen.append(self.channels[name])
        return chosen


def load_channels(model, path: Path | str | None = None) -> Channels:
    """The channels file, every name checked against the model."""
    from ..tomlfiles import check_table, read_toml

    path = Path(path) if path is not None else CHANNELS_FILE
    try:
        document = read_toml(path, "channels file")
        check_table(document, str(path), ("model", "reference_year", "channel"), ("channel",))
    except ScenarioError as error:
        raise AnalysisError(str(error)) from error
    year = document.get("reference_year", 2020)
    if isinstance(year, bool) or not isinstance(year, (int, float)):
        raise AnalysisError(f"{path}: reference_year must be a year, got {year!r}")
    known = {canonical(v.name): v for v in model.variables.values()}
    channels = {}
    table = document["channel"]
    if not isinstance(table, dict) or not table:
        raise AnalysisError(f"{path}: 'channel' must hold at least one [channel.\"NAME\"] table")
    for name, entry in table.items():
        where = f"{path}: channel '{name}'"
        try:
            check_table(entry, where, ("description", "set", "freeze"))
        except ScenarioError as error:
            raise AnalysisError(str(error)) from error
        held = entry.get("set", {})
        frozen = entry.get("freeze", [])
        if not isinstance(held, dict) or not isinstance(frozen, list) or not (held or frozen):
            raise AnalysisError(f"{where}: give 'set' (a table of .mdl name = number) and/or 'freeze' "
                                "(a list of .mdl names)")
        for key in list(held) + list(frozen):
            base = str(key).split("[")[0]
            if canonical(base) not in known:
                raise AnalysisError(f"{where}: '{key}' is not a variable of {model.path.name}."
                                    + did_you_mean(base, [v.name for v in known.values()]))
        for key, value in held.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AnalysisError(f"{where}: set '{key}' must be a number, got {value!r}")
        for key in frozen:
            variable = known[canonical(str(key).split("[")[0])]
            if variable.is_constant or variable.is_lookup:
                raise AnalysisError(f"{where}: freeze '{key}': a constant has no value over time to freeze; "
                                    "use 'set'")
        channels[name] = Channel(name, str(entry.get("description", "")), {k: float(v) for k, v in held.items()},
                                 [str(k) for k in frozen])
    return Channels(path, float(year), channels)


def attribution(model, scenarios, params: xr.Dataset | None = None, *, channels: Channels | None = None,
                names=None) -> xr.Dataset:
    """Yield year per ``channel`` (``none`` first: as modelled), scenario and run.

    Examples
    --------
    >>> import migsd, xarray as xr
    >>> m = migsd.load_model()
    >>> params = xr.Dataset({"material weight": ("run", [3.0])})
    >>> ds = attribution(m, ["status_quo"], params, names=["IOM programme"])
    >>> ds["channel"].values.tolist()
    ['none', 'IOM programme']
    """
    channels = channels or load_channels(model)
    chosen = channels.select(names)
    if isinstance(scenarios, str):
        scenarios = [scenarios]
    year = channels.reference_year
    frozen_names = sorted({v.split("[")[0] for c in chosen for v in c.freeze})
    names_of = [getattr(s, "name", None) or Path(str(s)).stem for s in scenarios]
    # every scenario in one batch per channel: as modelled first, its values in the reference year for the freezes
    base = model.run_batch(params, scenario=list(scenarios), return_columns=["Restrictiveness"] + frozen_names)
    base = base.assign_coords(scenario=names_of)
    rows = [base[YIELD_VARIABLE]]
    for channel in chosen:
        force = dict(channel.set)
        for key in channel.freeze:
            force.update(_frozen_values(model, base, key, year))
        cut = model.run_batch(params, scenario=list(scenarios), return_columns=["Restrictiveness"], force=force,
                              force_from=year)
        rows.append(cut[YIELD_VARIABLE].assign_coords(scenario=names_of))
    years = xr.concat(rows, dim="channel", coords="minimal", compat="override")
    years = years.assign_coords(channel=[AS_MODELLED] + [c.name for c in chosen], scenario=names_of)
    years.attrs.update({"long_name": "yield year with channel cut", "units": "year",
                        "description": f"{YIELD_VARIABLE} as modelled (channel 'none') and with each channel of "
                                       f"{channels.path.name} cut from {year:g}; NaN: no yield by the final time"})
    dataset = xr.Dataset({"yield year by channel": years})
    dataset = dataset.assign_coords(channel_description=("channel", ["as modelled"] + [c.description for c in chosen]))
    dataset.attrs["channels_file"] = channels.path.name
    dataset.attrs["reference_year"] = year
    return dataset


def _frozen_values(model, base: xr.Dataset, key: str, year: float) -> dict:
    """Each run's value of ``key`` (a whole variable or one element) in ``year``, one force entry per element."""
    name, _, rest = key.partition("[")
    variable = model.variable(name.strip())
    values = base[variable.name].interp(time=year)
    if rest:
        elements = [e.strip() for e in rest.rstrip("]").split(",")]
        values = values.sel(dict(zip(variable.dims, elements)))
        return {key: values.transpose("scenario", "run")}
    out = {}
    if not variable.dims:
        return {variable.name: values.transpose("scenario", "run")}
    stacked = values.stack(cell=variable.dims)
    for k in range(stacked.sizes["cell"]):
        cell = stacked.isel(cell=k)
        elements = [str(cell[d].values) for d in variable.dims]
        out[f"{variable.name}[{','.join(elements)}]"] = cell.drop_vars(["cell", *variable.dims]).transpose("scenario", "run")
    return out


def summary(years: xr.DataArray, by=(2040, 2060, 2080, 2100), margin: float = MARGIN) -> xr.Dataset:
    """Probabilities over runs: of a yield by each year per channel, and that cutting a channel removes or delays it."""
    by_year = xr.concat([(years <= y).mean("run") for y in by], dim=xr.DataArray(list(by), dims="by", name="by"))
    modelled = years.sel(channel=AS_MODELLED)
    final = float(by[-1])
    yielded = modelled <= final
    later = np.isnan(years) | (years > final) | (years >= modelled + margin)
    caused = (yielded & later).mean("run")
    caused.loc[{"channel": AS_MODELLED}] = np.nan
    return xr.Dataset({
        "P(yield by) with channel cut": by_year.transpose("channel", "scenario", "by").assign_attrs(
            long_name="probability of a yield by each year, as modelled (channel none) and with each channel cut",
            units="dimensionless"),
        "P(yield removed or delayed by cut)": caused.assign_attrs(
            long_name=f"share of members that yield by {final:g} as modelled and, with the channel cut, do not "
                      f"yield by then or yield at least {margin:g} years later", units="dimensionless"),
        "median yield year with channel cut": yield_year_quantile(years, 0.5).assign_attrs(
            units="year", long_name="median yield year over members that yield"),
    })


__all__ = ["AS_MODELLED", "CHANNELS_FILE", "Channel", "Channels", "MARGIN", "attribution", "load_channels",
           "summary"]
