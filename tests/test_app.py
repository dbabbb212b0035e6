"""The clinic app through Streamlit's own AppTest: sign-in, role checks on every page, forms, messages and the rows saved."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from rxpredict.clinical import score_visit
from rxpredict.forms import haq_from_items, haq_sections
from rxpredict.monitoring.alerts import AlertPolicy
from rxpredict.monitoring.persist import save_monitor
from rxpredict.monitoring.pipeline import fit_monitor
from rxpredict.registry import Registry
from rxpredict.simulate import Scenario, simulate
from rxpredict.store import alerts, auth, records
from rxpredict.store.audit import audit_frame
from rxpredict.store.migrate import open_store
from rxpredict.store.transfer import import_registry

APP = Path(__file__).resolve().parents[1] / "app"
PASSWORD = "correct-horse-battery"
ROLE_USERS = {"clinic_staff": "cara", "rheumatologist": "rhea", "data_scientist": "dana", "admin": "adam"}
NASTY = ["Robert'); DROP TABLE patients;--", "<script>alert('x')</script>", "Zoë 李 🦴 Ω"]


@pytest.fixture()
def app_db(tmp_path, monkeypatch, example_dir):
    """A SQLite app database holding the example registry and one user per role; the app reads its URL from the env."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    monkeypatch.setenv("RXPREDICT_DATABASE_URL", url)
    monkeypatch.syspath_prepend(str(APP))  # a page run on its own imports ``ui`` as the router's pages do
    engine = open_store(url)
    import_registry(engine, example_dir, user="test-setup")
    for role, name in ROLE_USERS.items():
        auth.add_user(engine, name, role, PASSWORD)
    yield engine
    engine.dispose()


def app_as(engine, role: str | None, page: str | None = None) -> AppTest:
    """The app signed in as ``role`` (None: signed out), on ``page`` (a views/ file name) when given."""
    at = AppTest.from_file(str(APP / "main.py"), default_timeout=60)
    if role is not None:
        at.session_state["token"] = auth.sign_in(engine, ROLE_USERS[role], PASSWORD, sleep=lambda s: None)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, at.exception
    return at


def page_alone(engine, role: str, page: str) -> AppTest:
    """One page file run on its own with a session of ``role``: what a request that skips the router would get."""
    at = AppTest.from_file(str(APP / "views" / f"{page}.py"), default_timeout=60)
    at.session_state["token"] = auth.sign_in(engine, ROLE_USERS[role], PASSWORD, sleep=lambda s: None)
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def column_types(table) -> dict[str, dict]:
    """A shown table's column settings by column: type and format, as the browser gets them."""
    return {c: v["type_config"] for c, v in json.loads(table.proto.columns).items() if "type_config" in v}


# --- sign-in ---------------------------------------------------------------------------------------------------

def test_sign_in_opens_the_pages_of_the_role(app_db):
    at = app_as(app_db, None)
    assert [t.value for t in at.title] == ["rxpredict clinic"]
    at.text_input(key="login_name").input("cara")
    at.text_input(key="login_password").input(PASSWORD)
    at.button(key="login_submit").click().run()
    assert "token" in at.session_state
    assert "Signed in as **cara** (clinic staff)" in [c.value for c in at.sidebar.caption]
    assert [t.value for t in at.title] == ["Patients"]


def test_wrong_password_is_refused_with_one_message(app_db, monkeypatch):
    monkeypatch.setattr(auth.time, "sleep", lambda s: None)
    at = app_as(app_db, None)
    at.text_input(key="login_name").input("cara")
    at.text_input(key="login_password").input("wrong-password-123")
    at.button(key="login_submit").click().run()
    assert errors(at) == [auth.LOGIN_FAILED_MESSAGE]
    assert "token" not in at.session_state


def test_sign_out_ends_the_session(app_db):
    at = app_as(app_db, "clinic_staff")
    token = at.session_state["token"]
    at.sidebar.button(key="sign_out").click().run()
    assert auth.session_user(app_db, token) is None
    assert [t.value for t in at.title] == ["rxpredict clinic"]


def test_an_expired_session_asks_to_sign_in_again(app_db):
    token = auth.sign_in(app_db, "cara", PASSWORD, sleep=lambda s: None)
    auth.session_user(app_db, token, now=auth.utcnow() + auth.INACTIVITY_TIMEOUT * 2)  # the server ends it
    at = AppTest.from_file(str(APP / "views" / "patients.py"), default_timeout=60)
    at.session_state["token"] = token
    at.run()
    assert not at.title and "inactivity" in at.warning[0].value


