"""Region sets: a country -> region mapping becomes a complete, runnable model folder.

``migsd regions MAPPING.csv --out DIR`` (and :func:`build_region_model`) takes
``models/migsd.mdl`` as the template and writes into ``DIR``:

- ``migsd.mdl``: the ``Region`` range (and any range whose elements are regions)
  rewritten; every data-derived definition regenerated from the country-level
  data of ``calibration/data/countries`` summed over the mapping, through the
  same code as ``migsd data --write`` (:func:`migsd.calibration.inputs.mdl_inputs`);
  every other constant with one value per region given each new region's value
  from its *parent* (the shipped region most of its 1990 population falls in,
  which is the income-group/GCC rule the shipped regions are cut by) unless the
  region table says otherwise;
- ``calibration/``: the mapping, the aggregated data files in the shipped
  layout, and targets, priors and settings with region-specific entries
  re-aggregated;
- ``scenarios/``, ``checks.toml``, ``loops.toml``, ``channels.toml``,
  ``sensitivity/``: carried over with region names translated.

A region table (``MAPPING.toml`` beside the mapping, optional) may give, per
region, ``inherit`` (the shipped region whose constants it takes) and ``values``
(explicit constants), ``stand_in`` (which new region an equation, check or
target naming a shipped region refers to, when that region is split),
``scenarios`` (a folder of scenarios only this cut can state, added to the carried ones)
and ``targets`` (a file of calibration targets only this cut can state, added to the carried ones).

Political-core targets (IMPIC, WVS, the US and EU proxies, IOM deaths by route, labour
tightness) are re-aggregated by the mapping (:func:`write_political_data`) and carried
region by region; a copy for a region its data lack is left out, saying why.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .calibration.data import COUNTRY_DIR, population_1990
from .errors import RegionError
from .mdlsource import _NAME, entries
from .names import did_you_mean
from .paths import CALIBRATION_DIR, DEFAULT_MODEL, MODELS_DIR, SHARED_DIR, repo_relative

#: The shipped mapping (iso3 -> region), whose regions the template .mdl has.
DEFAULT_MAPPING = CALIBRATION_DIR / "regions.csv"

#: The subscript ranges indexed by region in the template: ``Origin`` and ``Destination`` map to ``Region``.
REGION_RANGE = "Region"

# Vensim allows more in an element name, but the model's elements are CamelCase words (STYLE.md) and the
# dims of the outputs take them as labels; this is the subset both read the same way.
_ELEMENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NUMBERS = re.compile(r"[\s\d.eE+\-,;\\]+")
_SUBSCRIPTS = re.compile(r"\[([^\]]*)\]")


# --------------------------------------------------------------------------------------- data
@lru_cache(maxsize=4)
def _country_frames(directory: Path = COUNTRY_DIR) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    try:
        wpp = pd.read_csv(directory / "wpp2024_countries.csv.gz")
        destination = pd.concat([
            pd.read_csv(directory / f"{edition}_destination_countries.csv.gz").assign(variant=edition)
            for edition in ("ims2020", "ims2024")])
        bilateral = pd.read_csv(directory / "ims2020_od_countries.csv.gz")
    except FileNotFoundError as error:
        raise RegionError(f"country-level data file not found: {error.filename}") from error
    return wpp, destination, bilateral


def _locations() -> pd.DataFrame:
    return pd.read_csv(CALIBRATION_DIR / "data" / "locations.csv")


def aggregate(mapping: pd.Series, directory: Path = COUNTRY_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The country data summed by ``mapping`` (iso3 -> region), in the layout of the shipped region files.

    Returns the ``model_regions_timeseries.csv`` and ``model_regions_od_ims2020.csv``
    frames, the region code being the region's own name.
    """
    wpp, destination, bilateral = _country_frames(directory)
    series = wpp.assign(region=wpp["iso3"].map(mapping)).dropna(subset=["region"])
    series = series.groupby(["region", "variable", "variant", "year"], as_index=False)["value"].sum()
    stocks = destination.assign(region=destination["iso3"].map(mapping)).dropna(subset=["region"])
    stocks = stocks.groupby(["region", "variant", "year"], as_index=False)["migrant_stock_both"].sum()
    stocks = stocks.rename(columns={"migrant_stock_both": "value"}).assign(variable="migrant_stock_both")
    timeseries = pd.concat([series, stocks])[["region", "year", "variable", "variant", "value"]]
    origin = bilateral["orig_iso3"].map(mapping).where(bilateral["orig_iso3"] != "XXX", "unknown")
    od = bilateral.assign(orig_region=origin, dest_region=bilateral["dest_iso3"].map(mapping))
    od = od.dropna(subset=["orig_region", "dest_region"])
    od = od.groupby(["year", "orig_region", "dest_region"], as_index=False)["stock_both"].sum()
    return timeseries.reset_index(drop=True), od


