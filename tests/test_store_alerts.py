"""The flare-risk monitor's alerts in the app database (rxpredict.store.alerts), on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import threading

import polars as pl
import pytest
from alembic import command
from polars.testing import assert_frame_equal
from sqlalchemy import func, insert, inspect, select

from rxpredict.bundle import write_bundle
from rxpredict.exceptions import BundleError
from rxpredict.registry import read_registry
from rxpredict.schemas import load_contract
from rxpredict.store import alerts
from rxpredict.store.alerts import AlertError, decide_alert, open_alerts, patient_alerts, record_alerts
from rxpredict.store.audit import audit_frame
from rxpredict.store.engine import make_engine
from rxpredict.store.migrate import alembic_config, current_revision, head_revision, upgrade_database
from rxpredict.store.tables import REGISTRY_TABLES, Alert, AuditEntry, User
from rxpredict.store.transfer import import_registry

DAY = dt.date(2022, 3, 1)
NOW = dt.datetime(2022, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
MODEL = "monitor 2022-02-01T00:00:00+00:00"
NASTY = "Robert'); DROP TABLE alerts;-- <b>Zoë</b> 🦴 100%_\\x"


def scores(*rows: tuple[str, dt.date, float, bool]) -> pl.DataFrame:
    """Rows as score_patients gives them: patient_id, date, p_flare_28d, alert, reasons, shap."""
    return pl.DataFrame(
        [(pid, day, p, alert, f"steps down; {NASTY}" if alert else "", json.dumps({"steps": 0.4}) if alert else None)
         for pid, day, p, alert in rows],
        schema=dict(zip(alerts.SCORE_COLUMNS, [pl.String, pl.Date, pl.Float64, pl.Boolean, pl.String, pl.String],
                        strict=True)),
        orient="row")


@pytest.fixture()
def engine(store_engine, example_dir):
    """The store holding the example registry (patients EX001 to EX004)."""
    import_registry(store_engine, example_dir)
    return store_engine


def alert_audit(engine) -> pl.DataFrame:
    return audit_frame(engine, table="alerts").sort("at", "record_key")


# --- recording ------------------------------------------------------------------------------------------------

def test_alerts_are_stored_open_highest_risk_first_with_an_audit_row_each(engine):
    day = scores(("EX001", DAY, 0.21, True), ("EX002", DAY, 0.05, False), ("EX003", DAY, 0.34, True))
    assert record_alerts(engine, day, model=MODEL, user="rhea", now=NOW) == 2
    shown = open_alerts(engine)
    assert shown.columns == list(alerts.OPEN_ALERT_SCHEMA)
    assert shown.select("patient_id", "sex", "birth_year", "date", "p_flare_28d", "status").rows() == [
        ("EX003", "M", 1958, DAY, 0.34, "open"), ("EX001", "F", 1962, DAY, 0.21, "open")]
    first = shown.row(0, named=True)
    assert first["reasons"] == f"steps down; {NASTY}" and json.loads(first["shap"]) == {"steps": 0.4}
    assert first["model"] == MODEL and first["created_at"] == NOW and first["decided_by"] is None
    log = alert_audit(engine)
    assert log["action"].to_list() == ["insert", "insert"] and set(log["user"]) == {"rhea"}
    assert {json.loads(k)["id"] for k in log["record_key"]} == set(shown["id"])
    inserted = json.loads(log.filter(pl.col("record_key") == json.dumps({"id": first["id"]}))["new_values"][0])
    assert inserted == {"patient_id": "EX003", "date": DAY.isoformat(), "p_flare_28d": 0.34, "model": MODEL,
                        "status": "open", "reasons": f"steps down; {NASTY}"}


def test_scoring_the_same_day_twice_stores_nothing_new(engine):
    day = scores(("EX001", DAY, 0.21, True), ("EX003", DAY, 0.34, True))
    assert record_alerts(engine, day, model=MODEL, user="rhea") == 2
    assert record_alerts(engine, day, model=MODEL, user="rhea") == 0
    assert open_alerts(engine).height == 2 and alert_audit(engine).height == 2


def test_an_open_alert_holds_back_every_new_one_of_the_patient(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="rhea")
    later = scores(("EX001", DAY + dt.timedelta(days=60), 0.5, True), ("EX001", DAY + dt.timedelta(days=61), 0.6, True))
    assert record_alerts(engine, later, model=MODEL, user="rhea") == 0
    assert patient_alerts(engine, "EX001")["date"].to_list() == [DAY]


def test_one_scoring_with_several_days_of_a_patient_stores_the_first(engine):
    days = scores(("EX001", DAY + dt.timedelta(days=1), 0.3, True), ("EX001", DAY, 0.2, True))
    assert record_alerts(engine, days, model=MODEL, user="rhea") == 1
    assert patient_alerts(engine, "EX001")["date"].to_list() == [DAY]


def test_a_recently_decided_alert_holds_back_nearby_dates_only(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="rhea")
    decide_alert(engine, patient_alerts(engine, "EX001")["id"][0], "dismissed", "rhea", now=NOW)
    soon = NOW + dt.timedelta(days=3)
    near, far = DAY + dt.timedelta(days=13), DAY + dt.timedelta(days=14)
    assert record_alerts(engine, scores(("EX001", near, 0.4, True)), model=MODEL, user="rhea", now=soon) == 0
    assert record_alerts(engine, scores(("EX001", far, 0.4, True)), model=MODEL, user="rhea", now=soon) == 1
    assert patient_alerts(engine, "EX001").select("date", "status").rows() == [(far, "open"), (DAY, "dismissed")]


def test_a_decision_long_ago_holds_back_only_its_own_date(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="rhea")
    decide_alert(engine, patient_alerts(engine, "EX001")["id"][0], "acknowledged", "rhea", now=NOW)
    later = NOW + dt.timedelta(days=15)
    assert record_alerts(engine, scores(("EX001", DAY, 0.3, True)), model=MODEL, user="rhea", now=later) == 0
    nearby = scores(("EX001", DAY + dt.timedelta(days=2), 0.3, True))
    assert record_alerts(engine, nearby, model=MODEL, user="rhea", now=later) == 1


def test_two_people_scoring_the_same_day_at_once_store_each_alert_once(engine):
    day = scores(("EX001", DAY, 0.21, True), ("EX003", DAY, 0.34, True))
    added: list[object] = []

    def score(user: str) -> None:
        try:
            added.append(record_alerts(engine, day, model=MODEL, user=user))
        except Exception as e:  # noqa: BLE001 - the assertion below names it
            added.append(e)

    threads = [threading.Thread(target=score, args=(user,)) for user in ("cara", "rhea", "adam")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(added) == [0, 0, 2]
    assert open_alerts(engine).height == 2


def test_scores_of_patients_not_stored_write_nothing(engine):
    day = scores(("EX001", DAY, 0.21, True), ("NOBODY", DAY, 0.5, True))
    with pytest.raises(AlertError, match="1 scored patient"):
        record_alerts(engine, day, model=MODEL, user="rhea")
    assert open_alerts(engine).is_empty() and alert_audit(engine).is_empty()


def test_scores_without_the_columns_of_score_patients_are_refused(engine):
    with pytest.raises(ValueError, match="reasons, shap"):
        record_alerts(engine, scores(("EX001", DAY, 0.2, True)).drop("reasons", "shap"), model=MODEL, user="rhea")


# --- decisions ------------------------------------------------------------------------------------------------

def test_a_decision_is_stored_verbatim_with_old_and_new_values_in_the_audit_log(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="cara")
    alert_id = open_alerts(engine)["id"][0]
    decide_alert(engine, alert_id, "acknowledged", "rhea", NASTY, now=NOW)
    assert open_alerts(engine).is_empty()
    decided = patient_alerts(engine, "EX001").row(0, named=True)
    assert (decided["status"], decided["decided_by"], decided["decided_at"], decided["note"]) == (
        "acknowledged", "rhea", NOW, NASTY)
    entry = audit_frame(engine, table="alerts", key={"id": alert_id}).row(0, named=True)
    assert (entry["action"], entry["user"]) == ("acknowledge", "rhea")
    assert json.loads(entry["old_values"]) == {"status": "open", "decided_by": None, "decided_at": None, "note": None}
    assert json.loads(entry["new_values"]) == {"status": "acknowledged", "decided_by": "rhea",
                                               "decided_at": NOW.isoformat(), "note": NASTY}


def test_a_blank_note_is_no_note(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="cara")
    decide_alert(engine, open_alerts(engine)["id"][0], "dismissed", "cara", "   ")
    assert patient_alerts(engine, "EX001")["note"][0] is None


def test_deciding_twice_an_unknown_alert_or_a_bad_decision_is_refused(engine):
    record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="cara")
    alert_id = open_alerts(engine)["id"][0]
    decide_alert(engine, alert_id, "dismissed", "cara", now=NOW)
    before = patient_alerts(engine, "EX001")
    with pytest.raises(AlertError, match=f"alert {alert_id} was dismissed already by cara on 2022-03-02 09:00 UTC"):
        decide_alert(engine, alert_id, "acknowledged", "rhea")
    with pytest.raises(AlertError, match="there is no alert 9999"):
        decide_alert(engine, 9999, "acknowledged", "rhea")
    with pytest.raises(AlertError, match="acknowledged or dismissed, not 'closed'"):
        decide_alert(engine, alert_id, "closed", "rhea")
    assert_frame_equal(patient_alerts(engine, "EX001"), before)
    assert alert_audit(engine)["action"].to_list() == ["insert", "dismiss"]


# --- the data the monitor scores, and where it is ---------------------------------------------------------------

def test_the_stored_registry_is_the_imported_one(engine, example_dir):
    stored, example = alerts.stored_registry(engine), read_registry(example_dir)
    for name, table in REGISTRY_TABLES.items():
        key = [c.name for c in table.primary_key.columns]
        assert_frame_equal(stored[name].sort(key), example[name].sort(key))
    assert alerts.latest_wearable_date(engine) == example["wearables"]["date"].max()


def test_no_wearables_no_latest_date(store_engine):
    assert alerts.latest_wearable_date(store_engine) is None


def test_wearers_are_the_patients_with_data_in_the_days_up_to_a_day(engine):
    first, last = dt.date(2021, 1, 4), dt.date(2021, 1, 17)  # EX001's wearable days
    assert alerts.wearers(engine, last, 56) == alerts.wearers(engine, first, 1) == 1
    assert alerts.wearers(engine, first - dt.timedelta(days=1), 56) == 0
    assert alerts.wearers(engine, last + dt.timedelta(days=56), 56) == 0
    assert alerts.wearers(engine, last + dt.timedelta(days=55), 56) == 1


def test_the_monitor_lives_in_the_home_folder_unless_named(monkeypatch, tmp_path):
    monkeypatch.delenv(alerts.MONITOR_MODEL_ENV, raising=False)
    monkeypatch.setenv("RXPREDICT_HOME", str(tmp_path))
    assert alerts.monitor_dir() == tmp_path / "models" / "monitor"
    assert alerts.monitor_stamp(alerts.monitor_dir()) is None
    monkeypatch.setenv(alerts.MONITOR_MODEL_ENV, str(tmp_path / "mine"))
    assert alerts.monitor_dir() == tmp_path / "mine"
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text(json.dumps({"created": "2026-01-05T10:00:00+00:00"}))
    assert alerts.monitor_stamp(tmp_path / "mine") == "mine 2026-01-05T10:00:00+00:00"
    (tmp_path / "mine" / "config.json").write_text("{not json")
    with pytest.raises(BundleError, match="mine: config.json is not valid JSON"):
        alerts.monitor_stamp(tmp_path / "mine")


def test_a_bundle_this_rxpredict_cannot_read_is_a_bundle_error(tmp_path):
    write = {"config.json": lambda path: path.write_text(json.dumps(
        {"kind": "FlareRiskModel", "schema_version": load_contract().version}))}
    write_bundle(tmp_path / "old", write)
    with pytest.raises(BundleError, match="old: a flare-risk bundle of format None.*train it again"):
        alerts.load_active_monitor(tmp_path / "old")
    with pytest.raises(BundleError, match="not a model bundle"):
        alerts.load_active_monitor(tmp_path)


# --- the migration ----------------------------------------------------------------------------------------------

def test_a_database_at_revision_0002_gets_the_alerts_table_and_keeps_its_rows(database_url, example_dir):
    engine = make_engine(database_url)
    with engine.begin() as c:
        command.upgrade(alembic_config(c), "0002")
    example = read_registry(example_dir)
    with engine.begin() as c:
        for name, table in REGISTRY_TABLES.items():
            c.execute(insert(table), example[name].to_dicts())
        c.execute(insert(User), [{"name": "rhea", "role": "rheumatologist", "password_hash": "x", "active": True,
                                  "failed_logins": 0, "created_at": NOW}])
        c.execute(insert(AuditEntry), [{"at": NOW, "user_name": "rhea", "action": "login", "table_name": "users",
                                        "record_key": "rhea"}])
    assert not inspect(engine).has_table("alerts")

    assert upgrade_database(engine) == head_revision() == current_revision(engine)
    assert inspect(engine).has_table("alerts")
    stored = alerts.stored_registry(engine)
    for name, table in REGISTRY_TABLES.items():
        key = [c.name for c in table.primary_key.columns]
        assert_frame_equal(stored[name].sort(key), example[name].sort(key))
    with engine.connect() as c:
        assert c.scalars(select(User.name)).all() == ["rhea"]
        assert c.scalar(select(func.count()).select_from(AuditEntry)) == 1
        assert c.scalar(select(func.count()).select_from(Alert)) == 0
    assert record_alerts(engine, scores(("EX001", DAY, 0.21, True)), model=MODEL, user="rhea") == 1
    engine.dispose()
