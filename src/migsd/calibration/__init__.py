"""Calibration: the data (aggregated by ``calibration/regions.csv``), targets and priors, the fit, its report.

The public calls are re-exported here, so ``migsd.calibration.ensemble_params()`` reads as before.
"""

from .fit import current, ensemble_params, latest, load_settings, promote, read_parameters
from .report import calibrate

__all__ = ["calibrate", "current", "ensemble_params", "latest", "load_settings", "promote", "read_parameters"]
