"""``migsd report`` (``make run``): does Northern restrictionism yield, when, under which policies?

Every shipped scenario runs over the calibrated ensemble (its members as the
``run`` dim); the restrictionism sensitivity problem runs into a zarr store; the
numbers of the report are computed into one Dataset (``numbers.nc``) and the
text is formatted from it, never typed. Finished work is reused: the ensemble
runs are kept with a key of the model, calibration and scenario files, and the
sweep resumes its store.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
from pathlib import Path

import numpy as np
import xarray as xr

from ..indicators import YIELD_VARIABLE, yield_year_quantile

OUTPUTS = ["Restrictiveness", "Perceived Labour Shortage", "labour shortage", "migrant bargaining power",
           "Rights Observance", "south south share of flows", "irregular arrivals", "total deaths on routes",
           "anti migrant sentiment"]
YEARS = (2040, 2060, 2080, 2100)
REPORT_DIR = Path("outputs") / "report"


def _key(model, scenarios) -> str:
    parts = [model.sha256, str(model.calibration and hashlib.sha256(Path(model.calibration).read_bytes()).hexdigest())]
    parts += [hashlib.sha256(Path(s.path).read_bytes()).hexdigest() for s in scenarios]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def ensemble_runs(model, folder: Path, progress: bool = True) -> xr.Dataset:
    """Every shipped scenario over the calibrated ensemble; reused when nothing it depends on changed."""
    from ..calibration.fit import ensemble_params
    from ..outputs import to_netcdf
    from ..scenarios import list_scenarios, resolve_scenario

    scenarios = [resolve_scenario(name) for name in list_scenarios()]
    key = _key(model, scenarios)
    path = folder / "ensemble.nc"
    if path.exists():
        cached = xr.open_dataset(path)
        if cached.attrs.get("report_key") == key:
            return cached.load()
        cached.close()
    members = ensemble_params(model.calibration)
    distinct = len(np.unique(np.column_stack([members[n].values for n in members.data_vars]), axis=0))
    parts = []
    iterator = scenarios
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(scenarios, desc="scenarios x ensemble", unit="scenario")
    for scenario in iterator:
        ds = model.run_batch(members, scenario=scenario, return_columns=OUTPUTS)
        parts.append(ds.expand_dims(scenario=[scenario.name]))
    dataset = xr.concat(parts, dim="scenario", combine_attrs="drop_conflicts")
    dataset = dataset.assign_coords(scenario_title=("scenario", [s.title for s in scenarios]))
    from ..outputs import provenance

    dataset.attrs.update({"report_key": key, "title": "migsd scenarios over the calibrated ensemble",
                          "calibration": Path(model.calibration).name if model.calibration else "none",
                          "distinct_members": distinct, **provenance(model, scenarios)})
    to_netcdf(dataset, path, overwrite=True)
    return dataset


def probability_error(share: xr.DataArray, draws) -> dict[str, xr.DataArray]:
    """Monte Carlo standard error and 90% interval of a share of ``draws`` independent posterior draws.

    The interval is the Jeffreys one, Beta(k + 1/2, n - k + 1/2): where the
    probability lies given the finite number of parameter sets it was computed
    from (copies of one parameter set count once, so a resampled ensemble is
    not taken for more than it is). ``draws`` is a number, or an effective
    sample size per share (:func:`effective_draws`).

    Examples
    --------
    >>> out = probability_error(xr.DataArray(0.5), 400)
    >>> round(float(out["MCSE"]), 4), round(float(out["5%"]), 3), round(float(out["95%"]), 3)
    (0.025, 0.459, 0.541)
    """
    from scipy.stats import beta

    count = share * draws
    low = xr.apply_ufunc(lambda k, n: beta.ppf(0.05, k + 0.5, n - k + 0.5), count, draws)
    high = xr.apply_ufunc(lambda k, n: beta.ppf(0.95, k + 0.5, n - k + 0.5), count, draws)
    return {"MCSE": np.sqrt(share * (1 - share) / draws), "5%": low, "95%": high}


def removed_by_chain(years: xr.DataArray) -> xr.DataArray | None:
    """Per posterior chain, the share of its draws in which cutting each channel removes or delays the yield.

    ``years`` is attribution's ``yield year by channel`` (channel, scenario, run). Chains that agree on whether
    a yield happens may disagree on why; the share by chain shows it. None for a calibrated ensemble.
    """
    from ..analysis.attribution import summary
    from ..calibration.posterior import draw_chains

    chains = draw_chains(years["run"].values)
    if chains is None:
        return None
    parts = [summary(years.isel(run=np.flatnonzero(chains == c)), by=YEARS)["P(yield removed or delayed by cut)"]
             for c in np.unique(chains)]
    return xr.concat(parts, dim=xr.DataArray(np.unique(chains), dims="chain", name="chain")).assign_attrs(
        long_name="share of each chain's draws in which cutting the channel removes or delays the yield",
        units="dimensionless")


def effective_draws(indicator: xr.DataArray, distinct: int) -> xr.DataArray | int:
    """How many independent draws a share of ``indicator`` (over ``run``) is worth.

    For posterior draws from several chains (runs labelled ``chainC-drawD``), ArviZ's
    effective sample size of the indicator over its chains: where chains disagree
    on the share, it falls far below the number of draws, and the MCSE rises with
    it. ArviZ wants as many draws from each chain; each chain's first ones, as many
    as the shortest chain has, are used (draws are picked at random from the chains,
    so about as many come from each). Otherwise (a calibrated ensemble), ``distinct``
    parameter sets.
    """
    import arviz as az

    from ..calibration.posterior import draw_chains

    chains = draw_chains(indicator["run"].values)
    if chains is None:
        return distinct
    names = np.unique(chains)
    keep = min(int((chains == c).sum()) for c in names)
    others = [d for d in indicator.dims if d != "run"]
    stacked = indicator.transpose(*others, "run").values.astype(float)
    blocks = np.stack([stacked[..., chains == c][..., :keep] for c in names], axis=-2)  # (..., chain, draw)
    flat = blocks.reshape(-1, len(names), keep)
    ess = np.array([float(az.ess(block, method="mean")) for block in flat]).reshape(stacked.shape[:-1])
    ess = np.minimum(ess * len(chains) / (keep * len(names)), distinct)  # the ESS of the draws used, scaled to all
    return xr.DataArray(ess, dims=others, coords={d: indicator[d] for d in others})


HEADLINE = ("status_quo", "iom_south_south")
LOOP_VARIABLE = "Restrictiveness[North]"


def _cached(path: Path, key: str, compute) -> xr.Dataset:
    """``compute()`` saved at ``path`` with ``key``; reused while the key is the same."""
    if path.exists():
        cached = xr.open_dataset(path)
        if cached.attrs.get("report_key") == key:
            return cached.load()
        cached.close()
    dataset = compute()
    dataset.attrs["report_key"] = key
    if path.exists():
        path.unlink()
    dataset.to_netcdf(path)
    return dataset


def _code(*modules) -> str:
    """Digest of the modules that compute a cached result, so changed code never reuses an old one."""
    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in modules)).hexdigest()[:12]


def attribution_runs(model, folder: Path) -> xr.Dataset:
    """The yield year of every shipped scenario and ensemble member with each channel of channels.toml cut."""
    from ..analysis.attribution import CHANNELS_FILE, attribution, load_channels
    from ..calibration.fit import ensemble_params
    from ..scenarios import list_scenarios, resolve_scenario

    scenarios = [resolve_scenario(name) for name in list_scenarios()]
    from ..analysis import attribution as code

    key = _key(model, scenarios) + hashlib.sha256(CHANNELS_FILE.read_bytes()).hexdigest()[:12] + _code(code)
    return _cached(folder / "attribution.nc", key, lambda: attribution(
        model, scenarios, ensemble_params(model.calibration), channels=load_channels(model)))


def loop_runs(model, folder: Path, scenario: str) -> xr.Dataset:
    """Loops that matter for Northern restrictiveness over the calibrated ensemble, in one scenario."""
    from ..analysis.loops import LOOPS_FILE
    from ..calibration.fit import ensemble_params
    from ..scenarios import resolve_scenario

    resolved = resolve_scenario(scenario)
    from ..analysis import loops as code
    from ..engine import linkscores

    key = _key(model, [resolved]) + hashlib.sha256(LOOPS_FILE.read_bytes()).hexdigest()[:12] + _code(code, linkscores)
    return _cached(folder / f"loops_{scenario}.nc", key, lambda: model.loops(
        scenario=resolved, params=ensemble_params(model.calibration), variable=LOOP_VARIABLE,
        quantiles=[0.05, 0.5, 0.95]))


def loop_numbers(loop_sets: dict[str, xr.Dataset]) -> xr.Dataset:
    """Per headline scenario and decade: the loop family most often dominant for Northern restrictiveness, and how often."""
    from ..analysis.loops import dominance_by_decade

    names, shares, decades = {}, {}, None
    for scenario, dataset in loop_sets.items():
        rows = dominance_by_decade(dataset)
        decades = [d for d, _, _ in rows]
        names[scenario] = [n for _, n, _ in rows]
        shares[scenario] = [p for _, _, p in rows]
    scenarios = list(loop_sets)
    coords = {"scenario": scenarios, "decade": decades}
    return xr.Dataset({
        "dominant loop of Northern restrictiveness": (("scenario", "decade"), np.asarray(
            [names[s] for s in scenarios], dtype=str), {"long_name": "loop family most often dominant over the "
                                                        "decade's years and the ensemble's runs"}),
        "P(dominant loop of Northern restrictiveness)": (("scenario", "decade"), np.asarray(
            [shares[s] for s in scenarios]), {"units": "dimensionless", "long_name": "share of the decade's "
                                              "run-years in which that loop family dominates"}),
    }, coords=coords)


def numbers(ensemble: xr.Dataset, indices: xr.Dataset | None, boxes: dict, attributed: xr.Dataset | None = None,
            loop_facts: xr.Dataset | None = None) -> xr.Dataset:
    """Every number the report states, computed from the runs."""
    years = ensemble[YIELD_VARIABLE]
    draws = int(ensemble.attrs.get("distinct_members", ensemble.sizes["run"]))
    out = {}
    for year in YEARS:
        out[f"P(yield by {year})"] = (years <= year).mean("run")
        effective = effective_draws(years <= year, draws)
        out[f"P(yield by {year}) ESS"] = xr.zeros_like(out[f"P(yield by {year})"]) + effective
        for label, value in probability_error(out[f"P(yield by {year})"], effective).items():
            out[f"P(yield by {year}) {label}"] = value
    out["median yield year"] = yield_year_quantile(years, 0.5)
    out["yield year 5%"] = yield_year_quantile(years, 0.05)
    out["yield year 95%"] = yield_year_quantile(years, 0.95)
    at = ensemble.sel(time=2050)
    for name, where in (("Perceived Labour Shortage", {"region": "North"}), ("labour shortage", {"region": "North"})):
        out[f"{name} North 2050"] = at[name].sel(where).median("run")
    for name in ("migrant bargaining power", "Rights Observance"):
        out[f"{name} 2050"] = at[name].median("run")
    out["south south share of flows 2050"] = at["south south share of flows"].median("run")
    out["irregular arrivals North 2050"] = at["irregular arrivals"].sel(destination="North").sum("origin").median("run")
    deaths = ensemble["total deaths on routes"].sel(time=slice(2020, 2100))
    out["deaths on routes 2020-2100"] = deaths.sum("time").median("run")  # Person/Year saved yearly: a yearly sum
    shortage = ensemble["Perceived Labour Shortage"].sel(region="North", time=2050)
    held = (shortage > shortage.median("run")) & ~(years <= 2060)
    out["share: shortage above median yet no yield by 2060"] = held.mean("run")
    dataset = xr.Dataset(out)
    dataset.attrs["distinct_members"] = draws
    if indices is not None and f"{YIELD_VARIABLE} ST" in indices:
        total = indices[f"{YIELD_VARIABLE} ST"]
        # the sweep's scenario labels are stored at their own width: compare as text, then take the report's labels
        total = total.assign_coords(scenario=[str(s) for s in total["scenario"].values])
        dataset["yield year ST"] = total.reindex(scenario=[str(s) for s in dataset["scenario"].values])
    for name, value in boxes.items():
        dataset.attrs[name] = value
    if attributed is not None:
        from ..analysis.attribution import summary

        cut = summary(attributed["yield year by channel"], by=YEARS)
        chains = removed_by_chain(attributed["yield year by channel"])
        if chains is not None:
            cut["P(yield removed or delayed by cut) by chain"] = chains
        dataset = dataset.merge(cut.reindex(scenario=dataset["scenario"].values), compat="override")
        dataset = dataset.assign_coords(channel_description=attributed["channel_description"])
    if loop_facts is not None:
        dataset = dataset.merge(loop_facts.rename(scenario="headline_scenario"), compat="override")
    return dataset


def sweep_matches(store: Path, problem, model=None) -> bool:
    """Whether ``store`` holds ``problem``'s sweep (and, given ``model``, was run from the same files)."""
    from ..analysis.sweep import changed_inputs, open_store, problem_digest

    try:
        stored = open_store(store, consolidated=False)
    except (OSError, ValueError, KeyError):
        return False
    return (stored.attrs.get("problem_digest") == problem_digest(problem) and stored.sizes.get("run") == problem.runs
            and (model is None or not changed_inputs(stored, model, problem)))


