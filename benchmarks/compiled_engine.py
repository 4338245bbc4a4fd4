"""The compiled (numba) backend of the shipped model, 1990-2100, against the numpy backend.

Prints: the kernel's first compile and its load from the translation cache in a
fresh process; one run through ``Model.run`` (Dataset included) and the bare
simulation; 1, 100, 1,000 and 10,000 runs on each backend with the speed-up
and peak memory; and a 4,096-run sweep with its store. Asserts nothing; every
size runs in a fresh process so its peak memory (resident set) is its own.

Usage: python benchmarks/compiled_engine.py [--sizes 1,100,1000,10000] [--repeats 5] [--no-compile] [--no-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from sweep_throughput import OUTPUTS, sample  # noqa: E402  (the same draws and outputs as the numpy benchmark)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def first_use() -> dict:
    """Seconds to the first compiled run of a model whose kernel is or is not yet in the cache."""
    import migsd

    model = migsd.load_model()
    engine = model.engine
    start = time.perf_counter()
    kernel = engine.kernel()
    model.run(final_time=1991, return_columns=OUTPUTS, engine="compiled")
    seconds = time.perf_counter() - start
    stats = kernel.simulate.stats
    return {"seconds": seconds, "hits": sum(stats.cache_hits.values()), "misses": sum(stats.cache_misses.values())}


def single(backend: str, repeats: int) -> dict:
    """One run through Model.run, and the bare simulation (inputs packed, kernel or module called)."""
    import migsd
    from migsd.engine.batch import base_inputs, integrate

    model = migsd.load_model()
    model.run(return_columns=OUTPUTS, engine=backend)  # warm: compiled or loaded
    through_run = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(return_columns=OUTPUTS, engine=backend)
        through_run.append(time.perf_counter() - start)
    _, layers, settings = model._prepare(None, None, None, None, None, None)
    values, initial = base_inputs(model, layers)
    wanted = {model.variables[migsd.names.canonical(o)].py_name:
              tuple(len(model.subscripts[s]) for s in model.variables[migsd.names.canonical(o)].subscripts)
              for o in OUTPUTS}
    bare = []
    for _ in range(repeats):
        start = time.perf_counter()
        integrate(model.engine, values, initial, 1, settings, wanted, chunk_size=1, backend=backend)
        bare.append(time.perf_counter() - start)
    return {"run": float(np.median(through_run)), "run_min": min(through_run), "bare": float(np.median(bare)),
            "bare_min": min(bare), "peak_mib": peak_mib()}


def batch(backend: str, runs: int) -> dict:
    import migsd

    model = migsd.load_model()
    params = sample(model, runs)
    model.run_batch(params.isel(run=[0]), return_columns=OUTPUTS, engine=backend)
    start = time.perf_counter()
    ds = model.run_batch(params, return_columns=OUTPUTS, engine=backend)
    seconds = time.perf_counter() - start
    assert ds.sizes["run"] == runs
    return {"seconds": seconds, "peak_mib": peak_mib()}


def _child(*arguments: str, environment: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", *arguments]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="skip the first-compile measurement")
    parser.add_argument("--no-sweep", action="store_true", help="skip the 4,096-run sweep")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "first":
            result = first_use()
        elif kind == "single":
            result = single(rest[0], int(rest[1]))
        else:
            result = batch(rest[0], int(rest[1]))
        print(json.dumps(result))
        return

    import numba

    import migsd

    model = migsd.load_model()
    settings = model.time_settings
    steps = round((settings["final_time"] - settings["initial_time"]) / settings["time_step"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared: load average "
          f"{os.getloadavg()[0]:.1f} at the start), python {platform.python_version()}, numpy {np.__version__}, "
          f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)")
    print(f"model: {model.path.name}, {settings['initial_time']:.0f}-{settings['final_time']:.0f}, {steps} steps; "
          f"outputs kept: {', '.join(OUTPUTS)}")

    if not args.no_compile:
        with tempfile.TemporaryDirectory() as folder:
            cache = Path(folder) / "cache"
            environment = {**os.environ, "MIGSD_CACHE_DIR": str(cache)}
            # the pysd translation is copied (not timed here); the numpy engine and the kernel start from nothing
            source = migsd.model.cache_dir()
            if (source / "translations").is_dir():
                shutil.copytree(source / "translations", cache / "translations")
            first = _child("first", environment=environment)
        print(f"kernel, first use (generate + numba compile + one short run): {first['seconds']:.1f} s "
              f"(cache misses {first['misses']})")
    _child("first")  # the kernel in this machine's cache, compiled if it is not yet there
    again = [_child("first") for _ in range(3)]
    print("kernel, a fresh process loading it from the cache (+ one short run): "
          + ", ".join(f"{a['seconds']:.2f} s" for a in again)
          + f" (cache hits {again[-1]['hits']}, misses {again[-1]['misses']})")

    print("one run of 1990-2100 (median of {0}; min in brackets):".format(args.repeats))
    singles = {backend: _child("single", backend, str(args.repeats)) for backend in ("compiled", "numpy")}
    for backend, result in singles.items():
        print(f"  {backend:>8}: Model.run {result['run'] * 1000:8.1f} ms ({result['run_min'] * 1000:.1f}); "
              f"simulation {result['bare'] * 1000:8.1f} ms ({result['bare_min'] * 1000:.1f}); "
              f"peak {result['peak_mib']:.0f} MiB")
    print(f"  speed-up: Model.run x{singles['numpy']['run'] / singles['compiled']['run']:.1f}, "
          f"simulation x{singles['numpy']['bare'] / singles['compiled']['bare']:.1f}")

    print(f"{'runs':>8} {'compiled s':>11} {'numpy s':>9} {'x numpy':>8} {'runs/s':>9} {'peak MiB c/n':>13}")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        compiled = _child("batch", "compiled", str(size))
        numpy_result = _child("batch", "numpy", str(size))
        print(f"{size:>8} {compiled['seconds']:>11.3f} {numpy_result['seconds']:>9.2f} "
              f"{numpy_result['seconds'] / compiled['seconds']:>8.1f} {size / compiled['seconds']:>9.0f} "
              f"{compiled['peak_mib']:>6.0f}/{numpy_result['peak_mib']:.0f}")

    if not args.no_sweep:
        command = [sys.executable, str(HERE / "sweep_evaluators.py"), "--evaluators", "inprocess", "--runs", "4096"]
        print("4,096-run sweep with its store (benchmarks/sweep_evaluators.py, compiled backend chosen by 'auto'):")
        sys.stdout.flush()
        subprocess.run(command, check=True)
    print("targets (issue 13): Model.run < 20 ms, simulation < 5 ms, 10,000 runs < 6 s, 4,096-run sweep < 5 s")


if __name__ == "__main__":
    main()
