"""Run a sensitivity problem's sample through an evaluator into a durable zarr store.

The store holds every output over (scenario, run, ...), the sample (``param <label>``)
and a manifest: ``status`` per (scenario, run) (NaN pending, 1 done, -1 failed) and
``seconds``; failed chunks add a line with their runs and error to ``errors.jsonl``
in the store. Results are written chunk by chunk as they finish, outputs before
status, so an interruption (Ctrl-C, a killed worker or process) loses no finished
run, and ``resume`` computes only what is missing. Evaluators:

- ``"inprocess"``: the batched engine in this process;
- ``"processes"``: local processes, each integrating whole chunks;
- ``"dask"``: a dask.distributed cluster (a LocalCluster by default, or ``scheduler``
  for an existing one), so the same sweep runs on many machines.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import MigsdError, StoreError
from ..indicators import YIELD_VARIABLE
from ..paths import repo_relative
from .sensitivity import NO_SCENARIO, Problem, batch_params

EVALUATORS = ("inprocess", "processes", "dask")


@dataclass(frozen=True)
class ChunkSpec:
    """Everything a worker needs to integrate one chunk, picklable."""

    model_path: str
    calibration: str | None
    scenario: str
    scenario_index: int
    start: int
    stop: int
    params: xr.Dataset
    outputs: tuple[str, ...]
    final_time: float | None


_MODELS: dict = {}


def run_chunk(spec: ChunkSpec):
    """Integrate one chunk; returns (scenario index, start, stop, outputs or None, seconds, error or None).

    The error is text when the whole chunk failed, or ``{run: reason}`` for the runs
    that turned non-finite (their outputs are NaN; the others' are kept).
    """
    from ..model import load_model

    began = time.perf_counter()
    key = (spec.model_path, spec.calibration)
    if key not in _MODELS:
        _MODELS[key] = load_model(spec.model_path, calibration=spec.calibration)
    model = _MODELS[key]
    columns = [o for o in spec.outputs if o != YIELD_VARIABLE]
    if YIELD_VARIABLE in spec.outputs and "Restrictiveness" not in columns:
        columns.append("Restrictiveness")
    options = {"final_time": spec.final_time} if spec.final_time is not None else {}
    try:
        scenario = None if spec.scenario == NO_SCENARIO else spec.scenario
        result = model.run_batch(spec.params, scenario=scenario, return_columns=columns, **options)
    except MigsdError as error:
        return spec.scenario_index, spec.start, spec.stop, None, time.perf_counter() - began, str(error)
    failed = {spec.start + int(k): str(result["failure"].values[k]) for k in np.flatnonzero(result["failed"].values)}
    kept = result[[o for o in spec.outputs if o in result]].drop_vars(["run", "failed", "failure"]).load()
    return spec.scenario_index, spec.start, spec.stop, kept, time.perf_counter() - began, failed or None


def problem_digest(problem: Problem) -> str:
    """What a stored sweep must match to be resumed: the problem file's content and the sample size."""
    import hashlib

    text = Path(problem.source).read_bytes() if Path(problem.source).is_file() else problem.title.encode()
    return hashlib.sha256(text + f"|{problem.samples}|{problem.seed}|{problem.method}".encode()).hexdigest()[:20]


def sweep_inputs(model, problem: Problem) -> dict[str, list[str]]:
    """Every file a sweep's runs depend on, by what it is: ``{label: [repo-relative path, sha256]}``."""
    from ..outputs import file_sha256
    from ..scenarios import resolve_scenario

    inputs = {"model file": [repo_relative(model.path), model.sha256]}
    calibration = getattr(model, "calibration", None)
    inputs["calibration file"] = ([repo_relative(calibration), file_sha256(calibration)] if calibration is not None
                                  else ["none", ""])
    for name in problem.scenarios:
        if name != NO_SCENARIO:
            path = resolve_scenario(name).path
            inputs[f"scenario file of '{name}'"] = [repo_relative(path), file_sha256(path)]
    if Path(problem.source).is_file():
        inputs["problem file"] = [repo_relative(problem.source), file_sha256(problem.source)]
    return inputs


def sweep_provenance(model, problem: Problem) -> dict[str, str]:
    """The store's attrs naming its inputs: the same keys as a run's netCDF, plus ``inputs`` (JSON)."""
    from ..outputs import provenance
    from ..scenarios import resolve_scenario

    scenarios = [resolve_scenario(name) for name in problem.scenarios if name != NO_SCENARIO]
    attrs = provenance(model, scenarios)
    attrs["inputs"] = json.dumps(sweep_inputs(model, problem))
    return attrs


def changed_inputs(stored: xr.Dataset, model, problem: Problem) -> list[str]:
    """What differs between the files a store was run from and those of ``model`` and ``problem`` now."""
    if "inputs" not in stored.attrs:
        return ["the store records no input digests (written by an older migsd)"]
    then = json.loads(stored.attrs["inputs"])
    now = sweep_inputs(model, problem)
    changes = []
    for label in list(then) + [k for k in now if k not in then]:
        before, after = then.get(label), now.get(label)
        if before == after:
            continue
        if before is None:
            changes.append(f"{label} {after[0]} was not an input of the stored sweep")
        elif after is None:
            changes.append(f"{label} {before[0]} is no longer an input")
        elif before[0] != after[0]:
            changes.append(f"{label} was {before[0]}, now {after[0]}")
        else:
            changes.append(f"{label} {after[0]} changed (sha256 {before[1][:12]} stored, {after[1][:12]} now)")
    return changes


def _output_names(dataset: xr.Dataset) -> list[str]:
    return sorted(n for n in dataset.data_vars if n not in ("status", "seconds") and not n.startswith("param "))


def _chunk_digest(values: xr.Dataset, names) -> str:
    """sha256 of a chunk's outputs, dims ordered (scenario, run, ...) as in the store, as float64."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(values[name].values, dtype=np.float64).tobytes())
    return digest.hexdigest()


def _chunk_records(store: Path) -> dict[tuple[int, int, int], str]:
    """The last digest written for each (scenario index, start, stop); a line cut short by a kill is ignored."""
    records = {}
    path = store / "chunks.jsonl"
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            records[(int(entry["scenario"]), int(entry["start"]), int(entry["stop"]))] = str(entry["sha256"])
        except (ValueError, KeyError, TypeError):
            continue
    return records


def _ranges(mask: np.ndarray) -> list[str]:
    """Runs where ``mask`` holds, as 'runs 3-7' pieces."""
    pieces, start = [], None
    for index, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            pieces.append(f"run {start}" if index - 1 == start else f"runs {start}-{index - 1}")
            start = None
    return pieces


@dataclass
class StoreState:
    """What a sweep store holds: its runs pending, failed, and chunks whose stored values fail their digest."""

    store: Path
    runs: int
    pending: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, list[str]] = field(default_factory=dict)
    altered: list[str] = field(default_factory=list)
    #: Per scenario index, the runs whose chunk is done and matches its digest.
    verified: np.ndarray | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return not (self.pending or self.failed or self.altered)

    def describe(self) -> str:
        parts = []
        for what, found in (("pending (never computed)", self.pending), ("failed (see errors.jsonl)", self.failed)):
            for scenario, pieces in found.items():
                parts.append(f"{scenario}: {', '.join(pieces)} {what}")
        parts += self.altered
        return "; ".join(parts)


def check_store(store: str | Path, results: xr.Dataset | None = None) -> StoreState:
    """Which runs of ``store`` are pending, failed, or in a chunk whose values no longer match their digest."""
    store = Path(store)
    results = results if results is not None else open_store(store)
    status = np.asarray(results["status"].values)
    scenarios = [str(s) for s in results["scenario"].values]
    runs = status.shape[1]
    state = StoreState(store, runs)
    for k, scenario in enumerate(scenarios):
        if np.isnan(status[k]).any():
            state.pending[scenario] = _ranges(np.isnan(status[k]))
        if (status[k] == -1).any():
            state.failed[scenario] = _ranges(status[k] == -1)
    verified = np.zeros(status.shape, dtype=bool)
    chunk = results.attrs.get("chunk_size")
    if chunk is None:
        state.altered.append(f"{store.name} records no chunk digests (written by an older migsd): "
                             "its values cannot be verified")
        state.verified = verified
        return state
    chunk = int(chunk)
    records = _chunk_records(store)
    names = _output_names(results)
    for k, scenario in enumerate(scenarios):
        for start in range(0, runs, chunk):
            stop = min(runs, start + chunk)
            if not (status[k, start:stop] == 1).all():
                continue
            expected = records.get((k, start, stop))
            where = f"{scenario}: runs {start}-{stop - 1}"
            if expected is None:
                state.altered.append(f"{where} are marked done but have no digest in chunks.jsonl")
            elif _chunk_digest(results.isel(scenario=[k], run=slice(start, stop)), names) != expected:
                state.altered.append(f"{where} do not match the digest written with them "
                                     "(a chunk file missing or altered)")
            else:
                verified[k, start:stop] = True
    state.verified = verified
    return state


def open_verified(store: str | Path, *, allow_incomplete: bool = False) -> tuple[xr.Dataset, StoreState]:
    """A sweep store opened for reading, refused unless every run is done and every chunk matches its digest.

    With ``allow_incomplete`` an incomplete store is returned with a RuntimeWarning
    saying what is missing; readers then use the runs whose ``status`` is 1.
    """
    store = Path(store)
    if not (store / ".zattrs").exists() and not (store / "zarr.json").exists():
        raise StoreError(f"{store}: not a sweep store (no zarr metadata)")
    results = open_store(store)
    if "status" not in results:
        raise StoreError(f"{store}: not a sweep store (no 'status' manifest)")
    state = check_store(store, results)
    if not state.complete:
        if not allow_incomplete:
            raise StoreError(f"{store} is incomplete: {state.describe()}. Complete it with "
                             f"'migsd sweep ... --resume --out {store}', or pass --allow-incomplete "
                             "to read only the runs that are done")
        warnings.warn(f"INCOMPLETE STORE {store}: {state.describe()}; only the runs marked done are used",
                      RuntimeWarning, stacklevel=2)
        # runs of an altered chunk are not done whatever their status says
        status = results["status"]
        results = results.assign(status=status.where(state.verified | (status != 1)))
    return results, state


def _lock_path(store: Path) -> Path:
    return store.with_name(store.name + ".lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


@contextmanager
def store_lock(store: str | Path):
    """Hold ``<store>.lock`` while writing ``store``; a second writer is refused while the first holds it.

    A lock left on this host by a process that no longer exists is reclaimed with
    a RuntimeWarning; one from another host is refused (this host cannot tell).
    """
    store = Path(store)
    lock = _lock_path(store)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    reclaimed = False
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text(encoding="utf-8"))
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                raise StoreError(f"{store} is locked by {lock}, which cannot be read; if no sweep is writing the "
                                 f"store, remove {lock}") from None
            if host == mine["host"] and not _alive(pid) and not reclaimed:
                reclaimed = True
                warnings.warn(f"{lock}: reclaimed a stale lock of pid {pid} on {host} (no such process; "
                              "that sweep was killed)", RuntimeWarning, stacklevel=3)
                lock.unlink(missing_ok=True)
                continue
            raise StoreError(f"{store} is being written by pid {pid} on {host} (since {holder.get('since', '?')}); "
                             f"wait for it to finish, or if that process is gone remove {lock}")
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump(mine, stream)
        break
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _template(model, problem: Problem, samples: xr.Dataset, probe: xr.Dataset, chunk: int) -> xr.Dataset:
    import dask.array as da

    runs = samples.sizes["run"]
    scenarios = len(problem.scenarios)
    variables = {}
    for name, values in probe.data_vars.items():
        shape = (scenarios, runs) + values.shape[1:]
        chunks = (1, chunk) + values.shape[1:]
        variables[name] = (("scenario", "run") + values.dims[1:],
                           da.full(shape, np.nan, chunks=chunks), values.attrs)
    for name in ("status", "seconds"):
        variables[name] = (("scenario", "run"), da.full((scenarios, runs), np.nan, chunks=(1, chunk)))
    for label in problem.labels:
        variables[f"param {label}"] = (("run",), samples[label].values)
    coords = {"scenario": problem.scenarios, "run": samples["run"].values}
    coords.update({d: probe[d].values for d in probe.coords if d != "run" and d in probe.dims})
    dataset = xr.Dataset(variables, coords=coords)
    dataset.attrs = {"problem": problem.title, "problem_file": problem.source, "method": problem.method,
                     "seed": problem.seed, "final_time": float(probe["time"].values[-1]) if "time" in probe else 0.0,
                     "outputs": json.dumps(problem.outputs), "model_file": repo_relative(model.path),
                     "problem_digest": problem_digest(problem), "chunk_size": int(chunk),
                     **sweep_provenance(model, problem)}
    return dataset


def open_store(store: str | Path, consolidated: bool | None = None) -> xr.Dataset:
    """A sweep's store, opened; first removing what an interrupted write left behind.

    zarr writes each file under a temporary name (``<key>.<hex>.partial``) and
    renames it when complete; a process killed in between leaves the temporary
    file, never a valid one, which zarr would then report as an unknown object.
    Only for a store no process is writing to (a finished or interrupted sweep).
    """
    for leftover in Path(store).rglob("*.partial"):
        leftover.unlink()
    with warnings.catch_warnings():
        # the manifest's own files (chunk digests, failed chunks) beside zarr's: zarr notes them as unknown
        warnings.filterwarnings("ignore", message=r"Object at (chunks|errors)\.jsonl is not recognized")
        return xr.open_zarr(store, consolidated=consolidated)


def evaluate(problem: Problem, samples: xr.Dataset, *, model, store: str | Path, evaluator: str = "inprocess",
             chunk_size: int = 256, workers: int = 2, scheduler: str | None = None, resume: bool = False,
             progress: bool = True) -> xr.Dataset:
    """Run every (scenario, run) of ``samples`` into ``store``; returns the store opened as a Dataset."""
    if evaluator not in EVALUATORS:
        raise MigsdError(f"evaluator must be one of {', '.join(EVALUATORS)}, got {evaluator!r}")
    store = Path(store)
    if not store.parent.is_dir():
        raise StoreError(f"{store}: the folder {store.parent} does not exist; create it or choose another --out")
    with store_lock(store):
        return _evaluate(problem, samples, model=model, store=store, evaluator=evaluator, chunk_size=chunk_size,
                         workers=workers, scheduler=scheduler, resume=resume, progress=progress)


def _evaluate(problem: Problem, samples: xr.Dataset, *, model, store: Path, evaluator: str, chunk_size: int,
              workers: int, scheduler: str | None, resume: bool, progress: bool) -> xr.Dataset:
    params = batch_params(model, problem, samples)
    runs = samples.sizes["run"]
    if resume and store.exists():
        opened = open_store(store)
        changes = changed_inputs(opened, model, problem)
        if changes:
            raise StoreError(f"{store} was run from other inputs; --resume would mix two sweeps in one store: "
                             + "; ".join(changes) + ". Start a new store (another --out)")
        if opened.attrs.get("problem_digest") != problem_digest(problem) or opened.sizes["run"] != runs:
            raise MigsdError(f"{store} holds another sweep ({opened.attrs.get('problem_file')}, "
                             f"{opened.sizes['run']} runs); --resume needs the same problem and sample size")
        for label in problem.labels:
            if not np.array_equal(opened[f"param {label}"].values, samples[label].values):
                raise MigsdError(f"{store}: the stored sample of '{label}' differs (another seed?); cannot resume")
        # a chunk whose values fail their digest (a file deleted or altered) is computed again
        done = check_store(store, opened).verified
        chunk_size = int(opened.attrs["chunk_size"])
    else:
        if store.exists() and not resume:
            raise MigsdError(f"{store} exists; pass --resume to complete it, or choose another --out")
        first = ChunkSpec(str(model.path), str(model.calibration) if model.calibration else None,
                          problem.scenarios[0], 0, 0, 1, params.isel(run=[0]), tuple(problem.outputs),
                          problem.final_time)
        _, _, _, probe, _, error = run_chunk(first)
        if probe is None:
            raise MigsdError(f"the first run of the sweep failed: {error}")
        probe = probe.assign_coords(run=[0])
        _template(model, problem, samples, probe, chunk_size).to_zarr(store, mode="w", compute=False, zarr_format=2)
        xr.Dataset({f"param {label}": ("run", samples[label].values) for label in problem.labels}).to_zarr(
            store, region={"run": slice(0, runs)}, mode="r+")
        done = np.zeros((len(problem.scenarios), runs), dtype=bool)
    specs = []
    for s, scenario in enumerate(problem.scenarios):
        for start in range(0, runs, chunk_size):
            stop = min(runs, start + chunk_size)
            if done[s, start:stop].all():
                continue
            specs.append(ChunkSpec(str(model.path), str(model.calibration) if model.calibration else None,
                                   scenario, s, start, stop, params.isel(run=slice(start, stop)),
                                   tuple(problem.outputs), problem.final_time))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.stop - s.start for s in specs), desc="sweep", unit="run")
    failures = []
    try:
        for outcome in _outcomes(specs, evaluator, workers, scheduler):
            failure = _write(store, outcome)
            if failure:
                failures.append(failure)
            if bar is not None:
                bar.update(outcome[2] - outcome[1])
    finally:
        if bar is not None:
            bar.close()
    result = open_store(store)
    if failures:
        import warnings

        warnings.warn(f"{len(failures)} chunk(s) of the sweep failed (see {store / 'errors.jsonl'}): "
                      f"{failures[0]}", RuntimeWarning, stacklevel=2)
    return result


def _outcomes(specs, evaluator: str, workers: int, scheduler: str | None):
    if not specs:
        return
    if evaluator == "inprocess":
        for spec in specs:
            yield run_chunk(spec)
    elif evaluator == "processes":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
            for future in as_completed([pool.submit(run_chunk, spec) for spec in specs]):
                yield future.result()
    else:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if scheduler is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(scheduler or cluster)
        try:
            futures = client.map(run_chunk, specs, pure=False)
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def exit_with_parent(parent: int, every: float = 0.2) -> None:
    """In a worker process: exit as soon as ``parent`` (the sweep) is gone.

    A pool's workers wait on a queue whose other end they hold themselves, so a
    sweep killed with SIGKILL would leave them running (and integrating) forever;
    a daemon thread notices the new parent and ends the worker.
    """
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)

    threading.Thread(target=watch, name="migsd-exit-with-parent", daemon=True).start()


def _write(store: Path, outcome) -> str | None:
    scenario_index, start, stop, values, seconds, error = outcome
    region = {"scenario": slice(scenario_index, scenario_index + 1), "run": slice(start, stop)}
    runs = stop - start
    if values is not None:
        chunk = values.expand_dims(scenario=1).transpose("scenario", "run", ...)
        chunk = chunk.drop_vars([c for c in chunk.coords])
        chunk.to_zarr(store, region=region, mode="r+")
        # the digest goes down before the status: a chunk marked done always has one to be checked against
        entry = {"scenario": scenario_index, "start": start, "stop": stop,
                 "sha256": _chunk_digest(chunk, _output_names(chunk))}
        with open(store / "chunks.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry) + "\n")
    # a run is failed when its whole chunk failed (error is text) or it alone turned non-finite (error is a dict)
    by_run = error if isinstance(error, dict) else {run: error for run in range(start, stop)} if error else {}
    status = np.ones((1, runs))
    for run in by_run:
        status[0, run - start] = -1.0
    manifest = xr.Dataset({"status": (("scenario", "run"), status),
                           "seconds": (("scenario", "run"), np.full((1, runs), seconds / runs))})
    manifest.to_zarr(store, region=region, mode="r+")
    if not by_run:
        return None
    stored = open_store(store, consolidated=False)
    scenario = str(stored["scenario"].values[scenario_index])
    names = [name for name in stored.data_vars if name.startswith("param ")]
    if not isinstance(error, dict):
        parameters = {name[len("param "):]: stored[name].isel(run=slice(start, stop)).values.tolist() for name in names}
        lines = [{"scenario": scenario, "runs": [start, stop], "error": error, "parameters": parameters}]
    else:
        lines = [{"scenario": scenario, "runs": [run, run + 1], "error": reason,
                  "parameters": {name[len("param "):]: [float(stored[name].values[run])] for name in names}}
                 for run, reason in sorted(by_run.items())]
    with open(store / "errors.jsonl", "a", encoding="utf-8") as stream:
        stream.writelines(json.dumps(line) + "\n" for line in lines)
    if isinstance(error, dict):
        first = min(by_run)
        return f"{len(by_run)} run(s) of scenario {scenario_index} in {start}-{stop - 1} (first: run {first}: " \
               f"{by_run[first]})"
    return f"runs {start}-{stop - 1} of scenario {scenario_index}: {error}"


def yield_probability(results: xr.Dataset, years) -> xr.DataArray:
    """Share of completed runs in which Northern restrictiveness has yielded by each year, per scenario."""
    yielded = results[YIELD_VARIABLE]
    done = results["status"] == 1
    counts = done.sum("run")
    shares = [((yielded <= year) & done).sum("run") / counts for year in years]
    out = xr.concat(shares, dim=xr.Variable("year", list(years)))
    out.attrs = {"long_name": "probability that Northern restrictiveness has yielded", "units": "dimensionless"}
    return out


def report(problem: Problem, results: xr.Dataset, folder: Path) -> list[Path]:
    """Indices (netCDF) and figures of a finished sweep: fan charts, index bars, yield probability."""
    from ..plotting import plt, save_figure  # imported here: matplotlib is slow to import and few calls draw

    from .sensitivity import analyze

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    indices = analyze(problem, results.load())
    path = folder / "indices.nc"
    indices.to_netcdf(path)
    written.append(path)
    for output in problem.outputs:
        if output == YIELD_VARIABLE or "time" not in results[output].dims:
            continue
        values = results[output]
        extra = [d for d in values.dims if d not in ("scenario", "run", "time")]
        if extra:
            values = values.isel({d: 0 for d in extra})
        figure, axis = plt.subplots(figsize=(7, 4))
        for k, scenario in enumerate(values["scenario"].values):
            series = values.sel(scenario=scenario)
            q = series.quantile([0.05, 0.25, 0.5, 0.75, 0.95], dim="run")
            axis.fill_between(series["time"], q.isel(quantile=0), q.isel(quantile=4), alpha=0.15, color=f"C{k}")
            axis.fill_between(series["time"], q.isel(quantile=1), q.isel(quantile=3), alpha=0.3, color=f"C{k}")
            axis.plot(series["time"], q.isel(quantile=2), color=f"C{k}", label=str(scenario))
        where = ", ".join(f"{d}={values[d].values}" for d in extra if d in values.coords)
        axis.set_title(f"{output}{' [' + where + ']' if where else ''}: median, 50% and 90% of runs", fontsize=10)
        axis.legend(fontsize=8)
        path = folder / f"fan_{output.replace(' ', '_')}.png"
        figure.tight_layout()
        written.append(save_figure(figure, path))
    key = {"sobol": "ST", "morris": "mu_star"}.get(problem.method, "rank_correlation")
    for output in problem.outputs:
        name = f"{output} {key}"
        if name not in indices:
            continue
        values = indices[name]
        reduce = [d for d in values.dims if d != "parameter"]
        summary = values.mean(reduce) if reduce else values
        figure, axis = plt.subplots(figsize=(7, 0.35 * len(summary) + 1.2))
        axis.barh(list(map(str, summary["parameter"].values)), summary.values)
        axis.set_title(f"{output}: {key}" + (" (mean over " + ", ".join(reduce) + ")" if reduce else ""),
                       fontsize=10)
        figure.tight_layout()
        path = folder / f"indices_{output.replace(' ', '_')}.png"
        written.append(save_figure(figure, path))
    if YIELD_VARIABLE in results:
        years = list(range(2020, int(results.attrs.get("final_time", 2100)) + 1))
        probability = yield_probability(results, years)
        figure, axis = plt.subplots(figsize=(7, 4))
        for scenario in probability["scenario"].values:
            axis.plot(years, probability.sel(scenario=scenario), label=str(scenario))
        axis.set_ylabel("share of runs")
        axis.set_title("Probability that Northern restrictiveness has yielded", fontsize=10)
        axis.legend(fontsize=8)
        path = folder / "yield_probability.png"
        figure.tight_layout()
        written.append(save_figure(figure, path))
    return written