def failure_statements(results: xr.Dataset) -> dict[str, str]:
    """Where the sweep contradicts the article: Southern xenophobia and the numbers-versus-rights trade-off."""
    from scipy.stats import spearmanr

    statements = {}
    scenario = "iom_south_south" if "iom_south_south" in results["scenario"].values else str(results["scenario"].values[0])
    done = results["status"].sel(scenario=scenario).values == 1
    southern = [n for n in results.data_vars if n.startswith("param culturalist weight[SouthUpper")]
    if southern and "south south share of flows" in results:
        multiplier = results[southern[0]].values[done]
        share = results["south south share of flows"].sel(scenario=scenario, time=2050).values[done]
        high, low = multiplier >= np.quantile(multiplier, 0.75), multiplier <= np.quantile(multiplier, 0.25)
        rho = spearmanr(multiplier, share).statistic
        verdict = ("Southern xenophobia closes part of the new destinations" if rho < 0
                   else "in the model Southern xenophobia does not close the new destinations")
        statements["fails southern xenophobia"] = (
            f"`{scenario}` sweep: where Southern publics react most to arrivals (top quarter of the Southern "
            f"culturalist multiplier) the South-South share of flows in 2050 is {100 * np.median(share[high]):.1f}%, "
            f"against {100 * np.median(share[low]):.1f}% in the bottom quarter (Spearman {rho:+.2f}): {verdict}."
        )
    coupling = "param numbers rights coupling"
    if coupling in results and "Rights Observance" in results:
        values = results[coupling].values[done]
        rights = results["Rights Observance"].sel(scenario=scenario, time=2050, region="North").values[done]
        years = np.nan_to_num(results[YIELD_VARIABLE].sel(scenario=scenario).values[done], nan=2101)
        rho = spearmanr(values, rights).statistic
        verdict = ("opening admission trades rights away where the coupling is strong" if rho < 0
                   else "the sweep shows no numbers-versus-rights trade-off")
        statements["fails numbers versus rights"] = (
            f"`{scenario}` sweep: Spearman correlation of the numbers-versus-rights coupling (Ruhs) with Northern "
            f"rights observance in 2050 {rho:+.2f}, with the yield year {spearmanr(values, years).statistic:+.2f}: "
            f"{verdict}."
        )
    return statements