def aggregate_displacement(mapping: pd.Series, directory: Path = COUNTRY_DIR) -> pd.DataFrame:
    """UNHCR protection stocks by host x origin region of ``mapping``, in the layout of ``unhcr_model_regions.csv``.

    UNHCR's country file gives each country's stock as host and as origin, not
    country by country, so the shipped host x origin table by data region is the
    seed: a new region takes, of each shipped pair's stock, its countries' share
    of the shipped host region's hosted stock times their share of the shipped
    origin region's stock of that origin (independence within a shipped region).
    A shipped region kept whole keeps its numbers exactly; origins UNHCR records as
    unknown stay unknown, as in the shipped table.
    """
    try:
        countries = pd.read_csv(directory / "unhcr_countries.csv.gz")
    except FileNotFoundError as error:
        raise RegionError(f"country-level data file not found: {error.filename}") from error
    seed_path = CALIBRATION_DIR / "data" / "unhcr_model_regions.csv"
    seed = pd.read_csv(seed_path)
    seed = seed[(seed["origin_region"] != "all") & (seed["host_region"] != "unknown")]
    code = _locations().set_index("iso3")["model_region"]
    population = population_1990(directory)
    by_population = (population.groupby([code, mapping]).sum() / population.groupby(code).sum()).rename("share")

    def shares(role: str) -> pd.DataFrame:
        """Share of each (data code, new region) in the code's stock, by year and group (whole codes: exactly 1)."""
        rows = countries[(countries["role"] == role) & countries["iso3"].isin(mapping.index)]
        rows = rows.assign(code=rows["iso3"].map(code), region=rows["iso3"].map(mapping))
        table = rows.groupby(["year", "variable", "code", "region"])["value"].sum()
        total = table.groupby(["year", "variable", "code"]).transform("sum")
        share = (table / total.where(total > 0)).rename("share").reset_index()
        # a code with no stock in the country file that year: its countries' 1990 residents decide
        fallback = by_population.rename("fallback").rename_axis(["code", "region"]).reset_index()
        share = share.merge(fallback, on=["code", "region"], how="left")
        share["share"] = share["share"].fillna(share["fallback"])
        whole = mapping.groupby(code.reindex(mapping.index)).nunique() == 1
        share.loc[share["code"].map(whole).fillna(False).astype(bool), "share"] = 1.0
        return share[["year", "variable", "code", "region", "share"]]

    host, origin = shares("asylum_country"), shares("origin_country")
    frame = seed.merge(host.rename(columns={"code": "host_region", "region": "host", "share": "host_share"}),
                       on=["year", "variable", "host_region"], how="left")
    frame = _fill_by_population(frame, by_population, "host_region", "host", "host_share")
    frame = frame.merge(origin.rename(columns={"code": "origin_region", "region": "origin", "share": "origin_share"}),
                        on=["year", "variable", "origin_region"], how="left")
    unknown = frame["origin_region"] == "unknown"
    frame.loc[unknown, "origin"], frame.loc[unknown, "origin_share"] = "unknown", 1.0
    frame = _fill_by_population(frame, by_population, "origin_region", "origin", "origin_share")
    frame = frame.assign(value=frame["value"] * frame["host_share"] * frame["origin_share"])
    out = frame.groupby(["year", "host", "origin", "variable"], as_index=False)["value"].sum()
    out = out.rename(columns={"host": "host_region", "origin": "origin_region"})
    return out[["year", "host_region", "origin_region", "variable", "value"]].reset_index(drop=True)


def _fill_by_population(frame: pd.DataFrame, by_population: pd.Series, code: str, region: str,
                        share: str) -> pd.DataFrame:
    """Rows whose data region has no country row that year: shared by the 1990 residents of its countries."""
    missing = frame[region].isna()
    if not missing.any():
        return frame
    fallback = by_population.rename(share).rename_axis([code, region]).reset_index()
    filled = frame[missing].drop(columns=[region, share]).merge(fallback, on=code)
    return pd.concat([frame[~missing], filled])


# ------------------------------------------------------------------------------------ mapping
def read_mapping(path: str | Path) -> pd.DataFrame:
    """A mapping file (``iso3,name,region``), checked: every country of ``locations.csv`` in exactly one region,
    each region a valid subscript element with people in 1990.

    Returns the rows with their line numbers (``line``), in file order.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as error:
        raise RegionError(f"region mapping not found: {path}") from error
    missing = [c for c in ("iso3", "region") if c not in frame.columns]
    if missing:
        raise RegionError(f"{path}: missing column(s) {missing}; a mapping has columns iso3,name,region")
    frame["line"] = np.arange(len(frame)) + 2  # line 1 is the header
    frame["iso3"] = frame["iso3"].str.strip()
    frame["region"] = frame["region"].str.strip()
    locations = _locations()
    known = set(locations["iso3"].dropna())
    for row in frame.itertuples():
        if not _ELEMENT.match(row.region):
            raise RegionError(
                f"{path}: row {row.line}: region '{row.region}' is not a valid Vensim subscript element; an element "
                "is a letter followed by letters, digits or '_' (like SouthUpper)")
        if row.iso3 not in known:
            raise RegionError(
                f"{path}: row {row.line}: iso3 '{row.iso3}' is not a country of calibration/data/locations.csv; use "
                "the ISO 3166 alpha-3 codes listed there." + did_you_mean(row.iso3, sorted(known)))
    first: dict[str, tuple[int, str]] = {}
    for row in frame.itertuples():
        if row.iso3 in first:
            line, region = first[row.iso3]
            raise RegionError(
                f"{path}: row {row.line}: {row.iso3} is already mapped to {region} at row {line}; a country belongs "
                "to exactly one region")
        first[row.iso3] = (row.line, row.region)
    unmapped = sorted(known - set(frame["iso3"]))
    if unmapped:
        raise RegionError(
            f"{path}: no region for {', '.join(unmapped[:10])}{' ...' if len(unmapped) > 10 else ''} "
            f"({len(unmapped)} countries of calibration/data/locations.csv); add a row 'iso3,name,region' for each")
    people = frame["iso3"].map(population_1990()).fillna(0.0).groupby(frame["region"]).sum()
    for region, total in people.items():
        if total <= 0:
            rows = frame.loc[frame["region"] == region, "line"].tolist()
            raise RegionError(
                f"{path}: row {rows[0]}: region '{region}' has no residents in 1990 (WPP 2024) in any of its "
                f"{len(rows)} countries; a region needs people to run: merge it into another")
    return frame


def _read_table(path: Path) -> dict:
    if not path.is_file():
        return {}
    from .tomlfiles import read_toml

    table = read_toml(path, "region table")
    unknown = set(table) - {"regions", "stand_in", "order", "scenarios", "targets"}
    if unknown:
        raise RegionError(f"{path}: unknown key(s) {sorted(unknown)}; a region table has regions, stand_in, order, "
                          "scenarios, targets")
    return table


@dataclass
class RegionSet:
    """A mapping read and resolved against the template's regions: order, parents and stand-ins."""

    mapping_path: Path
    rows: pd.DataFrame
    template_regions: list[str]
    table: dict = field(default_factory=dict)

    @cached_property
    def mapping(self) -> pd.Series:
        return self.rows.set_index("iso3")["region"]

    @cached_property
    def default_regions(self) -> pd.Series:
        """The shipped mapping (iso3 -> template region)."""
        rows = read_mapping(DEFAULT_MAPPING)
        return rows.set_index("iso3")["region"]

    @cached_property
    def people(self) -> pd.Series:
        return self.mapping.index.to_series().map(population_1990()).fillna(0.0).groupby(self.mapping).sum()

    @cached_property
    def parents(self) -> dict[str, str]:
        """Each region's parent: the shipped region most of its 1990 residents live in, unless the table says."""
        people = self.mapping.index.to_series().map(population_1990()).fillna(0.0)
        frame = pd.DataFrame({"region": self.mapping, "default": self.default_regions.reindex(self.mapping.index),
                              "people": people})
        plurality = frame.groupby(["region", "default"])["people"].sum().reset_index()
        plurality = plurality.sort_values("people", ascending=False).drop_duplicates("region")
        parents = dict(zip(plurality["region"], plurality["default"]))
        where = self.mapping_path.with_suffix(".toml")
        for region, settings in self.table.get("regions", {}).items():
            if region not in parents:
                raise RegionError(f"{where}: [regions.{region}]: no such region in {self.mapping_path.name}."
                                  + did_you_mean(region, list(parents)))
            if "inherit" in settings:
                if settings["inherit"] not in self.template_regions:
                    raise RegionError(f"{where}: [regions.{region}] inherit = '{settings['inherit']}' is not a "
                                      f"region of the template ({', '.join(self.template_regions)})")
                parents[region] = settings["inherit"]
        return parents

    @cached_property
    def regions(self) -> list[str]:
        """The new regions in the order of their parents in the template, then by 1990 population (largest first)."""
        if "order" in self.table:
            order = list(self.table["order"])
            if sorted(order) != sorted(self.parents):
                raise RegionError(f"{self.mapping_path.with_suffix('.toml')}: order {order} must list each region "
                                  f"of {self.mapping_path.name} once: {sorted(self.parents)}")
            return order
        parents, people = self.parents, self.people
        return sorted(parents, key=lambda r: (self.template_regions.index(parents[r]), -people[r], r))

    def children(self, element: str) -> list[str]:
        """The new regions that stand for a template region where a setting applies to it (its heirs)."""
        if element in self.regions:
            return [element]
        return [r for r in self.regions if self.parents[r] == element]

    def stand_in(self, element: str) -> str:
        """The one new region a reference to ``element`` means: itself, the table's choice, else the region
        holding most of its 1990 residents."""
        if element in self.regions:
            return element
        chosen = self.table.get("stand_in", {}).get(element)
        if chosen is not None:
            if chosen not in self.regions:
                raise RegionError(f"{self.mapping_path.with_suffix('.toml')}: stand_in {element} = '{chosen}' is not "
                                  f"a region of {self.mapping_path.name} ({', '.join(self.regions)})")
            return chosen
        default = self.default_regions
        members = default[default == element].index
        people = members.to_series().map(population_1990()).fillna(0.0).groupby(self.mapping.reindex(members)).sum()
        return str(people.idxmax())

    def values(self, region: str) -> dict:
        return self.table.get("regions", {}).get(region, {}).get("values", {})

    @cached_property
    def is_template(self) -> bool:
        return self.regions == self.template_regions and all(self.parents[r] == r for r in self.regions)


