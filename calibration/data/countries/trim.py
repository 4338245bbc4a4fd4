"""Rebuild the country-level files of this folder from the project's curated data (``shared/data``).

Run from the repository root: ``python calibration/data/countries/trim.py``. Keeps only
the variables, variants and years the model derives its inputs and calibration
targets from, so that the repository stays small; ``tests/test_regions.py`` checks
that the files sum to the shipped region totals (and ``tests/test_regions_political.py``
that the WDI unemployment rates average to the shipped region means).
"""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[3] / "shared" / "data"
YEARS = (1990, 2100)
VARIANTS = ["estimate", "medium"]
#: The UNHCR groups the model's displacement arrivals count (migsd.calibration.data.DISPLACEMENT_GROUPS).
PROTECTION_GROUPS = ["refugees", "asylum_seekers", "other_in_need_of_protection"]


def _write(frame: pd.DataFrame, name: str) -> None:
    # mtime=0: the same data give the same bytes, so a rebuild shows no diff
    frame.to_csv(HERE / name, index=False, compression={"method": "gzip", "mtime": 0})


def main() -> None:
    annual = pd.read_csv(SHARED / "wpp2024_annual.csv")
    annual = annual[annual["iso3"].notna() & annual["variable"].isin(["births", "deaths", "pop_jul1", "net_migration"])
                    & annual["variant"].isin(VARIANTS) & annual["year"].between(*YEARS)]
    ages = pd.read_csv(SHARED / "wpp2024_age_groups_5yr.csv")
    ages = ages[ages["iso3"].notna() & ages["variable"].isin(["pop_0_14", "pop_15_64", "pop_65plus"])
                & ages["variant"].isin(VARIANTS) & ages["year"].between(*YEARS)]
    wpp = pd.concat([annual, ages])[["iso3", "year", "variable", "variant", "value"]]
    _write(wpp.sort_values(["iso3", "variable", "year"]), "wpp2024_countries.csv.gz")
    destination = pd.read_csv(SHARED / "un_ims2020_by_destination.csv")
    destination = destination[(destination["area_type"] == "country")
                              & (destination["variable"] == "migrant_stock_both")]
    _write(destination[["iso3", "year", "value"]].rename(columns={"value": "migrant_stock_both"})
           .sort_values(["iso3", "year"]), "ims2020_destination_countries.csv.gz")
    bilateral = pd.read_csv(SHARED / "un_ims2020_bilateral.csv")
    _write(bilateral[["dest_iso3", "orig_iso3", "year", "stock_both"]]
           .sort_values(["dest_iso3", "orig_iso3", "year"]), "ims2020_od_countries.csv.gz")
    # IMS 2024 only by destination (all origins, unknown included, as the shared region rows are summed): its
    # origin detail is far coarser than IMS 2020's, so the corridors stay IMS 2020 and the 2024 edition checks
    # the fitted stocks out of sample
    revised = pd.read_csv(SHARED / "un_ims2024_bilateral.csv")
    revised = revised.groupby(["dest_iso3", "year"], as_index=False)["stock_both"].sum()
    _write(revised.rename(columns={"dest_iso3": "iso3", "stock_both": "migrant_stock_both"})
           .sort_values(["iso3", "year"]), "ims2024_destination_countries.csv.gz")
    displaced = pd.read_csv(SHARED / "unhcr_forcibly_displaced.csv")
    displaced = displaced[displaced["variable"].isin(PROTECTION_GROUPS)]
    _write(displaced[["iso3", "role", "year", "variable", "value"]]
           .sort_values(["iso3", "role", "variable", "year"]), "unhcr_countries.csv.gz")
    wdi = pd.read_csv(SHARED / "wdi_unemployment_remittances.csv")
    wdi = wdi[wdi["variable"] == "unemployment_pct_labour_force"]
    _write(wdi[["iso3", "year", "value"]].sort_values(["iso3", "year"]), "wdi_unemployment_countries.csv.gz")


if __name__ == "__main__":
    main()
