"""The posterior: known answers (conjugate toy, synthetic data at known parameters), determinism, resumption."""

import math
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr

import migsd
from migsd.calibration.fit import Prior, Problem, Target
from migsd.calibration.likelihood import Likelihood, PriorDistribution
from migsd.calibration.posterior import (EvaluationStore, PosteriorProblem, PosteriorSettings, inference_data, sample,
                                         posterior_members, posterior_point)

from ..conftest import DATA

YEARS = list(range(1, 11))
SIGMA = 2.0
PRIOR_MU, PRIOR_SD = 1.0, 2.0


@pytest.fixture(scope="module")
def conjugate_model():
    return migsd.load_model(DATA / "models" / "conjugate.mdl")


def conjugate_problem(model, seed=1, truth=1.7):
    """Level = rate x t observed with N(0, SIGMA) errors; a normal prior on the rate: a normal posterior."""
    rng = np.random.default_rng(seed)
    data = xr.DataArray(truth * np.array(YEARS, dtype=float) + rng.normal(0, SIGMA, len(YEARS)), dims="year",
                        coords={"year": YEARS})
    target = Target("level", "Level", YEARS, data="synthetic", likelihood=Likelihood("normal", noise=SIGMA))
    prior = Prior("rate", -20.0, 20.0, distribution=PriorDistribution("normal", -20.0, 20.0, mu=PRIOR_MU,
                                                                       sigma=PRIOR_SD))
    return Problem(model, [target], [prior], {"level": data}), data


def analytic(data):
    t = np.array(YEARS, dtype=float)
    precision = 1 / PRIOR_SD**2 + np.sum(t**2) / SIGMA**2
    mean = (PRIOR_MU / PRIOR_SD**2 + np.sum(t * data.values) / SIGMA**2) / precision
    return mean, 1 / precision


SMALL = PosteriorSettings(chains=4, particles=300, seed=5, max_steps=12, final_steps=6)


def test_conjugate_smc_matches_the_analytic_posterior(conjugate_model):
    problem, data = conjugate_problem(conjugate_model)
    drawn = sample(PosteriorProblem(problem), SMALL)
    mean, variance = analytic(data)
    draws = drawn.thetas[..., 0].ravel()
    # Monte Carlo errors of the mean and the variance of n (near-)independent normal draws, x4 for safety
    n = draws.size
    assert abs(draws.mean() - mean) < 4 * math.sqrt(variance / n)
    assert abs(draws.var() - variance) < 4 * variance * math.sqrt(2 / n) + 0.1 * variance
    # the log evidence against the normal marginal likelihood of the data
    t = np.array(YEARS, dtype=float)
    covariance = SIGMA**2 * np.eye(len(t)) + PRIOR_SD**2 * np.outer(t, t)
    from scipy.stats import multivariate_normal

    exact = multivariate_normal(PRIOR_MU * t, covariance).logpdf(data.values)
    assert np.allclose(drawn.stats["log_evidence"], exact, atol=0.3)


def test_conjugate_smc_with_independent_moves_matches_too(conjugate_model):
    problem, data = conjugate_problem(conjugate_model)
    draws = sample(PosteriorProblem(problem), replace(SMALL, kernel="mixed")).thetas[..., 0].ravel()
    mean, variance = analytic(data)
    assert abs(draws.mean() - mean) < 4 * math.sqrt(variance / draws.size)
    assert abs(draws.var() - variance) < 4 * variance * math.sqrt(2 / draws.size) + 0.1 * variance


@pytest.mark.slow
def test_conjugate_emcee_matches_the_analytic_posterior(conjugate_model):
    problem, data = conjugate_problem(conjugate_model)
    settings = PosteriorSettings(sampler="emcee", walkers=16, steps=700, burn=200, thin=5, seed=2)
    drawn = sample(PosteriorProblem(problem), settings)
    mean, variance = analytic(data)
    draws = drawn.thetas[..., 0].ravel()
    tau = max(drawn.stats["autocorrelation"][0] / settings.thin, 1.0)
    n = draws.size / tau
    assert abs(draws.mean() - mean) < 4 * math.sqrt(variance / n)
    assert abs(draws.var() - variance) < 4 * variance * math.sqrt(2 / n) + 0.1 * variance
    assert 0.2 < np.mean(drawn.stats["acceptance"]) < 0.9


