"""How long the explorer takes to redraw its charts: from releasing a slider, and from moving one still held.

Starts ``migsd explore``, loads the page in headless Chromium, then

* moves sliders and releases them (levers, which rerun the explored scenario
  only, and uncertain parameters, which rerun the status quo with it) and prints,
  per kind of move: seconds from release to the redrawn charts and to the redrawn
  ensemble band, the engine's share (as the page reports it);
* holds a slider and moves it step by step, waiting for each redraw: seconds from
  each movement to the charts redrawn for it while still held (the page follows
  a held slider, throttled, one run at a time);
* drags a slider steadily for two seconds: how many times the charts followed.

Each figure's ratio to its goal (1 s from release; 150 ms from movement) is
printed. Asserts nothing.
Usage: python benchmarks/explorer_latency.py [--moves 6]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
from pathlib import Path

from migsd.explore.drive import (
    browser_page,
    count_redraws_while_dragging,
    explorer_server,
    find_chromium,
    time_held_moves,
    time_move,
)

MOVES = {"lever": ("enforcement_push_North_", "IOM_funding"),
         "uncertain parameter": ("tightening_time", "material_weight")}
RELEASE_GOAL = 1.0
HELD_GOAL = 0.150


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
        print(f"{'released':<28}{'median s':>10}{'min s':>8}{'max s':>8}{'band s':>9}{'engine s':>10}{'x goal':>8}")
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
            print(f"{kind:<28}{median:>10.2f}{min(lines):>8.2f}{max(lines):>8.2f}{statistics.median(bands):>9.2f}"
                  f"{statistics.median(engine):>10.2f}{median / RELEASE_GOAL:>8.2f}")
        print()
        print(f"{'held, movement to redraw':<28}{'median s':>10}{'min s':>8}{'max s':>8}{'':>9}{'':>10}{'x goal':>8}")
        for kind, keys in MOVES.items():
            shares = [0.2 + 0.6 * ((move * 0.37) % 1.0) for move in range(args.moves)]
            held = time_held_moves(page, keys[0], shares)
            median = statistics.median(held)
            print(f"{kind:<28}{median:>10.2f}{min(held):>8.2f}{max(held):>8.2f}{'':>9}{'':>10}"
                  f"{median / HELD_GOAL:>8.2f}")
        print()
        for kind, keys in MOVES.items():
            redraws, begun = count_redraws_while_dragging(page, keys[1], 0.15, 0.85, seconds=2.0)
            print(f"dragged steadily for 2 s ({kind}): the charts followed {redraws} time(s) "
                  f"({redraws / 2.0:.1f} per second; {begun} update(s) begun)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
