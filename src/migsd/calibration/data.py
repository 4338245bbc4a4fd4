"""Calibration data shipped in ``calibration/``: reading it and deriving model inputs.

The .mdl holds its 1990 initial stocks and demographic tables as numbers, so that it
opens in Vensim with no external file. This module derives those numbers from the
data in ``calibration/data/`` (see its PROVENANCE.md); ``migsd data mdl-inputs``
prints them in .mdl syntax, and a test keeps the .mdl and the data in agreement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import DataError
from ..paths import CALIBRATION_DIR


#: Country-level data the regions are summed from (see calibration/data/PROVENANCE.md).
COUNTRY_DIR = CALIBRATION_DIR / "data" / "countries"

#: Age groups of the .mdl ``Age`` range and the WPP series they come from.
AGE_SERIES = {"Young": "pop_0_14", "Working": "pop_15_64", "Old": "pop_65plus"}

#: Year of the model's initial stocks.
INITIAL_YEAR = 1990

#: Years of the demographic tables written into the .mdl.
TABLE_YEARS = tuple(range(1990, 2101, 5))

#: UNHCR protection groups whose stock counts as forcibly displaced across borders.
DISPLACEMENT_GROUPS = ("refugees", "asylum_seekers", "other_in_need_of_protection")

#: Data years whose mean displacement arrivals continue after the data end (the default future path).
FUTURE_DISPLACEMENT_YEARS = 10


@lru_cache(maxsize=4)
def population_1990(directory: Path = COUNTRY_DIR) -> pd.Series:
    """Residents of each country on 1 July 1990 (persons, WPP 2024 broad age groups summed), by iso3."""
    path = directory / "wpp2024_countries.csv.gz"
    try:
        wpp = pd.read_csv(path)
    except FileNotFoundError as error:
        raise DataError(f"country-level data file not found: {path}") from error
    rows = wpp[(wpp["year"] == 1990) & wpp["variable"].isin(["pop_0_14", "pop_15_64", "pop_65plus"])]
    return rows.groupby("iso3")["value"].sum() * 1000.0


@dataclass(frozen=True)
class CalibrationData:
    """The region-aggregated UN series of ``calibration/data``, keyed by model region."""

    directory: Path = CALIBRATION_DIR
    #: The model's region order; empty: the shipped order for the shipped regions, else as ``regions.csv`` lists them.
    order: tuple[str, ...] = ()

    @cached_property
    def region_names(self) -> dict[str, str]:
        """Map the data's region codes (``north_hic`` ...) to model regions (``North`` ...).

        The mapping is read from ``regions.csv`` (iso3 -> region) joined with the
        countries' aggregation code in ``data/locations.csv``; a code whose countries
        fall in several model regions cannot use the pre-aggregated series.
        """
        regions_file = self.directory / "regions.csv"
        locations_file = self.directory / "data" / "locations.csv"
        regions = _read_csv(regions_file)
        locations = _read_csv(locations_file)
        unknown = regions[~regions["iso3"].isin(locations["iso3"])]
        if len(unknown):
            row = unknown.iloc[0]
            raise DataError(
                f"{regions_file}: row {row['_row']}: iso3 '{row['iso3']}' is not a country of {locations_file}"
                f" ({len(unknown)} such row(s)); use the ISO 3166 alpha-3 codes listed there"
            )
        joined = locations[["iso3", "model_region"]].merge(regions.drop(columns="_row"), on="iso3", how="left")
        unmapped = joined[joined["region"].isna() & joined["iso3"].notna()]
        if len(unmapped):
            raise DataError(
                f"{regions_file}: no region for {', '.join(unmapped['iso3'].astype(str)[:10])}"
                f" (countries listed in {locations_file}); add a row 'iso3,name,region' for each"
            )
        mapping: dict[str, str] = {}
        for code, group in joined.groupby("model_region"):
            targets = sorted(set(group["region"]))
            if len(targets) != 1:
                raise DataError(
                    f"{regions_file}: countries aggregated as '{code}' in the shipped series fall in"
                    f" regions {targets}; the pre-aggregated files need one region per code"
                )
            mapping[str(code)] = targets[0]
        return mapping

    @cached_property
    def timeseries(self) -> pd.DataFrame:
        frame = _read_csv(self.directory / "data" / "model_regions_timeseries.csv")
        frame = frame[frame["region"] != "world"].copy()
        frame["region"] = frame["region"].map(self.region_names)
        return frame

    @cached_property
    def bilateral(self) -> pd.DataFrame:
        return _read_csv(self.directory / "data" / "model_regions_od_ims2020.csv")

    @property
    def regions(self) -> list[str]:
        present = set(self.region_names.values())
        if self.order:
            if set(self.order) != present:
                raise DataError(f"{self.directory / 'regions.csv'}: regions {sorted(present)} are not the order "
                                f"given, {list(self.order)}")
            return list(self.order)
        order = ["North", "Gulf", "SouthUpper", "SouthLower"]
        if present <= set(order):
            return [r for r in order if r in present]
        # a folder written by migsd regions lists its countries in the model's region order
        return [r for r in dict.fromkeys(_read_csv(self.directory / "regions.csv")["region"]) if r in present]

    def series(self, variable: str, years, variants=("estimate", "medium")) -> xr.DataArray:
        """A WPP series by region and year, thousands of persons, in the model's region order."""
        frame = self.timeseries
        frame = frame[(frame["variable"] == variable) & frame["variant"].isin(variants)]
        negative = frame[frame["value"] < 0]
        if len(negative) and (variable.startswith("pop") or "stock" in variable):
            row = negative.iloc[0]
            raise DataError(
                f"{self.directory / 'data' / 'model_regions_timeseries.csv'}: row {row['_row']}: "
                f"'{variable}' is {row['value']:g} for {row['region']} in {row['year']}; a population or stock "
                "is zero or more"
            )
        table = frame.pivot_table(index="year", columns="region", values="value", aggfunc="first")
        missing = [y for y in years if y not in table.index]
        if missing:
            raise DataError(f"series '{variable}' has no value for years {missing}")
        table = table.loc[list(years), self.regions]
        return xr.DataArray(
            table.to_numpy(dtype=float),
            dims=("year", "region"),
            coords={"year": list(years), "region": self.regions},
        )

    def population_by_age(self, year: int) -> xr.DataArray:
        """Total residents (natives and foreign-born) by region and age group, persons."""
        parts = [self.series(series, [year]).isel(year=0) * 1000.0 for series in AGE_SERIES.values()]
        return xr.concat(parts, dim=xr.Variable("age", list(AGE_SERIES))).transpose("region", "age")

    def foreign_born(self, year: int) -> xr.DataArray:
        """Migrant stock by destination and origin region, persons (UN IMS 2020).

        Migrants of unknown origin are shared among the known origins in proportion
        to each destination's known-origin stock, so that destination totals match
        the UN totals.
        """
        frame = self.bilateral[self.bilateral["year"] == year]
        if frame.empty:
            raise DataError(f"model_regions_od_ims2020.csv has no year {year}")
        table = frame.pivot_table(
            index="dest_region", columns="orig_region", values="stock_both", aggfunc="sum"
        ).fillna(0.0)
        unknown = table.pop("unknown") if "unknown" in table.columns else 0.0
        table = table.rename(index=self.region_names, columns=self.region_names)
        known = table.sum(axis=1)
        table = table.mul(1.0 + unknown.rename(index=self.region_names) / known, axis=0)
        # arithmetic aligns (and reorders) labels, so order them last
        table = table.loc[self.regions, self.regions]
        return xr.DataArray(
            table.to_numpy(dtype=float),
            dims=("destination", "origin"),
            coords={"destination": self.regions, "origin": self.regions},
        )

    @cached_property
    def displacement(self) -> pd.DataFrame:
        return _read_csv(self.directory / "data" / "unhcr_model_regions.csv")

    def displacement_stock(self) -> xr.DataArray:
        """UNHCR year-end stock of refugees, asylum seekers and others in need of protection.

        By year, destination (host) and origin region, persons. Hosts outside the
        model's regions (``unknown``) are left out; origins UNHCR records as unknown
        are shared among the host's known origins of that year in proportion.
        """
        path = self.directory / "data" / "unhcr_model_regions.csv"
        frame = self.displacement
        groups = sorted(set(frame["variable"]))
        if groups != sorted(DISPLACEMENT_GROUPS):
            raise DataError(f"{path}: 'variable' holds {groups}; expected the protection groups "
                            f"{sorted(DISPLACEMENT_GROUPS)}")
        negative = frame[frame["value"] < 0]
        if len(negative):
            row = negative.iloc[0]
            raise DataError(f"{path}: row {row['_row']}: a stock of {row['value']:g} people; a stock is zero or more")
        codes = set(self.region_names)
        frame = frame[frame["host_region"].isin(codes) & (frame["origin_region"] != "all")]
        unknown_codes = sorted(set(frame["origin_region"]) - codes - {"unknown"})
        if unknown_codes:
            raise DataError(f"{path}: origin region(s) {unknown_codes} are neither region codes of the shipped "
                            f"series ({', '.join(sorted(codes))}) nor 'unknown' or 'all'")
        table = frame.pivot_table(index=["year", "host_region"], columns="origin_region", values="value",
                                  aggfunc="sum").fillna(0.0)
        unknown = table.pop("unknown") if "unknown" in table.columns else 0.0
        known = table.sum(axis=1)
        table = table.mul(1.0 + (unknown / known.where(known > 0)).fillna(0.0), axis=0)
        years = sorted(set(table.index.get_level_values("year")))
        cube = np.zeros((len(years), len(self.regions), len(self.regions)))
        for (year, host), row in table.iterrows():
            for origin, value in row.items():
                cube[years.index(year), self.regions.index(self.region_names[host]),
                     self.regions.index(self.region_names[origin])] += value
        return xr.DataArray(cube, dims=("year", "destination", "origin"),
                            coords={"year": years, "destination": self.regions, "origin": self.regions})

    def displacement_arrivals(self) -> xr.DataArray:
        """Forced-displacement arrivals (Person/Year) by year, destination and origin.

        UNHCR reports year-end stocks; an arrival in year ``y`` is the positive change
        of the stock from the end of ``y - 1`` to the end of ``y`` (a falling stock is
        returns, onward resettlement, naturalisation or recounting, which the model's
        own flows represent), dated at the middle of ``y``. The first data year has no
        arrivals of its own.
        """
        stock = self.displacement_stock()
        change = stock.diff("year", label="upper")
        return change.clip(min=0.0)

    def births_per_working_age_person(self, years=TABLE_YEARS) -> xr.DataArray:
        """Births in a year per resident aged 15-64 (1/Year), WPP estimates then medium variant."""
        return self.series("births", years) / self.series("pop_15_64", years)

    def mortality_level(self, relative_mortality: xr.DataArray, years=TABLE_YEARS) -> xr.DataArray:
        """Death rate of the working-age group (1/Year) that reproduces WPP deaths.

        Deaths by age are the level times ``relative_mortality[region, age]``; the level
        is chosen so that, with WPP's own age structure, total deaths equal WPP deaths.
        """
        weighted = sum(
            self.series(series, years) * relative_mortality.sel(age=age, drop=True)
            for age, series in AGE_SERIES.items()
        )
        return self.series("deaths", years) / weighted


    def ageing_rates(self, relative_mortality: xr.DataArray, years=TABLE_YEARS[:-1]) -> xr.Dataset:
        """Maturing and retiring rates (1/Year) implied by WPP's broad age groups.

        Over each five-year period the age groups' balances give the flows between
        them: maturing = births - deaths of the young - change of the young, and
        retiring = change of the old + deaths of the old, with deaths split by age as
        in :meth:`mortality_level` and net migration assigned to working age, as in
        the model. Rates are the flows per person of the group they leave, dated at
        the middle of the period.
        """
        start, end = list(years), [y + 5 for y in years]
        groups = {age: (self.series(s, start), self.series(s, end)) for age, s in AGE_SERIES.items()}
        mean = {age: 0.5 * (a.values + b.values) for age, (a, b) in groups.items()}
        weights = {age: mean[age] * relative_mortality.sel(age=age, drop=True).values for age in mean}
        total_weight = sum(weights.values())
        period_sum = {
            name: sum(self.series(name, [y + k for y in years]).values for k in range(5))
            for name in ("births", "deaths")
        }
        deaths = {age: period_sum["deaths"] * weights[age] / total_weight for age in weights}
        change = {age: b.values - a.values for age, (a, b) in groups.items()}
        maturing = period_sum["births"] - deaths["Young"] - change["Young"]
        retiring = change["Old"] + deaths["Old"]
        coords = {"year": [y + 2.5 for y in years], "region": self.regions}
        rates = xr.Dataset(
            {
                "maturing": (("year", "region"), maturing / (5.0 * mean["Young"])),
                "retiring": (("year", "region"), retiring / (5.0 * mean["Working"])),
            },
            coords=coords,
        )
        # the tables span the whole run: the first and last periods' rates hold at the ends
        first, last = rates.isel(year=[0]), rates.isel(year=[-1])
        return xr.concat(
            [first.assign_coords(year=[years[0]]), rates, last.assign_coords(year=[end[-1]])], dim="year"
        )


