"""What checking the .mdl's text costs when a model is translated, against what translating costs.

For the shipped model (or a .mdl given), prints seconds for: pysd's parse into its
abstract model; migsd's checks of the text and that model (unclosed
definitions, undefined names, elements outside their range, lookups); the
engine's ordering of the equations (the loop check; the compile it needs is kept
in the cache for the first run); a load with an empty translation cache (parse,
checks, engine compile, pysd's build); a load from the cache, where no check runs.
Each figure is the median of ``--repeat`` runs. Asserts nothing.
Usage: python benchmarks/mdl_checks.py [--repeat 3] [MODEL.mdl]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from migsd.mdlsource import abstract_problems, lookup_problems, parse_abstract, structure_problems
from migsd.paths import DEFAULT_MODEL


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(DEFAULT_MODEL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(args.model)
    text = path.read_text(encoding="utf-8")
    abstract = parse_abstract(path)

    from migsd.engine.codegen import generate
    from migsd.engine.compiler import compile_mdl
    from migsd.model import load_model

    compiled = compile_mdl(path)
    figures: dict[str, list[float]] = {name: [] for name in (
        "pysd parse (abstract model)", "text checks (structure, names, lookups)", "engine ordering (loop check)",
        "load, empty cache", "load, from cache")}
    for _ in range(args.repeat):
        figures["pysd parse (abstract model)"].append(_seconds(lambda: parse_abstract(path)))
        figures["text checks (structure, names, lookups)"].append(_seconds(lambda: (
            structure_problems(text), abstract_problems(abstract, text, path.parent), lookup_problems(text))))
        figures["engine ordering (loop check)"].append(_seconds(lambda: generate(compiled)))
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MIGSD_CACHE_DIR"] = cache
            figures["load, empty cache"].append(_seconds(lambda: load_model(path, calibration=None)))
            figures["load, from cache"].append(_seconds(lambda: load_model(path, calibration=None)))
    print(f"{path.name}, median of {args.repeat} (min-max), seconds")
    for name, values in figures.items():
        print(f"  {name:<42}{statistics.median(values):>8.3f}  ({min(values):.3f}-{max(values):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
