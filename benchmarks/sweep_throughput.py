"""Runs per second of the shipped model, 1990 to 2100: pysd one run at a time, and the batched engine.

Prints figures and ratios; asserts nothing. Each batched size runs in a fresh
process so its peak memory (resident set) is its own.

Usage: python benchmarks/sweep_throughput.py [--sizes 1,100,1000,10000] [--pysd-runs 1] [--chunk N]
                                            [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import xarray as xr

import migsd
from migsd.names import canonical

#: What a sweep typically keeps: the headline outputs, not every variable.
OUTPUTS = ["Restrictiveness", "Perceived Labour Shortage", "Rights Observance", "south south share of flows"]


def sample(model, runs: int, seed: int = 2026) -> xr.Dataset:
    """Uncertain constants drawn uniformly within +-30% of their defaults (one per region where subscripted)."""
    rng = np.random.default_rng(seed)
    names = ["material weight", "present bias weight", "tightening time", "culturalist weight", "IOM funding"]
    data = {}
    for name in names:
        default = model.defaults[canonical(name)]
        scale = rng.uniform(0.7, 1.3, size=(runs,) + default.shape)
        base = default.values if name != "IOM funding" else np.asarray(1.0e9)
        data[name] = (("run",) + default.dims, base * scale)
    return xr.Dataset(data, coords={"region": model.subscripts["Region"]})


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one_size(runs: int, chunk: int | None, workers: int) -> dict:
    """Time one batch of ``runs`` runs in this process (after a warm-up run)."""
    model = migsd.load_model()
    params = sample(model, runs)
    model.run_batch(params.isel(run=[0]), return_columns=OUTPUTS)  # compiles or loads the engine
    start = time.perf_counter()
    ds = model.run_batch(params, return_columns=OUTPUTS, chunk_size=chunk, workers=workers)
    seconds = time.perf_counter() - start
    assert ds.sizes["run"] == runs
    return {"runs": runs, "seconds": seconds, "peak_mib": peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,100,1000,10000", help="batch sizes (comma-separated)")
    parser.add_argument("--pysd-runs", type=int, default=1, help="pysd runs to time (0 to skip)")
    parser.add_argument("--chunk", type=int, default=None, help="runs integrated together (default: the engine's)")
    parser.add_argument("--workers", default=f"1,{os.cpu_count()}",
                        help="processes to try for batches of 1000 runs or more (comma-separated)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--one-workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(one_size(args.one, args.chunk, args.one_workers)))
        return

    model = migsd.load_model()
    settings = model.time_settings
    steps = round((settings["final_time"] - settings["initial_time"]) / settings["time_step"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
          f"numpy {np.__version__}")
    print(f"model: {model.path.name}, {settings['initial_time']:.0f}-{settings['final_time']:.0f}, "
          f"{steps} steps of {settings['time_step']} Year; outputs kept: {', '.join(OUTPUTS)}")

    pysd_rate = None
    if args.pysd_runs:
        params = sample(model, args.pysd_runs)
        seconds = []
        for k in range(args.pysd_runs):
            values = {name: (row if (row := params[name].isel(run=k)).dims else float(row)) for name in params.data_vars}
            start = time.perf_counter()
            model.run(params=values, return_columns=OUTPUTS, engine="pysd")
            seconds.append(time.perf_counter() - start)
        pysd_rate = 1 / float(np.mean(seconds))
        print(f"pysd, one run at a time: {np.mean(seconds):.1f} s a run ({pysd_rate:.4f} runs/s)")

    print(f"{'runs':>8} {'workers':>8} {'seconds':>9} {'runs/s':>10} {'x pysd':>10} {'peak MiB':>9}")
    for size in [int(s) for s in args.sizes.split(",") if s]:
        for workers in [int(w) for w in args.workers.split(",")] if size >= 1000 else [1]:
            command = [sys.executable, __file__, "--one", str(size), "--one-workers", str(workers)]
            if args.chunk:
                command += ["--chunk", str(args.chunk)]
            result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
            rate = size / result["seconds"]
            ratio = f"{rate / pysd_rate:10.0f}" if pysd_rate else f"{'-':>10}"
            print(f"{size:>8} {workers:>8} {result['seconds']:>9.2f} {rate:>10.1f} {ratio} {result['peak_mib']:>9.0f}")
    print("peak MiB: resident set of the process running the batch (its workers add their own).")


if __name__ == "__main__":
    main()
