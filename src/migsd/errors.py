"""Exception classes: every error migsd raises on bad input is a ``MigsdError``."""


class MigsdError(Exception):
    """Base class of the errors migsd raises for bad input or a failed run."""


class ModelError(MigsdError, ValueError):
    """The .mdl file cannot be read, translated or run."""


class ScenarioError(MigsdError, ValueError):
    """A scenario file or a parameter override is invalid."""


class DataError(MigsdError, ValueError):
    """Calibration data are missing or inconsistent."""


class AnalysisError(MigsdError, ValueError):
    """A loops or channels file, or a request to analyse a model, is invalid."""
