"""Full posterior of the shipped problem: wall time, convergence, engine evaluations/s, time outside the engine.

    python benchmarks/posterior.py                 # samples anew into a scratch folder (no out-of-sample refit)
    python benchmarks/posterior.py --file calibration/parameters/posterior_v1.nc   # figures of a finished run

Targets (issue 16): under 15 minutes on 2 cores, at least 4 chains, R-hat <= 1.01
and bulk ESS >= 400 for every parameter, under 20% of the sampling time outside
the engine. Timings on a shared machine vary from run to run: run it several times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from migsd.calibration.posterior import arviz
from migsd.calibration.posterior_report import calibrate_posterior, diagnostics, distinct_draws


def figures(path: Path, wall: float | None = None) -> None:
    idata = arviz().from_netcdf(str(path))
    stats = idata.sample_stats.attrs
    table = diagnostics(idata)
    print(f"file {path.name}: sampler {stats['sampler']}, {idata.posterior.sizes['chain']} chains x "
          f"{idata.posterior.sizes['draw']} draws, {len(table)} parameters")
    if wall is not None:
        print(f"wall time {wall:.0f} s (everything: sampling, predictive, note)")
    print(f"sampling {stats['seconds']:.0f} s; {stats['evaluations']} evaluations in {stats['batches']} batches "
          f"({stats['evaluations'] / stats['batches']:.0f} per batch)")
    print(f"engine: {stats['engine_seconds']:.0f} s, {stats['evaluations'] / stats['engine_seconds']:.0f} "
          f"evaluations/s; overall {stats['evaluations'] / stats['seconds']:.0f} evaluations/s")
    print(f"share of sampling time outside the engine: {100 * (1 - stats['engine_seconds'] / stats['seconds']):.1f}%")
    print(f"largest R-hat {table['r_hat'].max():.4f}, smallest bulk ESS {table['ess_bulk'].min():.0f}, "
          f"smallest tail ESS {table['ess_tail'].min():.0f}")
    print("distinct draws per chain:", distinct_draws(idata))
    print(table[["parameter", "r_hat", "ess_bulk", "ess_tail"]].to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="report on this posterior_vN.nc instead of sampling")
    args = parser.parse_args()
    if args.file is not None:
        figures(args.file)
        return
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        path = calibrate_posterior(directory=Path(folder), out_of_sample=False, progress=False)
        figures(path, time.perf_counter() - started)


if __name__ == "__main__":
    main()
