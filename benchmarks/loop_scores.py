"""Loop scores of the shipped model, 1990-2100, against the same plain batch: seconds, ratio, peak memory.

The loop-score run reduces while it integrates: per-loop quantiles over runs and
the dominant loop of Northern restrictiveness per run and year (never every link of
every run at every step). Each measurement runs in a fresh process, after a warm-up
that compiles the engine, so its peak resident memory is its own. ``loops cold``
includes the one-off work of a model: probing its link structure and the loop
search (a pilot of four runs, past the enumeration budget); ``loops`` is a later
call that reuses them, as every scenario or batch of the same pilot does. Prints
figures; asserts nothing.

``--engine compiled`` measures both on the compiled kernel (compiled first if it is
not in the cache); ``--engine both`` measures the numpy backend, then the kernel,
and prints the kernel's speed-up.

Usage: python benchmarks/loop_scores.py [--runs 1000] [--repeat 3] [--engine numpy|compiled|both]
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

import migsd

sys.path.insert(0, os.path.dirname(__file__))
from sweep_throughput import OUTPUTS, sample  # noqa: E402  (the same uncertain parameters as the sweep benchmark)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(kind: str, runs: int, engine: str) -> dict:
    model = migsd.load_model()
    params = sample(model, runs)
    warm = params.isel(run=[0])
    if kind == "plain":
        model.run_batch(warm, scenario="status_quo", return_columns=OUTPUTS, engine=engine)
        start, cpu = time.perf_counter(), time.process_time()
        model.run_batch(params, scenario="status_quo", return_columns=OUTPUTS, engine=engine)
    else:
        if kind == "loops":
            model.loops(scenario="status_quo", params=params.isel(run=slice(0, 4)), variable="Restrictiveness[North]",
                        quantiles=[0.5], engine=engine)
        else:
            model.run_batch(warm, scenario="status_quo", return_columns=OUTPUTS, engine=engine)
        start, cpu = time.perf_counter(), time.process_time()
        ds = model.loops(scenario="status_quo", params=params, variable="Restrictiveness[North]",
                         quantiles=[0.05, 0.5, 0.95], engine=engine)
        assert ds.sizes["quantile"] == 3 and engine in ds.attrs["engine"]
    return {"kind": kind, "runs": runs, "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
            "peak_mib": peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=("numpy", "compiled", "both"), default="numpy")
    parser.add_argument("--one", choices=("plain", "loops", "loops cold"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.runs, args.engine)))
        return
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.runs} runs of the shipped model, status quo, 1990-2100")
    engines = ("numpy", "compiled") if args.engine == "both" else (args.engine,)
    if "compiled" in engines:
        started = time.perf_counter()
        migsd.load_model().compile()
        print(f"kernel ready (compiled or loaded from the cache) in {time.perf_counter() - started:.1f} s")
    best = {}
    for engine in engines:
        best[engine] = _measure_engine(args, engine)
    if len(best) == 2:
        print(f"compiled kernel / numpy backend, best loop-score wall time: "
              f"{best['compiled'] / best['numpy']:.2f} (x{best['numpy'] / best['compiled']:.1f} faster)")


def _measure_engine(args, engine: str) -> float:
    print(f"engine={engine}")
    rows = []
    for repeat in range(args.repeat):
        for kind in ("plain", "loops", "loops cold"):
            done = subprocess.run([sys.executable, __file__, "--one", kind, "--runs", str(args.runs),
                                   "--engine", engine],
                                  check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"  {kind:<10} {rows[-1]['seconds']:7.2f} s wall  {rows[-1]['cpu']:7.2f} s CPU   "
                  f"peak {rows[-1]['peak_mib']:6.0f} MiB")
    plain = [r["seconds"] for r in rows if r["kind"] == "plain"]
    loops = [r["seconds"] for r in rows if r["kind"] == "loops"]
    ratios = [l / p for p, l in zip(plain, loops)]
    cpu_plain = [r["cpu"] for r in rows if r["kind"] == "plain"]
    cpu_loops = [r["cpu"] for r in rows if r["kind"] == "loops"]
    cpu_ratios = [l / p for p, l in zip(cpu_plain, cpu_loops)]
    cold = [r["seconds"] / p for r, p in zip((r for r in rows if r["kind"] == "loops cold"), plain)]
    print(f"loop scores with the one-off structure and loop search / plain batch, wall: {min(cold):.2f}-{max(cold):.2f}")
    print(f"loop scores / plain batch, wall: {min(ratios):.2f}-{max(ratios):.2f} (pairs run one after another; "
          f"best {min(loops):.2f} s / {min(plain):.2f} s = {min(loops) / min(plain):.2f})")
    print(f"loop scores / plain batch, CPU: {min(cpu_ratios):.2f}-{max(cpu_ratios):.2f} "
          f"(best {min(cpu_loops):.2f} s / {min(cpu_plain):.2f} s = {min(cpu_loops) / min(cpu_plain):.2f})")
    return min(loops)


if __name__ == "__main__":
    main()
