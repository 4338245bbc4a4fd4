"""The posterior of the calibrated parameters: likelihood, samplers, InferenceData.

The samplers hand the engine a whole population of parameter sets per call
(one ``run_batch``): every chain's particles (SMC) or walkers (emcee) at once.

**Adaptive tempered SMC** (the default) is written here because no kept library
offers it over a batched, external likelihood: PyMC's SMC needs a PyMC model
and evaluates particles one by one through PyTensor. Each chain is an
independent run: particles drawn from the prior; at each stage the next
temperature is chosen by bisection so that the effective sample size of the
incremental weights is ``target_ess`` of the particles; the log evidence adds
the log mean incremental weight; particles are resampled (systematic) and
mutated by random-walk Metropolis moves in the unconstrained space
(``likelihood.PriorDistribution.to_free``) with the weighted population
covariance as the proposal's shape. The number of moves per stage follows the
last stage's acceptance so that a particle's chance of never moving falls
below ``correlation`` (as PyMC's SMC does); the scale adapts towards an
acceptance of 0.25.

**emcee** (``sampler = "emcee"``) runs one ensemble of ``walkers`` with
``vectorize=True`` (half the walkers per batch, the stretch move's split);
each walker is an ArviZ chain.

Every evaluation is written to ``<name>.evaluations/`` as it is computed. The
sampler is deterministic given the seed, so ``resume`` replays it from the
start, taking what was computed from the log: an interrupted run resumed ends
with the same posterior, bit for bit, as one never interrupted.
"""

from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..errors import DataError, ScenarioError
from ..paths import CALIBRATION_DIR, PARAMETERS_DIR
from ..tomlfiles import check_table, read_toml
from .likelihood import (NUISANCE_NAMES, Nuisance, PriorDistribution, band_pointwise, replicate, series_pointwise,
                         value_pointwise)

POSTERIOR_KEYS = ("sampler", "chains", "particles", "target_ess", "correlation", "min_steps", "max_steps",
                  "final_steps", "kernel", "walkers", "steps", "burn", "thin", "seed", "holdout_particles", "members")
SAMPLERS = ("smc", "emcee")

if TYPE_CHECKING:  # fit imports this module for the posterior's members; the problem only passes through here
    from .fit import Problem, Target
KERNELS = ("rw", "mixed")


