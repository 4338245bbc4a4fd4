"""Priors and likelihoods of the posterior calibration, as declared in ``priors.toml`` and ``targets.toml``.

Priors (``[[parameter]]`` in ``priors.toml``; the same keys inside a target's
``noise``, ``bias`` or ``ar1`` table): ``distribution`` is ``uniform`` (default,
on [lower, upper]), ``normal`` (``mu``, ``sigma``), ``lognormal`` (``mu``,
``sigma`` of the log) or ``beta`` (``alpha``, ``beta``, scaled to [lower,
upper]); ``lower`` and ``upper`` always bound the parameter (the density is
truncated there, and no draw or move leaves them).

Likelihoods (per ``[[target]]``): a series target (``data``) chooses
``likelihood = "lognormal"`` (errors on the log of the values; default when
``transform = "log"``), ``"normal"`` (errors on the values themselves; then
``noise`` must be declared, in the data's units) or ``"student_t"`` (errors on
the log, heavy tailed, ``nu`` degrees of freedom, default 4, for noisy survey
series). ``noise`` is the error's scale: a number fixes it, a prior table
estimates it (default: lognormal, median 0.05, bounded to [0.001, 1]). ``ar1``
correlates a series' errors over successive data years: a number in [0, 1)
fixes the coefficient, a prior table estimates it. ``bias`` adds an estimated
offset (on the error's scale) between the model and a series that stands for a
region it only samples: data = model x exp(bias) on the log scale. ``proxy``
(a number) is the sd of that gap taken as an error instead, added to the noise
in quadrature. ``factor`` (a prior table) scales the model, data = model x
factor, estimated with the parameters: IOM's recorded share of deaths on
routes. A target's ``bound`` ("lower"/"upper") makes its data a one-sided soft
limit; a ``transcribed`` target's log density counts at ``fit.TRANSCRIBED_WEIGHT``. A ``band``
target is a soft constraint: its log distance outside the band counts as a
normal error of scale ``softness`` (default 0.05). A ``value`` target is a
normal observation with standard deviation ``sigma``. ``weight`` and
``transform`` belong to the optimiser's payoff (``fit.py``) and are not used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import special, stats

from ..errors import ScenarioError

DISTRIBUTIONS = ("uniform", "normal", "lognormal", "beta")
DISTRIBUTION_KEYS = ("distribution", "lower", "upper", "mu", "sigma", "alpha", "beta")
LIKELIHOODS = ("normal", "lognormal", "student_t")
LIKELIHOOD_KEYS = ("likelihood", "noise", "ar1", "bias", "nu", "softness", "proxy", "factor")
_NEEDS = {"uniform": (), "normal": ("mu", "sigma"), "lognormal": ("mu", "sigma"), "beta": ("alpha", "beta")}
_POSITIVE = ("sigma", "alpha", "beta")


@dataclass(frozen=True)
class PriorDistribution:
    """One parameter's prior, truncated to [lower, upper]."""

    distribution: str = "uniform"
    lower: float = -math.inf
    upper: float = math.inf
    mu: float = 0.0
    sigma: float = 1.0
    alpha: float = 1.0
    beta: float = 1.0

    # kept, not rebuilt per call: a scipy distribution costs about a millisecond to build (its docstring is
    # formatted each time), and a sampler asks every prior for densities at every step: with 49 parameters
    # that was a sixth of a posterior run's time outside the engine
    @cached_property
    def _frozen(self):
        if self.distribution == "uniform":
            return stats.uniform(self.lower, self.upper - self.lower)
        if self.distribution == "normal":
            return stats.norm(self.mu, self.sigma)
        if self.distribution == "lognormal":
            return stats.lognorm(self.sigma, scale=math.exp(self.mu))
        return stats.beta(self.alpha, self.beta, loc=self.lower, scale=self.upper - self.lower)

    @cached_property
    def _mass(self) -> tuple[float, float]:
        frozen = self._frozen
        return float(frozen.cdf(self.lower)), float(frozen.cdf(self.upper))

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        low, high = self._mass
        with np.errstate(divide="ignore"):
            density = self._frozen.logpdf(x) - math.log(high - low)
        return np.where((x >= self.lower) & (x <= self.upper), density, -np.inf)

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Draws by the inverse CDF over the mass inside the bounds."""
        low, high = self._mass
        return np.clip(self._frozen.ppf(low + rng.random(size) * (high - low)), self.lower, self.upper)

    # The samplers move in an unconstrained space: logit for a bounded
    # parameter, log for a half-bounded one, so moves near a bound are not
    # wasted on rejections.
    def to_free(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if math.isfinite(self.lower) and math.isfinite(self.upper):
            u = np.clip((x - self.lower) / (self.upper - self.lower), 1e-12, 1 - 1e-12)
            return special.logit(u)
        if math.isfinite(self.lower):
            return np.log(np.maximum(x - self.lower, 1e-300))
        if math.isfinite(self.upper):
            return np.log(np.maximum(self.upper - x, 1e-300))
        return x

    def from_free(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The parameter and the log of the transform's Jacobian |dx/dz|."""
        z = np.asarray(z, dtype=float)
        if math.isfinite(self.lower) and math.isfinite(self.upper):
            width = self.upper - self.lower
            u = special.expit(z)
            return self.lower + width * u, math.log(width) - np.logaddexp(0, z) - np.logaddexp(0, -z)
        if math.isfinite(self.lower):
            return self.lower + np.exp(z), z
        if math.isfinite(self.upper):
            return self.upper - np.exp(z), z
        return z, np.zeros_like(z)


