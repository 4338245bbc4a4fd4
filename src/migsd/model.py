"""Load a .mdl (translation cached by content hash) and run it into an xarray Dataset."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .errors import ModelError, SimulationError
from .mdlsource import abstract_problems, definition_lines, raise_problems, structure_problems, unreadable
from .names import canonical, did_you_mean, snake_case
from .paths import DEFAULT_MODEL
from .sketch import read_views

CONTROL_VARIABLES = ("INITIAL TIME", "FINAL TIME", "TIME STEP", "SAVEPER")
_CONTROL_KEYS = ("initial_time", "final_time", "time_step", "saveper")
_CONTROL_NAMES = dict(zip(_CONTROL_KEYS, CONTROL_VARIABLES))


@dataclass(frozen=True)
class Variable:
    """What the .mdl says about one variable."""

    name: str
    py_name: str
    subscripts: tuple[str, ...]
    units: str
    comment: str
    kind: str
    subkind: str
    sector: str
    limits: tuple[float, float] = (float("-inf"), float("inf"))
    #: The step of Vensim's ``[min,max,step]`` (what a slider moves by); ``None`` where not declared.
    step: float | None = None

    @property
    def is_stock(self) -> bool:
        return self.kind == "Stateful" and self.subkind == "Integ"

    @property
    def is_constant(self) -> bool:
        return self.kind == "Constant" and self.name not in CONTROL_VARIABLES

    @property
    def is_lookup(self) -> bool:
        return self.kind == "Lookup"

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(snake_case(s) for s in self.subscripts)


def cache_dir() -> Path:
    """Where translations are kept: ``$MIGSD_CACHE_DIR``, else the user's cache folder."""
    configured = os.environ.get("MIGSD_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "migsd"


def translate(mdl_path: Path) -> Path:
    """The pysd translation of ``mdl_path`` (a Vensim .mdl or an XMILE file), made once per file content and
    pysd version.

    Before pysd builds it, the .mdl's text is checked (:mod:`migsd.mdlsource`:
    unclosed definitions, undefined names, elements outside their range,
    equations pysd cannot parse) and the engine orders its equations (algebraic
    loops); each mistake raises a :class:`~migsd.mdlsource.SourceError` naming the
    variable as written, the file and the line.

    The translation lives in the cache, never beside the .mdl. It is built in a
    temporary folder and moved into place, so concurrent processes never see half
    a translation.
    """
    import pysd

    from .engine.compiler import model_format

    kind = model_format(mdl_path)
    digest = _sha256(mdl_path)
    # a translation in the cache is one that passed the checks of the .mdl as they are now (mdlsource)
    checks = _sha256(Path(__file__).with_name("mdlsource.py"))[:16]
    salt = "" if kind == "vensim" else f":{kind}"
    key = hashlib.sha256(f"{digest}:{pysd.__version__}:{checks}{salt}".encode()).hexdigest()[:20]
    target = cache_dir() / "translations" / key
    py_file = target / "model.py"
    if py_file.exists():
        return py_file
    target.parent.mkdir(parents=True, exist_ok=True)
    text = Path(mdl_path).read_text(encoding="utf-8", errors="replace")
    if kind == "vensim":
        # pysd reads nothing after a definition not closed by '|', silently: check that before it reads
        raise_problems(mdl_path, structure_problems(text))
    work = Path(tempfile.mkdtemp(prefix=f"{key}-", dir=target.parent))
    try:
        source = work / f"model{mdl_path.suffix.lower()}"
        shutil.copyfile(mdl_path, source)
        if kind == "vensim":
            _build(mdl_path, source, text)
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pysd.read_xmile(str(source), initialize=False)
            except Exception as error:  # pysd raises many kinds for a bad model file
                raise ModelError(f"{mdl_path}: pysd cannot translate the model: {error}") from error
        try:
            work.rename(target)
        except OSError:
            if not py_file.exists():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return py_file


def _build(mdl_path: Path, copy: Path, text: str) -> None:
    """pysd's translation of ``copy`` (of ``mdl_path``), its abstract model first checked against the text.

    pysd.read_vensim in its steps, so the abstract model it builds from is the one
    checked: a name it cannot resolve is reported with the .mdl's line, not as
    pysd's KeyError of a Python identifier.
    """
    import pysd
    from pysd.builders.python.python_model_builder import ModelBuilder
    from pysd.translators.vensim.vensim_file import VensimFile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vensim_file = VensimFile(str(copy))
            vensim_file.parse()
            abstract = vensim_file.get_abstract_model()
    except Exception as error:  # pysd's parser raises many kinds for a bad .mdl
        raise_problems(mdl_path, unreadable(text, error))
        raise ModelError(f"{mdl_path}: pysd cannot read the model: {error}") from error
    raise_problems(mdl_path, abstract_problems(abstract, text, Path(mdl_path).parent))
    check_loops(mdl_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pysd.load(ModelBuilder(abstract).build_model(), initialize=False)
    except Exception as error:  # pysd raises many kinds for a bad .mdl
        raise ModelError(f"{mdl_path}: pysd cannot translate the model: {error}") from error


def check_loops(mdl_path: Path) -> None:
    """Raise on simultaneous equations, found by the batched engine, which names them as the .mdl does.

    pysd would only fail at run time (a RecursionError) or at load (its Python
    names). The engine compiled here is kept in its cache for the model's runs, so
    this moves work from the first run rather than adding it.
    """
    from .engine import UnsupportedConstruct, load_engine
    from .engine.codegen import generate

    try:
        engine = load_engine(mdl_path, cache_dir())
    except UnsupportedConstruct:
        return  # runs go through pysd, which reports its own loops
    generate(engine.compiled)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


_PROMOTED = "promoted"


def load_model(path: str | os.PathLike | None = None, calibration: str | os.PathLike | None = _PROMOTED,
               draw: int | None = None) -> "Model":
    """Load a model: a Vensim .mdl or an XMILE file (Stella's .stmx, .xmile, .xml); by default the shipped
    ``models/migsd.mdl``.

    Both are read by pysd and compiled by the same engine; a construct the engine
    refuses runs on pysd, with a warning naming it.

    ``calibration`` is a ``posterior_vN.nc`` whose posterior median (or the draw
    numbered ``draw``, chains in order) sets constants before any scenario, or a
    ``calibrated_vN.csv`` whose ``best`` row does; by default, for the shipped
    model, the one promoted in ``calibration/parameters/CURRENT`` (``migsd
    promote``; never merely the newest), for a model folder written by ``migsd
    regions`` the one promoted in its own ``calibration/parameters/``, none for
    another .mdl; ``None`` keeps the .mdl's own values.

    Examples
    --------
    >>> import migsd
    >>> model = migsd.load_model()
    >>> model.subscripts["Region"]
    ['North', 'Gulf', 'SouthUpper', 'SouthLower']
    """
    mdl_path = Path(path) if path is not None else DEFAULT_MODEL
    if not mdl_path.is_file():
        raise ModelError(f"model file not found: {mdl_path}")
    from .engine.compiler import model_format

    model_format(mdl_path)
    if calibration == _PROMOTED:
        from .calibration.fit import current

        if mdl_path.resolve() == DEFAULT_MODEL.resolve():
            calibration = current()
        else:
            # a model folder written by migsd regions keeps its calibrations in calibration/parameters/
            own = mdl_path.resolve().parent / "calibration" / "parameters"
            calibration = current(own) if own.is_dir() else None
    if calibration is not None and not Path(calibration).is_file():
        raise ModelError(f"calibration file not found: {calibration}")
    if draw is not None and (calibration is None or Path(calibration).suffix != ".nc"):
        raise ModelError(f"draw={draw} needs a posterior_vN.nc calibration, not {calibration}")
    return Model(mdl_path.resolve(), Path(calibration).resolve() if calibration is not None else None, draw)


@dataclass
class Model:
    """A .mdl model ready to run. Use :func:`load_model` to make one."""

    path: Path
    calibration: Path | None = None
    draw: int | None = None
    _translation: Path = field(init=False, repr=False)

    def __post_init__(self):
        self._translation = translate(self.path)

    @cached_property
    def calibrated_parameters(self) -> dict[str, float]:
        """The ``best`` row of the calibration file (a posterior's median or chosen draw), keyed by .mdl name."""
        if self.calibration is None:
            return {}
        if self.calibration.suffix == ".nc":
            from .calibration.posterior import posterior_point

            return posterior_point(self.calibration, self.draw)
        from .calibration.fit import read_parameters

        return {name: float(value) for name, value in read_parameters(self.calibration).loc["best"].items()}

    @cached_property
    def sha256(self) -> str:
        return _sha256(self.path)

    def _pysd_model(self):
        import pysd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pysd.load(str(self._translation), initialize=False)

    @cached_property
    def _template(self):
        return self._pysd_model()

    @cached_property
    def subscripts(self) -> dict[str, list[str]]:
        """Subscript ranges of the .mdl and their elements, in .mdl order."""
        return {name: list(elements) for name, elements in self._template.subscripts.items()}

    @cached_property
    def variables(self) -> dict[str, Variable]:
        """Every variable of the .mdl, keyed by its canonical name (see :func:`names.canonical`)."""
        views = {}
        if self.path.suffix.lower() == ".mdl":  # an XMILE file's views hold no sectors migsd reads
            views = {canonical(k): v for k, v in read_views(self.path.read_text(encoding="utf-8")).items()}
        found = {}
        for row in self._template.doc.to_dict("records"):
            name = row["Real Name"]
            if name == "Time":
                continue
            found[canonical(name)] = Variable(
                name=name,
                py_name=row["Py Name"],
                subscripts=tuple(row["Subscripts"]) if isinstance(row["Subscripts"], list) else (),
                units=row["Units"] if isinstance(row["Units"], str) else "",
                comment=" ".join(row["Comment"].split()) if isinstance(row["Comment"], str) else "",
                kind=str(row["Type"]),
                subkind=str(row["Subtype"]),
                sector=views.get(canonical(name), "Control" if name in CONTROL_VARIABLES else ""),
                limits=_limits(row.get("Limits")),
                step=_step(row.get("Limits")),
            )
        return found

    def variable(self, name: str, *, where: str = "") -> Variable:
        """The variable named ``name`` as the .mdl spells it (case and spacing ignored)."""
        key = canonical(name)
        if key in self.variables:
            return self.variables[key]
        by_py = {v.py_name: v for v in self.variables.values()}
        if name in by_py:
            return by_py[name]
        prefix = f"{where}: " if where else ""
        raise ModelError(
            f"{prefix}'{name}' is not a variable of {self.path.name}."
            + did_you_mean(name, [v.name for v in self.variables.values()])
        )

    @cached_property
    def time_settings(self) -> dict[str, float]:
        """INITIAL TIME, FINAL TIME, TIME STEP and SAVEPER as the .mdl sets them.

        A control variable may be an expression of constants and of the other control
        variables (``SAVEPER = TIME STEP``); one that changes during the run (reads
        ``Time`` or a stock) is refused with a :class:`ModelError` naming it.
        """
        return self._control_settings(None, {})

    def _control_settings(self, layers, explicit: dict[str, float], values: dict | None = None) -> dict[str, float]:
        """The control variables of a run: ``explicit`` ones as given, the rest from their equations.

        ``values`` are the engine inputs of the run (constants by identifier, per run);
        without them they come from ``layers``.
        """
        compiled = self.engine
        if compiled is not None:
            if values is None:
                from .engine.batch import base_inputs

                # most models' control variables are numbers: no need to assemble the run's inputs
                reads = layers is not None and compiled.control_reads
                values = base_inputs(self, layers)[0] if reads else {}
            return compiled.control_settings(values, explicit)
        return self._pysd_control_settings(layers, explicit)

    def _pysd_control_settings(self, layers, explicit: dict[str, float]) -> dict[str, float]:
        template = self._template
        self._refuse_changing_controls(template)
        if layers is not None and layers.values:
            # a control variable may read a constant the run sets: evaluate it on a model that has it
            template = self._pysd_model()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                template.set_components(layers.to_pysd(self.time_settings))
        template.components._init_outer_references({"scope": template, "time": template.time})
        template.time.set_control_vars(**template.components._control_vars)
        template.time.set_control_vars(**explicit)
        settings = {}
        for key in _CONTROL_KEYS:
            value = np.asarray(getattr(template.time, key)(), dtype=float)
            if value.size != 1:
                raise ModelError(f"{self.path.name}: '{_CONTROL_NAMES[key]}' must be one number, got {value.shape}")
            settings[key] = float(value.reshape(-1)[0])
        return settings

    def _refuse_changing_controls(self, pysd_model) -> None:
        """A control variable read from Time or a stock would change during the run; migsd fixes them before it."""
        types = {v.py_name: v.kind for v in self.variables.values()}
        for key in _CONTROL_KEYS:
            seen, frontier = set(), list(pysd_model.dependencies.get(key, {}))
            while frontier:
                item = frontier.pop()
                if item in seen:
                    continue
                seen.add(item)
                if item == "time" or item.startswith("_") or types.get(item) == "Stateful":
                    raise ModelError(
                        f"{self.path.name}: '{_CONTROL_NAMES[key]}' is computed from "
                        f"{'Time' if item == 'time' else 'a variable that changes during the run'}; migsd needs "
                        f"control variables fixed before the run: numbers, or expressions of constants and of "
                        f"the other control variables")
                frontier.extend(pysd_model.dependencies.get(item, {}))

    @cached_property
    def defaults(self) -> dict[str, xr.DataArray]:
        """Default value of every constant, by canonical name, with snake_case dims."""
        values = {}
        for key, variable in self.variables.items():
            if variable.is_constant:
                values[key] = self._as_dataarray(getattr(self._template.components, variable.py_name)(), variable)
        return values

    def _as_dataarray(self, value, variable: Variable) -> xr.DataArray:
        if isinstance(value, xr.DataArray):
            renamed = value.rename({d: snake_case(d) for d in value.dims})
            return renamed.transpose(*variable.dims).astype(float)
        return xr.DataArray(float(value))

    @cached_property
    def engine(self):
        """The batched engine for this .mdl, or ``None`` where it refuses a construct.

        The reason for a refusal is in :attr:`engine_refusal`; runs then go through pysd.
        """
        from .engine import UnsupportedConstruct, load_engine

        try:
            return load_engine(self.path, cache_dir())
        except UnsupportedConstruct as refusal:
            self.engine_refusal = str(refusal)
            lines = definition_lines(self.path.read_text(encoding="utf-8", errors="replace"))
            line = lines.get(canonical(refusal.variable), [0])[0]
            self._refusal_at = f"{self.path.name}:{line}" if line else self.path.name
            return None

    engine_refusal: str = field(default="", init=False, repr=False)
    _refusal_at: str = field(default="", init=False, repr=False)  # file:line of the refused variable

    def _engine_for(self, engine: str):
        if engine not in ENGINES:
            raise ModelError(f"engine must be one of {', '.join(repr(e) for e in ENGINES)}, got {engine!r}")
        if engine == "pysd":
            return None
        compiled = self.engine
        if compiled is None:
            if engine != "auto":
                raise ModelError(f"{self._refusal_at}: {self.engine_refusal}")
            warnings.warn(
                f"{self._refusal_at}: {self.engine_refusal}; running it with pysd instead (slower, same equations)",
                RuntimeWarning,
                stacklevel=3,
            )
        return compiled

    def _prepare(self, scenario, params, initial, time_step, final_time, saveper):
        """Scenario, merged parameter layers and time settings of a run, all checked."""
        from .parameters import ParameterSet
        from .scenarios import resolve_scenario

        resolved = resolve_scenario(scenario) if scenario is not None else None
        layers = ParameterSet(self)
        if self.calibration is not None:
            layers.apply(self.calibrated_parameters, source=str(self.calibration))
        if resolved is not None:
            layers.apply(resolved.parameters, source=str(resolved.path))
            layers.apply_initial(resolved.initial, source=str(resolved.path))
        if params:
            layers.apply(params, source="params=")
        if initial:
            layers.apply_initial(initial, source="initial=")
        explicit = _explicit_settings(time_step, final_time, saveper)
        settings = self._checked_settings(self._control_settings(layers, explicit), explicit)
        return resolved, layers, settings

    def _checked_settings(self, settings: dict[str, float], explicit: dict[str, float]) -> dict[str, float]:
        settings = dict(settings)
        for key in ("time_step", "saveper"):
            if key not in explicit and not (np.isfinite(settings[key]) and settings[key] > 0):
                raise ModelError(
                    f"{self.path.name}: '{_CONTROL_NAMES[key]}' comes out as {settings[key]:g}; it must be a "
                    f"positive number")
        if "time_step" in explicit and "saveper" not in explicit:
            settings["saveper"] = max(settings["saveper"], settings["time_step"])
        if settings["final_time"] <= settings["initial_time"]:
            raise ModelError(
                f"final_time {settings['final_time']:g} must be after INITIAL TIME {settings['initial_time']:g}"
            )
        if explicit:
            _check_steps(settings)
        return settings

    def run(
        self,
        scenario=None,
        params=None,
        return_columns=None,
        *,
        initial=None,
        time_step: float | None = None,
        final_time: float | None = None,
        saveper: float | None = None,
        progress: bool = False,
        engine: str = "auto",
        force=None,
        allow_nonfinite: bool = False,
    ) -> xr.Dataset:
        """Run the model once and return an ``xarray.Dataset``.

        Parameters
        ----------
        scenario : str, path or Scenario, optional
            A shipped scenario name (``migsd scenarios`` lists them), a scenario file,
            or a :class:`~migsd.scenarios.Scenario`.
        params : dict, optional
            Overrides applied after the scenario, keyed by .mdl name
            (``"IOM funding"``, ``"enforcement push[North]"``); values are numbers,
            lists of ``[time, value]`` points, ``{element: value}`` tables or DataArrays.
        return_columns : list of str, optional
            .mdl names of the variables to keep (default: every stock and auxiliary,
            plus every constant as a variable without ``time``).
        initial : dict, optional
            Initial values of stocks, keyed by .mdl name, overriding the scenario's.
        time_step, final_time, saveper : float, optional
            Override the .mdl's TIME STEP, FINAL TIME and SAVEPER.
        progress : bool
            Show a progress bar (on standard error).
        engine : {'auto', 'compiled', 'numpy', 'batched', 'pysd'}
            ``'auto'`` uses the batched engine where it compiles the .mdl and pysd
            otherwise (with a warning naming the construct); on the batched engine it
            picks the compiled (numba) kernel where that is already compiled for this
            model content (in this process or in the cache), the numpy backend
            otherwise, so no run waits on a compile it did not ask for.
            ``'compiled'`` forces the kernel (compiling it on first use: seconds for
            a small model, minutes for the shipped one) and ``'numpy'`` the numpy
            backend, the reference the kernel is tested against; ``'batched'`` is
            the batched engine with its own choice of backend, never pysd;
            ``'pysd'`` forces pysd, the reference the engine is tested against.
        force : dict, optional
            Variables held at a number for the whole run, whatever their equations
            say (Vensim's test inputs), keyed by .mdl name, optionally one element
            (``{"Restrictiveness[North]": 1}``); needs the batched engine.
        allow_nonfinite : bool
            Return a run whose values turned NaN or infinite (with a RuntimeWarning
            saying where), to look at how it broke. By default such a run raises
            :class:`~migsd.errors.SimulationError`.

        Returns
        -------
        xarray.Dataset
            One variable per .mdl variable, named as in the .mdl, with dims ``time``
            and the snake_case of its subscript ranges; the yield year of
            :func:`~migsd.indicators.add_indicators` is added when the run returns
            ``Restrictiveness`` and reaches the reference year.

        Examples
        --------
        >>> import migsd
        >>> model = migsd.load_model()
        >>> ds = model.run(scenario="status_quo", final_time=1992)
        >>> start = float(ds["Restrictiveness"].sel(region="North", time=1990))
        >>> start == model.calibrated_parameters["initial restrictiveness[North]"]  # the fitted 1990 level
        True
        >>> ds["Restrictiveness"].attrs["units"], ds.sizes["time"]
        ('dmnl', 3)
        """
        from .engine.batch import check_size, forced_inputs

        resolved, layers, settings = self._prepare(scenario, params, initial, time_step, final_time, saveper)
        held_constants, forced = forced_inputs(self, force)
        layers.apply(held_constants, source="force=")
        columns, constant_columns = self._select(return_columns, layers.time_varying)
        compiled = self._engine_for(engine)
        if compiled is None:
            if forced:
                raise ModelError("force= holds variables computed by equations; that needs the batched engine")
            check_size(settings, 1, saved_cells=sum(self._cells(v) for v in columns),
                       once_cells=sum(self._cells(v) for v in constant_columns))
            times, over_time, once = self._run_pysd(layers, settings, columns, constant_columns, progress)
            broken = _first_saved_non_finite(self, times, over_time, once)
            broken = {} if broken is False else {0: broken}
        else:
            times, over_time, once, broken = self._run_engine(
                compiled, layers, None, settings, columns, constant_columns, progress=progress, chunk_size=1,
                forced=forced, backend=_backend(engine),
            )
            over_time = {v: a[0] for v, a in over_time.items()}
            once = {v: a[0] for v, a in once.items()}
        if broken:
            message = self._failure(broken[0], layers, settings)
            if not allow_nonfinite:
                raise SimulationError(message)
            warnings.warn(f"{message} (kept: allow_nonfinite=True)", RuntimeWarning, stacklevel=2)
        return self._finish(times, over_time, once, settings, resolved, layers, compiled)

    def _cells(self, variable: Variable) -> int:
        return int(np.prod([len(self.subscripts[s]) for s in variable.subscripts]))

    def _failure(self, breakdown, layers, settings, extra=()) -> str:
        """Why a run failed: where it turned non-finite, and the inputs that differ from the .mdl's."""
        from .paths import repo_relative

        head = breakdown.describe() if breakdown is not None else "its values turned non-finite (NaN or infinite)"
        calibration = str(self.calibration) if self.calibration is not None else None
        differs = layers.differences(skip={calibration} if calibration else ()) + list(extra)
        names = {"time_step": "TIME STEP", "final_time": "FINAL TIME", "saveper": "SAVEPER"}
        differs += [f"{names[k]} = {settings[k]:g}" for k in names if settings[k] != self.time_settings[k]]
        inputs = "; ".join(differs) if differs else "none"
        on = f" (on calibration {repo_relative(self.calibration)})" if calibration else ""
        return f"{self.path.name}: the run failed: {head}. Inputs that differ from the .mdl's{on}: {inputs}"

    def run_batch(
        self,
        params: xr.Dataset | None = None,
        scenario=None,
        return_columns=None,
        *,
        initial=None,
        time_step: float | None = None,
        final_time: float | None = None,
        saveper: float | None = None,
        chunk_size: int | None = None,
        workers: int = 1,
        progress: bool = False,
        allow_nonfinite: bool = False,
        force=None,
        force_from: float | None = None,
        engine: str = "auto",
    ) -> xr.Dataset:
        """Run many parameter sets together on the batched engine.

        Parameters
        ----------
        params : xarray.Dataset
            One variable per parameter over a ``run`` dim, named as in the .mdl
            (``"IOM funding"``, or one element: ``"enforcement push[North]"``);
            subscripted parameters may carry their subscript dims (snake_case, e.g.
            ``region``), or not, to set every element alike; variables without
            ``run`` apply to every run. Stocks here set initial values. ``None``
            makes a single run.
        scenario : str, path, Scenario, or a list of them
            As in :meth:`run`, applied to every run. A list integrates every
            scenario's runs together, in one batch, and returns a ``scenario`` dim
            (as :func:`~migsd.run_scenarios` does run by run).
        initial, time_step, final_time, saveper, return_columns
            As in :meth:`run`; ``initial`` applies to every run.
        chunk_size : int, optional
            Runs integrated together (default 1000). Memory while integrating grows
            with the chunk, not the number of runs (about 20 MiB for 1,000 runs of the
            shipped model, measured by ``benchmarks/sweep_throughput.py``), plus the
            returned values: runs x saved times x cells of ``return_columns``.
        workers : int
            Processes integrating chunks at once on the numpy backend (default 1:
            this process only). Each extra process starts in about a second;
            worth it from a few thousand runs. The compiled backend runs the runs
            of a chunk on numba's threads instead (``NUMBA_NUM_THREADS``).
        progress : bool
            Show a progress bar over runs.
        engine : {'auto', 'compiled', 'numpy', 'batched'}
            The batched engine's backend, as in :meth:`run` (``'batched'`` is ``'auto'``).
        allow_nonfinite : bool
            Keep the values of runs that turned NaN or infinite, to look at how they
            broke; by default they are NaN throughout. Either way such runs are
            marked failed (below), and nothing is raised for the batch.
        force : dict, optional
            As in :meth:`run`; a value may also be a DataArray over ``run`` (one number per run).
        force_from : float, optional
            Hold the forced variables from this time on (default: the whole run).

        Returns
        -------
        xarray.Dataset
            As :meth:`run`, with a leading ``run`` dim on every variable, and
            coordinates ``failed`` (per run: its values turned non-finite) and
            ``failure`` (why: the first variable, element and time to break, and the
            inputs that differ from the .mdl's; empty for runs that did not fail).

        Examples
        --------
        >>> import migsd, xarray as xr
        >>> model = migsd.load_model()
        >>> params = xr.Dataset({"IOM funding": ("run", [0.0, 2.0])})
        >>> ds = model.run_batch(params, return_columns=["IOM Capacity"], final_time=2000)
        >>> ds["IOM Capacity"].sizes["run"]
        2
        """
        from .engine.batch import base_inputs, batch_inputs, forced_inputs, stack_runs

        several = isinstance(scenario, (list, tuple))
        scenarios = list(scenario) if several else [scenario]
        if not scenarios:
            raise ModelError("run_batch: the list of scenarios is empty")
        if engine not in ENGINES or engine == "pysd":
            raise ModelError(f"run_batch: engine must be 'auto', 'compiled', 'numpy' or 'batched', got {engine!r}")
        compiled = self.engine
        if compiled is None:
            raise ModelError(f"{self._refusal_at}: {self.engine_refusal}; run_batch needs the batched engine")
        prepared, parts, shared_settings = [], [], None
        per_run = params.sizes.get("run") if params is not None else None
        held_by_scenario = []
        for one in scenarios:
            resolved, layers, settings = self._prepare(one, None, initial, time_step, final_time, saveper)
            # a held value may differ by scenario: a DataArray over ('scenario', 'run')
            own = {k: (v.sel(scenario=resolved.name if resolved is not None else "none")
                       if isinstance(v, xr.DataArray) and "scenario" in v.dims else v) for k, v in (force or {}).items()}
            held_constants, forced = forced_inputs(self, own, runs=per_run, start=force_from)
            held_by_scenario.append(forced)
            layers.apply(held_constants, source="force=")
            values, initial_values = base_inputs(self, layers)
            runs = batch_inputs(self, params, values, initial_values) if params is not None else 1
            if params is not None and compiled.control_reads:  # a control variable may read a constant set here
                explicit = _explicit_settings(time_step, final_time, saveper)
                settings = self._checked_settings(compiled.control_settings(values, explicit), explicit)
            if prepared and settings != shared_settings:
                raise ModelError(
                    f"run_batch: the scenarios give different time settings ({shared_settings} and {settings}); "
                    f"a batch shares one time axis, so run them apart")
            shared_settings = settings
            for name in params.data_vars if params is not None else ():
                layers.sources.append(f"run_batch params['{name}']")
            prepared.append((resolved, layers))
            parts.append((values, initial_values, runs))
        values, initial_values, total = stack_runs(self, parts) if several else parts[0]
        by_ident = {v.py_name: key for key, v in self.variables.items()}
        time_varying = {by_ident[k] for k, v in values.items() if isinstance(v, tuple)}
        columns, constant_columns = self._select(return_columns, time_varying)
        resolved, layers = prepared[0]
        if several and any(v[0].shape[0] > 1 for f in held_by_scenario for v in f.values()):
            # each scenario's held values for its own runs, one scenario after another
            forced = {k: (np.concatenate([np.broadcast_to(f[k][0], (runs,) + f[k][0].shape[1:])
                                          for f, (_, _, runs) in zip(held_by_scenario, parts)]),) + tuple(v[1:])
                      for k, v in forced.items()}
        times, over_time, once, broken = self._run_engine(
            compiled, layers, (values, initial_values, total), settings, columns, constant_columns,
            progress=progress, chunk_size=chunk_size, workers=workers, blank_failed=not allow_nonfinite,
            forced=forced, backend=_backend(engine),
        )
        run_coord = params["run"].values if params is not None and "run" in params.coords else np.arange(runs)
        failure = np.full(total, "", dtype=object)
        for row, breakdown in broken.items():
            part, run = divmod(row, runs)
            failure[row] = self._failure(breakdown, prepared[part][1], settings,
                                         _batch_inputs_of(params, run, run_coord))
        dataset = self._finish(times, over_time, once, settings, resolved, layers, compiled, runs=total)
        if not several:
            return _mark_failed(dataset.assign_coords(run=run_coord), failure)
        combined = _by_scenario(dataset, [r for r, _ in prepared], [layer for _, layer in prepared], run_coord)
        return _mark_failed(combined, failure.reshape(len(scenarios), runs))

    def compile(self) -> Path:
        """Compile the model's kernel (the compiled backend) into the cache now; returns its generated module.

        Afterwards ``engine="auto"`` runs on it, in this process and in any later one
        sharing the cache (``$MIGSD_CACHE_DIR``). Raises :class:`ModelError` where the
        batched engine or the kernel refuses a construct (the refusal names it).
        """
        compiled = self.engine
        if compiled is None:
            raise ModelError(f"{self._refusal_at}: {self.engine_refusal}; the compiled backend needs the batched engine")
        return compiled.kernel().path

    def loops(
        self,
        scenario=None,
        params: xr.Dataset | None = None,
        *,
        variable: str | None = None,
        quantiles=None,
        link_scores: bool = False,
        max_loops: int | None = None,
        names=None,
        force=None,
        time_step: float | None = None,
        final_time: float | None = None,
        chunk_size: int | None = None,
        engine: str = "auto",
    ) -> xr.Dataset:
        """Loops that matter: loop scores and relative loop scores, computed in the batched engine.

        Parameters
        ----------
        scenario : str, path or Scenario, optional
            As in :meth:`run`.
        params : xarray.Dataset, optional
            Parameter sets over a ``run`` dim, as in :meth:`run_batch`; the result then has a ``run`` dim.
        variable : str, optional
            A .mdl name, optionally one element (``"Restrictiveness[North]"``): adds which
            loop through it dominates (largest absolute relative score) per run and time,
            and the share of runs in which each loop dominates (``dominance probability``).
        quantiles : list of float, optional
            Reduce over runs while integrating: per-loop quantiles of the scores over runs
            (a ``quantile`` dim) instead of every run's scores.
        link_scores : bool
            Also return the score of every link on a loop (``link score``).
        max_loops : int, optional
            Loops enumerated exhaustively up to this many (default
            :data:`migsd.analysis.loops.MAX_LOOPS`); past it a strongest-path search over a
            few pilot runs keeps the loops that carry behaviour (attribute ``loop_search``).
        names : path, optional
            A loops file naming loops (default ``models/loops.toml`` beside the model's folder).
        force, time_step, final_time, chunk_size
            As in :meth:`run` and :meth:`run_batch`.
        engine : {"auto", "compiled", "numpy"}
            Who integrates (``"pysd"`` is refused: the scores are computed inside the
            batched engine). ``"compiled"``: the kernel integrates and the same scoring
            code reads its values back at the saved steps; the scores equal the numpy
            backend's to rounding. ``"auto"`` is the numpy backend here: the scoring
            dominates the time on either, so the kernel saves none.

        Returns
        -------
        xarray.Dataset
            ``loop score`` and ``relative loop score`` over ``loop``, ``time`` (and ``run``),
            with coordinates ``loop`` (names), ``loop_id`` (stable), ``loop_polarity``
            (R, B, or R/B where the sign changes), ``loop_variables`` (the path),
            ``loop_partition`` and ``loop_family``. Scores are NaN at the initial time.

        Examples
        --------
        >>> import migsd
        >>> from migsd.paths import REPO_ROOT
        >>> m = migsd.load_model(REPO_ROOT / "tests/data/models/goal_seeking.mdl", calibration=None)
        >>> float(m.loops()["relative loop score"].sel(time=5).squeeze())
        -1.0
        """
        from .analysis.loops import LOOPS_FILE, MAX_LOOPS, loops as loop_scores

        if names is None:
            names = self.path.parent / LOOPS_FILE.name
        if engine not in ("auto", "compiled", "numpy", "batched"):
            raise ModelError("loop scores are computed inside the batched engine; engine must be one of "
                             f"'auto', 'compiled', 'numpy', got {engine!r}")
        dataset = loop_scores(self, scenario, params, variable=variable, quantiles=quantiles,
                              link_scores=link_scores, max_loops=max_loops or MAX_LOOPS, names=names, force=force,
                              time_step=time_step, final_time=final_time, chunk_size=chunk_size,
                              backend=_backend(engine))
        dataset.attrs["engine"] = _engine_label(self.engine)
        return dataset

    def _run_engine(self, compiled, layers, inputs, settings, columns, constant_columns, *, progress, chunk_size,
                    workers=1, forced=None, blank_failed=False, backend="auto"):
        from .engine.batch import base_inputs, integrate, kinds_for

        if inputs is None:
            values, initial_values = base_inputs(self, layers)
            runs = 1
        else:
            values, initial_values, runs = inputs
        wanted = {}
        for variable in [*columns, *constant_columns]:
            wanted[variable.py_name] = tuple(len(self.subscripts[s]) for s in variable.subscripts)
        times, results, finite = integrate(
            compiled, values, initial_values, runs, settings, wanted, chunk_size=chunk_size, progress=progress,
            workers=workers, forced=forced, what="the run" if inputs is None else f"the batch of {runs:,} runs",
            backend=backend,
        )
        failing = np.flatnonzero(~finite)
        broken = {}
        if failing.size:
            from .engine.nonfinite import locate

            found = locate(compiled, self, values, initial_values, forced or {}, failing, settings)
            broken = {int(row): found.get(int(row)) for row in failing}
            if blank_failed:  # nothing of a failed run is to be read as a result; its inputs stay
                for variable in columns:
                    results[variable.py_name][failing] = np.nan
        kinds = kinds_for(compiled, values)
        over_time, once = {}, {}
        for variable in columns:
            array = results[variable.py_name]
            if kinds[variable.py_name] == "constant":
                array = np.broadcast_to(array[:, None], (array.shape[0], len(times)) + array.shape[1:])
            over_time[variable] = array
        for variable in constant_columns:
            once[variable] = results[variable.py_name]
        return times, over_time, once, broken

    def _run_pysd(self, layers, settings, columns, constant_columns, progress):
        pysd_model = self._pysd_model()
        pysd_params = layers.to_pysd(settings)
        try:
            # NaN or infinite values are found after the run and reported with where they began
            with xr.set_options(arithmetic_join="exact"), warnings.catch_warnings(), np.errstate(all="ignore"):
                # pysd's own use of deprecated pandas/xarray calls; its modelling warnings stay visible
                for category in (DeprecationWarning, FutureWarning):
                    warnings.filterwarnings("ignore", category=category, module=r"pysd(\.|$)")
                # points over time were asked for: pysd's notice that a constant now varies says nothing new
                warnings.filterwarnings("ignore", message="Replacing a constant value with a time-dependent value")
                pysd_model.set_components(pysd_params)
                pysd_model.time.set_control_vars(
                    initial_time=settings["initial_time"],
                    final_time=settings["final_time"],
                    time_step=settings["time_step"],
                    saveper=settings["saveper"],
                )
                pysd_model.initialize()
                initial_values = layers.initial_values(pysd_model)
                if initial_values:
                    pysd_model.set_initial_value(settings["initial_time"], initial_values)
                frame = pysd_model.run(
                    return_columns=[v.py_name for v in columns],
                    initial_condition="current",
                    final_time=settings["final_time"],
                    time_step=settings["time_step"],
                    saveper=settings["saveper"],
                    flatten_output=False,
                    progress=progress,
                )
        except (FloatingPointError, ZeroDivisionError, KeyError, ValueError, TypeError) as error:
            raise ModelError(f"{self.path.name}: the run failed: {error}") from error
        times = np.asarray(frame.index, dtype=float)
        over_time = {v: frame_column(frame, v) for v in columns}
        once = {
            v: self._as_dataarray(getattr(pysd_model.components, v.py_name)(), v).values.astype(float)
            for v in constant_columns
        }
        return times, over_time, once

    def _finish(self, times, over_time, once, settings, resolved, layers, compiled, runs=None) -> xr.Dataset:
        from .indicators import add_indicators, indicators_apply
        from .outputs import build_dataset

        dataset = build_dataset(
            self,
            times,
            over_time,
            once,
            settings=settings,
            scenario=resolved,
            sources=layers.sources,
            engine=_engine_label(compiled),
            runs=runs,
        )
        return add_indicators(dataset) if indicators_apply(dataset) else dataset

    def _select(self, return_columns, time_varying: set[str]) -> tuple[list[Variable], list[Variable]]:
        """Variables saved over time, and constants saved once, for ``return_columns``."""
        if return_columns is None:
            chosen = [v for v in self.variables.values() if v.name not in CONTROL_VARIABLES and not v.is_lookup]
        else:
            if isinstance(return_columns, str):
                return_columns = [return_columns]
            chosen = [self.variable(name, where="return_columns") for name in return_columns]
            lookups = [v.name for v in chosen if v.is_lookup]
            if lookups:
                raise ModelError(f"return_columns: {lookups} are lookup tables, not variables with values")
        over_time = [v for v in chosen if not v.is_constant or canonical(v.name) in time_varying]
        once = [v for v in chosen if v.is_constant and canonical(v.name) not in time_varying]
        return over_time, once


def _check_steps(settings: dict) -> None:
    """TIME STEP divides SAVEPER and the horizon, or the saved times would not be those the attrs state."""
    step, saveper = settings["time_step"], settings["saveper"]
    initial, final = settings["initial_time"], settings["final_time"]
    for span, what, consequence in (
            (saveper, f"SAVEPER {saveper:g}", "saved values would fall between steps"),
            (final - initial, f"the horizon {initial:g}-{final:g} ({final - initial:g} years)",
             "the run would not end at FINAL TIME")):
        ratio = span / step
        if not math.isfinite(ratio):
            continue  # more steps than a float counts: the size check refuses the run, saying what to change
        if abs(ratio - round(ratio)) > 1e-9 * max(1.0, ratio) or round(ratio) < 1:
            fitting = span / max(1, math.ceil(ratio))
            raise ModelError(f"time_step {step:g} does not divide {what}: {consequence}; "
                             f"choose a time step that divides it, e.g. {fitting:g}")


def _explicit_settings(time_step, final_time, saveper) -> dict[str, float]:
    """The control variables a caller sets, checked."""
    explicit = {}
    for key, value in (("time_step", time_step), ("final_time", final_time), ("saveper", saveper)):
        if value is not None:
            if not np.isfinite(value) or value <= 0:
                raise ModelError(f"{key} must be a positive number, got {value!r}")
            explicit[key] = float(value)
    return explicit


def _by_scenario(dataset: xr.Dataset, scenarios: list, layers: list, run_coord) -> xr.Dataset:
    """A batch of several scenarios' runs, one after another along ``run``, as a ``scenario`` dim."""
    from .paths import repo_relative

    names = [s.name if s is not None else "none" for s in scenarios]
    if len(set(names)) != len(names):
        raise ModelError(f"run_batch: scenario names repeat: {names}")
    runs = len(run_coord)
    pieces = [dataset.isel(run=slice(i * runs, (i + 1) * runs)).assign_coords(run=run_coord)
              for i in range(len(names))]
    combined = xr.concat(pieces, dim=xr.Variable("scenario", names), combine_attrs="override", coords="minimal",
                         compat="override")
    combined = combined.assign_coords(scenario_title=(
        "scenario", [s.title if s is not None else "the model's own values" for s in scenarios],
        {"long_name": "scenario title"}))
    attrs = {k: v for k, v in dataset.attrs.items() if k not in ("scenario", "scenario_file", "parameter_sources")}
    attrs["title"] = "migsd scenarios"
    attrs["scenario_files"] = "; ".join(
        repo_relative(s.path) if s is not None else "" for s in scenarios)
    from .outputs import scenario_digests

    attrs["scenario_sha256"] = scenario_digests(scenarios)
    attrs["parameter_sources"] = " | ".join(
        "; ".join(repo_relative(Path(s)) if os.path.exists(s) else s for s in layer.sources) for layer in layers)
    combined.attrs = attrs
    return combined


def _mark_failed(dataset: xr.Dataset, failure: np.ndarray) -> xr.Dataset:
    """``failed`` and ``failure`` coordinates over the runs (and scenarios) of a batch."""
    dims = ("run",) if failure.ndim == 1 else ("scenario", "run")
    return dataset.assign_coords(
        failed=(dims, failure != "", {"long_name": "run failed: its values turned non-finite (NaN or infinite)"}),
        failure=(dims, failure.astype(str), {"long_name": "why the run failed (empty: it did not)"}),
    )


def _batch_inputs_of(params: xr.Dataset | None, run: int, run_coord) -> list[str]:
    """One run's values of a run_batch params Dataset, for a failure message."""
    if params is None:
        return []
    lines = []
    for name, array in params.data_vars.items():
        values = array.isel(run=run) if "run" in array.dims else array
        numbers = np.unique(np.asarray(values.values, dtype=float))
        shown = f"{numbers[0]:g}" if numbers.size == 1 else "[" + ", ".join(
            f"{v:g}" for v in np.asarray(values.values, dtype=float).ravel()) + "]"
        lines.append(f"'{name}' = {shown} (run_batch params, run {run_coord[run]})")
    return lines


def _first_saved_non_finite(model, times, over_time: dict, once: dict):
    """The first non-finite saved value of a pysd run (a Breakdown, inexact), or ``False`` where all are finite."""
    from .engine.nonfinite import Breakdown

    for variable, values in once.items():
        values = np.asarray(values, dtype=float)
        if not np.isfinite(values).all():
            return _saved_breakdown(model, variable, values, float(times[0]), Breakdown)
    first = None
    for variable, values in over_time.items():
        values = np.asarray(values, dtype=float)
        broken = ~np.isfinite(values.reshape(len(times), -1)).all(axis=1)
        if broken.any() and (first is None or int(np.argmax(broken)) < first[0]):
            first = (int(np.argmax(broken)), variable, values)
    if first is None:
        return False
    step, variable, values = first
    return _saved_breakdown(model, variable, values[step], float(times[step]), Breakdown)


def _saved_breakdown(model, variable, values, time, Breakdown):
    index = tuple(np.argwhere(~np.isfinite(values))[0]) if values.ndim else ()
    elements = tuple(model.subscripts[s][int(i)] for s, i in zip(variable.subscripts, index))
    return Breakdown(variable.name, elements, time, float(values[index]), 1, exact=False)


#: Values of ``engine=``: the batched engine's backends, the engine choosing its backend, and pysd.
ENGINES = ("auto", "compiled", "numpy", "batched", "pysd")


def _backend(engine: str) -> str:
    """The batched engine's backend for an ``engine=`` value."""
    return engine if engine in ("compiled", "numpy") else "auto"


def _engine_label(compiled) -> str:
    if compiled is None:
        import pysd

        return f"pysd {pysd.__version__}"
    from .engine.compiler import ENGINE_VERSION

    backend = {"compiled": ", compiled", "numpy": ", numpy"}.get(compiled.last_backend, "")
    return f"migsd batched engine {ENGINE_VERSION} (Euler{backend})"


def _limits(value) -> tuple[float, float]:
    """The [min, max] of a units field ('Dmnl [0,1]', 'Dmnl [0,1,0.1]'); infinite where not declared."""
    low, high = (value[:2] if isinstance(value, tuple) and len(value) in (2, 3) else (None, None))
    low = float(low) if low is not None and np.isfinite(low) else float("-inf")
    high = float(high) if high is not None and np.isfinite(high) else float("inf")
    return low, high


def _step(value) -> float | None:
    """The step of a units field's ``[min,max,step]``; ``None`` where absent or not positive."""
    if isinstance(value, tuple) and len(value) == 3 and value[2] is not None and np.isfinite(value[2]):
        return float(value[2]) if value[2] > 0 else None
    return None


def frame_column(frame: pd.DataFrame, variable: Variable) -> np.ndarray:
    """Values of one pysd output column stacked over time, subscript dims last."""
    cells = frame[variable.py_name].to_list()
    if cells and isinstance(cells[0], xr.DataArray):
        order = list(variable.subscripts)
        return np.stack([cell.transpose(*order).values for cell in cells]).astype(float)
    return np.asarray(cells, dtype=float)