# --- roles, checked by every page on the server -----------------------------------------------------------------

@pytest.mark.parametrize("role", list(ROLE_USERS))
@pytest.mark.parametrize("page", list(auth.PAGE_ROLES))
def test_every_page_checks_the_role_itself(app_db, role, page):
    at = page_alone(app_db, role, page)
    assert not at.exception, at.exception
    if role in auth.PAGE_ROLES[page]:
        assert not errors(at) and at.title
    else:
        assert errors(at) == [f"the {role.replace('_', ' ')} role may not open the {page.replace('_', ' ')} page"]
        assert not at.title  # nothing of the page was drawn


def test_signed_out_visitor_sees_no_page(app_db):
    at = AppTest.from_file(str(APP / "views" / "visit_entry.py"), default_timeout=60).run()
    assert not at.title and at.warning[0].value == "Please sign in."


def test_clinic_staff_navigation_has_no_admin_page(app_db):
    at = app_as(app_db, "clinic_staff")
    with pytest.raises(ValueError, match="admin"):
        at.switch_page("views/admin.py")


# --- patients ----------------------------------------------------------------------------------------------------

def test_register_a_patient(app_db):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="new_patient_id").input("N-001")
    at.selectbox(key="new_sex").select("F")
    at.number_input(key="new_birth_year").set_value(1970)
    at.date_input(key="new_diagnosis_date").set_value(dt.date(2019, 5, 2))
    at.selectbox(key="new_acpa_positive").select(True)
    at.button(key="register_submit").click().run()
    assert not errors(at)
    assert at.success[0].value == "Registered patient N-001."
    stored = records.get_patient(app_db, "N-001")
    assert stored["sex"] == "F" and stored["birth_year"] == 1970 and stored["acpa_positive"] is True
    assert stored["rf_positive"] is None


def test_register_shows_each_message_next_to_its_field_and_saves_nothing(app_db):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="new_patient_id").input("N-002")
    at.number_input(key="new_birth_year").set_value(1850)
    at.date_input(key="new_diagnosis_date").set_value(dt.date(2019, 5, 2))
    at.button(key="register_submit").click().run()
    shown = errors(at)
    assert any("minimum" in m for m in shown)  # birth year
    assert any("required" in m or "missing" in m for m in shown)  # sex
    assert records.get_patient(app_db, "N-002") is None


@pytest.mark.parametrize("text", NASTY)
def test_hostile_text_is_stored_verbatim_and_shown_as_text(app_db, text):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="new_patient_id").input(text)
    at.selectbox(key="new_sex").select("M")
    at.number_input(key="new_birth_year").set_value(1980)
    at.date_input(key="new_diagnosis_date").set_value(dt.date(2020, 1, 1))
    at.button(key="register_submit").click().run()
    assert records.get_patient(app_db, text)["patient_id"] == text
    at.text_input(key="patient_query").input(text).run()
    shown = at.dataframe[0].value
    assert shown["patient_id"].tolist() == [text]  # a table cell: text, never markup
    assert not any(getattr(m.proto, "allow_html", False) for m in at.markdown)


def test_patient_tables_show_dates_as_dates(app_db):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="patient_query").input("EX001").run()
    at.selectbox(key="edit_id").select("EX001").run()
    found, versions = at.dataframe
    assert column_types(found) == column_types(versions) == {"diagnosis_date": {"type": "date", "format": "YYYY-MM-DD"}}


def test_edit_keeps_the_previous_version(app_db):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="patient_query").input("EX001").run()
    at.selectbox(key="edit_id").select("EX001").run()
    before = records.get_patient(app_db, "EX001")
    at.selectbox(key="edit_EX001_smoking").select("current")
    at.button(key="edit_submit").click().run()
    assert not errors(at)
    assert records.get_patient(app_db, "EX001")["smoking"] == "current"
    versions = records.patient_versions(app_db, "EX001")
    assert versions.height == 2
    assert versions.filter(pl.col("version") == 1)["smoking"][0] == before["smoking"]


# --- visit entry --------------------------------------------------------------------------------------------------