def parse_distribution(table: dict, where: str, default_lower: float = -math.inf,
                       default_upper: float = math.inf, require_bounds: bool = False) -> PriorDistribution:
    """A prior from a TOML table; errors name ``where`` and the key."""
    if not isinstance(table, dict):
        raise ScenarioError(f"{where}: must be a table of {', '.join(DISTRIBUTION_KEYS)}")
    unknown = [k for k in table if k not in DISTRIBUTION_KEYS and k not in ("name", "why")]
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(DISTRIBUTION_KEYS)}")
    kind = str(table.get("distribution", "uniform"))
    if kind not in DISTRIBUTIONS:
        raise ScenarioError(f"{where}: distribution '{kind}' is not one of {', '.join(DISTRIBUTIONS)}")
    missing = [k for k in _NEEDS[kind] if k not in table]
    if missing:
        raise ScenarioError(f"{where}: a {kind} prior needs {', '.join(repr(k) for k in missing)}")
    values = {}
    for key in ("lower", "upper", "mu", "sigma", "alpha", "beta"):
        if key in table:
            try:
                values[key] = float(table[key])
            except (TypeError, ValueError) as error:
                raise ScenarioError(f"{where}: '{key}' must be a number, got {table[key]!r}") from error
    lower = values.pop("lower", 0.0 if kind == "lognormal" and default_lower < 0 else default_lower)
    upper = values.pop("upper", default_upper)
    if (kind in ("uniform", "beta") or require_bounds) and not (math.isfinite(lower) and math.isfinite(upper)):
        raise ScenarioError(f"{where}: a {kind} prior needs finite 'lower' and 'upper'")
    if not lower < upper:
        raise ScenarioError(f"{where}: bounds must have lower < upper, got [{lower}, {upper}]")
    if kind == "lognormal" and lower < 0:
        raise ScenarioError(f"{where}: a lognormal prior needs 'lower' >= 0, got {lower}")
    for key in _POSITIVE:
        if key in values and not values[key] > 0:
            raise ScenarioError(f"{where}: '{key}' must be positive, got {values[key]}")
    prior = PriorDistribution(kind, lower, upper, **values)
    low, high = prior._mass
    if not high - low > 1e-12:
        raise ScenarioError(f"{where}: the {kind} prior puts no mass inside [{lower}, {upper}]")
    return prior


@dataclass
class Likelihood:
    """How one target's data are compared with the model."""

    kind: str  # normal, lognormal, student_t (series), band, value (a soft target)
    noise: float | PriorDistribution | None = None
    ar1: float | PriorDistribution | None = None
    bias: PriorDistribution | None = None
    nu: float = 4.0
    softness: float = 0.05
    sigma: float = 0.1
    #: sd of the gap between a series that only samples a region and the region (US surveys for the North),
    #: in the error's scale, added to the noise in quadrature
    proxy: float | None = None
    #: data = model x factor, the factor uncertain (a prior): IOM's recorded share of deaths on routes
    factor: PriorDistribution | None = None
    #: "lower" / "upper": the data bound the model from one side (set from the target)
    bound: str | None = None
    #: the share of an observation each point counts as (transcribed figures: less than one)
    tempering: float = 1.0

    @property
    def log_scale(self) -> bool:
        return self.kind in ("lognormal", "student_t")

    def estimated(self) -> dict[str, PriorDistribution]:
        """The nuisance parameters this likelihood estimates, by role."""
        out = {}
        for role in ("noise", "ar1", "bias", "factor"):
            value = getattr(self, role)
            if isinstance(value, PriorDistribution):
                out[role] = value
        return out