@pytest.fixture(scope="module")
def five_decays():
    return migsd.load_model(DATA / "models" / "five_decays.mdl")


ELEMENTS = ["R1", "R2", "R3", "R4", "R5"]
TRUTH = {**{f"initial amount[{r}]": v for r, v in zip(ELEMENTS, [120.0, 70.0, 55.0, 35.0, 25.0])},
         **{f"residence time[{r}]": v for r, v in zip(ELEMENTS, [9.0, 6.0, 7.0, 3.0, 5.0])}}
NOISE = 0.05


def decay_problem(model, seed=3, years=tuple(range(0, 11))):
    """Data made by the model at TRUTH with the lognormal noise model of the likelihood; 10 parameters."""
    priors = [Prior(f"initial amount[{r}]", 10.0, 200.0) for r in ELEMENTS]
    priors += [Prior(f"residence time[{r}]", 1.0, 20.0) for r in ELEMENTS]
    target = Target("amount", "Amount", list(years), data="synthetic", likelihood=Likelihood("lognormal", noise=NOISE))
    problem = Problem(model, [target], priors, {})
    clean = problem.simulated(target, problem.simulate(np.array([[TRUTH[p.name] for p in priors]]))).isel(run=0)
    rng = np.random.default_rng(seed)
    problem.data["amount"] = clean * np.exp(rng.normal(0.0, NOISE, size=clean.shape))
    return problem


@pytest.mark.slow
def test_credible_intervals_cover_known_parameters(five_decays):
    problem = decay_problem(five_decays)
    drawn = sample(PosteriorProblem(problem), PosteriorSettings(chains=4, particles=250, seed=11))
    flat = drawn.thetas.reshape(-1, drawn.thetas.shape[-1])
    covered = []
    for k, prior in enumerate(problem.priors):
        low, high = np.quantile(flat[:, k], [0.05, 0.95])
        covered.append(low <= TRUTH[prior.name] <= high)
    assert sum(covered) >= 8, dict(zip([p.name for p in problem.priors], covered))


@pytest.mark.slow
def test_estimated_noise_scale_is_recovered(five_decays):
    problem = decay_problem(five_decays)
    target = problem.targets[0]
    target.likelihood = Likelihood("lognormal", noise=PriorDistribution("lognormal", 1e-3, 1.0, mu=math.log(0.1),
                                                                        sigma=1.0))
    posterior = PosteriorProblem(problem)
    assert posterior.names[-1] == "noise scale[amount]"
    drawn = sample(posterior, PosteriorSettings(chains=2, particles=150, seed=4, final_steps=40))
    noise = drawn.thetas[..., -1].ravel()
    # the data pull the scale from the prior's median (0.1) to the noise they were made with
    assert np.median(noise) == pytest.approx(NOISE, rel=0.3) and np.quantile(noise, 0.95) < 0.1


def small_run(model, **options):
    problem = decay_problem(model, years=(0, 2, 4, 6, 8, 10))
    return PosteriorProblem(problem, **options)


FAST = PosteriorSettings(chains=2, particles=60, seed=8, max_steps=4, final_steps=3)


def test_same_seed_same_posterior_whatever_the_chunking_or_evaluator(five_decays):
    reference = sample(small_run(five_decays), FAST).thetas
    chunked = sample(small_run(five_decays, run_options={"chunk_size": 7}), FAST).thetas
    np.testing.assert_array_equal(reference, chunked)
    # the sampler sees the engine only through terms(): a process pool gives them bit for bit
    thetas = reference.reshape(-1, reference.shape[-1])
    pooled = small_run(five_decays, run_options={"workers": 2, "chunk_size": 50}).terms(thetas)
    np.testing.assert_array_equal(small_run(five_decays).terms(thetas), pooled)
    other = sample(small_run(five_decays), replace(FAST, seed=9)).thetas
    assert not np.array_equal(reference, other)


class Interrupted(Exception):
    pass


