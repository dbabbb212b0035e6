"""Driving the clinic app in Debian's headless Chromium with Playwright: the helpers and the page flows that the
end-to-end test (tests/test_browser.py), the user guides' screenshots (docs/screenshots.py) and the comparison
page's timing (benchmarks/bench_compare_page.py) share.

Playwright drives the system browser (``/usr/bin/chromium``, or ``$RXPREDICT_CHROMIUM``); it never downloads
one (no ``playwright install``).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RXPREDICT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: The joints a visit's tender and swollen counts are clicked from (tender: 5, swollen: 2).
VISIT_JOINTS = ["tender_right_wrist", "tender_left_wrist", "tender_right_mcp2", "tender_left_pip3",
                "tender_right_knee", "swollen_right_wrist", "swollen_left_wrist"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, port: int) -> subprocess.Popen:
    """The app as ``make run`` starts it, on loopback, waiting until its health check answers."""
    env = {**os.environ, "RXPREDICT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--client.toolbarMode", "viewer"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the app did not start within a minute")


@contextmanager
def served(home: Path, chromium: str = CHROMIUM) -> Iterator[tuple[Page, str]]:
    """The app served from ``home`` on a free port, and a headless chromium page (1280 x 900) with its URL;
    both are closed after the block."""
    port = free_port()
    app = start_app(home, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            try:
                yield browser.new_page(viewport={"width": 1280, "height": 900}), f"http://127.0.0.1:{port}"
            finally:
                browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)


def settle(page: Page) -> None:
    """Wait until Streamlit has finished the run a change started."""
    page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=60_000)
    page.wait_for_timeout(300)


def full_height(page: Page) -> None:
    """Make the window as tall as Streamlit's scrolling main area (measured in a window of the usual height, so
    that a taller one left by an earlier page adds no empty space), so that all of it is on screen."""
    page.set_viewport_size({"width": 1280, "height": 900})
    settle(page)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": max(900, height)})
    settle(page)


def shot(page: Page, out: Path, name: str) -> Path:
    """The whole page as ``out/name.png``, the window made as tall as it first."""
    full_height(page)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def region_shot(page: Page, out: Path, name: str, first: Locator, last: Locator) -> Path:
    """The main column from the top of ``first`` to the bottom of ``last``, as ``out/name.png``."""
    full_height(page)
    top, bottom = first.bounding_box(), last.bounding_box()
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    if top is None or bottom is None or main is None:
        raise RuntimeError(f"{name}: the region to take is not on the page")
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True,
                    clip={"x": main["x"], "y": top["y"] - 8, "width": main["width"],
                          "height": bottom["y"] + bottom["height"] - top["y"] + 16})
    return path


def fill_number(page: Page, label: str, value: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(page)


def fill_date(page: Page, label: str, digits: str) -> None:
    """Type a date into Streamlit's segmented date field (year, month, day)."""
    page.get_by_label(label, exact=True).locator('[role="spinbutton"]').first.click()
    page.keyboard.type(digits)
    page.keyboard.press("Tab")
    settle(page)


def choose(page: Page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def search(page: Page, label: str, text: str) -> None:
    """Type into a search field (the patient lists show the first matches only) and let the page run."""
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Enter")
    settle(page)


def sign_in(page: Page, url: str, name: str, password: str, first_heading: str) -> None:
    """Open the app at ``url`` signed out and sign in; waits for the first page's heading."""
    page.goto(url)
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=first_heading).wait_for(timeout=60_000)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()


def enter_visit(page: Page, patient: str, date_digits: str) -> None:
    """On the Visit entry page: a visit of ``patient`` on the date (YYYYMMDD) with joints, labs and globals."""
    page.get_by_role("link", name="Visit entry").click()
    page.get_by_role("heading", name="Visit entry").wait_for()
    search(page, "Search patients by ID", patient)
    choose(page, "Patient", patient)
    fill_date(page, "Visit date", date_digits)
    for key in VISIT_JOINTS:
        page.locator(f'[class*="st-key-visit-{key}"] label').click()
        settle(page)
    fill_number(page, "ESR [mm/h]", "34")
    fill_number(page, "CRP [mg/L]", "12.5")
    fill_number(page, "Patient global assessment [mm (0-100 VAS)]", "55")
    fill_number(page, "Physician global assessment [mm (0-100 VAS)]", "40")
    fill_number(page, "Pain [mm (0-100 VAS)]", "50")


def score_films(page: Page, films: list[Path]) -> Locator:
    """On the Visit entry page: upload ``films`` on the "Score radiographs" tab and wait for every film's scores
    drawn on it; returns the first film's picture."""
    page.get_by_text("Scored radiographs at this visit").click()
    page.get_by_role("tab", name="Score radiographs").click()
    page.locator('[class*="st-key-visit_films"] input[type="file"]').set_input_files([str(f) for f in films])
    pictures = page.locator('[data-testid="stImage"]')
    for i in range(len(films)):
        pictures.nth(i).wait_for(timeout=60_000)
    settle(page)
    return pictures.first


def open_comparison(page: Page, patient: str, date_digits: str) -> float:
    """On the Therapy comparison page, open ``patient`` at the date; seconds from choosing the patient until the
    page is complete: the table, the retention curves, the SHAP waterfall and the report button (the page's
    last element) drawn.

    Searching for the patient first clears an earlier patient's comparison from the page, so nothing left
    from it can pass for the new one.
    """
    page.get_by_role("link", name="Therapy comparison").click()
    page.get_by_role("heading", name="Therapy comparison").wait_for()
    search(page, "Search by patient ID", patient)
    fill_date(page, "Date of the comparison", date_digits)
    page.keyboard.press("Escape")  # close the calendar the date field opened
    page.get_by_role("heading", name="Options, best first").wait_for(state="detached")
    page.get_by_label("Patient", exact=True).click()
    start = time.perf_counter()
    page.get_by_role("option", name=patient, exact=True).click()
    page.locator('[data-testid="stTable"] table').wait_for(timeout=60_000)
    page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').first.wait_for()
    page.locator('[data-testid="stImage"] img').first.wait_for()
    page.get_by_role("button", name="Download the report (HTML, prints on one page)").wait_for()
    elapsed = time.perf_counter() - start
    settle(page)
    return elapsed


def shoot_every_page(page: Page, out: Path, prefix: str) -> list[str]:
    """Open every page in the signed-in user's navigation in turn and take it as ``out/<prefix>-<n>-<title>.png``;
    the titles, in the navigation's order."""
    links = page.locator('[data-testid="stSidebarNavLink"]')
    titles = [t.strip().splitlines()[-1] for t in links.all_inner_texts()]  # the icon's name comes first
    for n, title in enumerate(titles, start=1):
        links.filter(has_text=title).first.click()
        page.get_by_role("heading", level=1).filter(has_text=title.split(" (")[0]).first.wait_for(timeout=60_000)
        shot(page, out, f"{prefix}-{n}-{title.lower().replace(' ', '-')}")
    return titles


def table_rows(page: Page) -> list[list[str]]:
    """The comparison table as shown: one list of cell texts per option, the header row first."""
    table = page.locator('[data-testid="stTable"] table').first
    header = [c.inner_text().strip() for c in table.locator("thead th").all()]
    rows = [[c.inner_text().strip() for c in row.locator("th, td").all()] for row in table.locator("tbody tr").all()]
    return [header, *rows]