def read_region_set(mapping: str | Path, template: str | Path = DEFAULT_MODEL) -> RegionSet:
    """Read ``mapping`` (and its region table ``MAPPING.toml`` if present) against the template .mdl's regions."""
    mapping = Path(mapping)
    rows = read_mapping(mapping)
    text = Path(template).read_text(encoding="utf-8")
    return RegionSet(mapping, rows, _range_elements(text, REGION_RANGE), _read_table(mapping.with_suffix(".toml")))


# ----------------------------------------------------------------------------------- the .mdl
def _range_elements(text: str, name: str) -> list[str]:
    for entry in entries(text):
        match = _NAME.match(entry.equation)
        if match and match.group(1).strip() == name and match.group(4) == ":":
            return [e.strip() for e in entry.equation.split(":", 1)[1].split(",") if e.strip()]
    raise RegionError(f"the template .mdl has no subscript range '{name}'")


def _dims(subscripts: str) -> list[str]:
    return [s.strip() for s in subscripts.strip("[]").split(",")]


def _ranges(text: str) -> dict[str, list[str]]:
    found = {}
    for entry in entries(text):
        match = _NAME.match(entry.equation)
        if match and match.group(4) == ":" and not entry.is_group:
            found[match.group(1).strip()] = [e.strip() for e in entry.equation.split(":", 1)[1].split(",")
                                             if e.strip()]
        elif match and match.group(4) == "<->":
            found[match.group(1).strip()] = None  # a mapped range: the elements of the range it maps to
    return found


def rewrite_mdl(text: str, regions: RegionSet, source: str = "the template") -> str:
    """The template's text re-cut to ``regions`` (data-derived definitions not yet regenerated)."""
    template = regions.template_regions
    ranges = _ranges(text)
    region_dims = {REGION_RANGE} | {name for name, elements in ranges.items() if elements is None}
    lines = text.split("\n")
    edits: list[tuple[int, int, list[str]]] = []  # (first line, line after, new lines), lines from 0
    data_names = set(DATA_DEFINITIONS)
    for entry in entries(text):
        if entry.is_group:
            continue
        match = _NAME.match(entry.equation)
        if not match:
            continue
        name, subscripts, kind = match.group(1).strip(), match.group(2), match.group(4)
        first, after = entry.line - 1, entry.field_lines[1] - 1
        equation = "\n".join(lines[first:after])
        if kind == ":":
            elements = ranges.get(name) or []
            if elements and set(elements) <= set(template) and not regions.is_template:
                new = regions.regions if name == REGION_RANGE else sorted(
                    {c for e in elements for c in regions.children(e)}, key=regions.regions.index)
                body = equation.split(":", 1)[1]
                indent = body[: len(body) - len(body.lstrip())]
                edits.append((first, after, (equation.split(":", 1)[0] + ":" + indent + ", ".join(new)).split("\n")))
                if name == REGION_RANGE:
                    comment = _region_comment(regions, source)
                    start, stop = entry.field_lines[2] - 1, entry.end - 1
                    edits.append((start, stop, [f"\t~\t{comment}"]))
            continue
        if name in data_names or kind == "<->":
            continue
        dims = _dims(subscripts) if subscripts else []
        rhs = equation.split("=", 1)[1] if "=" in equation and kind in ("=",) else None
        if any(d in template for d in dims):
            raise RegionError(
                f"{source}: line {entry.line}: '{name}{subscripts}' is defined element by element; the region "
                "generator re-cuts only definitions over whole ranges (write it over [Region], or derive it from "
                "data in migsd.calibration.inputs.mdl_inputs)")
        if rhs is not None and dims and _NUMBERS.fullmatch(rhs) and any(d in region_dims for d in dims):
            new_rhs = _inherit(rhs, name, dims, region_dims, regions, ranges, f"{source}: line {entry.line}")
            if new_rhs != rhs:
                head = equation[: len(equation) - len(rhs)]
                edits.append((first, after, (head + new_rhs).split("\n")))
            continue
        if not regions.is_template and rhs is not None:
            replaced = _SUBSCRIPTS.sub(lambda m: _refer(m, regions, template, source, entry.line), equation)
            if replaced != equation:
                edits.append((first, after, replaced.split("\n")))
    for first, after, new in sorted(edits, reverse=True):
        lines[first:after] = new
    return "\n".join(lines)