def test_an_interrupted_posterior_resumed_equals_an_uninterrupted_one(five_decays, tmp_path, monkeypatch):
    uninterrupted = sample(small_run(five_decays), FAST)
    folder = tmp_path / "posterior_v1.evaluations"
    original = PosteriorProblem.simulate
    calls = []

    def failing(self, thetas):
        calls.append(len(thetas))
        if len(calls) > 5:
            raise Interrupted
        return original(self, thetas)

    monkeypatch.setattr(PosteriorProblem, "simulate", failing)
    with pytest.raises(Interrupted):
        sample(small_run(five_decays, store=EvaluationStore(folder)), FAST)
    assert len(list(folder.glob("batch*.npz"))) == 5
    monkeypatch.setattr(PosteriorProblem, "simulate", original)
    resumed_problem = small_run(five_decays, store=EvaluationStore(folder))
    resumed = sample(resumed_problem, FAST)
    np.testing.assert_array_equal(uninterrupted.thetas, resumed.thetas)
    assert resumed.evaluations == uninterrupted.evaluations - sum(calls[:5])


def test_inference_data_groups_and_downstream_draws(five_decays, tmp_path):
    posterior = small_run(five_decays)
    drawn = sample(posterior, FAST)
    idata = inference_data(posterior, drawn)
    assert set(idata.groups()) >= {"posterior", "posterior_predictive", "observed_data", "log_likelihood",
                                   "sample_stats", "prior"}
    assert idata.posterior.sizes == {"chain": 2, "draw": 60}
    assert "initial amount[R1]" in idata.posterior
    assert idata.posterior_predictive["amount"].dims == ("chain", "draw", "year", "region")
    path = tmp_path / "posterior_v1.nc"
    idata.to_netcdf(str(path))
    median = posterior_point(path)
    assert median["residence time[R4]"] == pytest.approx(float(np.median(drawn.thetas[..., 8])))
    assert posterior_point(path, draw=61)["initial amount[R2]"] == drawn.thetas[1, 1, 1]
    members = posterior_members(path, members=500, seed=1)
    assert members.sizes["run"] == 500 and list(members.data_vars) == [p.name for p in posterior.parameters]
    runs = five_decays.run_batch(members.isel(run=slice(0, 3)), return_columns=["residence time"], final_time=1)
    np.testing.assert_allclose(runs["residence time"].sel(region="R1"), members["residence time[R1]"][:3])
    # load_model applies the median where it applies a CSV's best row, or a chosen draw
    at_median = migsd.load_model(five_decays.path, calibration=path)
    assert at_median.calibrated_parameters == median
    ds = at_median.run(return_columns=["residence time"], final_time=1)
    assert np.ravel(ds["residence time"].sel(region="R4").values)[0] == pytest.approx(median["residence time[R4]"])
    chosen = migsd.load_model(five_decays.path, calibration=path, draw=61)
    assert chosen.calibrated_parameters["initial amount[R2]"] == drawn.thetas[1, 1, 1]
    with pytest.raises(migsd.ModelError, match=r"draw=3 needs a posterior_vN.nc calibration, not None"):
        migsd.load_model(five_decays.path, calibration=None, draw=3)


def test_a_sweep_samples_this_model_s_posterior_and_refuses_one_sampled_with_an_older_model(tmp_path, monkeypatch):
    # posterior_v1.nc predates the political core (calibration v2): sampling it would apply ten parameters
    # fitted to another model, so a problem asking for it is refused, naming what to run; the latest
    # (posterior_v3.nc) was sampled with this model, and a sweep draws its members from it
    import shutil

    import migsd.calibration.posterior as posterior
    from migsd.analysis.sensitivity import load_problem
    from migsd.errors import ScenarioError

    model = migsd.load_model()
    path = tmp_path / "from_posterior.toml"
    path.write_text('method = "posterior"\nsamples = 16\nseed = 3\nscenarios = ["status_quo"]\n')
    problem = load_problem(path, model)
    shipped = posterior.latest_posterior(model=model)
    assert shipped is not None and shipped.name != "posterior_v1.nc"
    assert problem.ensemble.sizes["run"] == 16
    assert set(problem.ensemble.data_vars) >= {"material weight", "shortage response exponent"}

    older = tmp_path / "parameters"
    older.mkdir()
    shutil.copy(posterior.PARAMETERS_DIR / "posterior_v1.nc", older / "posterior_v1.nc")
    latest = posterior.latest_posterior
    monkeypatch.setattr(posterior, "latest_posterior", lambda directory=older, model=None: latest(directory, model))
    with pytest.raises(ScenarioError, match=r"posterior_v1.nc was sampled with another version of it; "
                                            r"run 'migsd calibrate --method posterior'"):
        load_problem(path, model)