def arviz():
    """ArviZ, imported without its notice about the coming 1.x refactor (0.x is what installs on Python 3.11)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


@dataclass
class PosteriorSettings:
    """The ``[posterior]`` table of ``calibrate.toml``."""

    sampler: str = "smc"
    chains: int = 4
    particles: int = 400
    target_ess: float = 0.5
    correlation: float = 0.05
    min_steps: int = 2
    max_steps: int = 25
    final_steps: int = 10
    kernel: str = "rw"
    walkers: int = 48
    steps: int = 1500
    burn: int = 500
    thin: int = 5
    seed: int = 2026
    holdout_particles: int = 200
    members: int = 400


def load_posterior_settings(path: str | Path = CALIBRATION_DIR / "calibrate.toml", **overrides) -> PosteriorSettings:
    path = Path(path)
    table = read_toml(path).get("posterior", {})
    where = f"{path}: [posterior]"
    check_table(table, where, POSTERIOR_KEYS)
    values = {}
    for key, value in table.items():
        default = getattr(PosteriorSettings, key)
        if isinstance(default, str):
            values[key] = str(value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(default, int) and value != int(value)):
            raise ScenarioError(f"{where}: '{key}' must be a {'whole ' if isinstance(default, int) else ''}number, "
                                f"got {value!r}")
        else:
            values[key] = type(default)(value)
    settings = PosteriorSettings(**{**values, **{k: v for k, v in overrides.items() if v is not None}})
    if settings.sampler not in SAMPLERS:
        raise ScenarioError(f"{where}: sampler '{settings.sampler}' is not one of {', '.join(SAMPLERS)}")
    if settings.kernel not in KERNELS:
        raise ScenarioError(f"{where}: kernel '{settings.kernel}' is not one of {', '.join(KERNELS)}")
    if not 0 < settings.target_ess < 1 or not 0 < settings.correlation < 1:
        raise ScenarioError(f"{where}: 'target_ess' and 'correlation' must lie in (0, 1)")
    for key in ("chains", "particles", "min_steps", "max_steps", "walkers", "steps", "thin", "members"):
        if getattr(settings, key) < 1:
            raise ScenarioError(f"{where}: '{key}' must be at least 1, got {getattr(settings, key)}")
    if settings.sampler == "smc" and settings.chains < 2:
        raise ScenarioError(f"{where}: 'chains' must be at least 2 to compute R-hat, got {settings.chains}")
    if settings.burn >= settings.steps:
        raise ScenarioError(f"{where}: 'burn' ({settings.burn}) must be below 'steps' ({settings.steps})")
    return settings


@dataclass
class Parameter:
    name: str
    prior: PriorDistribution
    role: str = "model"  # model (a .mdl constant), noise, ar1 or bias
    target: str | None = None


class EvaluationStore:
    """Every likelihood computed, one file per batch, keyed by the exact parameter values."""

    def __init__(self, folder: Path | None):
        self.folder = folder
        self.known: dict[bytes, np.ndarray] = {}
        self.batches = 0
        if folder is not None and folder.exists():
            for path in sorted(folder.glob("batch*.npz")):
                stored = np.load(path)
                for theta, terms in zip(stored["thetas"], stored["terms"]):
                    self.known[np.asarray(theta, dtype=float).tobytes()] = np.asarray(terms, dtype=float)
                self.batches += 1

    def save(self, thetas: np.ndarray, terms: np.ndarray) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"batch{self.batches:06d}.npz"
        temporary = self.folder / f"partial{self.batches:06d}.npz"
        np.savez(temporary, thetas=thetas, terms=terms)
        temporary.replace(path)
        self.batches += 1


class PosteriorProblem:
    """The log prior and log likelihood of parameter sets (rows), each batch one ``run_batch``."""

    def __init__(self, problem: Problem, store: EvaluationStore | None = None, run_options: dict | None = None):
        self.problem = problem
        self.store = store or EvaluationStore(None)
        self.run_options = run_options or {}
        self.parameters = [Parameter(p.name, p.distribution) for p in problem.priors]
        for target in problem.targets:
            likelihood = target.likelihood
            if likelihood is None:
                raise ScenarioError(f"target '{target.name}' has no likelihood (load it with load_targets)")
            for role, prior in likelihood.estimated().items():
                self.parameters.append(Parameter(f"{NUISANCE_NAMES[role]}[{target.name}]", prior, role, target.name))
        self.model_count = len(problem.priors)
        self.evaluations = 0
        self.reused = 0  # taken from the log of an earlier (interrupted or shorter) run
        self.engine_seconds = 0.0
        self.batches = 0

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def dimension(self) -> int:
        return len(self.parameters)

    # --------------------------------------------------------------- spaces
    def to_free(self, thetas: np.ndarray) -> np.ndarray:
        return np.column_stack([p.prior.to_free(thetas[:, k]) for k, p in enumerate(self.parameters)])

    def from_free(self, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        columns, jacobian = [], np.zeros(free.shape[0])
        for k, p in enumerate(self.parameters):
            x, log_det = p.prior.from_free(free[:, k])
            columns.append(x)
            jacobian = jacobian + log_det
        return np.column_stack(columns), jacobian

    def log_prior(self, thetas: np.ndarray) -> np.ndarray:
        return sum(p.prior.logpdf(thetas[:, k]) for k, p in enumerate(self.parameters))

    def sample_prior(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.column_stack([p.prior.sample(rng, size) for p in self.parameters])

    # ----------------------------------------------------------- likelihood
    def nuisance(self, thetas: np.ndarray, target: Target) -> Nuisance:
        values = {"noise": target.likelihood.noise, "ar1": target.likelihood.ar1 or 0.0, "bias": 0.0, "factor": 1.0}
        for k, p in enumerate(self.parameters):
            if p.target == target.name:
                values[p.role] = thetas[:, k]
        return Nuisance(**values)

    def simulate(self, thetas: np.ndarray) -> xr.Dataset:
        started = time.perf_counter()
        runs = self.problem.simulate(thetas[:, :self.model_count], **self.run_options)
        self.engine_seconds += time.perf_counter() - started
        self.evaluations += thetas.shape[0]
        self.batches += 1
        return runs

    def arrays(self, target: Target, runs: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray | None]:
        """The model at a target's years (run, year, ...) and its data in the same dim order."""
        model = self.problem.simulated(target, runs)
        model = model.transpose("run", "year", *[d for d in model.dims if d not in ("run", "year")])
        data = self.problem.data[target.name].transpose(*model.dims[1:]) if target.kind == "series" else None
        return model, data

    def pointwise(self, thetas: np.ndarray, runs: xr.Dataset) -> dict[str, np.ndarray]:
        """Each target's log density per run and data point."""
        out = {}
        for target in self.problem.targets:
            model, data = self.arrays(target, runs)
            values = np.asarray(model.values, dtype=float)
            if target.kind == "series":
                out[target.name] = series_pointwise(target.likelihood, values, np.asarray(data.values, dtype=float),
                                                    self.nuisance(thetas, target))
            elif target.kind == "band":
                out[target.name] = band_pointwise(target.likelihood, values, target.band)
            else:
                out[target.name] = value_pointwise(target.likelihood, values, float(target.value))
        return out

    def terms(self, thetas: np.ndarray) -> np.ndarray:
        """Log likelihood per run and target (runs x targets); logged, so a resumed run reuses it."""
        thetas = np.atleast_2d(np.asarray(thetas, dtype=float))
        keys = [row.tobytes() for row in thetas]
        missing = [i for i, key in enumerate(keys) if key not in self.store.known]
        self.reused += len(keys) - len(missing)
        if missing:
            subset = thetas[missing]
            pointwise = self.pointwise(subset, self.simulate(subset))
            computed = np.column_stack([
                pointwise[t.name].reshape(len(missing), -1).sum(axis=1) for t in self.problem.targets])
            computed = np.where(np.isfinite(computed), computed, -np.inf)
            self.store.save(subset, computed)
            for i, row in zip(missing, computed):
                self.store.known[keys[i]] = row
        return np.array([self.store.known[key] for key in keys]).reshape(len(keys), len(self.problem.targets))

    def log_likelihood(self, thetas: np.ndarray) -> np.ndarray:
        return self.terms(thetas).sum(axis=1)


