"""migsd: a system-dynamics model of global migration governance.

The equations live in ``models/migsd.mdl``; this package loads and runs it,
applies scenarios and parameters, and returns xarray Datasets.
"""

from ._version import __version__

from . import testing
from .checks import check_model
from .errors import DataError, MigsdError, ModelError, RegionError, ScenarioError
from .indicators import add_indicators, yield_year
from .model import Model, load_model
from .outputs import open_results, to_netcdf
from .regions import build_region_model
from .runs import run_scenarios
from .scenarios import Scenario, list_scenarios, read_scenario
from .units import ureg

__all__ = [
    "DataError",
    "MigsdError",
    "Model",
    "ModelError",
    "RegionError",
    "Scenario",
    "ScenarioError",
    "add_indicators",
    "build_region_model",
    "check_model",
    "list_scenarios",
    "load_model",
    "open_results",
    "read_scenario",
    "run_scenarios",
    "testing",
    "to_netcdf",
    "ureg",
    "yield_year",
]
