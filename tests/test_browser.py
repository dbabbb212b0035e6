"""End to end in a real browser: clinic staff enter a visit, a rheumatologist opens the therapy comparison, and
the numbers on the page are those `rxpredict compare` gives for the patient.

Debian's chromium driven by Playwright (tests/browser.py). Without chromium or
Playwright the test is skipped, unless $RXPREDICT_REQUIRE_BROWSER is set (.ci/run
sets it, after installing chromium through apt), where it fails instead.
Screenshots of every page (the flow's, then every page as the admin sees it) go to
``test-output/browser/``.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from rxpredict.cli import main
from rxpredict.imaging.installed import IMAGING_MODEL_ENV
from rxpredict.imaging.persist import save_scorer
from rxpredict.report import percent
from rxpredict.store import auth, records
from rxpredict.store.demo import build_demo, ensure_demo_model
from rxpredict.store.migrate import open_store
from rxpredict.store.records import search_patients
from tests.imaging_support import tiny_films, tiny_scorer

SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-output" / "browser"
REQUIRED = bool(os.environ.get("RXPREDICT_REQUIRE_BROWSER"))


def _browser_or_skip():
    try:
        from tests import browser
    except ImportError as e:  # playwright is not installed
        missing = f"playwright is not installed ({e})"
    else:
        if Path(browser.CHROMIUM).exists():
            return browser
        missing = f"no chromium at {browser.CHROMIUM} (apt-get install chromium)"
    if REQUIRED:
        pytest.fail(f"RXPREDICT_REQUIRE_BROWSER is set but {missing}")
    pytest.skip(missing)


@pytest.fixture()
def demo(tmp_path, monkeypatch):
    """A demo home: 300 simulated patients, a small active model, a tiny radiograph scorer, logins per role."""
    monkeypatch.setenv("RXPREDICT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RXPREDICT_DATABASE_URL", raising=False)
    films = tiny_films(tmp_path / "films", seed=5, patients=2)
    monkeypatch.setenv(IMAGING_MODEL_ENV, str(save_scorer(tiny_scorer(films), tmp_path / "scorer")))
    made = build_demo(patients=300, monitor=False, model=False, scorer=False)
    engine = open_store(made.url)
    version, _ = ensure_demo_model(engine, members=2, epochs=3)
    patient = search_patients(engine, "P")["patient_id"][0]
    engine.dispose()
    return made, version, patient, tmp_path / "home"


def test_staff_enter_a_visit_and_the_comparison_shows_what_rxpredict_compare_gives(demo, tmp_path):
    browser = _browser_or_skip()
    made, version, patient, home = demo
    visit_day = dt.date.today() - dt.timedelta(days=3)
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with browser.served(home) as (page, url):
        page.goto(url)
        browser.shot(page, SCREENSHOTS, "01-sign-in")
        browser.sign_in(page, url, *made.logins["clinic_staff"], first_heading="Patients")
        browser.shot(page, SCREENSHOTS, "02-patients")
        browser.enter_visit(page, patient, f"{visit_day:%Y%m%d}")
        browser.shot(page, SCREENSHOTS, "03-visit-entry")
        browser.score_films(page, sorted((tmp_path / "films").glob("SYN00001-*.jpg")))
        browser.shot(page, SCREENSHOTS, "03-visit-films")
        page.get_by_role("button", name="Save visit").click()
        page.get_by_text(f"Saved the visit of {patient}").wait_for(timeout=30_000)
        browser.shot(page, SCREENSHOTS, "04-visit-saved")
        browser.sign_out(page)

        browser.sign_in(page, url, *made.logins["rheumatologist"], first_heading="Patients")
        seconds = browser.open_comparison(page, patient, f"{visit_day:%Y%m%d}")
        shown = browser.table_rows(page)
        warnings = page.locator('[data-testid="stAlert"]').all_inner_texts()
        browser.shot(page, SCREENSHOTS, "05-comparison")
        browser.sign_out(page)

        browser.sign_in(page, url, *made.logins["admin"], first_heading="Patients")
        every_page = browser.shoot_every_page(page, SCREENSHOTS, "06-admin")

    assert not any("No visit in the 90 days" in w for w in warnings)  # the visit just entered is the baseline
    exam = records.patient_tables(open_store(made.url), patient)["imaging"].filter(pl.col("exam_date") == visit_day)
    assert exam.height == 56 and set(exam["source"]) == {"model"}  # the four films' areas, as the scorer read them
    expected = _compare(made.url, version.path, patient, visit_day, tmp_path)
    header, rows = shown[0], shown[1:]
    assert header[:2] == ["option", "P(response)"] and len(rows) == expected.height
    for row, want in zip(rows, expected.iter_rows(named=True)):
        assert row[1] == (f"{percent(want['p_response'])} ({percent(want['p_response_low'])}–"
                          f"{percent(want['p_response_high'])})")
        assert row[header.index("rapid progression")] == percent(want["p_rrp"])
        assert row[header.index("stop within 1 year")] == percent(want["p_stop_1y"])
    assert seconds < 30  # the timing itself is a benchmark (benchmarks/bench_compare_page.py), not a test
    assert len(every_page) == len(auth.PAGE_ROLES)  # an admin opens every page
    assert len(list(SCREENSHOTS.glob("*.png"))) == 6 + len(every_page)


def _compare(url: str, model: Path, patient: str, at: dt.date, tmp_path: Path) -> pl.DataFrame:
    """`rxpredict compare` for the patient on the registry exported from the app database."""
    runner = CliRunner()
    exported = runner.invoke(main, ["db", "export", str(tmp_path / "export"), "--database", url])
    assert exported.exit_code == 0, exported.output
    out = tmp_path / "compare.csv"
    result = runner.invoke(main, ["compare", "--model", str(model), "--registry", str(tmp_path / "export"),
                                  "--patient", patient, "--at", str(at), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return pl.read_csv(out)


def test_the_report_prints_on_one_page(demo, tmp_path):
    """The chart's report, printed to PDF by chromium (as a browser's Print does), is one page."""
    import re
    import subprocess

    from rxpredict.bundle import load_models
    from rxpredict.compare import compare_patient, explain_option
    from rxpredict.explain.importance import plot_png
    from rxpredict.report import comparison_html
    from rxpredict.store.alerts import stored_registry

    browser = _browser_or_skip()
    made, version, patient, _ = demo
    model, survival = load_models(version.path)
    comparison = compare_patient(model, survival, stored_registry(open_store(made.url)), patient)
    focus = explain_option(model, comparison, comparison.options["therapy"][0])
    page = tmp_path / "report.html"
    page.write_text(comparison_html(comparison, model_name=version.label, focus=focus,
                                    waterfall_png=plot_png(focus.explanation, "waterfall"),
                                    retention_horizon_days=survival.retention.horizon_days))
    pdf = tmp_path / "report.pdf"
    subprocess.run([browser.CHROMIUM, "--headless", *browser.CHROMIUM_FLAGS, f"--print-to-pdf={pdf}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes())) == 1