def _region_comment(regions: RegionSet, source: str) -> str:
    parts = ", ".join(f"{r} ({regions.parents[r]})" for r in regions.regions)
    return (f"World regions cut by {regions.mapping_path.name} (country membership: calibration/regions.csv in "
            f"this folder); in brackets the region of {source} each takes its behavioural constants from, unless "
            f"its region table says otherwise: {parts}.")


def _refer(match: re.Match, regions: RegionSet, template: list[str], source: str, line: int) -> str:
    tokens = [t.strip() for t in match.group(1).split(",")]
    out = []
    for token in tokens:
        bare = token.rstrip("!")
        if bare in template and bare not in regions.regions:
            token = regions.stand_in(bare) + token[len(bare):]
        out.append(token)
    return "[" + (", " if ", " in match.group(1) else ",").join(out) + "]"


def _inherit(rhs: str, name: str, dims: list[str], region_dims: set[str], regions: RegionSet,
             ranges: dict, where: str) -> str:
    """The numbers of a constant, re-cut: each new region's row (or column) is its parent's, or the table's value."""
    rows = [r for r in rhs.strip().rstrip(";").split(";")]
    table = [[t.strip() for t in row.replace("\\", " ").split(",")] for row in rows]
    flat = [t for row in table for t in row]
    if len(flat) == 1:
        return rhs  # one number for every element
    template = regions.template_regions
    sizes = [len(template) if d in region_dims else len(ranges.get(d) or []) for d in dims]
    if int(np.prod(sizes)) != len(flat):
        raise RegionError(f"{where}: '{name}' has {len(flat)} numbers for dims {dims} of sizes {sizes}")
    values = np.array(flat, dtype=object).reshape(sizes)
    index = [[template.index(regions.parents[r]) for r in regions.regions] if d in region_dims
             else list(range(sizes[k])) for k, d in enumerate(dims)]
    new = values[np.ix_(*index)]
    for position, region in enumerate(regions.regions):
        for constant, value in regions.values(region).items():
            if constant != name:
                continue
            if len(dims) == 1:
                new[position] = repr(float(value))
            elif dims[0] in region_dims:
                given = [repr(float(v)) for v in np.atleast_1d(value)]
                if len(given) != new.shape[1]:
                    raise RegionError(f"{regions.mapping_path.with_suffix('.toml')}: [regions.{region}.values] "
                                      f"'{name}' needs {new.shape[1]} numbers, one per {dims[1]}")
                new[position] = given
    if new.shape == values.shape and (new == values).all():
        return rhs
    separator = ", " if ", " in rhs else ","
    text_rows = [separator.join(row) for row in (new if new.ndim > 1 else new[None, :])]
    trailing = ";" if rhs.strip().endswith(";") else ""
    lead = rhs[: len(rhs) - len(rhs.lstrip())]
    return lead + ";\n\t".join(text_rows) + trailing + rhs[len(rhs.rstrip()):]


def _check_values(regions: RegionSet, text: str) -> None:
    """Every explicit value in the region table names a constant the generator re-cut."""
    region_dims = {REGION_RANGE} | {name for name, elements in _ranges(text).items() if elements is None}
    known = set()
    for entry in entries(text):
        match = _NAME.match(entry.equation)
        if match and match.group(2) and match.group(4) == "=" and set(_dims(match.group(2))) & region_dims:
            if _NUMBERS.fullmatch(entry.equation.split("=", 1)[1]) and match.group(1).strip() not in DATA_DEFINITIONS:
                known.add(match.group(1).strip())
    for region in regions.regions:
        for constant in regions.values(region):
            if constant not in known:
                raise RegionError(f"{regions.mapping_path.with_suffix('.toml')}: [regions.{region}.values] "
                                  f"'{constant}' is not a constant of the .mdl with a number per region."
                                  + did_you_mean(constant, sorted(known)))


#: The names :func:`migsd.calibration.inputs.mdl_inputs` derives; ``build_region_model`` refuses to run while
#: it derives one not listed here, so a table added there cannot be left un-re-cut.
DATA_DEFINITIONS: tuple[str, ...] = (
    "initial residents by age", "initial foreign born", "births per working age person table",
    "mortality level table", "maturing rate table", "retiring rate table",
    "displacement arrivals table", "last displacement data year", "future displacement arrivals",
    "labour tightness cycle table", "remittance growth deviation table",
)


def _constant(text: str, name: str, ranges: dict, region_range: list[str]) -> xr.DataArray:
    for entry in entries(text):
        match = _NAME.match(entry.equation)
        if match and match.group(1).strip() == name and match.group(2):
            dims = _dims(match.group(2))
            rhs = entry.equation.split("=", 1)[1]
            numbers = [float(t) for t in re.split(r"[,;\s\\]+", rhs.strip().rstrip(";")) if t]
            coords = [region_range if d == REGION_RANGE else ranges[d] for d in dims]
            shape = [len(c) for c in coords]
            values = np.broadcast_to(np.array(numbers), shape) if len(numbers) == 1 else np.array(numbers).reshape(
                shape)
            return xr.DataArray(values, dims=[d.lower() for d in dims], coords=dict(zip([d.lower() for d in dims],
                                                                                          coords)))
    raise RegionError(f"the .mdl has no constant '{name}'")


