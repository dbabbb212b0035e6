"""Take the screenshots of the user guides (clinic, rheumatologist, data scientist) in headless Chromium.

Starts the clinic app on the demo database (``make run``'s, in a temporary
folder), signs in as the demo clinic-staff user, registers a patient, fills a
visit (and has the demo radiograph scorer read a synthetic hand film) and opens
the timeline, saving a PNG at each step into ``docs/img/``.
Then, on the Monitoring page, it scores each of the last days with wearable
data in turn, as a clinic scoring every day would, and shows the open alerts
and the wearable streams of the patient with the highest-risk alert. Last, it
signs in as the rheumatologist and opens a patient's therapy comparison, then
as the data scientist to show the Models page's versions. The
page flows are those of the end-to-end test (tests/browser.py). Needs Debian's
chromium (``apt-get install chromium``) and the ``playwright`` Python package
(no browser download: it drives /usr/bin/chromium).

The demo's response model (half a minute) and flare-risk monitor (a minute or
two) are trained in the temporary folder; ``--monitor DIR`` keeps the monitor
in DIR instead and reuses it on later runs.

    .venv/bin/python docs/screenshots.py [--chromium /usr/bin/chromium] [--monitor DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import polars as pl
from playwright.sync_api import Page

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rxpredict.store.alerts import MONITOR_MODEL_ENV  # noqa: E402
from rxpredict.store.demo import build_demo  # noqa: E402
from rxpredict.store.migrate import open_store  # noqa: E402
from rxpredict.imaging.synth import synthesize  # noqa: E402
from tests.browser import (CHROMIUM, choose, enter_visit, fill_date, fill_number, open_comparison,  # noqa: E402
                           region_shot, score_films, served, settle, sign_in, sign_out)
from tests.browser import shot as shot_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
#: Days the Monitoring page scores, one after the other, ending on the latest day with wearable data.
SCORED_DAYS = 28


def shot(page: Page, name: str) -> None:
    print(shot_in(page, OUT, name).relative_to(ROOT))


def region(page: Page, name: str, first, last) -> None:
    print(region_shot(page, OUT, name, first, last).relative_to(ROOT))


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
    region(page, "clinic-09-timeline-streams", streams, alerts.locator("xpath=following::*[@data-testid="
                                                                          "'stDataFrame'][1]"))


def run(chromium: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rxpredict-shots-") as tmp:
        home = Path(tmp)
        os.environ["RXPREDICT_HOME"] = str(home)
        demo = build_demo(progress=print)
        with served(home, chromium) as (page, url):
            clinic_staff(page, url, demo.logins["clinic_staff"], home)
            monitoring(page, home)
            sign_out(page)
            rheumatologist(page, url, demo.logins["rheumatologist"])
            sign_out(page)
            data_scientist(page, url, demo.logins["data_scientist"])


def clinic_staff(page: Page, url: str, login: tuple[str, str], home: Path) -> None:
    """Sign in, register a patient, enter a visit (with a value out of range first), open a timeline."""
    page.goto(url)
    page.get_by_label("User name").fill(login[0])
    page.get_by_label("Password", exact=True).fill(login[1])
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

    enter_visit(page, "NEW-0001", "20261120")
    fill_number(page, "Pain [mm (0-100 VAS)]", "230")
    shot(page, "clinic-04-visit-invalid-value")
    fill_number(page, "Pain [mm (0-100 VAS)]", "50")
    shot(page, "clinic-05-visit-scores")
    with tempfile.TemporaryDirectory(prefix="rxpredict-films-") as films:
        synthesize(1, Path(films) / "films", seed=13)
        picture = score_films(page, sorted((Path(films) / "films").glob("*-LH.jpg")))
        region(page, "clinic-05b-visit-films", page.get_by_text("Score radiographs").last, picture)
    page.get_by_role("button", name="Save visit").click()
    page.get_by_text("Saved the visit of NEW-0001").wait_for()
    shot(page, "clinic-06-visit-saved")

    page.get_by_role("link", name="Patient timeline").click()
    page.get_by_role("heading", name="Patient timeline").wait_for()
    choose(page, "Patient", demo_patient(home))
    page.wait_for_selector("canvas, svg.marks", timeout=30_000)
    shot(page, "clinic-07-timeline")


def rheumatologist(page: Page, url: str, login: tuple[str, str]) -> None:
    """The therapy comparison of a demo patient on a day with a recent visit: the table and flags, then the
    reasons for the best option and why it beats the second."""
    patient, day = compared_patient()
    sign_in(page, url, *login, first_heading="Patients")
    open_comparison(page, patient, f"{day:%Y%m%d}")
    retention = page.get_by_role("heading", name="Drug retention")
    region(page, "rheumatologist-01-options", page.get_by_role("heading", name="Therapy comparison"), retention)
    region(page, "rheumatologist-02-retention", retention, page.locator('[data-testid="stVegaLiteChart"]').first)
    region(page, "rheumatologist-03-why", page.get_by_role("heading", name="Why", exact=True),
           page.get_by_role("button", name="Download the report (HTML, prints on one page)"))


def data_scientist(page: Page, url: str, login: tuple[str, str]) -> None:
    """The Models page's versions: the demo model, its figures and evaluation plots."""
    sign_in(page, url, *login, first_heading="Patient timeline")
    page.get_by_role("link", name="Models").click()
    page.get_by_role("heading", name="Models").wait_for()
    page.get_by_role("tab", name="Versions").click()
    settle(page)
    shot(page, "data-scientist-01-versions")


def compared_patient() -> tuple[str, dt.date]:
    """A demo patient with imaging and genetics, and the day after their latest visit."""
    from rxpredict.store.alerts import stored_registry

    registry = stored_registry(open_store())
    seen = set(registry["imaging"]["patient_id"]) & set(registry["genetics"]["patient_id"])
    latest = (registry["visits"].filter(pl.col("patient_id").is_in(list(seen)))
              .group_by("patient_id").agg(last=pl.col("visit_date").max()).sort("last", "patient_id"))
    row = latest.row(-1, named=True)
    return row["patient_id"], row["last"] + dt.timedelta(days=1)


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
    parser.add_argument("--chromium", default=CHROMIUM)
    parser.add_argument("--monitor", type=Path, help="keep the demo flare-risk monitor here (trained once) "
                        "instead of training one in the temporary folder on every run")
    args = parser.parse_args()
    if args.monitor:
        os.environ[MONITOR_MODEL_ENV] = str(args.monitor.resolve())
    run(args.chromium)
