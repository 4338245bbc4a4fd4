"""The batched engine: a .mdl compiled once into vectorised numpy code that steps many runs together.

pysd reads the .mdl into its abstract model; :mod:`.compiler` turns that into
per-variable numpy expressions with every subscript resolved, :mod:`.codegen`
assembles them into one Python module kept in the translation cache,
:mod:`.runtime` holds the few helpers that module calls, and :mod:`.batch`
drives it over chunks of runs and returns xarray Datasets.
"""

from .compiler import CompiledModel, UnsupportedConstruct, compile_mdl
from .codegen import Engine, load_engine

__all__ = ["CompiledModel", "Engine", "UnsupportedConstruct", "compile_mdl", "load_engine"]