def visit_page(engine, patient: str = "EX001") -> AppTest:
    at = app_as(engine, "clinic_staff", "visit_entry")
    at.selectbox(key="visit_patient").select(patient).run()
    return at


def test_visit_by_ticked_joints_scores_as_typed_and_saves(app_db):
    at = visit_page(app_db)
    at.date_input(key="visit.visit_date").set_value(dt.date(2026, 6, 1))
    for joint in ["left_wrist", "right_wrist", "left_mcp2"]:
        at.checkbox(key=f"visit.tender_{joint}").check()
    at.checkbox(key="visit.swollen_left_wrist").check()
    at.number_input(key="visit.crp_mg_l").set_value(12.0)
    at.number_input(key="visit.esr_mm_h").set_value(30.0)
    at.number_input(key="visit.patient_global_0_100").set_value(50.0)
    at.number_input(key="visit.physician_global_0_100").set_value(40.0).run()
    shown = {m.label: m.value for m in at.metric}
    expected = score_visit(
        {"tjc28": 3, "sjc28": 1, "crp_mg_l": 12.0, "esr_mm_h": 30.0, "patient_global_0_100": 50.0,
         "physician_global_0_100": 40.0})
    assert shown["DAS28-CRP"] == f"{expected['das28_crp']:.2f}"
    assert shown["CDAI"] == f"{expected['cdai']:.2f}"
    at.multiselect(key="visit_started").select("methotrexate")
    at.button(key="visit_save").click().run()
    assert not errors(at), errors(at)
    assert at.success[0].value == "Saved the visit of EX001 on 2026-06-01."
    tables = records.patient_tables(app_db, "EX001")
    visit = tables["visits"].filter(pl.col("visit_date") == dt.date(2026, 6, 1)).to_dicts()
    assert len(visit) == 1 and visit[0]["tjc28"] == 3 and visit[0]["sjc28"] == 1 and visit[0]["crp_mg_l"] == 12.0
    started = tables["treatments"].filter(pl.col("start_date") == dt.date(2026, 6, 1))
    assert started["drug"].to_list() == ["methotrexate"]


@pytest.mark.parametrize(("key", "value", "message"), [
    ("visit.tjc28", 30, "above the maximum 28"),
    ("visit.crp_mg_l", -3.0, "below the minimum 0"),
    ("visit.esr_mm_h", 250.0, "above the maximum 200"),
    ("visit.haq_di", 1.1, "not a multiple of 0.125"),
])
def test_each_invalid_value_is_explained_and_nothing_saved(app_db, key, value, message):
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.date_input(key="visit.visit_date").set_value(dt.date(2026, 6, 2))
    at.number_input(key="visit.tjc28").set_value(2)
    at.number_input(key="visit.sjc28").set_value(1)
    at.number_input(key=key).set_value(value).run()
    assert message in errors(at)  # shown as the user types
    at.button(key="visit_save").click().run()
    assert message in errors(at)
    assert "Nothing was saved: correct the fields marked above." in errors(at)
    visits = records.patient_tables(app_db, "EX001")["visits"]
    assert visits.filter(pl.col("visit_date") == dt.date(2026, 6, 2)).height == 0


def test_required_fields_are_named_on_save(app_db):
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.button(key="visit_save").click().run()
    assert sum("required" in m or "missing" in m for m in errors(at)) >= 3  # date and both counts


def test_a_visit_already_stored_on_that_date_is_refused_by_the_database(app_db):
    existing = records.patient_tables(app_db, "EX001")["visits"]["visit_date"][0]
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.date_input(key="visit.visit_date").set_value(existing)
    at.number_input(key="visit.tjc28").set_value(2)
    at.number_input(key="visit.sjc28").set_value(1)
    before = records.patient_tables(app_db, "EX001")["visits"].height
    at.button(key="visit_save").click().run()
    assert any(m.startswith("Nothing was saved:") and "duplicate_key" in m for m in errors(at))
    assert records.patient_tables(app_db, "EX001")["visits"].height == before


def test_haq_from_the_20_items(app_db):
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals")
    at.radio(key="visit_haq_mode").set_value("answer the 20 items").run()
    at.date_input(key="visit.visit_date").set_value(dt.date(2026, 6, 3))
    at.number_input(key="visit.tjc28").set_value(0)
    at.number_input(key="visit.sjc28").set_value(0)
    answers = {s.items[0].name: 2 for s in haq_sections()}
    for item, value in answers.items():
        at.selectbox(key=f"visit.{item}").select(value)
    at.button(key="visit_save").click().run()
    assert not errors(at), errors(at)
    saved = records.patient_tables(app_db, "EX001")["visits"].filter(pl.col("visit_date") == dt.date(2026, 6, 3))
    assert saved["haq_di"][0] == haq_from_items(answers) == 2.0