DEFAULT_NOISE = PriorDistribution("lognormal", 1e-3, 1.0, mu=math.log(0.05), sigma=1.0)
NUISANCE_NAMES = {"noise": "noise scale", "ar1": "AR(1) coefficient", "bias": "proxy bias",
                  "factor": "reporting factor"}


def parse_likelihood(table: dict, where: str, kind: str) -> Likelihood:
    """The likelihood of a target table (``kind``: series, band or soft, a value target)."""
    if kind == "band":
        extra = [k for k in LIKELIHOOD_KEYS if k in table and k != "softness"]
        if extra:
            raise ScenarioError(f"{where}: {extra} apply to series targets; a band target takes 'softness'")
        softness = _positive(table.get("softness", 0.05), where, "softness")
        return Likelihood("band", softness=softness)
    if kind in ("value", "soft"):
        extra = [k for k in LIKELIHOOD_KEYS if k in table]
        if extra:
            raise ScenarioError(f"{where}: {extra} apply to series targets; a value target takes 'sigma'")
        return Likelihood("value", sigma=_positive(table.get("sigma", 0.1), where, "sigma"))
    default = "lognormal" if table.get("transform", "log") == "log" else "normal"
    name = str(table.get("likelihood", default))
    if name not in LIKELIHOODS:
        raise ScenarioError(f"{where}: likelihood '{name}' is not one of {', '.join(LIKELIHOODS)}")
    if "softness" in table:
        raise ScenarioError(f"{where}: 'softness' applies to band targets")
    if "nu" in table and name != "student_t":
        raise ScenarioError(f"{where}: 'nu' applies to likelihood = \"student_t\", not '{name}'")
    if name == "normal" and "noise" not in table:
        raise ScenarioError(f"{where}: likelihood = \"normal\" needs 'noise' (a number, or a prior table) in "
                            "the data's units")
    noise = table.get("noise", None)
    if noise is None:
        noise = DEFAULT_NOISE
    elif isinstance(noise, dict):
        noise = parse_distribution(noise, f"{where}: noise", default_lower=0.0)
        if noise.lower < 0:
            raise ScenarioError(f"{where}: noise: a noise scale needs 'lower' >= 0, got {noise.lower}")
    else:
        noise = _positive(noise, where, "noise")
    ar1 = table.get("ar1", None)
    if isinstance(ar1, dict):
        ar1 = parse_distribution(ar1, f"{where}: ar1", default_lower=0.0, default_upper=0.99)
        if ar1.lower < -1 or ar1.upper >= 1:
            raise ScenarioError(f"{where}: ar1: the coefficient's bounds must lie in (-1, 1), got "
                                f"[{ar1.lower}, {ar1.upper}]")
    elif ar1 is not None:
        ar1 = _number(ar1, where, "ar1")
        if not -1 < ar1 < 1:
            raise ScenarioError(f"{where}: 'ar1' must lie in (-1, 1), got {ar1}")
    bias = table.get("bias", None)
    if bias is not None:
        if not isinstance(bias, dict):
            raise ScenarioError(f"{where}: 'bias' must be a prior table, e.g. "
                                "{ distribution = \"normal\", mu = 0, sigma = 0.2 }")
        bias = parse_distribution(bias, f"{where}: bias")
    nu = _positive(table.get("nu", 4.0), where, "nu")
    proxy = _positive(table["proxy"], where, "proxy") if "proxy" in table else None
    factor = table.get("factor", None)
    if factor is not None:
        if not isinstance(factor, dict):
            raise ScenarioError(f"{where}: 'factor' must be a prior table, e.g. "
                                "{ distribution = \"uniform\", lower = 0.3, upper = 1 }")
        factor = parse_distribution(factor, f"{where}: factor", require_bounds=True)
        if not factor.lower > 0:
            raise ScenarioError(f"{where}: factor: a reporting factor needs 'lower' > 0, got {factor.lower}")
    return Likelihood(name, noise=noise, ar1=ar1, bias=bias, nu=nu, proxy=proxy, factor=factor)


