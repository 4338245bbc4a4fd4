"""What checking for non-finite values costs a run that stays finite, and what locating a broken one costs.

Times ``Model.run`` (every variable kept) and ``Model.run_batch`` of 1,000 runs
(four outputs kept) of the shipped model, 1990-2100, best and median of
``--repeat`` tries. Run it once with this tree's ``src`` on ``PYTHONPATH`` and
once with a tree from before the check to compare. With ``--broken``, also
times a run that turns non-finite (``TIME STEP = 200``), which is integrated a
second time, step by step, to find where it broke. Prints figures; asserts nothing.

Usage: python benchmarks/finite_check.py [--repeat 5] [--broken]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import xarray as xr

import migsd

OUTPUTS = ["Restrictiveness", "Perceived Labour Shortage", "Rights Observance", "south south share of flows"]


def timed(function, repeat: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeat):
        began = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - began)
    return min(seconds), statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--broken", action="store_true")
    args = parser.parse_args()
    model = migsd.load_model()
    params = xr.Dataset({"material weight": ("run", np.linspace(1, 5, 1000))})
    model.run(final_time=1992)  # compile and warm the caches
    model.run_batch(params.isel(run=slice(0, 2)), return_columns=OUTPUTS)
    print(f"migsd from {migsd.__file__}")
    best, median = timed(lambda: model.run(), args.repeat)
    print(f"Model.run, every variable:          best {best:.3f} s, median {median:.3f} s")
    best, median = timed(lambda: model.run_batch(params, return_columns=OUTPUTS), args.repeat)
    print(f"run_batch, 1,000 runs, 4 outputs:   best {best:.3f} s, median {median:.3f} s")
    if args.broken:
        def broken():
            try:
                model.run(time_step=200)
            except migsd.errors.MigsdError:
                pass

        best, median = timed(broken, args.repeat)
        print(f"Model.run broken (TIME STEP = 200), located: best {best:.3f} s, median {median:.3f} s")


if __name__ == "__main__":
    main()
