"""``migsd explore`` end to end, in a real headless browser (Debian's chromium, driven by Playwright).

Skipped where no chromium is installed, unless ``MIGSD_REQUIRE_BROWSER`` is set
(as ``.ci/run`` sets it, after installing chromium): then a missing browser fails.
Screenshots go to ``outputs/test-artefacts/explorer/`` (or ``$MIGSD_ARTEFACTS/explorer``).
"""

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from migsd.indicators import YIELD_VARIABLE

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = Path(os.environ.get("MIGSD_ARTEFACTS", REPO / "outputs" / "test-artefacts")) / "explorer"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium() -> str:
    found = os.environ.get("MIGSD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        message = "no chromium (apt-get install chromium) or no playwright (pip install -e '.[test]')"
        if os.environ.get("MIGSD_REQUIRE_BROWSER"):
            pytest.fail(f"MIGSD_REQUIRE_BROWSER is set but {message}")
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def explorer_url(tmp_path_factory):
    chromium()
    save_dir = tmp_path_factory.mktemp("saved_scenarios")
    port = free_port()
    log = tmp_path_factory.mktemp("explore_log") / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "migsd.cli", "explore", "--port", str(port), "--save-dir", str(save_dir)],
            stdout=output, stderr=subprocess.STDOUT, cwd=REPO,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if server.poll() is not None:
                pytest.fail(f"migsd explore exited with {server.returncode}:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"migsd explore did not listen on {port} within 120 s:\n{log.read_text()}")
        yield f"http://127.0.0.1:{port}/", save_dir, log
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def page(explorer_url):
    from playwright.sync_api import sync_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        tab = browser.new_page(viewport={"width": 1500, "height": 1100})
        outside = []
        tab.on("request", lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1",
                                                                                    "data:", "blob:")) else None)
        tab.goto(explorer_url[0])
        tab.wait_for_selector(".run-status[data-stage='band']", timeout=120_000, state="attached")
        tab.outside_requests = outside
        yield tab
        browser.close()


def status(page) -> tuple[int, str]:
    element = page.locator(".run-status")
    return int(element.get_attribute("data-update")), element.get_attribute("data-stage")


def wait_for(page, update: int, stage: str, timeout: float = 60_000) -> None:
    page.wait_for_selector(f".run-status[data-update='{update}'][data-stage='{stage}']", timeout=timeout,
                           state="attached")


def drag(page, key: str, share: float) -> float:
    """Drag a control's slider handle to ``share`` of its track; returns the time of the release."""
    handle = page.locator(f".control-{key} .noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    track = page.locator(f".control-{key} .noUi-base").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * share, y, steps=8)
    released = time.perf_counter()
    page.mouse.up()
    return released


def test_move_a_lever_see_the_yield_year_and_charts_change_then_save_and_rerun(page, explorer_url, record_property):
    page.screenshot(path=ARTEFACTS / "01-loaded.png", full_page=True)
    assert page.outside_requests == [], "the page must load nothing from outside this machine"
    start_year = page.locator(".yield-year").get_attribute("data-year")
    assert start_year, page.locator(".yield-year").inner_text()
    chart = page.locator(".chart-Restrictiveness")
    chart_before = chart.screenshot()
    update, _ = status(page)

    released = drag(page, "open_borders_North_", 0.9)
    wait_for(page, update + 1, "lines")
    redrawn = time.perf_counter() - released
    wait_for(page, update + 1, "band")
    banded = time.perf_counter() - released
    record_property("figure: explorer, slider release to redrawn charts (s)", f"{redrawn:.2f}")
    record_property("figure: explorer, slider release to ensemble band (s)", f"{banded:.2f}")
    page.screenshot(path=ARTEFACTS / "02-lever-moved.png", full_page=True)

    moved_year = page.locator(".yield-year").get_attribute("data-year")
    assert moved_year != start_year, page.locator(".yield-year").inner_text()
    assert "open borders[North]" in page.locator(".run-status").inner_text()
    assert chart.screenshot() != chart_before, "the restrictiveness chart did not change"

    page.locator(".save-name input").fill("explored_in_browser")
    page.locator(".save button").click()
    saved = page.wait_for_selector(".saved-file", timeout=30_000, state="attached")
    page.screenshot(path=ARTEFACTS / "03-saved.png", full_page=True)
    path = Path(saved.get_attribute("data-path"))
    assert path.parent == explorer_url[1] and path.name == "explored_in_browser.toml"
    assert '"open borders[North]"' in path.read_text()

    out = path.with_suffix(".nc")
    finished = subprocess.run([sys.executable, "-m", "migsd.cli", "run", "--scenario", str(path), "--out", str(out),
                               "--quiet"], capture_output=True, text=True, cwd=REPO)
    assert finished.returncode == 0, finished.stderr
    with xr.open_dataset(out) as ran:
        year = float(ran[YIELD_VARIABLE].squeeze())
    assert not math.isnan(year) and f"{year:.0f}" == moved_year


def test_a_value_outside_its_range_is_refused_on_the_page_not_clamped(page):
    update, _ = status(page)
    shown_year = page.locator(".yield-year").get_attribute("data-year")
    box = page.locator(".control-tightening_time input")
    box.scroll_into_view_if_needed()
    box.fill("50")
    box.press("Enter")
    error = page.locator(".error-message")
    error.wait_for(state="visible", timeout=30_000)
    page.screenshot(path=ARTEFACTS / "04-out-of-range-refused.png", full_page=True)
    message = error.inner_text()
    assert "'tightening time' = 50 is outside its range [2, 8]" in message
    assert "restrictionism.toml" in message
    assert page.locator(".yield-year").get_attribute("data-year") == shown_year
    assert status(page)[0] == update, "nothing may run with a refused value"

    box.fill("6")
    box.press("Enter")
    wait_for(page, update + 2, "lines")  # the refused update counted, then this one ran
    assert error.count() == 0 or not error.is_visible()