# ------------------------------------------------------------------------------ the model folder
def write_calibration_folder(regions: RegionSet, folder: Path) -> Path:
    """``folder`` (a ``calibration/`` in the new model folder) with the mapping and the data summed by it."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    order = {r: k for k, r in enumerate(regions.regions)}
    rows = regions.rows.assign(_order=regions.rows["region"].map(order)).sort_values(["_order", "line"])
    if "name" not in rows.columns:
        rows = rows.assign(name=rows["iso3"].map(_locations().set_index("iso3")["name"]))
    rows[["iso3", "name", "region"]].to_csv(folder / "regions.csv", index=False)
    locations = _locations()
    locations.assign(model_region=locations["iso3"].map(regions.mapping)).to_csv(data_dir / "locations.csv",
                                                                              index=False)
    timeseries, od = aggregate(regions.mapping)
    timeseries.to_csv(data_dir / "model_regions_timeseries.csv", index=False)
    od.to_csv(data_dir / "model_regions_od_ims2020.csv", index=False)
    aggregate_displacement(regions.mapping).to_csv(data_dir / "unhcr_model_regions.csv", index=False)
    unavailable = write_political_data(regions, data_dir)
    licensed = ("IMPIC 2016 and WVS waves 3-5 (item E143): **region aggregates only**, population-weighted (WPP "
                "2024 1 July) over the countries of each region that have data, aggregated from the country files "
                "of the project's shared data folder, whose country rows their licences keep out of the repository "
                "(IMPIC: research use; cite Helbling, Bjerre, Römer and Zobel (2017), *European Political Science* "
                "16: 79-98, and Bjerre et al. (2016), WZB Discussion Paper SP VI 2016-201. WVS: non-commercial "
                "research; cite Inglehart et al. (eds.), *World Values Survey: All Rounds - Country-Pooled "
                "Datafile*, JD Systems Institute & WVSA Secretariat)"
                if not {"impic:regulation_labour", "wvs:share_restrictive"} & set(unavailable) else
                "IMPIC and WVS: not written (" + _UNWRITTEN + ")")
    (data_dir / "PROVENANCE.md").write_text(
        "# Provenance\n\nSummed by `migsd regions` over the countries of `../regions.csv` from the country-level "
        "files of the repository's `calibration/data/countries/` (UN WPP 2024, UN IMS 2020; CC BY 3.0 IGO; "
        "UNHCR Refugee Data Finder, CC BY 4.0, host x origin shared out within the shipped regions; see "
        "the repository's `calibration/data/PROVENANCE.md`).\n\n"
        "## Political core\n\n"
        f"- {licensed}.\n"
        "- `wdi_unemployment.csv`: World Bank WDI SL.UEM.TOTL.ZS (CC BY 4.0), the USA's and Germany's rates and "
        "each region's mean weighted by WPP 2024 1 July population, from `countries/wdi_unemployment_countries.csv.gz`.\n"
        "- Copied from the repository's `calibration/data/` (sources and licences in its PROVENANCE.md): "
        + ", ".join(f"`{name}`" for name in POLITICAL_COPIED) + ". A series of one country or bloc (GSS and "
        "Gallup: the USA; Eurobarometer: the EU; JOLTS: the USA; German vacancies: Germany; the Gulf states' "
        "remittances paid: the Gulf states) stands for the region holding it, and IOM's routes for the region they "
        "lead to (`migsd.calibration.political`).\n",
        encoding="utf-8")
    return folder


#: Political-core files a region folder copies from ``calibration/data``: their rows are countries, one bloc or
#: routes, which :class:`~migsd.calibration.political.PoliticalData` attaches to the folder's own regions.
POLITICAL_COPIED = ("gss_us_immigration_attitudes.csv", "press_transcribed_gallup_eurobarometer.csv",
                    "iom_missing_migrants_annual.csv", "us_jolts_job_openings_monthly.csv",
                    "germany_vacancies_unemployment.csv", "wpp2024_working_age_usa_deu.csv",
                    "wdi_remittances_paid_gulf.csv")


def write_political_data(regions: RegionSet, data_dir: Path, shared: Path | None = None) -> dict[str, str]:
    """The political-core files of a region folder, in the layout of ``calibration/data``, by the mapping.

    IMPIC and WVS are aggregated from the shared data folder (``shared``, default ``SHARED_DIR / "data"``); without
    it they are not written (the shipped mapping copies the shipped aggregates). Returns the series that could not
    be written, with the reason.
    """
    from .calibration.political import (VACANCY_COUNTRIES, impic_region_aggregates, wdi_region_unemployment,
                                        wvs_region_aggregates)

    shared = SHARED_DIR / "data" if shared is None else Path(shared)
    for name in POLITICAL_COPIED:
        shutil.copyfile(CALIBRATION_DIR / "data" / name, data_dir / name)
    try:
        countries = pd.read_csv(COUNTRY_DIR / "wdi_unemployment_countries.csv.gz")
    except FileNotFoundError as error:
        raise RegionError(f"country-level data file not found: {error.filename}") from error
    wpp = _country_frames()[0]
    population = wpp.loc[wpp["variable"] == "pop_jul1", ["iso3", "year", "value"]]
    unemployment = pd.concat([
        countries[countries["iso3"].isin(VACANCY_COUNTRIES)].assign(region="")[["iso3", "region", "year", "value"]],
        wdi_region_unemployment(countries, population, regions.mapping)], ignore_index=True)
    unemployment.to_csv(data_dir / "wdi_unemployment.csv", index=False, float_format="%.6g")
    needed = ("impic_policy_restrictiveness.csv", "wvs_immigration_policy_preference.csv", "wpp2024_annual.csv")
    absent = [name for name in needed if not (shared / name).is_file()]
    if not absent:
        impic_region_aggregates(shared, mapping=regions.mapping).to_csv(
            data_dir / "impic_model_regions_used.csv", index=False, float_format="%.6g")
        wvs_region_aggregates(shared, mapping=regions.mapping).to_csv(
            data_dir / "wvs_model_regions_used.csv", index=False, float_format="%.6g")
        return {}
    if regions.is_template:
        # the shipped aggregates are this mapping's, by data code: renamed, they need no country rows
        names = _locations().set_index("model_region")["iso3"].map(regions.mapping).groupby(level=0).first()
        for name in ("impic_model_regions_used.csv", "wvs_model_regions_used.csv"):
            frame = pd.read_csv(CALIBRATION_DIR / "data" / name)
            frame.assign(region=frame["region"].map(names)).to_csv(data_dir / name, index=False, float_format="%.6g")
        return {}
    return {series: _UNWRITTEN for series in ("impic:regulation_labour", "impic:control_overall",
                                              "wvs:share_restrictive")}


_UNWRITTEN = ("the shared data folder (../shared/data beside the repository) is absent, and IMPIC's and WVS's "
              "licences keep their country rows out of the repository: their aggregates exist by shipped region only")


@dataclass
class RegionModel:
    """What :func:`build_region_model` wrote: the folder, its .mdl, and the settings it could not carry over."""

    folder: Path
    mdl: Path
    regions: list[str]
    parents: dict[str, str]
    left_out: list[str]


def build_region_model(mapping: str | Path, out: str | Path, template: str | Path = DEFAULT_MODEL,
                       overwrite: bool = False, check: bool = True) -> RegionModel:
    """Write a complete model folder for ``mapping`` into ``out``.

    Parameters
    ----------
    mapping
        A CSV ``iso3,name,region`` listing every country of ``calibration/data/locations.csv`` once;
        ``MAPPING.toml`` beside it, if present, is its region table.
    out
        The folder to write (``out/migsd.mdl``, ``out/scenarios/`` ...); refused if it exists unless ``overwrite``,
        which replaces everything but ``out/calibration/parameters/`` (its calibrations).
    check
        Load the written model and check every carried-over scenario against it: a scenario naming an
        element the new model lacks raises :class:`~migsd.errors.ScenarioError` naming it.

    Examples
    --------
    >>> from migsd.regions import build_region_model
    >>> built = build_region_model("calibration/regions.csv", "/tmp/default-regions", overwrite=True)  # doctest: +SKIP
    >>> built.regions  # doctest: +SKIP
    ['North', 'Gulf', 'SouthUpper', 'SouthLower']
    """
    from .calibration.data import CalibrationData, replace_definitions
    from .calibration.inputs import mdl_inputs

    out, template = Path(out), Path(template)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RegionError(f"{out}: exists and is not empty; choose another folder or pass overwrite")
    regions = read_region_set(mapping, template)
    text = template.read_text(encoding="utf-8")
    source = repo_relative(template)
    _check_values(regions, text)
    rewritten = rewrite_mdl(text, regions, source)
    kept = None
    if out.exists() and overwrite:
        # the folder's calibrations are results, not derived from the mapping: a rewrite keeps them
        parameters = out / "calibration" / "parameters"
        if parameters.is_dir():
            kept = out.with_name(out.name + ".parameters-kept")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.move(parameters, kept)
        shutil.rmtree(out)
    calibration_dir = write_calibration_folder(regions, out / "calibration")
    if kept is not None:
        shutil.move(kept, calibration_dir / "parameters")
    data = CalibrationData(calibration_dir, order=tuple(regions.regions))
    ranges = _ranges(rewritten)
    relative_mortality = _constant(rewritten, "relative mortality", ranges, regions.regions)
    inputs = mdl_inputs(data, relative_mortality)
    missing = sorted(set(inputs) - set(DATA_DEFINITIONS))
    if missing:
        raise RegionError(f"migsd.calibration.inputs.mdl_inputs derives {missing}, which the region generator does "
                          "not know: add them to migsd.regions.DATA_DEFINITIONS")
    rewritten = replace_definitions(rewritten, inputs)
    mdl = out / template.name
    mdl.write_text(rewritten, encoding="utf-8")
    left_out: list[str] = []
    carry_over(regions, template.parent, out, left_out)
    carry_calibration(regions, CALIBRATION_DIR, calibration_dir, left_out)
    _own_scenarios(regions, out / "scenarios")
    if check:
        from .model import load_model
        from .scenarios import list_scenarios, validate

        from .calibration.fit import load_targets

        model = load_model(mdl)
        for scenario in list_scenarios(out / "scenarios"):
            validate(scenario, model)
        if (calibration_dir / "targets.toml").is_file():
            load_targets(calibration_dir / "targets.toml", model, data_directory=calibration_dir)
    return RegionModel(out, mdl, regions.regions, regions.parents, left_out)


# ------------------------------------------------------------------------- carried-over files
def _own_scenarios(regions: RegionSet, target: Path) -> None:
    """The scenarios of the region table's ``scenarios`` folder: cases only this cut can state."""
    if "scenarios" not in regions.table:
        return
    table = regions.mapping_path.with_suffix(".toml")
    folder = table.parent / regions.table["scenarios"]
    if not folder.is_dir():
        raise RegionError(f"{table}: scenarios = '{regions.table['scenarios']}' is not a folder beside it")
    for path in sorted(folder.glob("*.toml")):
        if (target / path.name).exists():
            raise RegionError(f"{path}: a carried-over scenario is already named {path.stem}; rename one")
        shutil.copyfile(path, target / path.name)