def _attribution_lines(facts: xr.Dataset, figures: dict) -> list[str]:
    """Per scenario, the probability of a yield as modelled and with each channel cut."""
    channels = [str(c) for c in facts["channel"].values]
    lines = ["## Why it yields: the yield with each causal channel cut", "",
             "Each channel of `models/channels.toml` is cut in turn from 2020 on (its variables held at each "
             "member's 2020 value, or at the number the file gives), in every scenario and ensemble member. "
             "*Removed or delayed*: the share of members that yield by 2100 as modelled and, with the channel cut, "
             "do not, or yield at least 10 years later.", "",
             "| channel cut | what is held |", "|---|---|"]
    for channel, description in zip(channels, facts["channel_description"].values):
        lines.append(f"| {channel} | {description} |")
    lines.append("")
    for s in [str(x) for x in facts["scenario"].values]:
        lines += [f"### `{s}`", "", "| channel cut | " + " | ".join(f"P(yield by {y})" for y in YEARS)
                  + " | median year | removed or delayed |", "|---|" + "---|" * (len(YEARS) + 2)]
        for channel in channels:
            cells = [f"{100 * float(facts['P(yield by) with channel cut'].sel(channel=channel, scenario=s, by=y)):.0f}%"
                     for y in YEARS]
            median = _fmt_year(float(facts["median yield year with channel cut"].sel(channel=channel, scenario=s)))
            caused = float(facts["P(yield removed or delayed by cut)"].sel(channel=channel, scenario=s))
            shown = "-" if channel == "none" else f"{100 * caused:.0f}%"
            label = "none (as modelled)" if channel == "none" else channel
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {median} | {shown} |")
        if "labour scarcity" in channels:
            caused = float(facts["P(yield removed or delayed by cut)"].sel(channel="labour scarcity", scenario=s))
            by_chain = ""
            if "P(yield removed or delayed by cut) by chain" in facts:
                shares = facts["P(yield removed or delayed by cut) by chain"].sel(channel="labour scarcity", scenario=s)
                by_chain = " (by posterior chain: " + " / ".join(f"{100 * float(v):.0f}%" for v in shares.values) + ")"
            lines += ["", f"Under labour scarcity? In `{s}`, cutting labour scarcity (shortage pressure) removes or delays "
                      f"the yield in {100 * caused:.0f}% of members{by_chain}."]
        lines.append("")
    lines += [f"![attribution]({figures['attribution']})", "",
              "*Figure. Probability that Northern restrictiveness has yielded by 2060 and by 2100, as modelled and "
              "with each causal channel cut, in the headline scenarios.*", ""]
    return lines


