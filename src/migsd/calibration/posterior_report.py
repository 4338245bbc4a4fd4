"""``migsd calibrate --method posterior``: the posterior file and its note.

Writes, for version N, in ``calibration/parameters/``: ``posterior_vN.nc`` (an
ArviZ InferenceData: posterior, posterior_predictive, observed_data,
log_likelihood, sample_stats, prior), ``posterior_vN.md`` (diagnostics per
parameter, the sampler's own, predictive coverage in and out of sample) and
``posterior_vN_figures/``. Evaluations are logged in
``posterior_vN.evaluations/`` (and ``...evaluations-until-2010/`` for the
out-of-sample fit) as they are computed; ``--resume`` replays the sampler over
them to the same result.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import CALIBRATION_DIR, PARAMETERS_DIR
from .data import CalibrationData
from .fit import file_digest, load_settings, make_problem, now
from .posterior import (EvaluationStore, PosteriorProblem, arviz, inference_data, load_posterior_settings, sample)
from .report import HOLDOUT_FROM, _markdown


def calibrate_posterior(settings_path: Path | None = None, *, model=None, directory: Path = PARAMETERS_DIR,
                        resume: bool = False, progress: bool = True, out_of_sample: bool = True,
                        sampler: str | None = None) -> Path:
    """Sample the posterior of ``priors.toml`` given ``targets.toml``; returns the written ``posterior_vN.nc``."""
    from ..model import load_model

    started = time.perf_counter()
    model = model or load_model(calibration=None)
    settings_path = Path(settings_path or CALIBRATION_DIR / "calibrate.toml")
    settings = load_settings(settings_path, model)
    options = load_posterior_settings(settings_path, sampler=sampler)
    version = _version(directory, resume)
    stem = directory / f"posterior_v{version}"
    data = CalibrationData()
    problem = make_problem(model, settings, data)
    posterior = PosteriorProblem(problem, EvaluationStore(stem.with_name(stem.name + ".evaluations")))
    drawn = sample(posterior, options, progress)
    attrs = {"model_file": model.path.name, "model_sha256": model.sha256, "settings": settings_path.name,
             "sampler": options.sampler, "seed": options.seed, "created": now()}
    idata = inference_data(posterior, drawn, seed=options.seed, attrs=attrs)
    holdout = None
    if out_of_sample:
        early = make_problem(model, settings, data, until=HOLDOUT_FROM - 1)
        early_posterior = PosteriorProblem(
            early, EvaluationStore(stem.with_name(stem.name + ".evaluations-until-2010")))
        early_drawn = sample(early_posterior, options, progress, particles=options.holdout_particles)
        later = make_problem(model, settings, data, since=HOLDOUT_FROM)
        holdout = _predict(early_posterior, early_drawn, PosteriorProblem(later), options.seed)
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = stem.with_suffix(".nc")
    idata.to_netcdf(str(path))
    figures = _figures(idata, stem.with_name(stem.name + "_figures"))
    seconds = time.perf_counter() - started
    note = _note(version, idata, holdout, figures, settings_path, seconds, path, posterior)
    stem.with_suffix(".md").write_text(note, encoding="utf-8")
    return path


def _version(directory: Path, resume: bool) -> int:
    done = [int(p.stem.split("_v")[-1]) for p in directory.glob("posterior_v*.nc") if p.stem.split("_v")[-1].isdigit()]
    logged = [int(p.name.split("_v")[1].split(".")[0]) for p in directory.glob("posterior_v*.evaluations")
              if p.name.split("_v")[1].split(".")[0].isdigit()]
    if resume:
        pending = [v for v in logged if v not in done]
        if pending:
            return max(pending)
    return max(done + logged, default=0) + 1


def _predict(fitted: PosteriorProblem, drawn, later: PosteriorProblem, seed: int):
    """The later years predicted from a posterior fitted to the early ones (parameters matched by name)."""
    names = fitted.names
    roles = {p.name: p for p in later.parameters}
    missing = [n for n in later.names if n not in names and roles[n].role == "model"]
    if missing:
        raise ValueError(f"the out-of-sample fit has no draws of {missing}")
    chains, draws, _ = drawn.thetas.shape
    flat = drawn.thetas.reshape(chains * draws, -1)
    rng = np.random.default_rng(seed)
    # a target observed only after the fit's years (IOM deaths from 2014) has a nuisance parameter (its reporting
    # factor, its noise) the early data say nothing about: its prior is its prediction
    thetas = np.column_stack([flat[:, names.index(n)] if n in names else roles[n].prior.sample(rng, len(flat))
                              for n in later.names])
    from .posterior import Sample

    # the prior group of this check is not written anywhere: a placeholder draw
    moved = Sample(thetas.reshape(chains, draws, -1), drawn.sampler, drawn.stats, np.zeros((1, 1, len(later.names))))
    return inference_data(later, moved, seed=seed)


def coverage(idata) -> pd.DataFrame:
    """Share of each series' data points inside the posterior predictive's central 50% and 90% intervals."""
    rows = []
    for name in idata.observed_data.data_vars:
        predicted = idata.posterior_predictive[name].stack(sample=("chain", "draw"))
        observed = idata.observed_data[name]
        row = {"target": name, "points": int(observed.size)}
        for share in (0.5, 0.9):
            low = predicted.quantile((1 - share) / 2, dim="sample")
            high = predicted.quantile((1 + share) / 2, dim="sample")
            inside = (observed >= low) & (observed <= high)
            row[f"inside {share:.0%}"] = float(inside.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def distinct_draws(idata) -> list[int]:
    """Distinct parameter sets per chain (a particle copied by resampling and never moved counts once)."""
    values = np.stack([idata.posterior[name].values for name in idata.posterior.data_vars], axis=-1)
    return [len(np.unique(chain, axis=0)) for chain in values]


def diagnostics(idata) -> pd.DataFrame:
    az = arviz()
    table = az.summary(idata, kind="all", hdi_prob=0.9, round_to="none")
    table.index.name = "parameter"
    return table.reset_index()[["parameter", "mean", "sd", "hdi_5%", "hdi_95%", "r_hat", "ess_bulk", "ess_tail",
                                "mcse_mean"]]


def _figures(idata, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = list(idata.posterior.data_vars)
    columns = 4
    rows = int(np.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.2 * rows), squeeze=False)
    for axis, name in zip(axes.flat, names):
        prior = idata.prior[name].values.ravel()
        draws = idata.posterior[name].values.ravel()
        bins = np.linspace(min(prior.min(), draws.min()), max(prior.max(), draws.max()), 40)
        axis.hist(prior, bins=bins, density=True, color="0.75", label="prior")
        axis.hist(draws, bins=bins, density=True, color="C0", alpha=0.7, label="posterior")
        axis.set_title(name, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.set_yticks([])
    for axis in list(axes.flat)[len(names):]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    path = folder / "prior_posterior.png"
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return [path]


def _note(version, idata, holdout, figures, settings_path, seconds, path, posterior) -> str:
    stats = idata.sample_stats
    sampler = stats.attrs["sampler"]
    table = diagnostics(idata)
    lines = [f"# Posterior v{version}", "",
             f"- date: {now()}",
             f"- command: `{_command()}`",
             f"- settings: `{settings_path.name}` ([posterior] table), sampler **{sampler}**, "
             f"{idata.posterior.sizes['chain']} chains x {idata.posterior.sizes['draw']} draws",
             f"- wall time {seconds:.0f} s (sampling {stats.attrs['seconds']:.0f} s); {stats.attrs['evaluations']} "
             f"engine evaluations in {stats.attrs['batches']} batches, "
             f"{stats.attrs['evaluations'] / max(stats.attrs['engine_seconds'], 1e-9):.0f} evaluations/s in the engine; "
             f"{100 * (1 - stats.attrs['engine_seconds'] / stats.attrs['seconds']):.0f}% of sampling time outside it"
             + (f"; {stats.attrs['reused_evaluations']} more evaluations taken from the log of an earlier run "
                "(--resume), whose replay the sampling time includes" if stats.attrs.get("reused_evaluations") else ""),
             f"- file: `{path.name}` ({path.stat().st_size / 2**20:.1f} MiB), sha256 {file_digest(path)}", "",
             "## Data", ""]
    lines += [f"- `{p.relative_to(CALIBRATION_DIR).as_posix()}`: sha256 {file_digest(p)}"
              for p in sorted((CALIBRATION_DIR / "data").glob("*.csv"))]
    lines += ["", "## Parameters: posterior and convergence (ArviZ: rank-normalised split R-hat, bulk and tail ESS)",
              "", _markdown(table), ""]
    worst = table.loc[table["r_hat"].idxmax()]
    lines += [f"Largest R-hat {worst['r_hat']:.4f} (`{worst['parameter']}`); smallest bulk ESS "
              f"{table['ess_bulk'].min():.0f}, smallest tail ESS {table['ess_tail'].min():.0f}.", ""]
    if sampler == "smc":
        lines += ["## SMC: temperatures, particle ESS before resampling, moves", "",
                  "Draws are the final particles of each chain in random order (they are exchangeable), so ArviZ's "
                  "ESS counts them as independent; the distinct particles per chain bound what they are worth: "
                  + ", ".join(str(n) for n in distinct_draws(idata)) + ".", ""]
        beta = stats["stage_beta"].values
        for chain in range(beta.shape[0]):
            used = np.isfinite(beta[chain])
            entries = ", ".join(
                f"{b:.3g} ({e:.0f}, {int(s)} moves, acc {a:.2f})" for b, e, s, a in zip(
                    beta[chain][used], stats["stage_ess"].values[chain][used], stats["stage_steps"].values[chain][used],
                    stats["stage_acceptance"].values[chain][used]))
            lines.append(f"- chain {chain}: log evidence {float(stats['log_evidence'][chain]):.2f}; "
                         f"{int(used.sum())} stages: {entries}")
        lines.append("")
    else:
        lines += ["## emcee", "",
                  f"- acceptance fraction: mean {float(stats['acceptance_fraction'].mean()):.3f} "
                  f"(walkers {float(stats['acceptance_fraction'].min()):.3f}-"
                  f"{float(stats['acceptance_fraction'].max()):.3f})",
                  "- integrated autocorrelation time (steps): " + ", ".join(
                      f"`{p}` {t:.1f}" for p, t in zip(stats["parameter"].values, stats["autocorrelation_time"].values)),
                  ""]
    lines += ["## Posterior predictive coverage, 1990-2020 (share of data points inside the interval)", "",
              _markdown(coverage(idata)), ""]
    if holdout is not None:
        lines += [f"## Out of sample: calibrated to 1990-{HOLDOUT_FROM - 1}, predicting {HOLDOUT_FROM}-2020", "",
                  _markdown(coverage(holdout)), ""]
    lines += ["## Figures", ""] + [f"- [{p.stem}]({p.parent.name}/{p.name})" for p in figures] + [""]
    lines += ["Likelihoods and priors: `calibration/targets.toml`, `calibration/priors.toml` "
              "(see `src/migsd/calibration/likelihood.py`).", ""]
    return "\n".join(lines)


def _command() -> str:
    if sys.argv and sys.argv[0].endswith("migsd"):
        return "migsd " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return "migsd calibrate --method posterior"


__all__ = ["calibrate_posterior", "coverage", "diagnostics", "distinct_draws"]