def translate_key(key: str, regions: RegionSet) -> list[str] | None:
    """``name[Element,...]`` for the new regions: one key per heir; None if a region named has no heir."""
    match = re.fullmatch(r"\s*([^\[]+?)\s*\[([^\]]*)\]\s*", key)
    if not match:
        return [key]
    options = []
    for token in (t.strip() for t in match.group(2).split(",")):
        if token in regions.template_regions or token in regions.regions:
            heirs = regions.children(token)
            if not heirs:
                return None
            options.append(heirs)
        else:
            options.append([token])
    keys = [[]]
    for choice in options:
        keys = [k + [c] for k in keys for c in choice]
    return [f"{match.group(1)}[{','.join(k)}]" for k in keys]


def carry_scenarios(regions: RegionSet, source: Path, target: Path, left_out: list[str]) -> None:
    """Each scenario of ``source`` with its region settings given to the regions that inherit them."""
    from .scenarios import read_scenario, write_scenario

    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.glob("*.toml")):
        scenario = read_scenario(path)
        dropped: list[str] = []
        tables = {}
        for table in ("parameters", "initial"):
            translated = {}
            for key, value in getattr(scenario, table).items():
                keys = translate_key(key, regions)
                if keys is None:
                    dropped.append(key)
                    continue
                for new in keys:
                    translated[new] = value
            tables[table] = translated
        description = scenario.description
        if dropped:
            note = (f"Not carried over to {regions.mapping_path.name} (no region of it inherits the region named): "
                    + ", ".join(dropped) + ".")
            description = f"{description}\n\n{note}" if description else note
            left_out.extend(f"scenarios/{path.name}: {key}" for key in dropped)
        write_scenario(target / path.name, title=scenario.title, description=description,
                       parameters=tables["parameters"], initial=tables["initial"])