def _loop_lines(facts: xr.Dataset, figures: dict) -> list[str]:
    """Per headline scenario, the dominant loop of Northern restrictiveness by decade, with its ensemble probability."""
    lines = ["## Which feedback loops drive Northern restrictiveness", "",
             "Loops That Matter (link and loop scores computed in the engine for every member; loops named in "
             "`models/loops.toml`): the loop family whose loop has the largest absolute relative score among the "
             "loops through `Restrictiveness[North]`, most often over each decade's years and the ensemble's "
             "members, and that share.", ""]
    decades = [int(d) for d in facts["decade"].values]
    scenarios = [str(s) for s in facts["headline_scenario"].values]
    lines += ["| decade | " + " | ".join(f"`{s}`" for s in scenarios) + " |", "|---|" + "---|" * len(scenarios)]
    for decade in decades:
        cells = []
        for s in scenarios:
            name = str(facts["dominant loop of Northern restrictiveness"].sel(headline_scenario=s, decade=decade).values)
            share = float(facts["P(dominant loop of Northern restrictiveness)"].sel(headline_scenario=s, decade=decade))
            cells.append(f"{name} ({100 * share:.0f}%)")
        lines.append(f"| {decade}s | " + " | ".join(cells) + " |")
    lines.append("")
    for s in scenarios:
        lines += [f"![loops {s}]({figures[f'loops {s}']})", "",
                  f"*Figure. `{s}`: relative scores of the loops through Northern restrictiveness (ensemble median; "
                  "reinforcing above zero, balancing below).*", "",
                  f"![dominance {s}]({figures[f'dominance {s}']})", "",
                  f"*Figure. `{s}`: probability over the ensemble that each loop family dominates Northern "
                  "restrictiveness, and the year dominance first shifts.*", ""]
    return lines