def test_stop_a_course_and_upload_svdh_scores(app_db):
    tables = records.patient_tables(app_db, "EX001")
    ongoing = tables["treatments"].filter(pl.col("stop_date").is_null())
    assert ongoing.height >= 1, "the example registry's EX001 has an ongoing course"
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.date_input(key="visit.visit_date").set_value(dt.date(2026, 6, 4))
    at.number_input(key="visit.tjc28").set_value(1)
    at.number_input(key="visit.sjc28").set_value(0)
    at.checkbox(key="visit_stop_0").check().run()
    at.selectbox(key="visit_stop_reason_0").select("inefficacy")
    at.checkbox(key="visit_has_imaging").check().run()
    csv = b"joint,erosion,jsn\nleft_hand_mcp2,2,1\nright_foot_mtp5,4,\n"
    at.file_uploader(key="visit_svdh_file").set_value(("svdh.csv", csv, "text/csv")).run()
    assert any("incomplete_exam" in w.value for w in at.warning)  # areas left out: a warning, not an error
    at.button(key="visit_save").click().run()
    assert not errors(at), errors(at)
    after = records.patient_tables(app_db, "EX001")
    closed = after["treatments"].filter(pl.col("stop_date") == dt.date(2026, 6, 4))
    assert closed.height == 1 and closed["stop_reason"][0] == "inefficacy"
    exam = after["imaging"].filter(pl.col("exam_date") == dt.date(2026, 6, 4)).sort("joint")
    assert exam.select("joint", "erosion", "jsn", "source").rows() == [
        ("left_hand_mcp2", 2, 1, "reader"), ("right_foot_mtp5", 4, None, "reader")]


def test_an_svdh_file_with_a_bad_value_names_row_and_column_and_saves_nothing(app_db):
    at = visit_page(app_db)
    at.radio(key="visit_joint_mode").set_value("type the totals").run()
    at.date_input(key="visit.visit_date").set_value(dt.date(2026, 6, 5))
    at.number_input(key="visit.tjc28").set_value(1)
    at.number_input(key="visit.sjc28").set_value(0)
    at.checkbox(key="visit_has_imaging").check().run()
    at.file_uploader(key="visit_svdh_file").set_value(("svdh.csv", b"joint,erosion,jsn\nleft_hand_mcp2,9,1\n",
                                                         "text/csv")).run()
    shown = errors(at)
    assert any("row 1" in m and "erosion" in m for m in shown), shown
    at.button(key="visit_save").click().run()
    visits = records.patient_tables(app_db, "EX001")["visits"]
    assert visits.filter(pl.col("visit_date") == dt.date(2026, 6, 5)).height == 0


# --- timeline and admin ------------------------------------------------------------------------------------------

def test_timeline_draws_the_patient_charts(app_db):
    at = app_as(app_db, "rheumatologist", "timeline")
    at.selectbox(key="timeline_id").select("EX001").run()
    assert not at.exception
    charts = at.get("vega_lite_chart")
    assert [h.value for h in at.subheader] == ["Disease activity and treatments", "Radiographic damage (SvdH)",
                                                "Wearables (weekly means)"]
    assert len(charts) == 3 and all('"data' in c.proto.spec for c in charts)
    assert not at.info


def test_admin_adds_a_user_and_reads_the_audit_log(app_db):
    at = app_as(app_db, "admin", "admin")
    at.text_input(key="admin_new_name").input("newbie")
    at.selectbox(key="admin_new_role").select("rheumatologist")
    at.text_input(key="admin_new_password").input("long-enough-password")
    at.button(key="admin_add").click().run()
    assert at.success[0].value == "Added newbie (rheumatologist)."
    assert [a.name for a in auth.list_users(app_db) if a.name == "newbie"] == ["newbie"]
    log = at.dataframe[1].value
    assert {"import", "login"} <= set(log["action"])
    tables = at.selectbox(key="audit_table").options
    assert tables[0] == "(all)" and {"patients", "users"} <= set(tables[1:])
    at.selectbox(key="audit_table").select("users").run()
    assert set(at.dataframe[1].value["table"]) == {"users"}


