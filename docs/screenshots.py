"""Take the screenshots of docs/user-guide-clinic.md in a real headless Chromium.

Starts the clinic app on a demo database in a temporary folder, signs in as
the demo clinic-staff user, registers a patient, fills a visit and opens the
timeline, saving a PNG at each step into ``docs/img/``. Needs Debian's
chromium (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: it drives /usr/bin/chromium).

    .venv/bin/python docs/screenshots.py [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from rxpredict.store.demo import build_demo

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
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


def shot(page: Page, name: str) -> None:
    """The whole page: the window is made as tall as Streamlit's scrolling main area first."""
    settle(page)
    height = page.evaluate("document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1280, "height": max(900, height)})
    settle(page)
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


def run(chromium: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rxpredict-shots-") as tmp:
        home, port = Path(tmp), free_port()
        os.environ["RXPREDICT_HOME"] = str(home)
        demo = build_demo(patients=40, monitor=False)
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
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)


def demo_patient(home: Path) -> str:
    """A simulated patient with several visits, for the timeline screenshot."""
    from rxpredict.store.migrate import open_store
    from rxpredict.store.records import search_patients

    return search_patients(open_store(f"sqlite:///{home / 'rxpredict.db'}"), "P")["patient_id"][0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    run(parser.parse_args().chromium)
