"""Exception classes: every error migsd raises on bad input is a ``MigsdError``."""


class MigsdError(Exception):
    """Base class of the errors migsd raises for bad input or a failed run."""


class ModelError(MigsdError, ValueError):
    """The .mdl file cannot be read, translated or run."""


class ScenarioError(MigsdError, ValueError):
    """A scenario file or a parameter override is invalid."""


class DataError(MigsdError, ValueError):
    """Calibration data are missing or inconsistent."""


class RangeError(ScenarioError):
    """A value lies outside the range the .mdl declares for its variable (``[min,max]`` in the units field)."""


class SimulationError(MigsdError, ArithmeticError):
    """A run produced values that are not finite numbers (NaN or infinite)."""


class SizeError(MigsdError, ValueError):
    """A run or batch would need more memory for its arrays than migsd allows itself."""


class StoreError(MigsdError, ValueError):
    """A sweep store is incomplete, altered, held by another writer, or holds another sweep."""


class AnalysisError(MigsdError, ValueError):
    """A loops or channels file, or a request to analyse a model, is invalid."""


class RegionError(MigsdError, ValueError):
    """A region mapping or region table is invalid, or the template .mdl cannot be re-cut by it."""
