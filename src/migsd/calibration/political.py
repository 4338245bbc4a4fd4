"""Data of the political core (policy, attitudes, salience, deaths on routes, labour tightness) by model region.

Everything is derived here from the files copied into ``calibration/data/``
(provenance and licences in its PROVENANCE.md, section "Political core"), never
typed in: :class:`PoliticalData` turns them into *series*, each a table of
observations ``region, year, first, last, value`` (``first``-``last`` is the
window of years an observation covers: a survey wave, or the year itself) with
the citation a target must carry.

IMPIC (research use with citation) and WVS (non-commercial) may not be shipped
country by country: :func:`impic_region_aggregates` and
:func:`wvs_region_aggregates` compute the region-level means that are shipped,
from the country files of the shared data folder; a test recomputes them.

Series (name: what; regions):

- ``impic:regulation_labour``, ``impic:control_overall``: IMPIC 2016 admission
  restrictiveness for labour migrants and overall border/stay control, 0-1,
  population-weighted over the region's IMPIC countries; North (31 countries)
  and SouthUpper (Mexico and Turkey), 1980-2010.
- ``wvs:share_restrictive``: WVS E143 "strict limits" or "prohibit", share of
  valid answers, population-weighted over the region's surveyed countries, by
  wave (window = the wave's survey years in that region); all regions (the
  Gulf: Saudi Arabia 2003 only).
- ``gallup:decreased``: Gallup, US share wanting immigration decreased (transcribed
  from press reports); stands for the region holding the USA (the North).
- ``gss:reduced``: GSS, US share wanting the number of immigrants reduced, among
  substantive answers (``letin`` 1994-2000, ``letin1a`` 2004-2024, unweighted);
  stands for the region holding the USA (the North).
- ``eurobarometer:immigration``: Standard Eurobarometer, EU share naming
  immigration one of the two most important issues facing the EU, the mean of
  the year's surveys (transcribed from press and Commission pages); stands for
  the salience of the region holding most of the EU's people (the North).
- ``iom:dead_or_missing``: IOM Missing Migrants, dead and missing per year by the
  region the route leads to (:data:`ROUTE_DESTINATIONS`: North; Gulf) and the world, 2014-2024.
- ``tightness:lower``, ``tightness:upper``: labour tightness,
  (vacancies - unemployed) / labour force. For the North, US JOLTS openings and
  Germany's registered vacancies with WDI unemployment rates, the labour force
  being the working-age population (WPP) times a participation rate between
  :data:`PARTICIPATION` (low gives the upper bound); the two countries are
  combined weighted by working-age population within the region holding each (the
  North: they sample it, a proxy). For the other regions, vacancies are not observed:
  tightness is at least -unemployment rate (no upper bound).

Besides series, two tables of time the .mdl reads as data: the business cycle of
labour tightness (:meth:`PoliticalData.tightness_cycle`) and the growth of the
Gulf's migrant wage bill, from the remittances its countries pay
(:meth:`PoliticalData.remittance_growth_deviation`).

Regions are those of ``directory/regions.csv``: a folder written by ``migsd regions``
holds the same files with its own regions (:func:`region_files` makes them), and the
single-country series attach to the region holding their country.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import DataError
from ..names import did_you_mean
from ..paths import CALIBRATION_DIR, SHARED_DIR

#: Labour force participation (labour force / population 15-64) bounding the North's tightness: OECD
#: participation rates 15-64 of the United States and Germany moved within about 0.72-0.80 over
#: 2000-2023; the band is widened to 0.70-0.85 for the countries' differing definitions.
PARTICIPATION = (0.70, 0.85)

#: Hodrick-Prescott smoothing of the annual tightness whose cycle the .mdl reads as data. 100 is the
#: annual value of Backus and Kehoe (1992); Ravn and Uhlig's 6.25 leaves the 2001-2022 trend bending
#: with each recession, so the trend, which the model's demography must produce, would carry the cycle.
CYCLE_SMOOTHING = 100.0

#: Years over which the measured cycle returns linearly to zero after the data end: about half a
#: business cycle, so the last data year's tightness does not persist into the projection.
CYCLE_RETURN_YEARS = 3

#: The Gulf Cooperation Council states, whose migrant jobs oil rents fund: the personal remittances they pay are
#: their migrant workers' wage bill sent home, the one measured trace of the boom (2003-2014) and the bust after it
#: that oil revenues drove. The region holding most of their people gets the wage bill's growth as data.
GULF_STATES = ("SAU", "ARE", "KWT", "QAT", "OMN", "BHR")

#: The copied and aggregated files, their licence and the citation a target using them carries.
FILES = {
    "impic_model_regions_used.csv": "IMPIC 2016 (Helbling et al. 2017; Bjerre et al. 2016), region means",
    "wvs_model_regions_used.csv": "World Values Survey waves 3-5 (item E143), region means",
    "gss_us_immigration_attitudes.csv": "NORC General Social Survey 1972-2024, response counts (gssrdoc)",
    "press_transcribed_gallup_eurobarometer.csv": "Gallup and Standard Eurobarometer, transcribed from web pages",
    "iom_missing_migrants_annual.csv": "IOM Missing Migrants Project (CC BY 4.0)",
    "us_jolts_job_openings_monthly.csv": "US BLS JOLTS via FRED (public domain)",
    "germany_vacancies_unemployment.csv": "OECD Main Economic Indicators via FRED (attribution)",
    "wdi_unemployment.csv": "World Bank WDI SL.UEM.TOTL.ZS (CC BY 4.0)",
    "wdi_remittances_paid_gulf.csv": "World Bank WDI BM.TRF.PWKR.CD.DT, the Gulf states (CC BY 4.0)",
    "wpp2024_working_age_usa_deu.csv": "UN WPP 2024 (CC BY 3.0 IGO)",
}

#: Series, the file they come from and the citation key a target must give (``source``).
SERIES = {
    "impic:regulation_labour": ("impic_model_regions_used.csv", "impic"),
    "impic:control_overall": ("impic_model_regions_used.csv", "impic"),
    "wvs:share_restrictive": ("wvs_model_regions_used.csv", "wvs"),
    "gallup:decreased": ("press_transcribed_gallup_eurobarometer.csv", "gallup"),
    "gss:reduced": ("gss_us_immigration_attitudes.csv", "gss"),
    "eurobarometer:immigration": ("press_transcribed_gallup_eurobarometer.csv", "eurobarometer"),
    "iom:dead_or_missing": ("iom_missing_migrants_annual.csv", "iom_mmp"),
    "tightness:lower": ("us_jolts_job_openings_monthly.csv", "tightness"),
    "tightness:upper": ("us_jolts_job_openings_monthly.csv", "tightness"),
}

#: Citations, by the key a target's ``source`` names.
CITATIONS = {
    "impic": "Helbling, M., Bjerre, L., Römer, F. and Zobel, M. (2017) Measuring immigration policies: the IMPIC "
             "database. European Political Science 16: 79-98; Bjerre, L. et al. (2016) WZB Discussion Paper "
             "SP VI 2016-201",
    "wvs": "Inglehart, R. et al. (eds.) World Values Survey: All Rounds - Country-Pooled Datafile (waves 3-5), "
           "JD Systems Institute & WVSA Secretariat; item E143 (via the stevedata R package)",
    "gallup": "Gallup, Immigration (trend question 'kept at its present level, increased or decreased'), as "
              "reported in the press; transcribed",
    "gss": "Davern, M. et al. General Social Surveys 1972-2024, NORC at the University of Chicago (variables "
           "letin, letin1a; unweighted counts from the gssrdoc R package)",
    "eurobarometer": "European Commission, Standard Eurobarometer 82-99, 'two most important issues facing the "
                     "EU'; transcribed from Commission and press pages",
    "iom_mmp": "IOM Missing Migrants Project, incident data 2014-2025 (via the IOM gdidata R package), CC BY 4.0",
    "tightness": "US Bureau of Labor Statistics, JOLTS job openings (JTSJOL); OECD Main Economic Indicators, "
                 "registered unfilled vacancies, Germany (LMJVTTUVDEQ647S), both via FRED; World Bank WDI "
                 "SL.UEM.TOTL.ZS; UN WPP 2024",
}

#: The EU of the Eurobarometer surveys (28 members until 2020, 27 since): the bloc its salience samples.
EU_SURVEYED = ("AUT", "BEL", "BGR", "HRV", "CYP", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN", "IRL",
               "ITA", "LVA", "LTU", "LUX", "MLT", "NLD", "POL", "PRT", "ROU", "SVK", "SVN", "ESP", "SWE", "GBR")

#: The countries a single-country (or bloc) series samples; it attaches to the region holding most of their people.
PROXY_COUNTRIES = {
    "gss:reduced": ("USA",),
    "gallup:decreased": ("USA",),
    "eurobarometer:immigration": EU_SURVEYED,
}

#: Countries with a vacancy count (US JOLTS, Germany's registered vacancies): a region holding one has a band.
VACANCY_COUNTRIES = ("USA", "DEU")

#: IOM route groupings -> the countries the route leads to; deaths on it count for the region holding most of
#: their people. The shared file's ``route_destination_region`` is the same interpretation by shipped region
#: (Mediterranean, Atlantic, intra-European and Northern Horn of Africa routes: to Europe; the Central American
#: route: to the USA; the Eastern route from the Horn of Africa: across Yemen to Saudi Arabia); the other routes
#: (Asia Pacific, South American, intra-African, Southern and Horn of Africa, undefined) lead to no one region.
ROUTE_DESTINATIONS = {
    "Central Mediterranean Route": EU_SURVEYED,
    "Western Mediterranean Route": EU_SURVEYED,
    "Eastern Mediterranean Route": EU_SURVEYED,
    "Western African Atlantic Route": EU_SURVEYED,
    "Intra-European routes": EU_SURVEYED,
    "EHOA Northern Route": EU_SURVEYED,
    "Central American Route": ("USA",),
    "EHOA Eastern Route": ("SAU",),
}

@dataclass(frozen=True)
class PoliticalData:
    """The political-core series of ``directory/data``, with regions named as in the .mdl."""

    directory: Path = CALIBRATION_DIR

    def file(self, name: str) -> Path:
        """Where a data file of this folder lies (a folder cut by ``migsd regions`` has its own)."""
        return self.directory / "data" / name

    def _read(self, name: str) -> pd.DataFrame:
        path = self.file(name)
        try:
            return pd.read_csv(path)
        except FileNotFoundError as error:
            raise DataError(f"political-core data file not found: {path} (see calibration/data/PROVENANCE.md)") \
                from error

    @cached_property
    def region_names(self) -> dict[str, str]:
        from .data import CalibrationData

        return CalibrationData(self.directory).region_names

    def path(self, series: str) -> Path:
        return self.file(SERIES[series][0])

    def citation_key(self, series: str) -> str:
        return SERIES[series][1]

    def series(self, name: str) -> pd.DataFrame:
        """Observations ``region, year, first, last, value`` of series ``name``, sorted by region and year."""
        if name not in SERIES:
            raise DataError(f"unknown political-core series '{name}'; known: {', '.join(SERIES)}."
                            + did_you_mean(name, list(SERIES)))
        if name not in self._derived:
            # one file's series at a time: a folder may lack a file (IMPIC, WVS without the shared data) its
            # targets skip; series derived from the same file are kept together
            self._derived.update(self._derive(name))
        frame = self._derived[name]
        return frame.sort_values(["region", "year"]).reset_index(drop=True)

    @cached_property
    def _derived(self) -> dict[str, pd.DataFrame]:
        return {}  # filled by series() as they are asked for (the dataclass is frozen, its cache is not)

    def _derive(self, name: str) -> dict[str, pd.DataFrame]:
        if name.startswith("impic:"):
            return {name: self._impic(name.split(":", 1)[1])}
        if name in ("gallup:decreased", "eurobarometer:immigration"):
            return dict(zip(("gallup:decreased", "eurobarometer:immigration"), self._transcribed()))
        if name.startswith("tightness:"):
            return dict(zip(("tightness:lower", "tightness:upper"), self._tightness()))
        return {name: {"wvs:share_restrictive": self._wvs, "gss:reduced": self._gss,
                       "iom:dead_or_missing": self._iom}[name]()}

    @cached_property
    def mapping(self) -> pd.Series:
        """iso3 -> model region, from ``directory/regions.csv``."""
        path = self.directory / "regions.csv"
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except FileNotFoundError as error:
            raise DataError(f"region mapping not found: {path}") from error
        return frame.set_index("iso3")["region"]

    def region_holding(self, countries) -> str:
        """The region holding most of ``countries``' 1990 residents (the one region, when they are all in it)."""
        regions = self.mapping.reindex(list(countries)).dropna()
        if regions.empty:
            raise DataError(f"{self.directory / 'regions.csv'}: none of {', '.join(countries)} is mapped to a region")
        if regions.nunique() == 1:
            return str(regions.iloc[0])
        from .data import population_1990

        people = regions.index.to_series().map(population_1990()).fillna(0.0)
        return str(people.groupby(regions).sum().idxmax())

    def proxy_share(self, countries) -> float:
        """Share of the 1990 residents of the region holding ``countries`` that live in them."""
        from .data import population_1990

        people = self.mapping.index.to_series().map(population_1990()).fillna(0.0)
        region = self.region_holding(countries)
        inside = people[self.mapping == region]
        return float(inside.reindex([c for c in countries if c in inside.index]).sum() / inside.sum())

    @cached_property
    def vacancy_regions(self) -> dict[str, list[str]]:
        """Region -> the countries with a vacancy count it holds (:data:`VACANCY_COUNTRIES`)."""
        out: dict[str, list[str]] = {}
        for iso3 in VACANCY_COUNTRIES:
            out.setdefault(self.region_holding([iso3]), []).append(iso3)
        return out

    def route_regions(self) -> dict[str, list[str]]:
        """Region -> the IOM route groupings leading to it (:data:`ROUTE_DESTINATIONS`)."""
        out: dict[str, list[str]] = {}
        for route, countries in ROUTE_DESTINATIONS.items():
            out.setdefault(self.region_holding(countries), []).append(route)
        return out

    def _named(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["region"] = frame["region"].map(lambda code: self.region_names.get(code, code))
        if "first" not in frame:
            frame["first"] = frame["year"]
            frame["last"] = frame["year"]
        return frame[["region", "year", "first", "last", "value"]].astype(
            {"year": int, "first": int, "last": int, "value": float})

    def _impic(self, variable: str) -> pd.DataFrame:
        frame = self._read("impic_model_regions_used.csv")
        frame = frame[(frame["variable"] == variable) & (frame["stat"] == "mean_popweighted")]
        return self._named(frame)

    def _wvs(self) -> pd.DataFrame:
        frame = self._read("wvs_model_regions_used.csv")
        frame = frame[(frame["variable"] == "share_restrictive") & (frame["stat"] == "mean_popweighted")]
        # a wave is dated by the last year of its window in the region: unique per region and wave
        frame = frame.rename(columns={"year_first": "first", "year_last": "last"}).assign(year=lambda f: f["last"])
        return self._named(frame)

    def _transcribed(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = self._read("press_transcribed_gallup_eurobarometer.csv")
        gallup = frame[(frame["series"] == "gallup_us_immigration_level") & (frame["variable"] == "decreased")]
        euro = frame[frame["series"] == "eb_issue_eu_immigration"]
        out = []
        for part, name in ((gallup, "gallup:decreased"), (euro, "eurobarometer:immigration")):
            # several surveys in a year (two Eurobarometers): their mean dates the year
            annual = part.groupby("year", as_index=False)["value"].mean()
            annual["value"] = annual["value"] / 100.0
            annual["region"] = self.region_holding(PROXY_COUNTRIES[name])
            out.append(self._named(annual))
        return out[0], out[1]

    def _gss(self) -> pd.DataFrame:
        frame = self._read("gss_us_immigration_attitudes.csv")
        reduce = ("decreased a little", "decreased a lot", "reduced a little", "reduced a lot")
        substantive = reduce + ("increased a lot", "increased a little", "left the same as it is now",
                                "remain the same as it is")
        # letin asked 1994 and 2000; letin1a, the same question, every survey from 2004
        frame = frame[((frame["variable"] == "letin") & (frame["year"] <= 2000)) | (frame["variable"] == "letin1a")]
        frame = frame[frame["response"].isin(substantive)]
        counts = frame.assign(reduce=frame["response"].isin(reduce)).groupby(["year", "reduce"])["n_unweighted"].sum()
        table = counts.unstack(fill_value=0)
        share = (table[True] / table.sum(axis=1)).rename("value").reset_index()
        share["region"] = self.region_holding(PROXY_COUNTRIES["gss:reduced"])
        return self._named(share)

    def _iom(self) -> pd.DataFrame:
        frame = self._read("iom_missing_migrants_annual.csv")
        frame = frame[(frame["variable"] == "dead_or_missing") & (frame["partial_year"] == 0)]
        parts = [frame.groupby("year", as_index=False)["value"].sum().assign(region="world")]
        for region, routes in self.route_regions().items():
            chosen = frame[frame["route"].isin(routes)].groupby("year", as_index=False)["value"].sum()
            parts.append(chosen.assign(region=region))
        return self._named(pd.concat(parts, ignore_index=True))

    def _tightness(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        jolts = self._read("us_jolts_job_openings_monthly.csv")
        jolts["year"] = jolts["date"].str[:4].astype(int)
        months = jolts.groupby("year")["value"].count()
        us_openings = jolts.groupby("year")["value"].mean()[months == 12] * 1000.0  # thousands -> persons
        germany = self._read("germany_vacancies_unemployment.csv")
        germany = germany[germany["variable"] == "registered_unfilled_vacancies_sa"].copy()
        germany["year"] = germany["date"].str[:4].astype(int)
        quarters = germany.groupby("year")["value"].count()
        de_openings = germany.groupby("year")["value"].mean()[quarters == 4]
        unemployment = self._read("wdi_unemployment.csv")
        working = self._read("wpp2024_working_age_usa_deu.csv")
        openings = {"USA": us_openings, "DEU": de_openings}
        bounds: list[list[pd.DataFrame]] = [[], []]
        for region, countries in self.vacancy_regions.items():
            years = sorted(set.intersection(*(set(openings[iso3].index) for iso3 in countries)))
            rates = {}
            for iso3 in countries:
                rate = unemployment[(unemployment["iso3"] == iso3)].set_index("year")["value"] / 100.0
                five = working[working["iso3"] == iso3].set_index("year")["value"] * 1000.0
                population = pd.Series(np.interp(years, five.index, five.values), index=years)
                rates[iso3] = (openings[iso3].reindex(years), rate.reindex(years), population)
            weights = sum(population for _, _, population in rates.values())
            for side, participation in enumerate((PARTICIPATION[1], PARTICIPATION[0])):  # more labour: less tight
                combined = sum(population / weights * (counted / (participation * population) - rate)
                               for counted, rate, population in rates.values())
                frame = combined.dropna().rename("value").rename_axis("year").reset_index()
                bounds[side].append(frame.assign(region=region))
        named = unemployment.assign(region=unemployment["region"].map(lambda c: self.region_names.get(c, c)))
        south = named[named["region"].notna() & ~named["region"].isin(list(self.vacancy_regions))]
        floor = south.assign(value=-south["value"] / 100.0)[["region", "year", "value"]]
        lower = pd.concat([*bounds[0], floor], ignore_index=True)
        return self._named(lower), self._named(pd.concat(bounds[1], ignore_index=True))

    def tightness_cycle(self, regions, initial_year: int, final_year: int) -> xr.DataArray:
        """The business cycle of labour tightness, by year and region: the .mdl's ``labour tightness cycle table``.

        In a region with vacancy data (:attr:`vacancy_regions`) it is the middle of the measured tightness band
        (``tightness:lower`` and ``tightness:upper``) less its Hodrick-Prescott trend (:data:`CYCLE_SMOOTHING`);
        zero before the data, returning linearly to zero over :data:`CYCLE_RETURN_YEARS` after them, and zero in
        the regions without vacancy data, whose tightness is only bounded. The model's own stocks make the trend:
        demand and supply move with demography, not with recessions.
        """
        from statsmodels.tsa.filters.hp_filter import hpfilter

        regions = list(regions)
        unknown = [region for region in self.vacancy_regions if region not in regions]
        if unknown:
            raise DataError(f"{self.directory / 'regions.csv'}: the vacancy countries "
                            f"{', '.join(c for r in unknown for c in self.vacancy_regions[r])} lie in region(s) "
                            f"{', '.join(unknown)}, which the .mdl lacks (its regions: {', '.join(regions)})")
        lower = self.series("tightness:lower").set_index(["region", "year"])["value"]
        upper = self.series("tightness:upper").set_index(["region", "year"])["value"]
        rows: dict[str, pd.Series] = {}
        for region in self.vacancy_regions:
            middle = (0.5 * (lower.loc[region] + upper.loc[region])).dropna()
            years = [int(year) for year in middle.index]
            _require_consecutive_years(years, f"{self.path('tightness:lower')}: labour tightness of {region} needs",
                                       "to take its trend out")
            cycle, _trend = hpfilter(middle.to_numpy(), lamb=CYCLE_SMOOTHING)
            rows[region] = pd.Series(cycle, index=years)
        return _table_of_time(rows, regions, initial_year, final_year)

    def remittance_growth_deviation(self, regions, initial_year: int, final_year: int) -> xr.DataArray:
        """Growth of the Gulf's migrant wage bill above its mean, by year and region: the .mdl's
        ``remittance growth deviation table`` (1/Year).

        The personal remittances paid (current US$) by the :data:`GULF_STATES` of the region holding most of their
        people, summed over the states reporting in every year (so that a state entering the data, Qatar in 2011,
        is not read as growth); the growth of its Hodrick-Prescott trend (log, :data:`CYCLE_SMOOTHING`) less that
        growth's mean over the data years, so the .mdl's autonomous job growth keeps its meaning and the table
        moves it only around it. Zero outside the data (returning linearly over :data:`CYCLE_RETURN_YEARS` after
        them) and in every other region.
        """
        from statsmodels.tsa.filters.hp_filter import hpfilter

        regions = list(regions)
        name = "wdi_remittances_paid_gulf.csv"
        path = self.file(name)
        region = self.region_holding(GULF_STATES)
        if region not in regions:
            raise DataError(f"{self.directory / 'regions.csv'}: the Gulf states lie in region {region}, which the "
                            f".mdl lacks (its regions: {', '.join(regions)})")
        frame = self._read(name)
        frame = frame[(frame["variable"] == "remittances_paid_usd")
                      & frame["iso3"].isin([c for c in GULF_STATES if self.mapping.get(c) == region])]
        paid = frame.pivot(index="year", columns="iso3", values="value").sort_index()
        years = [int(year) for year in paid.index]
        complete = [iso3 for iso3 in paid.columns if paid[iso3].notna().all() and (paid[iso3] > 0).all()]
        _require_consecutive_years(years, f"{path}: remittances paid by the Gulf states of {region} need",
                                   "with a state reporting in each",
                                   "" if complete or not years else " and no state reporting in every year")
        _cycle, trend = hpfilter(np.log(paid[complete].sum(axis=1).to_numpy()), lamb=CYCLE_SMOOTHING)
        growth = np.gradient(trend, np.asarray(years, dtype=float))
        deviation = pd.Series(growth - growth.mean(), index=years)
        return _table_of_time({region: deviation}, regions, initial_year, final_year)


def _require_consecutive_years(years: list[int], subject: str, purpose: str, shortfall: str = "") -> None:
    """Refuse a series a Hodrick-Prescott filter cannot take: under three years, a gap, or ``shortfall`` (why
    the years that are there do not count), naming ``subject`` (the file and what of it needs the years)."""
    missing = sorted(set(range(years[0], years[-1] + 1)) - set(years)) if years else []
    if len(years) < 3 or missing or shortfall:
        raise DataError(f"{subject} three or more consecutive years {purpose}; it has "
                        f"{f'{years[0]}-{years[-1]}' if years else 'none'}"
                        f"{f' without {missing}' if missing else ''}{shortfall}")


def _table_of_time(rows: dict[str, pd.Series], regions: list[str], initial_year: int,
                   final_year: int) -> xr.DataArray:
    """A lookup table of time by region from each region's yearly values: zero the year before them, back to zero
    :data:`CYCLE_RETURN_YEARS` after them, and zero in the regions without values.

    Each region's line is piecewise linear through its own points; on the union of every region's points (the one
    year axis a subscripted lookup table of the .mdl has) interpolation gives the same function.
    """
    points = {region: pd.concat([pd.Series([0.0], index=[int(values.index[0]) - 1]), values,
                                 pd.Series([0.0], index=[int(values.index[-1]) + CYCLE_RETURN_YEARS])])
              for region, values in rows.items()}
    years = sorted({initial_year, final_year}.union(*(set(p.index.astype(int)) for p in points.values())))
    years = [year for year in years if initial_year <= year <= final_year]
    table = np.zeros((len(years), len(regions)))
    for region, line in points.items():
        table[:, regions.index(region)] = np.interp(years, line.index.to_numpy(dtype=float), line.to_numpy(),
                                                    left=0.0, right=0.0)
    return xr.DataArray(table, dims=("year", "region"), coords={"year": years, "region": regions})


# ------------------------------------------------------------ shipped aggregates
def _population(shared: Path) -> pd.DataFrame:
    wpp = pd.read_csv(shared / "wpp2024_annual.csv", usecols=["iso3", "year", "variable", "variant", "value"])
    wpp = wpp[(wpp["variable"] == "pop_jul1") & wpp["variant"].isin(["estimate", "medium"]) & wpp["iso3"].notna()]
    return wpp[["iso3", "year", "value"]].rename(columns={"value": "population"})


def _regions(shared: Path, mapping: pd.Series | None = None) -> pd.DataFrame:
    """iso3 -> region: ``mapping`` (a country -> region Series), else the shared ``locations.csv`` codes."""
    if mapping is not None:
        return mapping.rename("model_region").rename_axis("iso3").reset_index()
    return pd.read_csv(shared / "locations.csv", usecols=["iso3", "model_region"]).dropna()


def _weighted(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Population-weighted mean and country count of ``value`` by ``keys``, long format with ``stat``."""
    rows = []
    for key, group in frame.groupby(keys):
        key = key if isinstance(key, tuple) else (key,)
        mean = float(np.average(group["value"], weights=group["population"]))
        for stat, value in (("mean_popweighted", mean), ("n_countries", float(len(group)))):
            rows.append({**dict(zip(keys, key)), "stat": stat, "value": round(value, 6)})
    return pd.DataFrame(rows)


def impic_region_aggregates(shared: Path = SHARED_DIR / "data",
                            variables=("regulation_labour", "control_overall"),
                            mapping: pd.Series | None = None) -> pd.DataFrame:
    """IMPIC country scores -> population-weighted region means (the file shipped as ``impic_model_regions_used.csv``).

    ``mapping`` (iso3 -> region) cuts the regions; by default the shared ``locations.csv`` codes, which gives the
    shipped file. A region with no IMPIC country has no rows.
    """
    impic = pd.read_csv(shared / "impic_policy_restrictiveness.csv")
    impic = impic[impic["variable"].isin(variables) & impic["iso3"].notna()]
    frame = impic.merge(_regions(shared, mapping), on="iso3").merge(_population(shared), on=["iso3", "year"])
    frame = frame.rename(columns={"model_region": "region"})
    out = _weighted(frame, ["region", "year", "variable"])
    return out[["region", "year", "variable", "stat", "value"]].sort_values(["region", "variable", "year", "stat"])


def wvs_region_aggregates(shared: Path = SHARED_DIR / "data", mapping: pd.Series | None = None) -> pd.DataFrame:
    """WVS country-wave shares -> population-weighted region means by wave (``wvs_model_regions_used.csv``);
    ``mapping`` as for :func:`impic_region_aggregates`."""
    wvs = pd.read_csv(shared / "wvs_immigration_policy_preference.csv")
    wvs = wvs[wvs["variable"] == "share_restrictive"]
    frame = wvs.merge(_regions(shared, mapping), on="iso3").merge(_population(shared), on=["iso3", "year"])
    frame = frame.rename(columns={"model_region": "region"})
    windows = frame.groupby(["region", "wave"])["year"].agg(year_first="min", year_last="max").reset_index()
    out = _weighted(frame, ["region", "wave", "variable"]).merge(windows, on=["region", "wave"])
    return out[["region", "wave", "year_first", "year_last", "variable", "stat", "value"]].sort_values(
        ["region", "wave", "stat"])


def wdi_unemployment(shared: Path = SHARED_DIR / "data") -> pd.DataFrame:
    """WDI unemployment rates (%): the USA and Germany, and the shared folder's region means (``wdi_unemployment.csv``)."""
    countries = pd.read_csv(shared / "wdi_unemployment_remittances.csv")
    countries = countries[(countries["variable"] == "unemployment_pct_labour_force")
                          & countries["iso3"].isin(["USA", "DEU"])].assign(region="")
    regions = pd.read_csv(shared / "wdi_model_regions.csv")
    regions = regions[(regions["variable"] == "unemployment_pct_labour_force")
                      & (regions["stat"] == "mean_popweighted")].assign(iso3="")
    columns = ["iso3", "region", "year", "value"]
    return pd.concat([countries[columns], regions[columns]], ignore_index=True)


def wdi_region_unemployment(countries: pd.DataFrame, population: pd.DataFrame, mapping: pd.Series) -> pd.DataFrame:
    """WDI unemployment rates (%) of ``countries`` (``iso3, year, value``) -> population-weighted region means.

    ``population`` gives ``iso3, year, value`` (WPP 2024 1 July, any unit): the weights the shared folder's
    ``wdi_model_regions.csv`` uses, rounded as it is (4 decimals), so the shipped mapping's codes give its means.
    Returns the region rows of ``wdi_unemployment.csv`` (``iso3`` empty).
    """
    # a country WPP has no population for (the Channel Islands, CHI) is left out, as the shared means leave it
    frame = countries.merge(population.rename(columns={"value": "population"}), on=["iso3", "year"])
    frame = frame.assign(region=frame["iso3"].map(mapping)).dropna(subset=["region", "value"])
    rows = []
    for (region, year), group in frame.groupby(["region", "year"]):
        weights = group["population"]
        if weights.sum() > 0:
            rows.append({"iso3": "", "region": region, "year": int(year),
                         "value": round(float((group["value"] * weights).sum() / weights.sum()), 4)})
    return pd.DataFrame(rows, columns=["iso3", "region", "year", "value"])


def wdi_remittances_paid_gulf(shared: Path = SHARED_DIR / "data") -> pd.DataFrame:
    """WDI personal remittances paid (current US$) by the Gulf states (``wdi_remittances_paid_gulf.csv``)."""
    countries = pd.read_csv(shared / "wdi_unemployment_remittances.csv")
    chosen = countries[(countries["variable"] == "remittances_paid_usd") & countries["iso3"].isin(GULF_STATES)]
    return chosen.sort_values(["iso3", "year"])


def working_age_usa_deu(shared: Path = SHARED_DIR / "data") -> pd.DataFrame:
    """WPP 2024 population 15-64 (thousands, 5-yearly) of the USA and Germany (``wpp2024_working_age_usa_deu.csv``)."""
    wpp = pd.read_csv(shared / "wpp2024_age_groups_5yr.csv")
    wpp = wpp[(wpp["variable"] == "pop_15_64") & wpp["iso3"].isin(["USA", "DEU"])
              & wpp["variant"].isin(["estimate", "medium"])]
    return wpp[["iso3", "year", "value"]].sort_values(["iso3", "year"])


def transcribed_figures(shared: Path = SHARED_DIR / "data") -> pd.DataFrame:
    """The Gallup and Eurobarometer rows of the transcribed press figures (``press_transcribed_gallup_eurobarometer.csv``)."""
    frame = pd.read_csv(shared / "press_reported_figures_transcribed.csv")
    return frame[frame["series"].isin(["gallup_us_immigration_level", "eb_issue_eu_immigration"])]


#: Shipped file -> how it is made from the shared data folder (the rest are copied unchanged).
DERIVED_FILES = {
    "impic_model_regions_used.csv": impic_region_aggregates,
    "wvs_model_regions_used.csv": wvs_region_aggregates,
    "wdi_unemployment.csv": wdi_unemployment,
    "wdi_remittances_paid_gulf.csv": wdi_remittances_paid_gulf,
    "wpp2024_working_age_usa_deu.csv": working_age_usa_deu,
    "press_transcribed_gallup_eurobarometer.csv": transcribed_figures,
}
COPIED_FILES = ("gss_us_immigration_attitudes.csv", "iom_missing_migrants_annual.csv",
                "us_jolts_job_openings_monthly.csv", "germany_vacancies_unemployment.csv")


def write_shipped_files(shared: Path = SHARED_DIR / "data", out: Path = CALIBRATION_DIR / "data") -> list[Path]:
    """Write the political-core files of ``calibration/data`` from the shared data folder."""
    import shutil

    written = []
    for name, make in DERIVED_FILES.items():
        make(shared).to_csv(out / name, index=False, float_format="%.6g")
        written.append(out / name)
    for name in COPIED_FILES:
        shutil.copyfile(shared / name, out / name)
        written.append(out / name)
    return written


__all__ = ["CITATIONS", "GULF_STATES", "PARTICIPATION", "PROXY_COUNTRIES", "PoliticalData", "ROUTE_DESTINATIONS",
           "SERIES", "VACANCY_COUNTRIES", "impic_region_aggregates", "wdi_region_unemployment", "write_shipped_files",
           "wvs_region_aggregates"]
