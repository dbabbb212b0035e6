"""Take the screenshots of docs/user-guide-clinic.md in a real headless Chromium.

Starts the clinic app on a demo database in a temporary folder, signs in as
the demo clinic-staff user, registers a patient, fills a visit and opens the
timeline, saving a PNG at each step into ``docs/img/``. Then, on the
Monitoring page, it scores each of the last days with wearable data in turn,
as a clinic scoring every day would, and shows the open alerts and the
wearable streams of the patient with the highest-risk alert. Needs Debian's
chromium (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: it drives /usr/bin/chromium).

The demo's flare-risk monitor is trained in the temporary folder (a minute or
two); ``--monitor DIR`` keeps it in DIR instead and reuses it on later runs.

    .venv/bin/python docs/screenshots.py [--chromium /usr/bin/chromium] [--monitor DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright

from rxpredict.store.alerts import MONITOR_MODEL_ENV
from rxpredict.store.demo import build_demo

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
#: Days the Monitoring page scores, one after the other, ending on the latest day with wearable data.
SCORED_DAYS = 28
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


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


def settle(page: Page) -> None:
    """Wait until Streamlit has finished the run a change started."""
    page.wait_for_timeout(400)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=30_000)
    page.wait_for_timeout(300)


def full_height(page: Page) -> None:
    """Make the window as tall as Streamlit's scrolling main area (measured in a window of the usual height, so
    that a taller one left by an earlier page adds no empty space), so that all of it is on screen."""
    page.set_viewport_size({"width": 1280, "height": 900})
    settle(page)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": max(900, height)})
    settle(page)


def shot(page: Page, name: str) -> None:
    """The whole page, the window made as tall as it first."""
    full_height(page)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/img/{name}.png")


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


def region_shot(page: Page, name: str, first: Locator, last: Locator) -> None:
    """The main column from the top of ``first`` to the bottom of ``last``."""
    full_height(page)
    top, bottom = first.bounding_box(), last.bounding_box()
    main = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    if top is None or bottom is None or main is None:
        raise RuntimeError(f"{name}: the region to take is not on the page")
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True,
                    clip={"x": main["x"], "y": top["y"] - 8, "width": main["width"],
                          "height": bottom["y"] + bottom["height"] - top["y"] + 16})
    print(f"docs/img/{name}.png")


def score_days(page: Page, days: list[dt.date]) -> None:
    """Score each day on the Monitoring page, in order, waiting for the page to say what it stored."""
    for day in days:
        fill_date(page, "Day to score", f"{day:%Y%m%d}")
        page.keyboard.press("Escape")  # close the calendar the date field opened over the button
        page.get_by_role("button", name="Score", exact=True).click()
        page.get_by_text(f"patient(s) on {day}:").wait_for(timeout=60_000)
        settle(page)


def monitoring(page: Page, home: Path) -> None:
    """Score the last days, show the open alerts, then the highest-risk alert's patient's wearable streams."""
    page.get_by_role("link", name="Monitoring").click()
    page.get_by_role("heading", name="Monitoring between visits").wait_for()
    latest = latest_wearable_day(home)
    score_days(page, [latest - dt.timedelta(days=back) for back in range(SCORED_DAYS - 1, -1, -1)])
    page.get_by_role("link", name="Monitoring").click()  # a fresh run, without the last scoring's message
    page.get_by_role("heading", name="Open alerts").wait_for()
    settle(page)
    if page.get_by_text("No open alerts.").count():
        raise RuntimeError(f"scoring the {SCORED_DAYS} days up to {latest} raised no alert to show")
    shot(page, "clinic-08-monitoring")

    page.get_by_role("button", name="Open timeline").first.click()
    page.get_by_role("heading", name="Patient timeline").wait_for()
    streams = page.get_by_role("heading", name="Wearables against the personal baseline")
    streams.wait_for(timeout=30_000)
    settle(page)
    alerts = page.get_by_role("heading", name="Flare-risk alerts")
    region_shot(page, "clinic-09-timeline-streams", streams, alerts.locator("xpath=following::*[@data-testid="
                                                                          "'stDataFrame'][1]"))


def run(chromium: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rxpredict-shots-") as tmp:
        home, port = Path(tmp), free_port()
        os.environ["RXPREDICT_HOME"] = str(home)
        demo = build_demo(patients=40, model=False, progress=print)
        name, password = demo.logins["clinic_staff"]
        app = start_app(home, port)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_label("User name").fill(name)
                page.get_by_label("Password", exact=True).fill(password)
                shot(page, "clinic-01-sign-in")
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Patients").wait_for()
                shot(page, "clinic-02-patients")

                page.get_by_label("Patient ID", exact=True).fill("NEW-0001")
                choose(page, "Sex", "F")
                fill_number(page, "Year of birth [year]", "1968")
                fill_date(page, "Diagnosis date", "20240311")
                choose(page, "ACPA positive", "yes")
                page.get_by_role("button", name="Register").click()
                page.get_by_text("Registered patient NEW-0001.").wait_for()
                shot(page, "clinic-03-registered")

                page.get_by_role("link", name="Visit entry").click()
                page.get_by_role("heading", name="Visit entry").wait_for()
                choose(page, "Patient", "NEW-0001")
                fill_date(page, "Visit date", "20261120")
                for key in ["tender_right_wrist", "tender_left_wrist", "tender_right_mcp2", "tender_left_pip3",
                            "tender_right_knee", "swollen_right_wrist", "swollen_left_wrist"]:
                    page.locator(f'[class*="st-key-visit-{key}"] label').click()
                    settle(page)
                fill_number(page, "ESR [mm/h]", "34")
                fill_number(page, "CRP [mg/L]", "12.5")
                fill_number(page, "Patient global assessment [mm (0-100 VAS)]", "55")
                fill_number(page, "Physician global assessment [mm (0-100 VAS)]", "40")
                fill_number(page, "Pain [mm (0-100 VAS)]", "230")
                shot(page, "clinic-04-visit-invalid-value")
                fill_number(page, "Pain [mm (0-100 VAS)]", "50")
                shot(page, "clinic-05-visit-scores")
                page.get_by_role("button", name="Save visit").click()
                page.get_by_text("Saved the visit of NEW-0001").wait_for()
                shot(page, "clinic-06-visit-saved")

                page.get_by_role("link", name="Patient timeline").click()
                page.get_by_role("heading", name="Patient timeline").wait_for()
                choose(page, "Patient", demo_patient(home))
                page.wait_for_selector("canvas, svg.marks", timeout=30_000)
                shot(page, "clinic-07-timeline")

                monitoring(page, home)
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)


def demo_patient(home: Path) -> str:
    """A simulated patient with several visits, for the timeline screenshot."""
    from rxpredict.store.migrate import open_store
    from rxpredict.store.records import search_patients

    return search_patients(open_store(f"sqlite:///{home / 'rxpredict.db'}"), "P")["patient_id"][0]


def latest_wearable_day(home: Path) -> dt.date:
    """The latest day of the demo's wearable data: the Monitoring page's default day to score."""
    from rxpredict.store.alerts import latest_wearable_date
    from rxpredict.store.migrate import open_store

    latest = latest_wearable_date(open_store(f"sqlite:///{home / 'rxpredict.db'}"))
    if latest is None:
        raise RuntimeError("the demo database holds no wearable data to score")
    return latest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--monitor", type=Path, help="keep the demo flare-risk monitor here (trained once) "
                        "instead of training one in the temporary folder on every run")
    args = parser.parse_args()
    if args.monitor:
        os.environ[MONITOR_MODEL_ENV] = str(args.monitor.resolve())
    run(args.chromium)
