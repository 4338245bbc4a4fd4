"""Time to load and run the shipped model through pysd, one run at a time.

Prints figures; asserts nothing. Usage: python benchmarks/run_time.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import migsd


def timed(function):
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each kind (default 1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache:
        os.environ["MIGSD_CACHE_DIR"] = cache
        cold, model = timed(migsd.load_model)
        warm, _ = timed(migsd.load_model)
        settings = model.time_settings
        steps = round((settings["final_time"] - settings["initial_time"]) / settings["time_step"])
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
        print(f"load_model: {cold:.1f} s translating the .mdl, {warm:.2f} s when the translation is cached")
        for label, options in (
            ("status quo, every variable", {}),
            ("status quo, Restrictiveness only", {"return_columns": ["Restrictiveness"]}),
        ):
            times = [timed(lambda: model.run(scenario="status_quo", **options))[0] for _ in range(args.repeat)]
            best = min(times)
            print(f"{label}: {best:.1f} s for {steps} steps of {settings['time_step']} Year "
                  f"({1000 * best / steps:.0f} ms a step)")


if __name__ == "__main__":
    main()