def test_an_edit_that_would_break_stored_visits_is_explained_and_not_saved(app_db):
    at = app_as(app_db, "clinic_staff", "patients")
    at.text_input(key="patient_query").input("EX001").run()
    at.selectbox(key="edit_id").select("EX001").run()
    at.date_input(key="edit_EX001_diagnosis_date").set_value(dt.date(2026, 11, 1))
    at.button(key="edit_submit").click().run()
    assert any(m.startswith("visits row") and "visit_date" in m for m in errors(at)), errors(at)
    assert records.get_patient(app_db, "EX001")["diagnosis_date"] == dt.date(2015, 3, 2)


# --- monitoring between visits -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def monitor_home(tmp_path_factory) -> Path:
    """A real flare-risk monitor, trained briefly on 100 simulated patients who all share wearable data, and the
    registry of 40 other such patients. The bundle's alert threshold is 0 with 1 quiet day, so every patient
    scored gets an alert: the tests do not hang on where a fitted threshold happens to fall."""
    home = tmp_path_factory.mktemp("monitoring")
    wearers = Scenario.default().replace(wearables_fraction=1.0)
    fitted = fit_monitor(Registry.from_tables(simulate(100, seed=2, scenario=wearers, progress=False)), stride=8,
                         epochs=1, n_members=1, progress=False)
    save_monitor(fitted.model, AlertPolicy(quiet_days=1, threshold_=0.0), fitted.background, home / "monitor",
                 metrics=fitted.metrics)
    simulate(40, seed=3, scenario=wearers, out=home / "registry", progress=False)
    return home


@pytest.fixture()
def monitored_db(app_db, monkeypatch, monitor_home):
    """The app database with the 40 wearers added, and the app pointed at the monitor."""
    import_registry(app_db, monitor_home / "registry", user="test-setup")
    monkeypatch.setenv(alerts.MONITOR_MODEL_ENV, str(monitor_home / "monitor"))
    return app_db


def one_alert(engine) -> dict:
    """An open alert for a wearer, as if scored on the last day with wearable data."""
    day = alerts.latest_wearable_date(engine)
    wearer = records.search_patients(engine, "P").get_column("patient_id")[0]
    scores = pl.DataFrame({"patient_id": [wearer], "date": [day], "p_flare_28d": [0.31], "alert": [True],
                           "reasons": ["Steps: 7-day mean 4,100 vs usual 7,900 (-48 %)"], "shap": ['{"steps": 0.5}']})
    alerts.record_alerts(engine, scores, model="test", user="test-setup")
    return alerts.open_alerts(engine).row(0, named=True)


@pytest.mark.parametrize("role", list(ROLE_USERS))
def test_monitoring_is_for_the_clinic_roles(monitored_db, role):
    at = page_alone(monitored_db, role, "monitoring")
    assert not at.exception, at.exception
    if role in ("clinic_staff", "rheumatologist", "admin"):
        assert [t.value for t in at.title] == ["Monitoring between visits"] and not errors(at)
        assert at.button(key="monitor_score") and at.date_input(key="monitor_day").value == alerts.latest_wearable_date(
            monitored_db)
    else:
        assert errors(at) == ["the data scientist role may not open the monitoring page"] and not at.title


def test_scoring_raises_alerts_and_acknowledging_one_is_audited(monitored_db):
    at = app_as(monitored_db, "rheumatologist", "monitoring")
    day = alerts.latest_wearable_date(monitored_db)
    at.button(key="monitor_score").click().run()
    assert not errors(at), errors(at)
    stored = alerts.open_alerts(monitored_db)
    assert stored.height >= 1 and set(stored["date"]) == {day}
    assert at.success[0].value == f"Scored {stored.height} patient(s) on {day}: {stored.height} new alert(s)."
    assert stored["model"][0] == alerts.monitor_stamp(alerts.monitor_dir()) and stored["reasons"][0]
    assert "percentage points" in stored["reasons"][0] and not stored["reasons"].str.contains("_|log-odds").any()
    assert set(at.dataframe[0].value["patient_id"]) == set(stored["patient_id"])
    at.button(key="monitor_score").click().run()
    assert at.success[0].value.endswith(": 0 new alert(s).")  # the same day scored twice adds nothing

    first = stored.row(0, named=True)
    at.text_input(key=f"alert_note_{first['id']}").input(NASTY[0])
    at.button(key=f"alert_ack_{first['id']}").click().run()
    decided = alerts.patient_alerts(monitored_db, first["patient_id"]).row(0, named=True)
    assert (decided["status"], decided["decided_by"], decided["note"]) == ("acknowledged", "rhea", NASTY[0])
    assert at.success[0].value == f"The alert of {first['patient_id']} on {day} is acknowledged."
    log = audit_frame(monitored_db, table="alerts", key={"id": first["id"]})
    assert log["action"].to_list() == ["acknowledge", "insert"] and log["user"].to_list() == ["rhea", "rhea"]
    assert first["patient_id"] not in set(alerts.open_alerts(monitored_db)["patient_id"])