def _translate_text(text: str, regions: RegionSet) -> str:
    """A TOML text with each quoted template region (a key's element or a value) replaced by its stand-in,
    except in an ``elements = [...]`` list, where a region stands for all its heirs."""
    def heirs(match: re.Match) -> str:
        listed = re.findall(r'"([^"]*)"', match.group(2))
        expanded = list(dict.fromkeys(h for e in listed for h in (
            regions.children(e) if e in regions.template_regions else [e])))
        return match.group(1) + ", ".join(f'"{e}"' for e in expanded) + "]"

    text = re.sub(r'(?m)^(elements\s*=\s*\[)([^\]]*)\]', heirs, text)
    def element(match: re.Match) -> str:
        token = match.group(2)
        if token in regions.template_regions and token not in regions.regions:
            return match.group(1) + regions.stand_in(token) + match.group(3)
        return match.group(0)

    names = "|".join(map(re.escape, regions.template_regions))
    return re.sub(rf"([\[,\"]\s*)({names})(\s*[\],\"])", element, text)


#: Target data kinds of :mod:`migsd.calibration.political`: re-aggregated by the mapping (``write_political_data``),
#: their targets carried region by region only where the data have the region (``_carry_political``).
REGION_AGGREGATE_SERIES = frozenset({
    "impic:regulation_labour", "impic:control_overall", "wvs:share_restrictive", "gallup:decreased",
    "gss:reduced", "eurobarometer:immigration", "iom:dead_or_missing", "tightness:lower", "tightness:upper",
})


def _carry_blocks(source: Path, target: Path, header: str, regions: RegionSet, left_out: list[str],
                  split: bool = False) -> None:
    """A TOML file of ``[[header]]`` blocks: each block translated; ``split`` gives a block one copy per heir.

    A target on a political-core series (:data:`REGION_AGGREGATE_SERIES`) is checked against the data written
    beside ``target`` (``data/``, by the new regions): a copy for a region its data lack is left out, saying why.
    """
    text = source.read_text(encoding="utf-8")
    parts = re.split(rf"(?m)^(?=\[\[{re.escape(header)}\]\])", text)
    out = [parts[0]]
    political = None
    for block in parts[1:]:
        series = re.search(r'(?m)^data\s*=\s*"([^"]+)"', block)
        if header == "target" and series and series.group(1) in REGION_AGGREGATE_SERIES and not regions.is_template:
            if political is None:
                from .calibration.political import PoliticalData

                political = PoliticalData(target.parent)
            out.extend(_carry_political(block, series.group(1), regions, political, source, left_out))
            continue
        named = re.findall(r'=\s*\{[^}]*region\s*=\s*"(\w+)"', block) + re.findall(r'name\s*=\s*"[^"]*\[(\w+)\]"',
                                                                                 block)
        heirs_of = [n for n in named if n in regions.template_regions and n not in regions.regions]
        if split and heirs_of:
            element = heirs_of[0]
            heirs = regions.children(element)
            if not heirs:
                left_out.append(f"{repo_relative(source)}: a [[{header}]] naming {element}")
                continue
            out.extend(_heir_copy(block, element, heir, header) for heir in heirs)
            continue
        out.append(_translate_text(block, regions))
    target.write_text("".join(out), encoding="utf-8")


def _heir_copy(block: str, element: str, heir: str, header: str) -> str:
    copy = re.sub(rf'(\[|")({element})("|\])', lambda m: m.group(1) + heir + m.group(3), block)
    if header == "target":  # a target's name is a label, and two targets may not share one
        copy = re.sub(r'(?m)^(name\s*=\s*")([^"]*)"', lambda m: f'{m.group(1)}{m.group(2)} ({heir})"', copy, count=1)
    return copy


def _carry_political(block: str, series: str, regions: RegionSet, political, source: Path,
                     left_out: list[str]) -> list[str]:
    """A political-core target for the new regions: one copy per region with data for it, the rest left out."""
    from .calibration.political import SERIES
    from .errors import DataError

    label = re.search(r'(?m)^name\s*=\s*"([^"]*)"', block)
    label = label.group(1) if label else "?"
    where = f"{repo_relative(source)}: target '{label}'"
    try:
        frame = political.series(series)
    except DataError:
        left_out.append(f"{where} (its data, '{series}', from {SERIES[series][0]}: {_UNWRITTEN})")
        return []
    found = re.search(r'\{[^}]*\b(?:region|destination)\s*=\s*"(\w+)"', block)
    if found is None:  # a world total: the same under every cut
        return [_translate_text(block, regions)]
    element = found.group(1)
    heirs = regions.children(element) if element in regions.template_regions else [element]
    if not heirs:
        left_out.append(f"{where} (no region of {regions.mapping_path.name} inherits {element})")
        return []
    out = []
    for heir in heirs:
        copy = block if heir == element else _heir_copy(block, element, heir, "target")
        lacking = _lacking(series, element, heir, frame, political)
        if lacking:
            left_out.append(f"{where} for {heir} ('{series}': {lacking})")
            continue
        years = [int(y) for y in re.findall(r"\d+", re.search(r"(?m)^years\s*=\s*\[([^\]]*)\]", copy).group(1))]
        rows = frame[frame["region"] == heir]
        windowed = bool((rows["first"] != rows["last"]).any())
        # a survey wave is dated by its last year in the region, which moves with the countries surveyed
        kept = sorted(set(rows["year"])) if windowed else [y for y in years if y in set(rows["year"])]
        if not kept:
            left_out.append(f"{where} for {heir} ('{series}' has no value in {years})")
            continue
        if kept != years:
            copy = re.sub(r"(?m)^years\s*=\s*\[[^\]]*\]", f"years = [{', '.join(map(str, kept))}]", copy, count=1)
            if not windowed:
                left_out.append(f"{where} for {heir}: years {[y for y in years if y not in kept]} (no data)")
        if heir != element or regions.children(element) != [element]:
            note = (f" Re-cut by {regions.mapping_path.name}: for {heir} the data are "
                    f"{_stands_for(series, heir, political)}; figures quoted above are the shipped {element}'s.")
            copy = re.sub(r'(?m)^(why\s*=\s*")((?:[^"\\]|\\.)*)"', lambda m: f'{m.group(1)}{m.group(2)}{note}"', copy,
                          count=1)
            if _sampled(series, heir, political) == 1.0:
                # the region is the sampled country (or bloc) itself: nothing left for a proxy error to stand for
                copy = re.sub(r"(?m)^proxy\s*=.*\n", "", copy)
        out.append(copy)
    return out