SERIES = '[[target]]\nname="a"\nvariable="population"\ndata="pop_total"\nyears=[1990]\n'


@pytest.mark.parametrize(
    "extra, message",
    [
        ('likelihood="gaussian"\n', r"likelihood 'gaussian' is not one of normal, lognormal, student_t"),
        ('likelihood="normal"\n', r"likelihood = \"normal\" needs 'noise'"),
        ('noise=-1\n', r"'noise' must be a positive number, got -1"),
        ('noise={distribution="gamma", lower=0, upper=1}\n', r"noise: distribution 'gamma' is not one of uniform"),
        ('noise={distribution="lognormal", mu=-3}\n', r"noise: a lognormal prior needs 'sigma'"),
        ('noise={distribution="normal", mu=0, sigma=1, lower=-1}\n', r"noise: a noise scale needs 'lower' >= 0"),
        ('ar1=1.2\n', r"'ar1' must lie in \(-1, 1\), got 1.2"),
        ('ar1={distribution="uniform", lower=0, upper=1}\n', r"ar1: the coefficient's bounds must lie in \(-1, 1\)"),
        ('bias=0.1\n', r"'bias' must be a prior table"),
        ('bias={distribution="normal", mu=0, sigma=0.1, spread=2}\n', r"bias: unknown key\(s\) \['spread'\]"),
        ('nu=4\n', r"'nu' applies to likelihood = \"student_t\""),
        ('softness=0.1\n', r"'softness' applies to band targets"),
    ],
)
def test_bad_likelihood_declarations_name_file_table_and_key(tmp_path, extra, message):
    from migsd.calibration.fit import load_targets
    from migsd.errors import ScenarioError

    path = tmp_path / "targets.toml"
    path.write_text(SERIES + extra)
    with pytest.raises(ScenarioError, match=rf"targets.toml: \[\[target\]\] 1 \('a'\): {message}"):
        load_targets(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        ('distribution="cauchy"\n', r"distribution 'cauchy' is not one of uniform, normal, lognormal, beta"),
        ('distribution="normal"\nmu=1\n', r"a normal prior needs 'sigma'"),
        ('distribution="beta"\nalpha=2\nbeta=0\n', r"'beta' must be positive, got 0.0"),
        ('distribution="normal"\nmu=50\nsigma=0.001\n', r"the normal prior puts no mass inside \[1.0, 2.0\]"),
        ('distribution="lognormal"\nmu="a"\nsigma=1\n', r"'mu' must be a number, got 'a'"),
        ('mean=1\n', r"unknown key\(s\) \['mean'\]"),
    ],
)
def test_bad_prior_declarations_name_file_table_and_key(tmp_path, extra, message):
    from migsd.calibration.fit import load_priors
    from migsd.errors import ScenarioError

    path = tmp_path / "priors.toml"
    path.write_text('[[parameter]]\nname="material weight"\nlower=1\nupper=2\nwhy="x"\n' + extra)
    with pytest.raises(ScenarioError, match=rf"priors.toml: \[\[parameter\]\] 1 \('material weight'\): {message}"):
        load_priors(path)