def check_regions(data: CalibrationData, model, subscript: str = "Region") -> None:
    """The data's regions are the .mdl's elements of ``subscript``, or the derived definitions would not fit it."""
    valid = list(model.subscripts.get(subscript, []))
    found = data.regions
    unknown = [r for r in found if r not in valid]
    missing = [r for r in valid if r not in found]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"region(s) {', '.join(unknown)} are not elements of {subscript} in {model.path.name} "
                         f"({', '.join(valid)})")
        if missing:
            parts.append(f"no country maps to {', '.join(missing)}")
        raise DataError(f"{data.directory / 'regions.csv'}: {'; '.join(parts)}: definitions derived from it would "
                        f"not fit the .mdl's {subscript}. Change the .mdl's subscript first, or map the countries to "
                        "its elements")


def mdl_text(inputs: dict[str, xr.DataArray]) -> str:
    """Vensim text of :func:`migsd.calibration.inputs.mdl_inputs`, to paste over the same definitions in the .mdl."""
    blocks = []
    for name, values in inputs.items():
        if values.ndim == 0:
            blocks.append(f"{name}=\n\t{_fmt(values, 7)}")
        elif "year" in values.dims:
            blocks.append(format_lookup(name, values, 5))
        else:
            blocks.append(format_matrix(name, values, 7))
    return "\n\n".join(blocks) + "\n"