def _fmt_year(value: float) -> str:
    return "never (by 2100)" if not np.isfinite(value) else f"{value:.0f}"


def box_statement(box, scenario: str, method: str, runs: int) -> str:
    """One sentence of the report on a PRIM box of the sweep (:func:`migsd.analysis.discovery.discover`)."""
    ranges = "; ".join(f"{r.parameter} in [{r.low:.3g}, {r.high:.3g}]" for r in box.limits.itertuples())
    # a box without limits is PRIM's whole space: the outcome is no denser in any part of it
    found_where = (f"PRIM finds it concentrated where {ranges} (coverage {box.coverage:.2f}, density "
                   f"{box.density:.2f})" if ranges else
                   "PRIM finds no range of the sampled parameters where it is more concentrated than that")
    fails = not box.outcome.startswith("yields")
    return (f"`{scenario}` ({method} sweep of {runs} runs): restrictiveness {box.outcome} in "
            f"{100 * box.share:.0f}% of runs; {found_where}"
            + (": where total migration responds strongly to destinations' appeal, induced migration "
               "dilutes Northern scarcity." if fails and "volume elasticity" in ranges else "."))


def calibration_changes(path: Path | None) -> list[str]:
    """Markdown: what the promoted calibration ``calibrated_vN.csv`` changed from ``calibrated_v(N-1).csv``, and why.

    The parameters come from the two files' ``best`` rows; the why is the section of the calibration's note
    (``calibrated_vN.md``) headed "What changed from", written with the calibration.
    """
    from ..calibration.fit import read_parameters

    if path is None or Path(path).suffix != ".csv" or not Path(path).stem.split("_v")[-1].isdigit():
        return []
    path = Path(path)
    version = int(path.stem.split("_v")[-1])
    previous = path.with_name(f"calibrated_v{version - 1}.csv")
    lines = [f"## What changed from the previous calibration (v{version - 1} -> v{version})", ""]
    note = path.with_suffix(".md")
    text = note.read_text(encoding="utf-8") if note.exists() else ""
    start = text.find("\n## What changed from")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        body = text[start:end if end >= 0 else None].strip().splitlines()[1:]
        lines += [line for line in body] + [""]
    if not previous.exists():
        return lines
    now, before = read_parameters(path).loc["best"], read_parameters(previous).loc["best"]
    added = [p for p in now.index if p not in before.index]
    lines += [f"Calibrated in both (best fit, v{version - 1} -> v{version}): "
              + "; ".join(f"`{p}` {before[p]:.4g} -> {now[p]:.4g}" for p in now.index if p in before.index) + ".", ""]
    if added:
        lines += [f"Newly calibrated in v{version} ({len(added)}; before, the .mdl's assumed values): "
                  + "; ".join(f"`{p}` {now[p]:.4g}" for p in added) + ".", ""]
    dropped = [p for p in before.index if p not in now.index]
    if dropped:
        lines += [f"No longer calibrated in v{version} ({len(dropped)}; now the .mdl's assumed values): "
                  + "; ".join(f"`{p}` (was {before[p]:.4g})" for p in dropped) + ".", ""]
    return lines