def _sampled(series: str, heir: str, political) -> float | None:
    """Share of ``heir``'s 1990 residents living in the countries a single-country series samples (else None)."""
    from .calibration.political import PROXY_COUNTRIES

    if series in PROXY_COUNTRIES:
        return political.proxy_share(PROXY_COUNTRIES[series])
    if series.startswith("tightness:") and heir in political.vacancy_regions:
        return political.proxy_share(political.vacancy_regions[heir])
    return None


def _lacking(series: str, element: str, heir: str, frame: pd.DataFrame, political) -> str:
    """Why ``series`` cannot give ``heir`` the target written for the shipped ``element`` ('' if it can)."""
    from .calibration.political import PROXY_COUNTRIES, PoliticalData, VACANCY_COUNTRIES

    if series.startswith("tightness:"):
        # the shipped North's bounds are vacancy bands, the other regions' unemployment floors: a copy keeps its kind
        band = element in PoliticalData().vacancy_regions
        if band and heir not in political.vacancy_regions:
            holders = ", ".join(f"{c} in {political.region_holding([c])}" for c in VACANCY_COUNTRIES)
            return f"no vacancy count in {heir} (only {holders}), so no band like the shipped {element}'s"
        if not band and heir in political.vacancy_regions:
            return f"{heir} holds {', '.join(political.vacancy_regions[heir])}, whose vacancy band is its own target"
    if heir in set(frame["region"]):
        return ""
    if series.startswith("impic:"):
        return f"no IMPIC country lies in {heir} (IMPIC codes 33 OECD members)"
    if series.startswith("wvs:"):
        return f"WVS asked E143 in no country of {heir}"
    if series in PROXY_COUNTRIES:
        countries = PROXY_COUNTRIES[series]
        what = countries[0] if len(countries) == 1 else "the EU"
        return f"it samples {what}, which the mapping puts in {political.region_holding(countries)}"
    if series.startswith("iom:"):
        leading = "; ".join(f"{r}: {', '.join(routes)}" for r, routes in political.route_regions().items())
        return f"no IOM route grouping leads to {heir} (routes lead to {leading})"
    return f"no data for {heir}"


def _stands_for(series: str, heir: str, political) -> str:
    """What the data of ``series`` are for ``heir``, for a carried target's ``why``."""
    from .calibration.political import EU_SURVEYED, PROXY_COUNTRIES

    data = political.directory / "data"
    if series.startswith(("impic:", "wvs:")):
        name = "impic_model_regions_used.csv" if series.startswith("impic:") else "wvs_model_regions_used.csv"
        frame = pd.read_csv(data / name)
        counts = frame[(frame["region"] == heir) & (frame["stat"] == "n_countries")]
        if series.startswith("impic:"):
            return f"the population-weighted mean over its {int(counts['value'].max())} IMPIC countries"
        waves = counts.sort_values("wave")
        listed = ", ".join(f"{int(n)} in wave {int(w)}" for w, n in zip(waves["wave"], waves["value"]))
        return f"the population-weighted share over its surveyed countries ({listed})"
    share = _sampled(series, heir, political)
    proxy = "its own: no proxy error" if share == 1.0 else (
        f"{share:.0%} of its 1990 residents), a proxy: its proxy error stays" if share is not None else "")
    if series in PROXY_COUNTRIES:
        countries = PROXY_COUNTRIES[series]
        what = "the USA" if countries == ("USA",) else "the EU" if countries == EU_SURVEYED else ", ".join(countries)
        return f"{what}'s, {proxy}" if share == 1.0 else f"{what}'s ({proxy}"
    if series.startswith("iom:"):
        return "the dead and missing on " + ", ".join(political.route_regions().get(heir, []))
    if share is not None:
        countries = ", ".join(political.vacancy_regions[heir])
        return f"the vacancy band of {countries}, {proxy}" if share == 1.0 else f"the vacancy band of {countries} ({proxy}"
    return "minus the WDI unemployment rate, population-weighted over its countries"


def carry_over(regions: RegionSet, models: Path, out: Path, left_out: list[str]) -> None:
    """Scenarios, checks, loops, channels and sensitivity problems of the template's folder, for the new regions."""
    carry_scenarios(regions, models / "scenarios", out / "scenarios", left_out)
    if (models / "checks.toml").is_file():
        _carry_blocks(models / "checks.toml", out / "checks.toml", "check", regions, left_out)
    for name in ("loops.toml", "channels.toml"):
        if (models / name).is_file():
            (out / name).write_text(_translate_text((models / name).read_text(encoding="utf-8"), regions),
                                    encoding="utf-8")
    if (models / "sensitivity").is_dir():
        (out / "sensitivity").mkdir(exist_ok=True)
        for path in sorted((models / "sensitivity").glob("*.toml")):
            _carry_blocks(path, out / "sensitivity" / path.name, "parameter", regions, left_out, split=True)


def carry_calibration(regions: RegionSet, source: Path, target: Path, left_out: list[str]) -> None:
    """Targets, priors and settings: an entry for a split region becomes one per heir."""
    if (source / "targets.toml").is_file():
        _carry_blocks(source / "targets.toml", target / "targets.toml", "target", regions, left_out, split=True)
    if "targets" in regions.table:
        # targets only this cut can state (a region no shipped target's data fit), after the carried ones
        table = regions.mapping_path.with_suffix(".toml")
        own = table.parent / regions.table["targets"]
        if not own.is_file():
            raise RegionError(f"{table}: targets = '{regions.table['targets']}' is not a file beside it")
        carried = (target / "targets.toml").read_text(encoding="utf-8") if (target / "targets.toml").is_file() else ""
        (target / "targets.toml").write_text(
            carried.rstrip("\n") + f"\n\n# ------------------------------------------------ from {own.name}\n"
            + own.read_text(encoding="utf-8"), encoding="utf-8")
    if (source / "priors.toml").is_file():
        _carry_blocks(source / "priors.toml", target / "priors.toml", "parameter", regions, left_out, split=True)
    if (source / "calibrate.toml").is_file():
        # ``start`` names a calibration of the parent's regions, whose parameters this cut does not have
        text = re.sub(r"(?m)^start\s*=.*$", "# start: not carried; the parent's calibration is of other regions",
                      (source / "calibrate.toml").read_text(encoding="utf-8"))
        (target / "calibrate.toml").write_text(text, encoding="utf-8")
