"""The figures of docs/regions_fine.md: what the fine region set changes in the answer.

Runs every scenario of the shipped model and of ``models/regions/fine`` over each
one's promoted calibration (best set and its 50 ensemble members) and prints, per
Northern region: the share of members whose restrictiveness has yielded by 2040,
2060 and 2100 and the median yield year (the default definition: 0.1 below the 2020
level for five years), and for high-income East Asia the year restrictiveness first
falls 0.1 below its 1990 level, with its labour gap and foreign-born. Asserts nothing.
Usage: python docs/regions_fine.py
"""

from __future__ import annotations

import numpy as np
import xarray as xr

import migsd
from migsd.calibration.fit import current, ensemble_params
from migsd.indicators import yield_year
from migsd.paths import MODELS_DIR

FINE = MODELS_DIR / "regions" / "fine"
NORTH = {"shipped": ["North"], "fine": ["Europe", "NorthAmerica", "EastAsiaHigh", "Oceania", "OtherNorth"]}
SCENARIOS = ["status_quo", "iom_south_south", "northern_natalism_automation", "open_borders"]


def table(label: str, mdl, parameters, scenario_dir) -> None:
    model = migsd.load_model(mdl)
    params = ensemble_params(parameters, include_best=True)
    scenarios = [scenario_dir / f"{name}.toml" for name in SCENARIOS]
    if label == "fine":
        scenarios.append(scenario_dir / "east_asian_automation.toml")
    print(f"\n## {label}: {model.path.parent.name}/{model.path.name}, calibration {parameters.name} "
          f"({params.sizes['run']} runs: best + members)")
    print(f"{'scenario':<30} {'region':<13} {'P(2040)':>7} {'P(2060)':>7} {'P(2100)':>7} {'median':>7} {'best':>6}")
    for path in scenarios:
        runs = model.run_batch(params, scenario=path, return_columns=["Restrictiveness"])
        for region in NORTH[label]:
            years = yield_year(runs["Restrictiveness"].sel(region=region, drop=True)).values
            members = years[1:]
            shares = [np.mean(members <= y) for y in (2040, 2060, 2100)]
            median = np.nanmedian(members) if np.isfinite(members).any() else float("nan")
            print(f"{path.stem:<30} {region:<13} {shares[0]:7.2f} {shares[1]:7.2f} {shares[2]:7.2f} "
                  f"{median:7.0f} {years[0]:6.0f}")


def east_asia() -> None:
    model = migsd.load_model(FINE / "migsd.mdl")
    run = model.run(scenario=FINE / "scenarios" / "status_quo.toml", final_time=2040,
                    return_columns=["Restrictiveness", "labour gap", "Perceived Labour Shortage",
                                    "foreign born population", "working age residents"])
    region = {"region": "EastAsiaHigh"}
    opening = float(yield_year(run["Restrictiveness"].sel(region, drop=True), reference_year=1990))
    print(f"\n## high-income East Asia (best calibrated run, status quo): restrictiveness first 0.1 below its 1990 "
          f"level (and held 5 years) in {opening:.0f}")
    print(f"{'year':>6} {'restrictiveness':>15} {'labour gap':>10} {'perceived shortage':>18} "
          f"{'foreign-born M':>14} {'working age M':>13}")
    for year in (1990, 1995, 2000, 2004, 2010, 2014, 2015, 2018, 2019, 2020, 2025, 2030):
        at = {"time": year, **region}
        print(f"{year:>6} {float(run['Restrictiveness'].sel(at)):15.3f} {float(run['labour gap'].sel(at)):10.3f} "
              f"{float(run['Perceived Labour Shortage'].sel(at)):18.3f} "
              f"{float(run['foreign born population'].sel(at)) / 1e6:14.2f} "
              f"{float(run['working age residents'].sel(at)) / 1e6:13.1f}")


def main() -> None:
    table("shipped", MODELS_DIR / "migsd.mdl", current(), MODELS_DIR / "scenarios")
    table("fine", FINE / "migsd.mdl", current(FINE / "calibration" / "parameters"), FINE / "scenarios")
    east_asia()


if __name__ == "__main__":
    main()
