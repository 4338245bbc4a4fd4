"""Cost against region count: writing the model folder, compiling, one run and 1,000 runs at 4, 8 and 16 regions.

4 regions: the shipped mapping; 8: ``calibration/regions_fine.csv``; 16: a mapping
cut by a fixed seed (the 16 most populous countries each start a region, the rest
are drawn at random), since cost depends on the sizes of the arrays, not on which
countries they hold. Each size runs in a fresh process with an empty translation
cache, so that compile time and peak memory are its own. Prints, per size: seconds
to write the folder, to compile (pysd translation + batched engine, the first
run's extra time), one 1990-2100 run, 1,000 runs in one batch (``Restrictiveness``
returned), the peak resident memory, and each figure's ratio to the 4-region one.
Asserts nothing; the machine may be shared, so run it more than once.
Usage: python benchmarks/regions.py [--runs 1000] [--sizes 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, pandas as pd, xarray as xr
import migsd
from migsd.paths import CALIBRATION_DIR
from migsd.regions import build_region_model, population_1990

size, runs, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
if size == 4:
    mapping = CALIBRATION_DIR / "regions.csv"
elif size == 8:
    mapping = CALIBRATION_DIR / "regions_fine.csv"
else:
    frame = pd.read_csv(CALIBRATION_DIR / "regions.csv")
    rng = np.random.default_rng(size)
    names = np.array([f"R{k:02d}" for k in range(size)])
    frame["region"] = names[rng.integers(0, size, len(frame))]
    largest = population_1990().reindex(frame["iso3"]).fillna(0).sort_values(ascending=False).index[:size]
    for k, iso3 in enumerate(largest):
        frame.loc[frame["iso3"] == iso3, "region"] = names[k]
    mapping = folder / f"random{size}.csv"
    frame.to_csv(mapping, index=False)
start = time.perf_counter()
built = build_region_model(mapping, folder / "model", check=False)
write = time.perf_counter() - start
start = time.perf_counter()
model = migsd.load_model(built.mdl, calibration=None)
model.run(final_time=1991)
first = time.perf_counter() - start
times = []
for _ in range(3):
    start = time.perf_counter()
    model.run()
    times.append(time.perf_counter() - start)
params = xr.Dataset({"income weight": ("run", np.linspace(0.5, 2.0, runs))})
start = time.perf_counter()
model.run_batch(params, return_columns=["Restrictiveness"])
batch = time.perf_counter() - start
print(json.dumps({"regions": len(built.regions), "write": write, "compile": first, "run": min(times),
                  "batch": batch, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="runs in the batch (default 1000)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4, 8, 16], help="region counts (default 4 8 16)")
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "MIGSD_CACHE_DIR": str(Path(folder) / "cache")}
            done = subprocess.run([sys.executable, "-c", CHILD, str(size), str(args.runs), folder], env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = results[0]
    print(f"{'regions':>7} {'write s':>8} {'compile s':>10} {'1 run s':>8} {f'{args.runs} runs s':>11} "
          f"{'peak MiB':>9}   ratios to {base['regions']} regions (write, compile, run, batch, memory)")
    for row in results:
        ratios = ", ".join(f"{row[k] / base[k]:.2f}" for k in ("write", "compile", "run", "batch", "peak_mib"))
        print(f"{row['regions']:>7} {row['write']:>8.2f} {row['compile']:>10.2f} {row['run']:>8.3f} "
              f"{row['batch']:>11.2f} {row['peak_mib']:>9.0f}   {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
