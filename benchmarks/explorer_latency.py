"""How long the explorer takes from releasing a slider to redrawn charts, in headless Chromium.

Starts ``migsd explore``, loads the page, then moves sliders (levers, which
rerun the explored scenario only, and uncertain parameters, which rerun the
status quo with it) and prints, per kind of move: seconds from release to the
redrawn charts and to the redrawn ensemble band, the engine's share (as the
page reports it), and the ratio to the 1-second goal. Asserts nothing.
Usage: python benchmarks/explorer_latency.py [--moves 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from migsd.explore.drive import browser_page, explorer_server, find_chromium, time_move

MOVES = {"lever": ("open_borders_North_", "border_enforcement_North_"),
         "uncertain parameter": ("tightening_time", "material_weight")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=6, help="moves of each kind (default 6)")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("needs chromium (apt-get install chromium) and playwright (pip install -e '.[test]')", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder, \
            explorer_server("--save-dir", folder, log=Path(folder) / "server.log") as url, \
            browser_page(url, chromium) as page:
        print(f"{'move':<22}{'median s':>10}{'min s':>8}{'max s':>8}{'band s':>9}{'engine s':>10}{'x goal':>8}")
        for kind, keys in MOVES.items():
            lines, bands, engine = [], [], []
            for move in range(args.moves):
                share = 0.2 + 0.6 * ((move * 0.37) % 1.0)
                redrawn, banded = time_move(page, keys[move % len(keys)], share)
                lines.append(redrawn)
                bands.append(banded)
                reported = re.search(r"(\d+) run\(s\) in ([0-9.]+) s", page.locator(".run-status").inner_text())
                engine.append(float(reported.group(2)))
            median = statistics.median(lines)
            print(f"{kind:<22}{median:>10.2f}{min(lines):>8.2f}{max(lines):>8.2f}{statistics.median(bands):>9.2f}"
                  f"{statistics.median(engine):>10.2f}{median / 1.0:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
