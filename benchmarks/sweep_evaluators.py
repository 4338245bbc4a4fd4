"""A 4,096-run Latin hypercube sweep of the shipped model, 1990-2100, with each evaluator, store writes included.

Prints runs per second and the coordinating process's peak memory for: the
batched engine in process, 2 local processes, and a 2-worker dask LocalCluster.
Asserts nothing. Usage: python benchmarks/sweep_evaluators.py [--runs 4096] [--evaluators inprocess,processes,dask]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(evaluator: str, runs: int) -> dict:
    import migsd
    from migsd.analysis.sensitivity import load_problem, sample
    from migsd.analysis.sweep import evaluate

    model = migsd.load_model()
    problem = load_problem("restrictionism", model, samples=runs)
    problem.method, problem.scenarios = "lhs", ["status_quo"]
    samples = sample(problem)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        results = evaluate(problem, samples, model=model, store=Path(folder) / "sweep.zarr", evaluator=evaluator,
                           chunk_size=512, workers=2, progress=False)
        seconds = time.perf_counter() - start
        done = int((results["status"] == 1).sum())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"evaluator": evaluator, "runs": done, "seconds": seconds, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4096)
    parser.add_argument("--evaluators", default="inprocess,processes,dask")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.runs)))
        return
    print(f"{os.cpu_count()} cores; restrictionism problem as an LHS of {args.runs} runs, status quo, 1990-2100, "
          "chunks of 512, 2 workers")
    print(f"{'evaluator':>10} {'runs':>6} {'seconds':>8} {'runs/s':>8} {'peak MiB':>9}")
    for evaluator in args.evaluators.split(","):
        command = [sys.executable, __file__, "--one", evaluator, "--runs", str(args.runs)]
        result = json.loads(subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout)
        print(f"{evaluator:>10} {result['runs']:>6} {result['seconds']:>8.1f} "
              f"{result['runs'] / result['seconds']:>8.0f} {result['peak_mib']:>9.0f}")


if __name__ == "__main__":
    main()