def replace_definitions(mdl: str, inputs: dict[str, xr.DataArray]) -> str:
    """Put freshly derived data into the .mdl text, keeping units and comments.

    Each definition runs from its name at the start of a line to its units line
    (a tab, '~', a tab); the name must be defined exactly once.
    """
    for name, values in inputs.items():
        opening = r"\[" if values.ndim else r"\s*="
        pattern = re.compile(rf"^{re.escape(name)}{opening}.*?(?=\n\t~\t)", re.DOTALL | re.MULTILINE)
        found = pattern.findall(mdl)
        if len(found) != 1:
            raise DataError(f"the .mdl must define '{name}' exactly once; found {len(found)}")
        replacement = mdl_text({name: values}).rstrip("\n")
        mdl = pattern.sub(lambda _: replacement, mdl)
    return mdl


#: Columns each shipped file must have.
REQUIRED_COLUMNS = {
    "regions.csv": ("iso3", "name", "region"),
    "locations.csv": ("iso3", "model_region"),
    "model_regions_timeseries.csv": ("region", "year", "variable", "variant", "value"),
    "model_regions_od_ims2020.csv": ("year", "orig_region", "dest_region", "stock_both"),
    "unhcr_model_regions.csv": ("year", "host_region", "origin_region", "variable", "value"),
}