def write_report(ensemble: xr.Dataset, facts: xr.Dataset, figures: dict[str, str], folder: Path) -> Path:
    """``report.md`` and ``report.html``, every number taken from ``facts``."""
    scenarios = list(ensemble["scenario"].values)
    titles = dict(zip(scenarios, ensemble["scenario_title"].values))
    definition = ensemble[YIELD_VARIABLE].attrs.get("definition", "")
    lines = ["# Does Northern restrictionism yield under labour scarcity?", ""]
    members = ensemble.sizes["run"]
    lines += [f"Every shipped scenario over the {members} members of the calibrated ensemble "
              f"(calibration `{ensemble.attrs.get('calibration', 'none')}`), 1990-2100. "
              f"Definition: {definition}", ""]
    lines += [f"Computed from `{ensemble.attrs.get('model_file', '?')}` (sha256 "
              f"`{ensemble.attrs.get('model_sha256', '?')[:16]}`), calibration "
              f"`{ensemble.attrs.get('calibration_file', 'none')}` (sha256 "
              f"`{ensemble.attrs.get('calibration_sha256', '')[:16] or '-'}`) and the scenario files "
              + ", ".join(f"`{item.split('=')[0]}` (`{item.split('=')[-1][:16]}`)"
                          for item in ensemble.attrs.get("scenario_sha256", "").split("; ") if item)
              + "; every file's full digest is in `numbers.nc` and `ensemble.nc`.", ""]
    from ..calibration.fit import current

    promoted = current()
    if promoted is not None and promoted.name == ensemble.attrs.get("calibration"):
        lines += calibration_changes(promoted)
    draws = int(facts.attrs.get("distinct_members", members))
    ess = np.concatenate([np.ravel(facts[f"P(yield by {y}) ESS"].values) for y in YEARS
                          if f"P(yield by {y}) ESS" in facts])
    if ess.size and float(ess.min()) < draws:
        resting = (f"given its effective sample size over the posterior's chains ({ess.min():.0f}-{ess.max():.0f} of "
                   f"{draws} draws: ArviZ's ESS of each share, lower where the chains disagree)")
    else:
        resting = f"given the {draws} distinct parameter sets it rests on"
    lines += ["## Probability that Northern restrictiveness has yielded", "",
              f"Each probability is the share of members in which it has yielded, ± its Monte Carlo standard error, "
              f"[its 90% interval] {resting}; the median year comes "
              "with its 90% credible interval over the parameters' uncertainty.", "",
              "| scenario | " + " | ".join(f"by {y}" for y in YEARS) + " | median year (90% interval) |",
              "|---|" + "---|" * (len(YEARS) + 1)]
    for s in scenarios:
        cells = [f"{100 * float(facts[f'P(yield by {y})'].sel(scenario=s)):.0f}% "
                 f"± {100 * float(facts[f'P(yield by {y}) MCSE'].sel(scenario=s)):.1f} "
                 f"[{100 * float(facts[f'P(yield by {y}) 5%'].sel(scenario=s)):.0f}-"
                 f"{100 * float(facts[f'P(yield by {y}) 95%'].sel(scenario=s)):.0f}%]" for y in YEARS]
        median = _fmt_year(float(facts["median yield year"].sel(scenario=s)))
        low = _fmt_year(float(facts["yield year 5%"].sel(scenario=s)))
        high = _fmt_year(float(facts["yield year 95%"].sel(scenario=s)))
        # an interval of "never" to "never" says nothing the median does not
        timing = median if low == high == median == _fmt_year(float("nan")) else f"{median} ({low}-{high})"
        lines.append(f"| {titles[s]} (`{s}`) | " + " | ".join(cells) + f" | {timing} |")
    lines += ["", f"![yield probability]({figures['yield']})", "",
              "*Figure 1. Share of ensemble members in which Northern restrictiveness has yielded, by year, per "
              "scenario.*", "", "## The mechanisms, in 2050 (ensemble medians)", "",
              "| scenario | North perceived shortage | North labour shortage | bargaining power North / Gulf / "
              "SouthUpper / SouthLower | rights observance North / Gulf / SouthUpper / SouthLower | "
              "South-South share of flows | irregular arrivals to the North (Person/Year) | deaths on routes "
              "2020-2100 (Person) |", "|---|---|---|---|---|---|---|---|"]
    for s in scenarios:
        row = facts.sel(scenario=s)
        power = " / ".join(f"{v:.2f}" for v in row["migrant bargaining power 2050"].values)
        rights = " / ".join(f"{v:.2f}" for v in row["Rights Observance 2050"].values)
        lines.append(
            f"| `{s}` | {float(row['Perceived Labour Shortage North 2050']):.3f} | "
            f"{float(row['labour shortage North 2050']):.3f} | {power} | {rights} | "
            f"{100 * float(row['south south share of flows 2050']):.1f}% | "
            f"{float(row['irregular arrivals North 2050']):,.0f} | {float(row['deaths on routes 2020-2100']):,.0f} |"
        )
    lines += ["", f"![restrictiveness]({figures['fan']})", "",
              "*Figure 2. Northern restrictiveness over the calibrated ensemble: median and 90% band, status quo "
              "and the IOM South-South programme.*", ""]
    if "P(yield by) with channel cut" in facts:
        lines += _attribution_lines(facts, figures)
    if "dominant loop of Northern restrictiveness" in facts:
        lines += _loop_lines(facts, figures)
    lines += ["## Which assumptions decide it", ""]
    if "yield year ST" in facts:
        total = facts["yield year ST"]
        for s in total["scenario"].values:
            if not np.isfinite(total.sel(scenario=s)).any():
                continue
            ranked = total.sel(scenario=s).sortby(total.sel(scenario=s), ascending=False)
            top = ", ".join(f"{p} (ST {v:.2f})" for p, v in zip(ranked["parameter"].values[:3], ranked.values[:3]))
            lines.append(f"- `{s}`: the yield year depends most on {top} (Sobol total-order indices of the "
                         "restrictionism sweep).")
    for name, value in facts.attrs.items():
        if name.startswith("prim "):
            lines.append(f"- {value}")
    lines += ["", f"![indices]({figures['indices']})", "",
              "*Figure 3. Sobol total-order indices of the yield year over the article's uncertain links "
              "(restrictionism sweep).*", "", "## Where the argument fails in the model", ""]
    for s in ("status_quo", "iom_south_south"):
        if s in scenarios:
            share = float(facts["share: shortage above median yet no yield by 2060"].sel(scenario=s))
            lines.append(f"- `{s}`: in {100 * share:.0f}% of members the North's perceived labour shortage in 2050 "
                         "is above the ensemble median and yet restrictiveness has not yielded by 2060: restriction "
                         "holds despite shortage (culturalist pressure and slow policy).")
    for name, value in facts.attrs.items():
        if name.startswith("fails "):
            lines.append(f"- {value}")
    lines += ["", "Numbers: `numbers.nc`; runs: `ensemble.nc`; sweep: `restrictionism.zarr`, indices "
              "`sweep/indices.nc`.", ""]
    text = "\n".join(lines)
    markdown = folder / "report.md"
    markdown.write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(to_html(text), encoding="utf-8")
    return markdown