# ------------------------------------------------------------------------ SMC
def _ess(log_weights: np.ndarray) -> float:
    finite = np.isfinite(log_weights)
    if not finite.any():
        return 0.0
    w = np.exp(log_weights - np.max(log_weights[finite]))
    w = np.where(finite, w, 0.0)
    return float(w.sum() ** 2 / np.sum(w**2))


def _next_temperature(loglik: np.ndarray, beta: float, share: float) -> float:
    """The temperature whose incremental weights keep ``share`` of the particles' ESS (bisection)."""
    size = loglik.size
    if _ess((1.0 - beta) * loglik) >= share * size:
        return 1.0
    low, high = beta, 1.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        if _ess((middle - beta) * loglik) >= share * size:
            low = middle
        else:
            high = middle
    return max(low, beta + 1e-12)


def _systematic(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    positions = (rng.random() + np.arange(weights.size)) / weights.size
    return np.minimum(np.searchsorted(np.cumsum(weights), positions), weights.size - 1)


@dataclass
class ChainState:
    rng: np.random.Generator
    free: np.ndarray
    log_prior: np.ndarray  # in the free space (Jacobian included)
    loglik: np.ndarray
    beta: float = 0.0
    log_evidence: float = 0.0
    scale: float = 1.0
    steps: int = 10
    stages: list = field(default_factory=list)
    prior_draws: np.ndarray | None = None


@dataclass
class Sample:
    """Draws (chain, draw, parameter) with the sampler's own diagnostics."""

    thetas: np.ndarray
    sampler: str
    stats: dict
    prior: np.ndarray
    seconds: float = 0.0
    evaluations: int = 0
    reused: int = 0
    engine_seconds: float = 0.0
    batches: int = 0


def _free_log_prior(posterior: PosteriorProblem, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    thetas, jacobian = posterior.from_free(free)
    return thetas, posterior.log_prior(thetas) + jacobian


def smc(posterior: PosteriorProblem, settings: PosteriorSettings, progress: bool = False,
        particles: int | None = None) -> Sample:
    """Adaptive tempered SMC, ``settings.chains`` independent runs advanced together, one batch per move."""
    started = time.perf_counter()
    size = particles or settings.particles
    dimension = posterior.dimension
    chains = []
    for chain in range(settings.chains):
        rng = np.random.default_rng([settings.seed, chain])
        drawn = posterior.sample_prior(rng, size)
        free = posterior.to_free(drawn)
        _, log_prior = _free_log_prior(posterior, free)
        chains.append(ChainState(rng, free, log_prior, np.zeros(size), scale=2.38 / math.sqrt(dimension),
                                 steps=_steps(0.3, settings), prior_draws=drawn))
    everything = np.concatenate([c.free for c in chains])
    loglik = posterior.log_likelihood(posterior.from_free(everything)[0])
    for k, chain in enumerate(chains):
        chain.loglik = loglik[k * size:(k + 1) * size]
    bar = _bar(progress, "posterior (SMC)")
    stage = 0
    while any(c.beta < 1.0 for c in chains):
        stage += 1
        active = [c for c in chains if c.beta < 1.0]
        covariances = []
        for chain in active:
            new_beta = _next_temperature(chain.loglik, chain.beta, settings.target_ess)
            increment = (new_beta - chain.beta) * chain.loglik
            finite = np.isfinite(increment)
            top = np.max(increment[finite])
            chain.log_evidence += float(top + np.log(np.sum(np.exp(increment[finite] - top)) / size))
            weights = np.where(finite, np.exp(increment - top), 0.0)
            weights /= weights.sum()
            ess = float(1.0 / np.sum(weights**2))
            mean = weights @ chain.free
            centred = chain.free - mean
            covariance = (centred * weights[:, None]).T @ centred
            covariance += np.eye(dimension) * 1e-10 * max(1.0, float(np.trace(covariance)) / dimension)
            covariances.append((mean, np.linalg.cholesky(covariance)))
            chosen = _systematic(weights, chain.rng)
            chain.free, chain.log_prior, chain.loglik = chain.free[chosen], chain.log_prior[chosen], chain.loglik[chosen]
            chain.beta = new_beta
            if new_beta >= 1.0:
                chain.steps = max(chain.steps, settings.final_steps)
            chain.stages.append({"stage": stage, "beta": new_beta, "ess": ess, "steps": chain.steps})
        accepted = [0] * len(active)
        walked = [0] * len(active)
        for step in range(max(c.steps for c in active)):
            moving = [k for k, c in enumerate(active) if step < c.steps]
            # "mixed" alternates independent proposals from the population's normal fit, which
            # decorrelate particles in a few steps where the posterior is near normal, with random-walk
            # moves, which still explore where it is not; each is a valid Metropolis-Hastings move.
            independent = settings.kernel == "mixed" and step % 2 == 0
            proposals, corrections = [], []
            for k in moving:
                chain, (mean, factor) = active[k], covariances[k]
                shocks = chain.rng.standard_normal((size, dimension))
                if independent:
                    proposal = mean + shocks @ factor.T
                    current = np.linalg.solve(factor, (chain.free - mean).T).T
                    corrections.append(0.5 * np.sum(shocks**2, axis=1) - 0.5 * np.sum(current**2, axis=1))
                else:
                    proposal = chain.free + chain.scale * shocks @ factor.T
                    corrections.append(np.zeros(size))
                proposals.append(proposal)
            stacked = np.concatenate(proposals)
            thetas, log_prior = _free_log_prior(posterior, stacked)
            inside = np.isfinite(log_prior)
            loglik = np.full(stacked.shape[0], -np.inf)
            if inside.any():
                loglik[inside] = posterior.log_likelihood(thetas[inside])
            for j, k in enumerate(moving):
                chain = active[k]
                part = slice(j * size, (j + 1) * size)
                with np.errstate(invalid="ignore"):
                    ratio = (chain.beta * (loglik[part] - chain.loglik) + log_prior[part] - chain.log_prior
                             + corrections[j])
                ratio = np.where(np.isnan(ratio), -np.inf, ratio)
                accept = np.log(chain.rng.random(size)) < ratio
                chain.free = np.where(accept[:, None], proposals[j], chain.free)
                chain.log_prior = np.where(accept, log_prior[part], chain.log_prior)
                chain.loglik = np.where(accept, loglik[part], chain.loglik)
                accepted[k] += int(accept.sum())
                if not independent:
                    walked[k] += int(accept.sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"stage {stage}, temperature {min(c.beta for c in active):.3g}, "
                                    f"ESS {min(c.stages[-1]['ess'] for c in active):.0f}/{size}")
        for k, chain in enumerate(active):
            rate = accepted[k] / (chain.steps * size)
            chain.stages[-1]["acceptance"] = rate
            chain.stages[-1]["scale"] = chain.scale
            walks = chain.steps // 2 if settings.kernel == "mixed" else chain.steps
            if walks:
                walk_rate = walked[k] / (walks * size)
                chain.scale = float(np.clip(chain.scale * math.exp(2.0 * (walk_rate - 0.25)), 0.05, 5.0))
            chain.steps = _steps(rate, settings)
    if bar is not None:
        bar.close()
    draws = []
    for chain in chains:
        order = chain.rng.permutation(size)  # particles are exchangeable; resampling put copies side by side
        draws.append(posterior.from_free(chain.free[order])[0])
    stats = {"stages": [c.stages for c in chains], "log_evidence": [c.log_evidence for c in chains]}
    prior = np.stack([c.prior_draws for c in chains])
    return Sample(np.stack(draws), "smc", stats, prior, time.perf_counter() - started)


def _steps(acceptance: float, settings: PosteriorSettings) -> int:
    if acceptance <= 0:
        return settings.max_steps
    if acceptance >= 1:
        return settings.min_steps
    wanted = math.ceil(math.log(settings.correlation) / math.log(1.0 - acceptance))
    return int(np.clip(wanted, settings.min_steps, settings.max_steps))


def _bar(progress: bool, description: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=description, unit="batch")


# ---------------------------------------------------------------------- emcee
def run_emcee(posterior: PosteriorProblem, settings: PosteriorSettings, progress: bool = False) -> Sample:
    """emcee's affine-invariant ensemble, vectorised: each call is one batch of half the walkers."""
    import emcee

    started = time.perf_counter()
    dimension = posterior.dimension
    walkers = max(settings.walkers, 2 * dimension + 2)
    walkers += walkers % 2
    rng = np.random.default_rng([settings.seed, 0])
    start_thetas = posterior.sample_prior(rng, walkers)
    bar = _bar(progress, "posterior (emcee)")

    def log_probability(free):
        free = np.atleast_2d(free)
        thetas, log_prior = _free_log_prior(posterior, free)
        out = np.full(free.shape[0], -np.inf)
        inside = np.isfinite(log_prior)
        if inside.any():
            out[inside] = log_prior[inside] + posterior.log_likelihood(thetas[inside])
        if bar is not None:
            bar.update(1)
        return out

    sampler = emcee.EnsembleSampler(walkers, dimension, log_probability, vectorize=True)
    sampler.random_state = np.random.RandomState(settings.seed).get_state()
    sampler.run_mcmc(posterior.to_free(start_thetas), settings.steps, progress=False)
    if bar is not None:
        bar.close()
    free = sampler.get_chain(discard=settings.burn, thin=settings.thin)  # (draw, walker, parameter)
    draws = np.stack([posterior.from_free(free[:, w])[0] for w in range(walkers)])
    autocorrelation = sampler.get_autocorr_time(discard=settings.burn, tol=0, quiet=True)
    stats = {"acceptance": sampler.acceptance_fraction.tolist(), "autocorrelation": autocorrelation.tolist(),
             "walkers": walkers}
    prior = posterior.sample_prior(np.random.default_rng([settings.seed, 1]), draws.shape[1])[None]
    return Sample(draws, "emcee", stats, prior, time.perf_counter() - started)


def sample(posterior: PosteriorProblem, settings: PosteriorSettings, progress: bool = False,
           particles: int | None = None) -> Sample:
    """Run the configured sampler; evaluations and timings are counted on ``posterior``."""
    before = (posterior.evaluations, posterior.engine_seconds, posterior.batches, posterior.reused)
    drawn = run_emcee(posterior, settings, progress) if settings.sampler == "emcee" else \
        smc(posterior, settings, progress, particles)
    drawn.evaluations = posterior.evaluations - before[0]
    drawn.engine_seconds = posterior.engine_seconds - before[1]
    drawn.batches = posterior.batches - before[2]
    drawn.reused = posterior.reused - before[3]
    return drawn


# ------------------------------------------------------------- InferenceData
def inference_data(posterior: PosteriorProblem, drawn: Sample, seed: int = 0, attrs: dict | None = None):
    """An ArviZ InferenceData: posterior, posterior_predictive, observed_data, log_likelihood, sample_stats, prior."""
    az = arviz()
    chains, draws, _ = drawn.thetas.shape
    flat = drawn.thetas.reshape(chains * draws, -1)
    runs = posterior.simulate(flat)
    pointwise = posterior.pointwise(flat, runs)
    rng = np.random.default_rng([seed, 99])
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}

    def grouped(values: dict[str, np.ndarray]) -> xr.Dataset:
        return xr.Dataset({name: (("chain", "draw"), value.reshape(chains, draws)) for name, value in values.items()},
                          coords=coords)

    posterior_group = grouped({name: flat[:, k] for k, name in enumerate(posterior.names)})
    posterior_group.attrs["model_parameters"] = [p.name for p in posterior.parameters[:posterior.model_count]]
    for k, p in enumerate(posterior.parameters):
        posterior_group[p.name].attrs.update({"role": p.role, "prior": p.prior.distribution,
                                              "lower": p.prior.lower, "upper": p.prior.upper})
    predictive, observed, loglik = {}, {}, {}
    # A group is one Dataset: targets observed in other years than the first get their own year dim
    # (``year[<target>]``) instead of being padded out to the union of years.
    common = posterior.problem.targets[0].years
    for target in posterior.problem.targets:
        model, data = posterior.arrays(target, runs)
        if target.years != common:
            model = model.rename(year=f"year[{target.name}]")
            data = data.rename(year=f"year[{target.name}]") if data is not None else None
        dims = ("chain", "draw") + model.dims[1:]
        shape = (chains, draws) + model.shape[1:]
        other = {d: model[d].values for d in model.dims[1:]}
        values = np.asarray(model.values, dtype=float)
        if target.kind == "series":
            values = replicate(target.likelihood, values, posterior.nuisance(flat, target), rng)
            observed[target.name] = xr.DataArray(np.asarray(data.values), dims=model.dims[1:], coords=other)
        elif target.kind == "soft":
            values = values + rng.normal(0.0, target.likelihood.sigma, size=values.shape)
            observed[target.name] = xr.DataArray(np.full(model.shape[1:], float(target.value)), dims=model.dims[1:],
                                                 coords=other)
        predictive[target.name] = xr.DataArray(values.reshape(shape).astype(np.float32), dims=dims,
                                               coords={**coords, **other})
        if target.kind == "band":
            predictive[target.name].attrs["band"] = list(target.band)
        loglik[target.name] = xr.DataArray(pointwise[target.name].reshape(shape).astype(np.float32), dims=dims,
                                           coords={**coords, **other})
    total = sum(v.sum([d for d in v.dims if d not in ("chain", "draw")]) for v in loglik.values())
    sample_stats = xr.Dataset({"lp": total + xr.DataArray(posterior.log_prior(flat).reshape(chains, draws),
                                                          dims=("chain", "draw")),
                               "log_likelihood_total": total}, coords=coords)
    if drawn.sampler == "smc":
        stages = max(len(s) for s in drawn.stats["stages"])
        for key in ("beta", "ess", "acceptance", "steps", "scale"):
            table = np.full((chains, stages), np.nan)
            for c, chain in enumerate(drawn.stats["stages"]):
                for s, entry in enumerate(chain):
                    table[c, s] = entry.get(key, np.nan)
            sample_stats[f"stage_{key}"] = (("chain", "stage"), table)
        sample_stats["log_evidence"] = ("chain", np.asarray(drawn.stats["log_evidence"]))
    else:
        sample_stats["acceptance_fraction"] = ("chain", np.asarray(drawn.stats["acceptance"]))
        sample_stats["autocorrelation_time"] = ("parameter", np.asarray(drawn.stats["autocorrelation"]))
        sample_stats = sample_stats.assign_coords(parameter=posterior.names)
    sample_stats.attrs.update({"sampler": drawn.sampler, "seconds": drawn.seconds, "evaluations": drawn.evaluations,
                               "engine_seconds": drawn.engine_seconds, "batches": drawn.batches,
                               "reused_evaluations": drawn.reused})
    prior_flat = drawn.prior.reshape(-1, drawn.prior.shape[-1])
    prior_group = xr.Dataset({name: (("chain", "draw"), prior_flat[:, k].reshape(drawn.prior.shape[:2]))
                              for k, name in enumerate(posterior.names)},
                             coords={"chain": np.arange(drawn.prior.shape[0]),
                                     "draw": np.arange(drawn.prior.shape[1])})
    idata = az.InferenceData(posterior=posterior_group, posterior_predictive=xr.Dataset(predictive),
                             observed_data=xr.Dataset(observed), log_likelihood=xr.Dataset(loglik),
                             sample_stats=sample_stats, prior=prior_group)
    for group in idata.groups():
        getattr(idata, group).attrs.update(attrs or {})
    return idata


# ----------------------------------------------------------------- reading
def posterior_files(directory: Path = PARAMETERS_DIR) -> list[Path]:
    found = sorted((int(p.stem.split("_v")[-1]), p) for p in directory.glob("posterior_v*.nc")
                   if p.stem.split("_v")[-1].isdigit())
    return [p for _, p in found]


def latest_posterior(directory: Path = PARAMETERS_DIR, model=None) -> Path | None:
    """The newest ``posterior_vN.nc``, or None; given ``model``, the newest sampled with that very model.

    A posterior sampled with another .mdl (``posterior_v1.nc`` predates the political core's structure and
    calibration v2) conditions parameters that no longer mean the same; it is never picked silently.
    """
    files = posterior_files(directory)
    if model is not None:
        files = [p for p in files if read_posterior(p).attrs.get("model_sha256") == model.sha256]
    return files[-1] if files else None


def is_posterior(path) -> bool:
    return path is not None and Path(path).suffix == ".nc"


def read_posterior(path: Path) -> xr.Dataset:
    """The ``posterior`` group: the draws (chain, draw) of every sampled parameter."""
    path = Path(path)
    try:
        with xr.open_dataset(path, group="posterior") as ds:
            return ds.load()
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a posterior file with a 'posterior' group ({error})") from error


def model_parameter_names(draws: xr.Dataset) -> list[str]:
    names = draws.attrs.get("model_parameters", [])
    return [names] if isinstance(names, str) else list(names)


def posterior_point(path: Path, draw: int | None = None) -> dict[str, float]:
    """The .mdl constants of a posterior: the median of each, or the draw numbered ``draw`` (chains in order)."""
    draws = read_posterior(path)
    names = model_parameter_names(draws)
    stacked = draws[names].stack(sample=("chain", "draw"))
    if draw is None:
        return {name: float(stacked[name].median()) for name in names}
    if not 0 <= draw < stacked.sizes["sample"]:
        raise DataError(f"{path}: draw {draw} is outside 0-{stacked.sizes['sample'] - 1}")
    return {name: float(stacked[name].values[draw]) for name in names}


#: A posterior draw's label on ``run`` (:func:`posterior_members`): runs keep their labels through ``run_batch``
#: and the stores, so :func:`draw_chains` can tell which chain each run came from.
DRAW_LABEL = "chain{chain}-draw{draw:04d}"
_DRAW_PATTERN = re.compile(r"chain(\d+)-draw(\d+)")


def draw_chains(runs) -> np.ndarray | None:
    """The chain of each run labelled as :data:`DRAW_LABEL`; None unless every run is a draw and there are two
    chains or more (a calibrated ensemble's members, or one chain)."""
    labels = [_DRAW_PATTERN.fullmatch(str(label)) for label in runs]
    if not labels or not all(labels):
        return None
    chains = np.array([int(match.group(1)) for match in labels])
    return chains if len(np.unique(chains)) >= 2 else None


def posterior_members(path: Path, members: int = 400, seed: int = 0, include_median: bool = False) -> xr.Dataset:
    """``members`` posterior draws of the .mdl constants over ``run`` (without replacement when there are enough)."""
    draws = read_posterior(path)
    names = model_parameter_names(draws)
    stacked = draws[names].stack(sample=("chain", "draw"))
    total = stacked.sizes["sample"]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(total, size=members, replace=members > total))
    chain = stacked["chain"].values[chosen]
    number = stacked["draw"].values[chosen]
    labels = [DRAW_LABEL.format(chain=c, draw=d) for c, d in zip(chain, number)]
    out = xr.Dataset({name: ("run", stacked[name].values[chosen].astype(float)) for name in names},
                     coords={"run": labels, "chain": ("run", chain), "draw": ("run", number)})
    if include_median:
        median = xr.Dataset({name: ("run", [float(stacked[name].median())]) for name in names},
                            coords={"run": ["best"], "chain": ("run", [-1]), "draw": ("run", [-1])})
        out = xr.concat([median, out], dim="run")
    out.attrs["posterior"] = str(path)
    out.attrs["posterior_draws"] = total
    return out


__all__ = ["DRAW_LABEL", "EvaluationStore", "PosteriorProblem", "PosteriorSettings", "Sample", "draw_chains",
           "inference_data", "latest_posterior", "load_posterior_settings", "posterior_members", "posterior_point",
           "read_posterior", "run_emcee", "sample", "smc"]
