"""The therapy comparison page through AppTest: the active model's numbers as `rxpredict compare` gives them,
what the model did not see, safety flags, reasons and the report."""
from __future__ import annotations

import datetime as dt

import pytest

from rxpredict.bundle import load_models
from rxpredict.compare import compare_patient
from rxpredict.registry import Registry, read_registry
from rxpredict.report import options_table
from rxpredict.retrain import train_bundle
from rxpredict.simulate import simulate
from rxpredict.store import records
from rxpredict.store.models import promote_model, register_model
from tests.test_app import app_as, app_db  # noqa: F401 - app_db is a fixture used here

AT = dt.date(2021, 2, 1)  # a month after EX001's baseline visit of 2021-01-11


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    simulate(800, seed=3, out=root / "reg", progress=False)
    train_bundle(read_registry(root / "reg"), root / "model", members=2, epochs=3)
    return root / "model"


@pytest.fixture()
def active(app_db, bundle_dir):  # noqa: F811 - the fixture imported above
    version = register_model(app_db, bundle_dir, user="dana")
    promote_model(app_db, version.id, user="dana")
    return version


def _open(engine, patient: str, at: dt.date):
    at_page = app_as(engine, "rheumatologist", "compare")
    at_page.selectbox(key="compare_id").set_value(patient)
    at_page.date_input(key="compare_date").set_value(at)
    at_page.run()
    assert not at_page.exception, at_page.exception
    return at_page


def test_the_page_shows_what_rxpredict_compare_computes(app_db, active, bundle_dir):  # noqa: F811
    page = _open(app_db, "EX001", AT)
    model, survival = load_models(bundle_dir)
    registry = Registry.from_tables(records.patient_tables(app_db, "EX001"))
    expected = options_table(compare_patient(model, survival, registry, "EX001", AT),
                             survival.retention.horizon_days)
    shown = page.table[0].value
    assert list(shown.columns) == expected.columns
    assert shown.values.tolist() == [list(r) for r in expected.rows()]
    assert page.title[0].value == "Therapy comparison"
    markdown = " ".join(m.value for m in page.markdown)
    assert "Current or past smoker" in markdown  # EX001 is a former smoker: a JAK-inhibitor caution
    assert "Screen for latent tuberculosis" in markdown
    assert "raises" in markdown or "lowers" in markdown  # the focus option's reasons
    assert any("clinical:" in m.value for m in page.markdown)  # the data-source shares
    assert active.label in " ".join(c.value for c in page.caption)


def test_what_the_model_did_not_see_is_said_and_options_can_be_contrasted(app_db, active):  # noqa: F811
    page = _open(app_db, "EX001", dt.date(2026, 1, 5))  # years after the last visit
    warnings = " ".join(w.value for w in page.warning)
    assert "No visit in the 90 days before this date" in warnings and "wearable data" in warnings
    page.selectbox(key="compare_b").set_value(page.selectbox(key="compare_a").value).run()
    assert "Choose two different options." in [i.value for i in page.info]


def test_a_patient_without_a_comparison_gets_a_message_not_a_traceback(app_db, active):  # noqa: F811
    page = _open(app_db, "EX002", dt.date(1990, 1, 1))  # before any of the patient's data
    assert not page.exception and (page.error or page.warning)
