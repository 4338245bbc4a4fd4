"""Drive the explorer's page in a headless browser: start a server, move a slider, time the redraw.

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


def wait_for_stage(page, update: int, stage: str, timeout_ms: float = 60_000) -> None:
    page.wait_for_selector(f".run-status[data-update='{update}'][data-stage='{stage}']", timeout=timeout_ms,
                           state="attached")


def drag(page, css_key: str, share: float) -> float:
    """Drag the slider of control ``css_key`` to ``share`` of its track; returns the release time (perf_counter)."""
    handle = page.locator(f".control-{css_key} .noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = page.locator(f".control-{css_key} .noUi-base").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * share, y, steps=8)
    released = time.perf_counter()
    page.mouse.up()
    return released


def time_move(page, css_key: str, share: float) -> tuple[float, float]:
    """Seconds from releasing a slider to redrawn charts, and to the redrawn ensemble band."""
    update, _ = status(page)
    released = drag(page, css_key, share)
    wait_for_stage(page, update + 1, "lines")
    lines = time.perf_counter() - released
    wait_for_stage(page, update + 1, "done")
    return lines, time.perf_counter() - released
