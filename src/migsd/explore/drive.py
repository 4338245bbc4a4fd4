"""Drive the explorer's page in a headless browser: start a server, move or hold a slider, time the redraw.

For the end-to-end tests and ``benchmarks/explorer_latency.py``. Needs Playwright
(the ``test`` extra) and a system Chromium (Debian: ``apt-get install chromium``);
Playwright never downloads a browser here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import MigsdError
from ..paths import REPO_ROOT

#: Headless Chromium on a machine without a screen, a GPU or outside network.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
REPO = REPO_ROOT


def find_chromium() -> str | None:
    """``$MIGSD_CHROMIUM``, else ``chromium`` on the PATH; ``None`` if neither, or if Playwright is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return None
    return os.environ.get("MIGSD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def explorer_server(*options: str, log: Path, timeout: float = 120):
    """``migsd explore`` in a subprocess on a free port; yields its URL, stops it on exit."""
    port = free_port()
    with log.open("w") as output:
        server = subprocess.Popen([sys.executable, "-m", "migsd.cli", "explore", "--port", str(port), *options],
                                  stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise MigsdError(f"migsd explore exited with {server.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise MigsdError(f"migsd explore did not listen on {port} in {timeout:g} s:\n{log.read_text()}")
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextlib.contextmanager
def browser_page(url: str, chromium: str, *, width: int = 1500, height: int = 1100):
    """A loaded explorer page (first runs and band drawn); ``page.outside_requests`` lists any non-local request."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=list(CHROMIUM_FLAGS))
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            outside: list[str] = []
            local = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")
            page.on("request", lambda request: None if request.url.startswith(local) else outside.append(request.url))
            page.goto(url)
            wait_for_stage(page, 1, "done", timeout_ms=120_000)
            page.outside_requests = outside
            yield page
        finally:
            browser.close()


def status(page) -> tuple[int, str]:
    """The page's update counter and stage: 'running', 'lines' (explored and status quo drawn), 'done' (band too)."""
    element = page.locator(".run-status")
    return int(element.get_attribute("data-update")), element.get_attribute("data-stage")


def full_updates(page) -> int:
    """How many full updates (band included: the load, releases, typed values, picks) the page has run."""
    return int(page.locator(".run-status").get_attribute("data-full"))


def wait_for_stage(page, update: int, stage: str, timeout_ms: float = 60_000) -> None:
    page.wait_for_selector(f".run-status[data-update='{update}'][data-stage='{stage}']", timeout=timeout_ms,
                           state="attached")


def wait_for_full(page, full: int, stage: str, timeout_ms: float = 60_000) -> None:
    """Wait until full update ``full`` has reached ``stage``; 'lines' is reached too once it is 'done'.

    The lines stage of a full update lasts only as long as the band's runs (a
    few tenths of a second) and a wait polls the page: asking for that stage
    alone could miss it, and then waited for an update that had already finished.
    """
    stages = ("lines", "done") if stage == "lines" else (stage,)
    selector = ", ".join(f".run-status[data-full='{full}'][data-kind='full'][data-stage='{s}']" for s in stages)
    page.wait_for_selector(selector, timeout=timeout_ms, state="attached")


def handle_position(page, css_key: str) -> tuple[float, float, dict]:
    """Where the handle of control ``css_key``'s slider is (x, y), and its track's bounding box."""
    handle = page.locator(f".control-{css_key} .noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = page.locator(f".control-{css_key} .noUi-base").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, track


def drag(page, css_key: str, share: float) -> float:
    """Drag the slider of control ``css_key`` to ``share`` of its track; returns the release time (perf_counter)."""
    x, y, track = handle_position(page, css_key)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * share, y, steps=8)
    released = time.perf_counter()
    page.mouse.up()
    return released


def time_move(page, css_key: str, share: float) -> tuple[float, float]:
    """Seconds from releasing a slider to redrawn charts, and to the redrawn ensemble band."""
    full = full_updates(page)
    released = drag(page, css_key, share)
    wait_for_full(page, full + 1, "lines")
    lines = time.perf_counter() - released
    wait_for_full(page, full + 1, "done")
    return lines, time.perf_counter() - released


def time_held_moves(page, css_key: str, shares) -> list[float]:
    """Hold a slider and move it to each share of its track in turn: seconds from each movement to the charts
    redrawn for it, while still held; then release it and wait for the full update."""
    x, y, track = handle_position(page, css_key)
    full = full_updates(page)
    page.mouse.move(x, y)
    page.mouse.down()
    seconds = []
    try:
        for share in shares:
            update, _ = status(page)
            moved = time.perf_counter()
            page.mouse.move(track["x"] + track["width"] * share, y)
            page.wait_for_selector(f".run-status[data-update='{update + 1}'][data-kind='follow'][data-stage='lines']",
                                   timeout=60_000, state="attached")
            seconds.append(time.perf_counter() - moved)
    finally:
        page.mouse.up()
    wait_for_full(page, full + 1, "done")
    return seconds


def count_redraws_while_dragging(page, css_key: str, start: float, end: float, *, seconds: float = 2.0,
                                 moves: int = 40) -> tuple[int, int]:
    """Drag a slider steadily from ``start`` to ``end`` (shares of its track) over ``seconds``: how many times the
    charts were redrawn for it before the hand stopped, and how many updates had begun by then. Released, and the
    full update awaited, before returning."""
    x, y, track = handle_position(page, css_key)
    full = full_updates(page)
    page.mouse.move(x, y)
    page.mouse.down()
    try:
        page.mouse.move(track["x"] + track["width"] * start, y)
        first, _ = status(page)
        began = time.perf_counter()
        for k in range(1, moves + 1):
            page.mouse.move(track["x"] + track["width"] * (start + (end - start) * k / moves), y)
            pause = began + seconds * k / moves - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        last, stage = status(page)
        begun = last - first
        redraws = begun - (stage != "lines" and begun > 0)
    finally:
        page.mouse.up()
    wait_for_full(page, full + 1, "done")
    return redraws, begun