def _number(value, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{where}: '{key}' must be a number, got {value!r}")
    return float(value)


def _positive(value, where: str, key: str) -> float:
    number = _number(value, where, key)
    if not number > 0 or not math.isfinite(number):
        raise ScenarioError(f"{where}: '{key}' must be a positive number, got {value!r}")
    return number


# ------------------------------------------------------------------ log densities
@dataclass
class Nuisance:
    """Values of a target's nuisance parameters, one per run (arrays) or fixed (floats)."""

    noise: np.ndarray | float = 0.05
    ar1: np.ndarray | float = 0.0
    bias: np.ndarray | float = 0.0
    factor: np.ndarray | float = 1.0
    extra: dict = field(default_factory=dict)


def _column(value, runs: int, ndim: int) -> np.ndarray:
    """A per-run value broadcast against (run, year, ...)."""
    return np.broadcast_to(np.asarray(value, dtype=float), (runs,)).reshape((runs,) + (1,) * (ndim - 1))


def series_pointwise(likelihood: Likelihood, model: np.ndarray, data: np.ndarray, nuisance: Nuisance) -> np.ndarray:
    """Log density of each data point given each run (shape run x year x elements).

    With AR(1) errors, the first year's error has the stationary scale and each
    later one is conditioned on the year before: the terms sum to the joint log
    density of the series.
    """
    model = np.asarray(model, dtype=float)
    scale, rho, bias = _error_terms(likelihood, nuisance, model)
    factor = _column(nuisance.factor, model.shape[0], model.ndim)
    with np.errstate(divide="ignore", invalid="ignore"):
        if likelihood.log_scale:
            residual = np.log(data)[None] - np.log(model) - np.log(factor) - bias
            jacobian = -np.log(data)[None]  # the density of the data, not of its log
        else:
            residual = data[None] - model * factor - bias
            jacobian = np.zeros_like(residual[:1])
        if likelihood.bound is not None:
            # a one-sided soft constraint, like a band: only the side the model must not cross counts
            kept = np.maximum(residual, 0) if likelihood.bound == "lower" else np.minimum(residual, 0)
            out = -0.5 * (kept / scale) ** 2 * likelihood.tempering
            return np.where(np.isfinite(out), out, -np.inf)
        innovation = residual.copy()
        innovation[:, 1:] = residual[:, 1:] - rho * residual[:, :-1]
        scales = np.broadcast_to(scale, residual.shape).copy()
        scales[:, 1:] = scale * np.sqrt(1.0 - rho**2)
        standard = innovation / scales
        if likelihood.kind == "student_t":
            density = stats.t.logpdf(standard, likelihood.nu)
        else:
            density = -0.5 * standard**2 - 0.5 * math.log(2 * math.pi)
        out = (density - np.log(scales) + jacobian) * likelihood.tempering
    return np.where(np.isfinite(out), out, -np.inf)


def _error_terms(likelihood: Likelihood, nuisance: Nuisance, model: np.ndarray):
    """Per-run error scale (noise and proxy error in quadrature), AR(1) coefficient and bias, shaped for ``model``."""
    runs, ndim = model.shape[0], model.ndim
    scale = _column(nuisance.noise, runs, ndim)
    if likelihood.proxy:
        scale = np.sqrt(scale**2 + likelihood.proxy**2)
    return scale, _column(nuisance.ar1, runs, ndim), _column(nuisance.bias, runs, ndim)


def band_pointwise(likelihood: Likelihood, model: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Soft constraint: a half-normal penalty on the log distance outside the band (zero inside)."""
    low, high = math.log(band[0]), math.log(band[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.asarray(model, dtype=float))
        excess = np.maximum(logs - high, 0) + np.maximum(low - logs, 0)
        out = -0.5 * (excess / likelihood.softness) ** 2
    return np.where(np.isfinite(out), out, -np.inf)


def value_pointwise(likelihood: Likelihood, model: np.ndarray, value: float) -> np.ndarray:
    out = stats.norm.logpdf(np.asarray(model, dtype=float), value, likelihood.sigma)
    return np.where(np.isfinite(out), out, -np.inf)


def replicate(likelihood: Likelihood, model: np.ndarray, nuisance: Nuisance, rng: np.random.Generator) -> np.ndarray:
    """Posterior predictive draws of a series: the model with its errors (and bias) added."""
    model = np.asarray(model, dtype=float) * _column(nuisance.factor, np.shape(model)[0], np.ndim(model))
    scale, rho, bias = _error_terms(likelihood, nuisance, model)
    if likelihood.kind == "student_t":
        shocks = rng.standard_t(likelihood.nu, size=model.shape)
    else:
        shocks = rng.standard_normal(model.shape)
    errors = np.empty_like(model)
    errors[:, :1] = scale * shocks[:, :1]
    for year in range(1, model.shape[1]):
        errors[:, year:year + 1] = (rho * errors[:, year - 1:year]
                                    + scale * np.sqrt(1 - rho**2) * shocks[:, year:year + 1])
    if likelihood.log_scale:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(np.log(model) + bias + errors)
    return model + bias + errors


__all__ = ["DISTRIBUTIONS", "LIKELIHOODS", "Likelihood", "Nuisance", "PriorDistribution", "band_pointwise",
           "parse_distribution", "parse_likelihood", "replicate", "series_pointwise", "value_pointwise"]
