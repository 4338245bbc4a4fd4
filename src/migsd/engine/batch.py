"""Drive the generated engine over chunks of runs and collect the saved values.

Inputs are checked before any time step: every batch parameter must be a constant
(or, for initial values, a stock) of the .mdl, with the run dim and only that
variable's subscript dims, finite numbers, and elements that exist.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import xarray as xr

from ..errors import ScenarioError, SizeError
from ..names import canonical, did_you_mean
from ..parameters import ALL, Points, _fill_values
from .codegen import variable_kinds

#: Default number of runs integrated together; large enough to amortise Python's
#: per-operation cost, small enough that every intermediate array stays in cache.
DEFAULT_CHUNK = 1000


def simulation_times(settings: dict[str, float]) -> tuple[list[float], list[bool], np.ndarray]:
    """Every integration time, whether it is saved, and the saved times, as pysd steps them."""
    times, save, saved = _simulation_times(*(float(settings[k]) for k in ("initial_time", "final_time", "time_step",
                                                                            "saveper")))
    return list(times), list(save), saved.copy()


@functools.lru_cache(maxsize=64)
def _simulation_times(start: float, final: float, dt: float, saveper: float):
    # stepped in Python as pysd does, so the times match it to the last bit; a run asks again with the same
    # four numbers, which is why the answer is kept
    precision = dt * 1e-5
    times, now = [], start
    while now + precision < final:
        times.append(now)
        now = now + dt
    times.append(now)
    save = []
    for now in times:
        delay = now - start
        save.append(bool(delay % saveper < precision or -delay % saveper < precision))
    digits = -int(np.log10(precision))
    saved = np.round(np.asarray([t for t, s in zip(times, save) if s]), digits)
    return tuple(times), tuple(save), saved


def base_inputs(model, layers) -> tuple[dict, dict]:
    """Engine inputs shared by every run: constants (arrays or points over time) and initial stocks."""
    values: dict = {}
    for key, entries in layers.values.items():
        variable = model.variables[key]
        default = model.defaults[key]
        knots = sorted({t for v in entries.values() if isinstance(v, Points) for t in v.times})
        if not knots:
            values[variable.py_name] = _fill_values(default, entries, None)[None]
        else:
            frames = [_fill_values(default, entries, t) for t in knots]
            values[variable.py_name] = (np.asarray(knots), np.stack(frames, axis=-1)[None])
    initial: dict = {}
    for key, entries in layers.initial.items():
        variable = model.variables[key]
        shape = tuple(len(model.subscripts[s]) for s in variable.subscripts)
        given = np.zeros(shape)
        mask = np.zeros(shape, dtype=bool)
        for element_key, number in entries.items():
            index = ... if element_key == ALL else _index(model, variable, element_key)
            given[index] = number
            mask[index] = True
        initial[variable.py_name] = (given[None], mask)
    return values, initial


def _index(model, variable, elements: tuple[str, ...]) -> tuple[int, ...]:
    return tuple(model.subscripts[s].index(e) for s, e in zip(variable.subscripts, elements))


def batch_inputs(model, params: xr.Dataset, values: dict, initial: dict) -> int:
    """Merge a Dataset of per-run parameters into the engine inputs; returns the number of runs."""
    if not isinstance(params, xr.Dataset):
        raise ScenarioError(f"params must be an xarray.Dataset over a 'run' dim, got {type(params).__name__}")
    runs = params.sizes.get("run")
    if runs is None:
        raise ScenarioError(f"params has no 'run' dim (dims: {dict(params.sizes)}); put one value per run along 'run'")
    if runs == 0:
        raise ScenarioError("params has an empty 'run' dim; give at least one run")
    for name, array in params.data_vars.items():
        where = f"params['{name}']"
        variable, elements = _parse(model, str(name), where)
        data = _checked_values(model, variable, elements, array, where)
        target = initial if variable.is_stock else values
        ident = variable.py_name
        shape = tuple(len(model.subscripts[s]) for s in variable.subscripts)
        index = ... if elements is None else _index(model, variable, elements)
        if variable.is_stock:
            given, mask = target.get(ident, (np.zeros((1,) + shape), np.zeros(shape, dtype=bool)))
            given = np.array(np.broadcast_to(given, (runs,) + shape))
            given[(slice(None),) + (index if isinstance(index, tuple) else (index,))] = data
            mask = mask.copy()
            mask[index] = True
            target[ident] = (given, mask)
            continue
        current = target.get(ident)
        if current is None:
            current = model.defaults[canonical(variable.name)].values.astype(float)[None]
        if isinstance(current, tuple) and elements is None:
            current = current[1][..., 0]  # a whole variable given per run no longer varies over time
        if isinstance(current, tuple):
            knots, frames = current
            frames = np.array(np.broadcast_to(frames, (runs,) + frames.shape[1:]))
            where_index = (slice(None),) + (index if isinstance(index, tuple) else (index,))
            frames[where_index] = data[..., None]
            # once no element is left varying over time, the variable is a plain constant again
            target[ident] = frames[..., 0] if np.all(frames == frames[..., :1]) else (knots, frames)
        else:
            current = np.array(np.broadcast_to(current, (runs,) + shape))
            current[(slice(None),) + (index if isinstance(index, tuple) else (index,))] = data
            target[ident] = current
    return runs


def forced_inputs(model, force, where: str = "force", runs: int | None = None,
                  start: float | None = None) -> tuple[dict, dict]:
    """Values to hold variables at: ({constant: value} for the parameter layers, {identifier: (values, mask[, start])}).

    Keys are .mdl names, optionally with one element per subscript (``"Restrictiveness[North]"``);
    values are finite numbers or, with ``runs``, DataArrays over ``run`` (one number per
    run). With ``start``, variables computed by equations are held from that time on.
    """
    params, forced = {}, {}
    for key, value in (force or {}).items():
        variable, elements = _parse(model, str(key), f"{where}: '{key}'", equations=True)
        per_run = isinstance(value, xr.DataArray)
        if variable.is_constant and not per_run:
            params[key] = value
            continue
        if per_run:
            if runs is None or value.dims != ("run",) or value.sizes["run"] != runs:
                raise ScenarioError(f"{where}: '{key}' must be held at a number"
                                    + (f", or at a DataArray over 'run' of length {runs}" if runs else ""))
            number = np.asarray(value.values, dtype=float)
            if not np.all(np.isfinite(number)):
                raise ScenarioError(f"{where}: '{key}' must be held at finite numbers")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ScenarioError(f"{where}: '{key}' must be held at a finite number, got {value!r}")
        else:
            number = float(value)
        if variable.is_constant:
            raise ScenarioError(f"{where}: '{key}' is a constant; give one value per run in params, not force")
        shape = tuple(len(model.subscripts[s]) for s in variable.subscripts)
        values, mask = forced.get(variable.py_name, (np.zeros((1,) + shape), np.zeros(shape, dtype=bool)))[:2]
        if per_run and values.shape[0] != runs:
            values = np.array(np.broadcast_to(values, (runs,) + shape))
        index = () if elements is None else _index(model, variable, elements)
        if per_run:
            values[(slice(None),) + index] = number.reshape((runs,) + (1,) * (len(shape) - len(index)))
        else:
            values[(slice(None),) + index] = number
        mask[index] = True
        forced[variable.py_name] = (values, mask) if start is None else (values, mask, float(start))
    return params, forced


def _parse(model, key: str, where: str, equations: bool = False):
    from ..parameters import _KEY

    match = _KEY.match(key)
    if not match:
        raise ScenarioError(f"{where}: '{key}' is not a .mdl name (write 'name' or 'name[Element,...]')")
    name = match.group("name")
    candidates = [v.name for v in model.variables.values()]
    if canonical(name) not in model.variables:
        raise ScenarioError(f"{where}: '{name}' is not a variable of {model.path.name}." + did_you_mean(name, candidates))
    variable = model.variables[canonical(name)]
    if not (variable.is_constant or variable.is_stock or (equations and not variable.is_lookup)):
        raise ScenarioError(
            f"{where}: '{variable.name}' is computed by an equation ({variable.kind.lower()}); "
            "a batch sets constants, or initial values of stocks"
        )
    subs = match.group("subs")
    elements = None if subs is None else tuple(s.strip() for s in subs.split(","))
    if elements is not None:
        if len(elements) != len(variable.subscripts):
            raise ScenarioError(
                f"{where}: {len(elements)} subscript(s) given; '{variable.name}' is subscripted by "
                f"[{', '.join(variable.subscripts)}]"
            )
        for element, subscript in zip(elements, variable.subscripts):
            valid = model.subscripts[subscript]
            if element not in valid:
                raise ScenarioError(
                    f"{where}: '{element}' is not an element of {subscript} ({', '.join(valid)})."
                    + did_you_mean(element, valid)
                )
    return variable, elements


def _checked_values(model, variable, elements, array: xr.DataArray, where: str) -> np.ndarray:
    """Values as (run, *subscript dims) in the variable's order, broadcast where a dim is absent."""
    expected = () if elements is not None else variable.dims
    extra = [d for d in array.dims if d != "run" and d not in expected]
    if extra:
        raise ScenarioError(
            f"{where}: unexpected dim(s) {extra}; '{variable.name}' takes 'run'"
            + (f" and its subscript dims {list(expected)}" if expected else " only")
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ScenarioError(f"{where}: values must be real numbers, got dtype {array.dtype}")
    for dim in array.dims:
        if dim == "run":
            continue
        subscript = variable.subscripts[variable.dims.index(dim)]
        valid = model.subscripts[subscript]
        if dim in array.coords:
            labels = [str(x) for x in array[dim].values]
            if labels != valid:
                raise ScenarioError(f"{where}: '{dim}' must be labelled {valid} in that order, got {labels}")
        elif array.sizes[dim] != len(valid):
            raise ScenarioError(f"{where}: '{dim}' has length {array.sizes[dim]}; {subscript} has {len(valid)} elements")
    values = np.asarray(array.transpose(*[d for d in ("run", *expected) if d in array.dims]).values, dtype=float)
    if not np.all(np.isfinite(values)):
        bad = int(np.sum(~np.isfinite(values)))
        raise ScenarioError(f"{where}: {bad} value(s) are NaN or infinite; every run needs a finite number")
    low, high = variable.limits
    outside = (values < low) | (values > high)
    if outside.any():
        from ..parameters import check_declared_range

        first = np.unravel_index(int(np.argmax(outside)), values.shape)
        run = f", run {first[0]}" if "run" in array.dims else ""
        key = str(array.name) if elements is not None or not variable.subscripts else variable.name
        check_declared_range(model, variable, float(values[first]), key=key,
                             where=f"{where}{run} ({int(outside.sum())} value(s) outside)")
    shape = tuple(len(model.subscripts[variable.subscripts[variable.dims.index(d)]]) for d in expected)
    if "run" not in array.dims:
        values = values[None]
    for position, dim in enumerate(expected):
        if dim not in array.dims:
            values = np.expand_dims(values, 1 + position)
    return np.broadcast_to(values, (values.shape[0],) + shape)


def integrate(engine, values: dict, initial: dict, runs: int, settings: dict, wanted: dict[str, tuple],
              *, chunk_size: int | None = None, progress: bool = False, workers: int = 1,
              forced: dict | None = None, what: str = "the batch",
              backend: str = "auto") -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Run the engine over ``runs`` runs in chunks; ``wanted`` maps identifiers to their shapes.

    ``forced`` holds variables computed by equations at given values (identifier ->
    (values, mask of the elements held)). With ``workers`` > 1, chunks are
    integrated in that many processes at once. Returns the saved times, the saved
    values and, per run, whether it stayed finite (every stock at the end and every
    saved value); :func:`migsd.engine.nonfinite.locate` finds where a run broke.
    A batch whose arrays would not fit (:func:`check_size`) is refused before anything is allocated.

    ``backend`` is ``'compiled'`` (the numba kernel, the runs of a chunk split over
    threads, ``workers`` ignored; compiled on first use), ``'numpy'`` (the vectorised
    module, the reference) or ``'auto'`` (:func:`choose_backend`).
    """
    forced = forced or {}
    frozen = frozenset(forced)
    series = frozenset(k for k, v in values.items() if isinstance(v, tuple))
    keep = frozenset(wanted)  # a time step computes only what these and the states need
    kinds = variable_kinds(engine.compiled, series)
    chunk = max(1, int(chunk_size or min(DEFAULT_CHUNK, math.ceil(runs / max(1, workers)))))
    working = sum(math.prod(n.shape) for n in engine.nodes.values()) + sum(
        math.prod(s.shape) for s in engine.compiled.states.values())
    check_size(settings, runs,
               saved_cells=sum(math.prod(shape) for i, shape in wanted.items() if kinds[i] != "constant"),
               once_cells=sum(math.prod(shape) for i, shape in wanted.items() if kinds[i] == "constant"),
               chunk=min(chunk, runs) * max(1, workers), working_cells=working, what=what)
    times, save, saved = simulation_times(settings)
    results = {}
    for ident, shape in wanted.items():
        if kinds[ident] == "constant":
            results[ident] = np.empty((runs,) + shape)
        else:
            results[ident] = np.empty((runs, len(saved)) + shape)
    results[FINITE] = np.empty(runs)
    chunks = [(start, min(runs, start + chunk)) for start in range(0, runs, chunk)]
    consts = {k: float(settings[k]) for k in ("initial_time", "final_time", "time_step", "saveper")}

    def inputs(start, stop):
        P = {k: _rows(v, start, stop) for k, v in values.items()}
        I = {k: (_rows(v[0], start, stop), v[1]) for k, v in initial.items()}
        return P, I

    def held(start, stop):
        return {k: (_rows(v[0], start, stop),) + tuple(v[1:]) for k, v in forced.items()}

    kernel = _kernel_for(engine, backend)
    engine.last_backend = "numpy" if kernel is None else "compiled"
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=runs, desc="runs", unit="run")
    try:
        if kernel is not None:
            from .numba_codegen import run_kernel

            for start, stop in chunks:
                P, I = inputs(start, stop)
                out = {k: v[start:stop] for k, v in results.items() if k != FINITE}
                with np.errstate(all="ignore"):
                    results[FINITE][start:stop] = run_kernel(kernel, engine.compiled, P, I, held(start, stop),
                                                             stop - start, times, save, consts, out)
                if bar is not None:
                    bar.update(stop - start)
        elif workers > 1 and len(chunks) > 1:
            _integrate_in_processes(engine, (series, frozen, keep), chunks, inputs, held, times, save, consts,
                                    results, workers, bar)
        else:
            simulate = engine.module(series, frozen, keep)["simulate"]
            for start, stop in chunks:
                P, I = inputs(start, stop)
                out = {k: v[start:stop] for k, v in results.items()}
                with np.errstate(all="ignore"):
                    simulate(P, I, held(start, stop), times, save, out, consts, stop - start)
                if bar is not None:
                    bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    finite = results.pop(FINITE) == 1
    for array in results.values():
        finite &= np.isfinite(array).reshape(runs, -1).all(axis=1)
    return saved, results, finite


BACKENDS = ("auto", "compiled", "numpy")


def choose_backend(engine, backend: str = "auto") -> str:
    """'compiled' or 'numpy': the backend ``backend`` asks for; 'auto' is compiled when that costs no compile.

    The kernel of a model compiles once per model content (minutes for a large
    model, seconds for a small one) and is kept in the cache, so ``'auto'`` picks
    it where it is already compiled (in this process, or by any earlier one into
    ``$MIGSD_CACHE_DIR``) and the numpy engine otherwise, so that no run waits
    on a compile it did not ask for. ``engine="compiled"`` (or
    :meth:`migsd.Model.compile`) compiles it; from then on ``'auto'`` uses it.
    A model whose constructs the kernel refuses runs on numpy.
    """
    if backend not in BACKENDS:
        raise ScenarioError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    return "compiled" if engine.kernel_ready() else "numpy"


def _kernel_for(engine, backend: str):
    """The numba kernel to run, or ``None`` for the numpy module."""
    if choose_backend(engine, backend) == "numpy":
        return None
    from .numba_codegen import CompiledUnsupported

    try:
        return engine.kernel()
    except CompiledUnsupported:
        if backend == "compiled":
            raise
        return None


#: The key under which the generated ``simulate`` reports, per run, whether its stocks ended finite.
FINITE = "__finite__"
#: Share of the memory available that one run or batch may take for its arrays (``MIGSD_MEMORY_SHARE``).
DEFAULT_MEMORY_SHARE = 0.5


def memory_share() -> float:
    """The share of available memory a run may use: ``$MIGSD_MEMORY_SHARE`` (0 < share <= 1), else 0.5."""
    text = os.environ.get("MIGSD_MEMORY_SHARE")
    if text is None:
        return DEFAULT_MEMORY_SHARE
    try:
        share = float(text)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:
        raise SizeError(f"MIGSD_MEMORY_SHARE={text!r}: give a share of memory between 0 and 1, e.g. 0.5")
    return share


def available_memory() -> float | None:
    """Bytes of memory available now (Linux's MemAvailable, else free physical pages); ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as stream:
            for line in stream:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_size(settings: dict, runs: int, *, saved_cells: int, once_cells: int = 0, chunk: int = 1,
               working_cells: int = 0, what: str = "the run") -> float:
    """Bytes a run or batch needs for its arrays; a SizeError if over :func:`memory_share` of what is available.

    Counted before anything is allocated: the saved values (runs x saved times x
    cells), the working arrays of the runs integrated together, and the list of
    time steps. Works in floats, so an absurd horizon (``final_time=1e308``) is
    refused at once rather than stepped through.
    """
    start, final, dt, saveper = (float(settings[k]) for k in ("initial_time", "final_time", "time_step", "saveper"))
    horizon = final - start
    steps = math.floor(horizon / dt + 1e-5) + 1.0 if math.isfinite(horizon / dt) else math.inf
    saved = min(steps, math.floor(horizon / max(saveper, dt) + 1e-5) + 1.0) if math.isfinite(steps) else math.inf
    # a step costs a Python float and a flag in the time lists (about 60 bytes); working arrays: now, next, temporaries
    needed = 8.0 * (runs * saved * saved_cells + runs * once_cells + 3 * chunk * working_cells) + 60.0 * steps
    available = available_memory()
    if available is None:
        return needed
    share = memory_share()
    if needed <= share * available:
        return needed
    size = f"about {_bytes(needed)}" if math.isfinite(needed) else "more memory than any machine has"
    raise SizeError(
        f"{what} would need {size} for its arrays ({runs:,} run(s) x {saved:.4g} saved times x "
        f"{saved_cells:,} cells of return_columns, {steps:.4g} time steps), more than {share:.0%} of the "
        f"{_bytes(available)} of memory available (MIGSD_MEMORY_SHARE={share:g}); not run. Make it smaller: "
        f"a longer saveper (now {saveper:g}), fewer return_columns, a smaller chunk_size (now {chunk:,} run(s) at once) "
        f"or an earlier final_time (now {final:g})"
    )


def _bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB"


def _integrate_in_processes(engine, variant, chunks, inputs, forced, times, save, consts, results, workers,
                            bar) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    shapes = {k: v.shape[1:] for k, v in results.items()}
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_start_worker, initargs=(engine.compiled,)
    ) as pool:
        pending = {}
        for start, stop in chunks:
            P, I = inputs(start, stop)
            future = pool.submit(_integrate_chunk, variant, P, I, forced(start, stop), times, save, consts, stop - start,
                                 shapes)
            pending[future] = (start, stop)
        for future in as_completed(pending):
            start, stop = pending[future]
            for ident, values in future.result().items():
                results[ident][start:stop] = values
            if bar is not None:
                bar.update(stop - start)


_WORKER_ENGINE = None


def _start_worker(compiled) -> None:
    global _WORKER_ENGINE
    from .codegen import Engine

    _WORKER_ENGINE = Engine(compiled)


def _integrate_chunk(variant, P, I, F, times, save, consts, rows, shapes) -> dict[str, np.ndarray]:
    simulate = _WORKER_ENGINE.module(*variant)["simulate"]
    out = {k: np.empty((rows,) + shape) for k, shape in shapes.items()}
    with np.errstate(all="ignore"):
        simulate(P, I, F, times, save, out, consts, rows)
    return out


def kinds_for(engine, values: dict) -> dict[str, str]:
    """Which variables vary over time for these inputs ('constant', 'dynamic', 'series')."""
    return variable_kinds(engine.compiled, frozenset(k for k, v in values.items() if isinstance(v, tuple)))


def _rows(value, start: int, stop: int):
    if isinstance(value, tuple):
        knots, frames = value
        return knots, (frames[start:stop] if frames.shape[0] > 1 else frames)
    return value[start:stop] if value.shape[0] > 1 else value


def stack_runs(model, parts: list[tuple[dict, dict, int]]) -> tuple[dict, dict, int]:
    """Engine inputs of several batches as one batch, their runs one after another.

    Each part is ``(values, initial, runs)`` as :func:`base_inputs` and
    :func:`batch_inputs` leave them. Constants that vary over time in any part do
    so in all, on the union of the parts' times (the same line to rounding: points are linear between
    times). Initial values may differ between parts only in value, not in which
    stocks (or elements) they set, because unset ones are computed by the model.
    """
    total = sum(runs for _, _, runs in parts)
    values: dict = {}
    for ident in sorted({k for part_values, _, _ in parts for k in part_values}):
        variable = next(v for v in model.variables.values() if v.py_name == ident)
        default = model.defaults[canonical(variable.name)].values.astype(float)[None]
        given = [(part_values.get(ident, default), runs) for part_values, _, runs in parts]
        series = [value for value, _ in given if isinstance(value, tuple)]
        if not series:
            values[ident] = np.concatenate([np.broadcast_to(v, (runs,) + v.shape[1:]) for v, runs in given])
            continue
        knots = np.unique(np.concatenate([k for k, _ in series]))
        frames = []
        for value, runs in given:
            if isinstance(value, tuple):
                own_knots, own = value
                on_union = np.apply_along_axis(lambda f: np.interp(knots, own_knots, f), -1, own)
            else:
                on_union = np.repeat(value[..., None], len(knots), axis=-1)
            frames.append(np.broadcast_to(on_union, (runs,) + on_union.shape[1:]))
        values[ident] = (knots, np.concatenate(frames))
    initial: dict = {}
    for ident in sorted({k for _, part_initial, _ in parts for k in part_initial}):
        entries = [(part_initial.get(ident), runs) for _, part_initial, runs in parts]
        masks = [entry[1] if entry is not None else None for entry, _ in entries]
        if any(m is None or not np.array_equal(m, masks[0]) for m in masks):
            raise ScenarioError(
                f"the scenarios set initial values of different elements of stock '{ident}'; "
                f"run them in separate batches"
            )
        initial[ident] = (np.concatenate([np.broadcast_to(given, (runs,) + given.shape[1:])
                                          for (given, _), runs in entries]), masks[0])
    return values, initial, total