def test_open_alerts_show_the_day_as_a_date_and_the_risk_with_one_decimal(monitored_db):
    alert = one_alert(monitored_db)
    at = app_as(monitored_db, "clinic_staff", "monitoring")
    table = at.dataframe[0]
    assert column_types(table) == {"birth_year": {"type": "number", "format": "%d"},
                                   "date": {"type": "date", "format": "YYYY-MM-DD"},
                                   "p_flare_28d": {"type": "number", "format": "%.1f%%"}}
    assert table.value["p_flare_28d"].tolist() == [31.0]  # percent, as the threshold in the caption
    shown = f"{alert['patient_id']} on {alert['date']}: risk 31.0%\nSteps: 7-day mean 4,100 vs usual 7,900 (-48 %)"
    assert [t.value for t in at.text] == [shown]


def test_a_day_without_wearable_data_scores_nobody(monitored_db):
    at = app_as(monitored_db, "clinic_staff", "monitoring")
    at.date_input(key="monitor_day").set_value(dt.date(1990, 1, 1))
    at.button(key="monitor_score").click().run()
    assert [w.value for w in at.warning] == [
        "Nobody has wearable data in the 56 days up to 1990-01-01: there is nobody to score."]
    assert alerts.open_alerts(monitored_db).is_empty() and at.info[-1].value == "No open alerts."


def test_without_a_monitor_the_page_says_how_to_make_one_and_lists_the_alerts(monitored_db, monkeypatch, tmp_path):
    alert = one_alert(monitored_db)
    monkeypatch.setenv(alerts.MONITOR_MODEL_ENV, str(tmp_path / "no-monitor"))
    at = app_as(monitored_db, "clinic_staff", "monitoring")
    assert "rxpredict monitor train" in at.info[0].value and str(tmp_path / "no-monitor") in at.info[0].value
    assert "monitor_score" not in [b.key for b in at.button]
    assert at.dataframe[0].value["patient_id"].tolist() == [alert["patient_id"]]
    at.button(key=f"alert_dismiss_{alert['id']}").click().run()
    assert alerts.patient_alerts(monitored_db, alert["patient_id"])["status"].to_list() == ["dismissed"]
    assert at.info[-1].value == "No open alerts."


def test_a_changed_bundle_is_refused_with_the_reason(monitored_db, monitor_home, monkeypatch, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(monitor_home / "monitor", changed)
    (changed / "metrics.json").write_text('{"metrics": {"auroc": 0.99}}')
    monkeypatch.setenv(alerts.MONITOR_MODEL_ENV, str(changed))
    at = app_as(monitored_db, "admin", "monitoring")
    assert "metrics.json was changed after the bundle was written" in errors(at)[0]
    assert "rxpredict monitor train" in errors(at)[0] and "monitor_score" not in [b.key for b in at.button]


def test_an_alert_opens_the_timeline_with_the_baseline_chart_and_the_alert(monitored_db):
    alert = one_alert(monitored_db)
    at = app_as(monitored_db, "clinic_staff", "monitoring")
    at.button(key=f"alert_timeline_{alert['id']}").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Patient timeline"]
    assert at.selectbox(key="timeline_id").value == alert["patient_id"]
    titles = [h.value for h in at.subheader]
    assert "Wearables against the personal baseline" in titles and titles[-1] == "Flare-risk alerts"
    chart = at.get("vega_lite_chart")[titles.index("Wearables against the personal baseline")]
    assert '"baseline"' in chart.proto.spec and '"alert"' in chart.proto.spec
    assert at.dataframe[0].value["status"].tolist() == ["open"]