def test_priors_densities_are_truncated_to_their_bounds():
    from scipy import integrate

    for prior in (PriorDistribution("uniform", 1, 3), PriorDistribution("normal", 0, 2, mu=1.5, sigma=1),
                  PriorDistribution("lognormal", 0.01, 1, mu=math.log(0.05), sigma=1),
                  PriorDistribution("beta", 2, 5, alpha=2, beta=3)):
        mass, _ = integrate.quad(lambda x: math.exp(prior.logpdf(np.array([x]))[0]), prior.lower, prior.upper)
        assert mass == pytest.approx(1.0, abs=1e-6)
        assert prior.logpdf(np.array([prior.lower - 1e-9, prior.upper + 1e-9])).tolist() == [-np.inf, -np.inf]
        draws = prior.sample(np.random.default_rng(0), 2000)
        assert draws.min() >= prior.lower and draws.max() <= prior.upper
        free = prior.to_free(draws)
        back, _ = prior.from_free(free)
        np.testing.assert_allclose(back, draws, rtol=1e-9, atol=1e-12)


def test_posterior_settings_are_checked(tmp_path):
    from migsd.calibration.posterior import load_posterior_settings
    from migsd.errors import ScenarioError

    path = tmp_path / "calibrate.toml"
    path.write_text('[posterior]\nsampler = "nuts"\n')
    with pytest.raises(ScenarioError, match=r"calibrate.toml: \[posterior\]: sampler 'nuts' is not one of smc, emcee"):
        load_posterior_settings(path)
    path.write_text('[posterior]\nparticles = 10.5\n')
    with pytest.raises(ScenarioError, match=r"\[posterior\]: 'particles' must be a whole number, got 10.5"):
        load_posterior_settings(path)
    path.write_text('[posterior]\nchain = 4\n')
    with pytest.raises(ScenarioError, match=r"\[posterior\]: unknown key\(s\) \['chain'\]"):
        load_posterior_settings(path)
    assert load_posterior_settings().chains >= 4


@pytest.mark.slow
def test_calibrate_posterior_writes_the_file_and_its_note(tmp_path):
    from migsd.calibration.data import CALIBRATION_DIR
    from migsd.calibration.posterior import arviz
    from migsd.calibration.posterior_report import calibrate_posterior

    settings = tmp_path / "calibrate.toml"
    settings.write_text(f'targets = "{(CALIBRATION_DIR / "targets.toml").as_posix()}"\n'
                        f'priors = "{(CALIBRATION_DIR / "priors.toml").as_posix()}"\n'
                        "[posterior]\nchains = 2\nparticles = 24\nmax_steps = 2\nfinal_steps = 2\n"
                        "holdout_particles = 16\n")
    out = tmp_path / "parameters"
    path = calibrate_posterior(settings, directory=out, progress=False)
    assert path.name == "posterior_v1.nc" and (out / "posterior_v1_figures" / "prior_posterior.png").exists()
    idata = arviz().from_netcdf(str(path))
    assert set(idata.groups()) == {"posterior", "posterior_predictive", "observed_data", "log_likelihood",
                                   "sample_stats", "prior"}
    assert "base return rate[Gulf]" in idata.posterior and "noise scale[residents aged 0-14]" in idata.posterior
    assert set(idata.posterior_predictive.data_vars) == {t for t in idata.log_likelihood.data_vars}
    note = (out / "posterior_v1.md").read_text()
    for heading in ("R-hat", "log evidence", "Posterior predictive coverage", "Out of sample", "prior_posterior"):
        assert heading in note
    assert "| base return rate[Gulf] |" in note


def test_a_prior_builds_its_scipy_distribution_once_however_often_a_sampler_asks(monkeypatch):
    """A sampler asks every prior for densities at every step; building the scipy distribution each time cost a
    sixth of a posterior run's time outside the engine."""
    from scipy import stats

    built = []
    original = stats.norm

    def counting(*args, **kwargs):
        built.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(stats, "norm", counting)
    prior = PriorDistribution("normal", 0.0, 5.0, mu=1.0, sigma=2.0)
    rng = np.random.default_rng(0)
    first = prior.logpdf(np.array([1.0, 4.0]))
    for _ in range(5):
        prior.logpdf(rng.uniform(0, 5, 10))
        prior.sample(rng, 3)
    assert len(built) == 1
    # the truncated density itself is unchanged: the normal's log density less the log of the mass kept
    mass = original(1.0, 2.0).cdf(5.0) - original(1.0, 2.0).cdf(0.0)
    assert np.allclose(first, original(1.0, 2.0).logpdf([1.0, 4.0]) - math.log(mass), rtol=1e-14)