def to_html(markdown: str) -> str:
    """The report's Markdown (headings, paragraphs, lists, tables, images, code spans, emphasis) as HTML."""
    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2" style="max-width:100%">', text)
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)

    out, table, items = [], [], []

    def flush():
        if table:
            rows = [r for r in table if not re.match(r"^\|[-|]+\|$", r)]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            out.append("<table border=1 cellpadding=4><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0])
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>"
                                            for r in cells[1:]) + "</table>")
            table.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if line.startswith("- "):
            items.append(line[2:])
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush()
    return "<!DOCTYPE html><html><head><meta charset='utf-8'><title>migsd report</title></head><body>" + \
        "\n".join(out) + "</body></html>\n"


def build(folder: Path = REPORT_DIR, *, progress: bool = True, sweep_samples: int | None = None,
          calibration: Path | None = None) -> Path:
    """Everything ``make run`` writes into ``outputs/report/``: on the promoted calibration, or on ``calibration``
    (a ``calibrated_vN.csv`` or ``posterior_vN.nc``) to compare another with it before promoting it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..analysis.discovery import discover
    from ..model import load_model
    from ..analysis.sensitivity import load_problem, sample
    from ..analysis.sweep import evaluate, open_verified, report as sweep_report

    folder.mkdir(parents=True, exist_ok=True)
    model = load_model() if calibration is None else load_model(calibration=calibration)
    ensemble = ensemble_runs(model, folder, progress)
    problem = load_problem("restrictionism", model, samples=sweep_samples)
    store = folder / "restrictionism.zarr"
    if store.exists() and not sweep_matches(store, problem, model):
        shutil.rmtree(store)  # the report's own store, from an older problem file, sample size, model or calibration
    evaluate(problem, sample(problem), model=model, store=store, resume=store.exists(), progress=progress)
    results, _ = open_verified(store)
    sweep_report(problem, results, folder / "sweep")
    indices = xr.open_dataset(folder / "sweep" / "indices.nc").load()
    boxes = {}
    for scenario in problem.scenarios:
        found = discover(results.load(), scenario=scenario, by=2060)
        for box in found:
            label = "prim" if box.outcome.startswith("yields") else "fails"
            boxes[f"{label} {scenario}"] = box_statement(box, scenario, problem.method, results.sizes["run"])
    boxes.update(failure_statements(results.load()))
    attributed = attribution_runs(model, folder)
    loop_sets = {s: loop_runs(model, folder, s) for s in HEADLINE if s in ensemble["scenario"].values}
    facts = numbers(ensemble, indices, boxes, attributed, loop_numbers(loop_sets) if loop_sets else None)
    facts.attrs.update({k: ensemble.attrs[k] for k in ("model_file", "model_sha256", "calibration_file",
                                                       "calibration_sha256", "scenario_sha256") if k in ensemble.attrs})
    facts.to_netcdf(folder / "numbers.nc")
    figures = {"indices": "sweep/indices_Northern_restrictiveness_yield_year.png"}
    years = np.arange(2020, 2101)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for k, s in enumerate(ensemble["scenario"].values):
        probability = [(ensemble[YIELD_VARIABLE].sel(scenario=s) <= y).mean("run") for y in years]
        axis.plot(years, probability, label=str(s), color=f"C{k % 10}")
    axis.set_ylabel("share of ensemble members")
    axis.set_title("Northern restrictiveness has yielded", fontsize=10)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(folder / "yield_probability.png", dpi=90)
    plt.close(figure)
    figures["yield"] = "yield_probability.png"
    figure, axis = plt.subplots(figsize=(8, 4))
    for k, s in enumerate(["status_quo", "iom_south_south"]):
        series = ensemble["Restrictiveness"].sel(scenario=s, region="North")
        q = series.quantile([0.05, 0.5, 0.95], dim="run")
        axis.fill_between(series["time"], q.isel(quantile=0), q.isel(quantile=2), alpha=0.2, color=f"C{k}")
        axis.plot(series["time"], q.isel(quantile=1), color=f"C{k}", label=s)
    axis.set_ylabel("Restrictiveness[North] (Dmnl)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(folder / "restrictiveness_north.png", dpi=90)
    plt.close(figure)
    figures["fan"] = "restrictiveness_north.png"
    figures.update(_explaining_figures(facts, loop_sets, folder))
    return write_report(ensemble, facts, figures, folder)


def _explaining_figures(facts: xr.Dataset, loop_sets: dict, folder: Path) -> dict[str, str]:
    import matplotlib.pyplot as plt

    from ..analysis.loops import dominance_figure, stacked_figure

    figures = {}
    for s, dataset in loop_sets.items():
        stacked_figure(dataset, folder / f"loops_{s}.png", title=f"{s}: loops through {LOOP_VARIABLE}")
        dominance_figure(dataset, folder / f"dominance_{s}.png", title=f"{s}: dominant loop of {LOOP_VARIABLE}")
        figures[f"loops {s}"], figures[f"dominance {s}"] = f"loops_{s}.png", f"dominance_{s}.png"
    channels = [str(c) for c in facts["channel"].values]
    shown = [s for s in HEADLINE if s in facts["scenario"].values]
    figure, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 4), sharey=True, squeeze=False)
    for axis, s in zip(axes[0], shown):
        positions = np.arange(len(channels))
        for k, year in enumerate((2060, 2100)):
            values = facts["P(yield by) with channel cut"].sel(scenario=s, by=year).values
            axis.bar(positions + (k - 0.5) * 0.38, values, width=0.38, label=f"by {year}", color=f"C{k}")
        axis.set_xticks(positions, channels, rotation=35, ha="right", fontsize=7)
        axis.set_title(s, fontsize=9)
        axis.set_ylim(0, 1)
    axes[0][0].set_ylabel("P(Northern restrictiveness has yielded)")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(folder / "attribution.png", dpi=90)
    plt.close(figure)
    figures["attribution"] = "attribution.png"
    return figures