def _read_csv(path: Path) -> pd.DataFrame:
    """A data file, checked for its required columns; ``_row`` keeps each row's line number in the file."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as error:
        raise DataError(f"calibration data file not found: {path}") from error
    required = REQUIRED_COLUMNS.get(Path(path).name, ())
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected columns {list(required)}")
    frame["_row"] = np.arange(len(frame)) + 2  # line 1 is the header
    return frame


def format_lookup(name: str, values: xr.DataArray, digits: int = 6) -> str:
    """Vensim text of a lookup of time subscripted by one or more dims, one definition per element."""
    dims = [d for d in values.dims if d != "year"]
    flat = values.transpose("year", *dims).stack(_element=dims) if len(dims) > 1 else values.rename({dims[0]: "_element"})
    elements = list(flat["_element"].values)
    lines = []
    for position, element in enumerate(elements):
        points = ",".join(
            f"({_fmt(year, 6)},{_fmt(value, digits)})"
            for year, value in zip(values["year"].values, flat.isel(_element=position).values)
        )
        label = ",".join(element) if isinstance(element, tuple) else element
        terminator = "\n\t~~|" if position < len(elements) - 1 else ""
        lines.append(f"{name}[{label}](\n\t{points}){terminator}")
    return "\n".join(lines)


def format_matrix(name: str, values: xr.DataArray, digits: int = 6) -> str:
    """Vensim text of a 2-D constant: rows separated by ';' as Vensim writes them."""
    rows = [",".join(_fmt(v, digits) for v in row) for row in np.atleast_2d(values.values)]
    dims = ",".join(d.capitalize() for d in values.dims)
    return f"{name}[{dims}] =\n\t" + ";\n\t".join(rows) + ";"


def _fmt(value: float, digits: int) -> str:
    return f"{float(value):.{digits}g}"
