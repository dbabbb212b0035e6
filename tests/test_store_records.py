"""Patients, versions, visits and the audit log of rxpredict.store.records, on SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from sqlalchemy import func, insert, select

from rxpredict.exceptions import RecordError
from rxpredict.schemas import load_contract
from rxpredict.store import records
from rxpredict.store.audit import audit_frame
from rxpredict.store.engine import writing
from rxpredict.store.records import VisitEntry
from rxpredict.store.tables import REGISTRY_TABLES, AuditEntry, PatientVersion

PATIENT = {"patient_id": "P001", "sex": "F", "birth_year": 1961, "diagnosis_date": dt.date(2018, 5, 2),
           "rf_positive": True, "acpa_positive": None, "smoking": "never"}
VISIT = {"patient_id": "P001", "visit_date": dt.date(2024, 2, 1), "tjc28": 6, "sjc28": 4, "esr_mm_h": 28.0,
         "crp_mg_l": 12.5, "patient_global_0_100": 55.0, "haq_di": 1.125}
#: Text a clinic might type or paste into a free-text field; all must come back exactly as given.
NASTY = ["Robert'); DROP TABLE patients;--", "1' OR '1'='1", "<script>alert('x')</script>", "<b>&amp;</b>",
         "Zoë-患者-🧪", "100%_\\x", '"quoted"; --']


def _snapshot(engine) -> dict:
    """Every row of every table the store writes, to show that a failed save changed nothing."""
    with engine.connect() as c:
        out = {name: sorted(map(tuple, c.execute(select(t)).all()), key=repr) for name, t in REGISTRY_TABLES.items()}
        out["audit"] = c.scalar(select(func.count()).select_from(AuditEntry))
        out["versions"] = c.scalar(select(func.count()).select_from(PatientVersion))
    return out


def _problem(error: RecordError) -> tuple:
    (p,) = error.problems
    return p.table, p.row, p.column, p.rule


@pytest.fixture()
def patient(store_engine) -> str:
    return records.register_patient(store_engine, PATIENT, user="nurse1")


# --- patients -----------------------------------------------------------------------------------------------

def test_register_and_get_patient_with_form_text(store_engine):
    form = {"patient_id": "P002", "sex": "M", "birth_year": "1975", "diagnosis_date": "2020-01-31",
            "rf_positive": "false", "acpa_positive": None, "smoking": "current"}
    assert records.register_patient(store_engine, form, user="nurse1") == "P002"
    assert records.get_patient(store_engine, "P002") == {
        "patient_id": "P002", "sex": "M", "birth_year": 1975, "diagnosis_date": dt.date(2020, 1, 31),
        "rf_positive": False, "acpa_positive": None, "smoking": "current"}
    assert records.get_patient(store_engine, "P999") is None
    (entry,) = audit_frame(store_engine, table="patients").rows(named=True)
    assert (entry["user"], entry["action"], json.loads(entry["record_key"])) == ("nurse1", "insert",
                                                                                 {"patient_id": "P002"})
    assert json.loads(entry["new_values"])["diagnosis_date"] == "2020-01-31" and entry["old_values"] is None
    versions = records.patient_versions(store_engine, "P002")
    assert versions.select("version", "changed_by", "birth_year").rows() == [(1, "nurse1", 1975)]


def test_invalid_patient_is_refused_with_every_problem_and_nothing_stored(store_engine):
    before = _snapshot(store_engine)
    bad = {**PATIENT, "sex": "X", "birth_year": 1850, "smoking": "sometimes", "eye_colour": "blue"}
    with pytest.raises(RecordError) as e:
        records.register_patient(store_engine, bad, user="nurse1")
    found = {(p.table, p.row, p.column, p.rule) for p in e.value.problems}
    assert found == {("patients", 1, "sex", "enum"), ("patients", 1, "birth_year", "minimum"),
                     ("patients", 1, "smoking", "enum"), ("patients", 1, "eye_colour", "unknown_column")}
    assert "nothing was saved" in str(e.value)
    assert _snapshot(store_engine) == before


def test_registering_a_taken_id_is_a_duplicate_key(store_engine, patient):
    before = _snapshot(store_engine)
    with pytest.raises(RecordError) as e:
        records.register_patient(store_engine, {**PATIENT, "sex": "M"}, user="nurse2")
    assert _problem(e.value) == ("patients", 1, "patient_id", "duplicate_key")
    assert _snapshot(store_engine) == before


def test_edit_keeps_every_version_and_audits_old_and_new(store_engine, patient):
    assert records.edit_patient(store_engine, patient, {"smoking": "former", "acpa_positive": True},
                                user="dr_a") == 2
    assert records.edit_patient(store_engine, patient, {"birth_year": "1962"}, user="dr_b") == 3
    assert records.edit_patient(store_engine, patient, {"birth_year": 1962}, user="dr_b") == 3  # no change
    versions = records.patient_versions(store_engine, patient)
    assert versions.select("version", "changed_by", "smoking", "acpa_positive", "birth_year").rows() == [
        (3, "dr_b", "former", True, 1962), (2, "dr_a", "former", True, 1961), (1, "nurse1", "never", None, 1961)]
    assert versions.schema["diagnosis_date"] == pl.Date
    assert records.get_patient(store_engine, patient)["birth_year"] == 1962
    log = audit_frame(store_engine, table="patients", key={"patient_id": patient}).filter(action="update")
    assert [(e["user"], json.loads(e["old_values"]), json.loads(e["new_values"])) for e in log.rows(named=True)] == [
        ("dr_b", {"birth_year": 1961}, {"birth_year": 1962}),
        ("dr_a", {"smoking": "never", "acpa_positive": None}, {"smoking": "former", "acpa_positive": True})]


def test_bad_edits_change_nothing(store_engine, patient):
    records.save_visit(store_engine, VisitEntry(visit={**VISIT, "visit_date": "2019-06-01"}), user="nurse1")
    before = _snapshot(store_engine)
    cases = [
        ("P001", {"sex": "Q"}, ("patients", 1, "sex", "enum")),
        ("P001", {"patient_id": "P777"}, ("patients", 1, "patient_id", "read_only")),
        ("P404", {"sex": "M"}, ("patients", 1, "patient_id", "not_found")),
        # the stored visit of 2019 would be more than 5 years before a 2025 diagnosis
        ("P001", {"diagnosis_date": "2025-01-01"}, None),
    ]
    for patient_id, changes, expected in cases:
        with pytest.raises(RecordError) as e:
            records.edit_patient(store_engine, patient_id, changes, user="dr_a")
        if expected:
            assert _problem(e.value) == expected
        else:
            assert _problem(e.value) == ("visits", 1, "visit_date", "visit_long_before_diagnosis")
    assert _snapshot(store_engine) == before


def test_editing_an_imported_patient_keeps_its_imported_row_as_version_1(store_engine):
    with writing(store_engine) as s:
        s.execute(insert(REGISTRY_TABLES["patients"]).values({**PATIENT, "patient_id": "IMP1"}))
    assert records.edit_patient(store_engine, "IMP1", {"smoking": "current"}, user="dr_a") == 2
    versions = records.patient_versions(store_engine, "IMP1")
    assert versions.select("version", "changed_by", "smoking").rows() == [(2, "dr_a", "current"),
                                                                          (1, None, "never")]


def test_search_by_id_binds_the_text(store_engine):
    for pid in ["AB-100", "ab-200", "XAB-3", "Q_1", "Q%2", "QQ3"]:
        records.register_patient(store_engine, {**PATIENT, "patient_id": pid}, user="nurse1")
    ids = lambda text, **kw: records.search_patients(store_engine, text, **kw)["patient_id"].to_list()  # noqa: E731
    assert ids("ab") == ["AB-100", "ab-200", "XAB-3"]  # any case; IDs starting with the text first
    assert sorted(ids("b-")) == ["AB-100", "XAB-3", "ab-200"]
    assert ids("_") == ["Q_1"] and ids("%") == ["Q%2"]  # LIKE wildcards are plain characters
    assert ids("' OR '1'='1") == []
    assert sorted(ids("")) == sorted(["AB-100", "ab-200", "XAB-3", "Q_1", "Q%2", "QQ3"])  # order: the collation's
    assert ids("", limit=2) == ids("")[:2]
    assert records.search_patients(store_engine, "nothing").schema == load_contract().tables["patients"].polars_schema


@pytest.mark.parametrize("text", NASTY)
def test_hostile_and_unicode_text_is_stored_verbatim(store_engine, text):
    records.register_patient(store_engine, {**PATIENT, "patient_id": text}, user=text)
    records.save_visit(store_engine, VisitEntry(
        visit={**VISIT, "patient_id": text},
        started=[{"drug": "methotrexate", "start_date": "2024-02-01"}],
        imaging=[{"exam_date": "2024-02-01", "joint": "left_hand_mcp2", "erosion": 1, "jsn": 0, "source": "reader"}],
    ), user=text)
    assert records.get_patient(store_engine, text)["patient_id"] == text
    assert records.search_patients(store_engine, text)["patient_id"].to_list() == [text]
    tables = records.patient_tables(store_engine, text)
    assert {name: frame["patient_id"].to_list() for name, frame in tables.items() if frame.height} == {
        "patients": [text], "visits": [text], "treatments": [text], "imaging": [text]}
    log = audit_frame(store_engine, key={"patient_id": text})
    assert log["user"].to_list() == [text] and json.loads(log["new_values"][0])["patient_id"] == text
    assert len(REGISTRY_TABLES) == len(tables)  # and no table went missing on the way


# --- visits -------------------------------------------------------------------------------------------------

def test_save_visit_with_treatments_and_imaging_in_one_go(store_engine, patient):
    records.save_visit(store_engine, VisitEntry(
        visit=VISIT, started=[{"drug": "methotrexate", "start_date": dt.date(2024, 2, 1)}]), user="nurse1")
    entry = VisitEntry(
        visit={"patient_id": patient, "visit_date": "2024-05-02", "tjc28": "2", "sjc28": "1", "crp_mg_l": "3.5"},
        started=[{"drug": "adalimumab", "start_date": "2024-05-02"}],
        stopped=[{"drug": "methotrexate", "start_date": "2024-02-01", "stop_date": "2024-05-02",
                  "stop_reason": "inefficacy"}],
        imaging=[{"exam_date": "2024-05-02", "joint": joint, "erosion": 2, "jsn": 1, "source": "reader"}
                 for joint in ["left_hand_mcp1", "right_hand_mcp1", "left_foot_mtp5"]],
    )
    records.save_visit(store_engine, entry, user="dr_a")
    tables = records.patient_tables(store_engine, patient)
    contract = load_contract()
    assert all(frame.schema == contract.tables[name].polars_schema for name, frame in tables.items())
    assert tables["visits"].select("visit_date", "tjc28", "crp_mg_l").rows() == [
        (dt.date(2024, 2, 1), 6, 12.5), (dt.date(2024, 5, 2), 2, 3.5)]
    assert tables["treatments"].drop("patient_id").rows() == [
        ("adalimumab", dt.date(2024, 5, 2), None, None),
        ("methotrexate", dt.date(2024, 2, 1), dt.date(2024, 5, 2), "inefficacy")]
    assert tables["imaging"].height == 3 and tables["imaging"]["erosion"].to_list() == [2, 2, 2]
    log = audit_frame(store_engine).filter(pl.col("user") == "dr_a")
    assert sorted(log.select("action", "table").rows()) == sorted(
        [("insert", "visits"), ("insert", "treatments"), ("update", "treatments")] + [("insert", "imaging")] * 3)
    stop = log.filter(action="update").row(0, named=True)
    assert json.loads(stop["record_key"]) == {"patient_id": patient, "drug": "methotrexate", "start_date": "2024-02-01"}
    assert json.loads(stop["old_values"]) == {"stop_date": None, "stop_reason": None}
    assert json.loads(stop["new_values"]) == {"stop_date": "2024-05-02", "stop_reason": "inefficacy"}


def test_second_visit_on_a_date_is_a_duplicate_key_and_stores_nothing(store_engine, patient):
    records.save_visit(store_engine, VisitEntry(visit=VISIT), user="nurse1")
    before = _snapshot(store_engine)
    again = VisitEntry(visit={**VISIT, "tjc28": 1}, started=[{"drug": "leflunomide", "start_date": "2024-02-01"}])
    with pytest.raises(RecordError) as e:
        records.save_visit(store_engine, again, user="nurse2")
    assert _problem(e.value) == ("visits", 1, "patient_id,visit_date", "duplicate_key")
    assert _snapshot(store_engine) == before


def test_a_save_failing_at_its_last_step_leaves_the_database_unchanged(store_engine, patient):
    exam = {"exam_date": "2024-02-01", "joint": "left_hand_mcp1", "erosion": 1, "jsn": 1, "source": "reader"}
    records.save_visit(store_engine, VisitEntry(visit=VISIT, imaging=[exam]), user="nurse1")
    before = _snapshot(store_engine)
    # visit, started course and first SvdH row are written before the stored SvdH row clashes
    late_clash = VisitEntry(visit={**VISIT, "visit_date": "2024-03-01"},
                            started=[{"drug": "sulfasalazine", "start_date": "2024-03-01"}],
                            imaging=[{**exam, "joint": "right_hand_mcp1"}, exam])
    with pytest.raises(RecordError) as e:
        records.save_visit(store_engine, late_clash, user="nurse1")
    assert _problem(e.value) == ("imaging", 2, "patient_id,exam_date,joint", "duplicate_key")
    unknown_course = VisitEntry(visit={**VISIT, "visit_date": "2024-03-01"},
                                stopped=[{"drug": "adalimumab", "start_date": "2023-01-01",
                                          "stop_date": "2024-03-01", "stop_reason": "remission"}])
    with pytest.raises(RecordError) as e:
        records.save_visit(store_engine, unknown_course, user="nurse1")
    assert _problem(e.value) == ("treatments", 1, "start_date", "not_found")
    assert _snapshot(store_engine) == before


@pytest.mark.parametrize("entry, expected", [
    (VisitEntry(visit={**VISIT, "tjc28": 40}), {("visits", 1, "tjc28", "maximum")}),
    (VisitEntry(visit={**VISIT, "tjc28": "six", "haq_di": 1.1}),
     {("visits", 1, "tjc28", "type"), ("visits", 1, "haq_di", "multiple_of")}),
    (VisitEntry(visit={**VISIT, "visit_date": "2010-01-01"}),
     {("visits", 1, "visit_date", "visit_long_before_diagnosis")}),
    (VisitEntry(visit={**VISIT, "patient_id": "P404"}), {("visits", 1, "patient_id", "foreign_key")}),
    (VisitEntry(visit=VISIT, started=[{"drug": "aspirin", "start_date": "2024-02-01", "stop_reason": "other"}]),
     {("treatments", 1, "drug", "enum"), ("treatments", 1, "stop_reason", "stop_reason_while_ongoing")}),
    (VisitEntry(visit=VISIT, started=[{"drug": "leflunomide", "start_date": "2024-02-01"}],
                stopped=[{"drug": "methotrexate", "start_date": "2024-02-01", "stop_date": "2023-01-01",
                          "stop_reason": "inefficacy"}]),
     {("treatments", 2, "stop_date", "stop_before_start")}),
    (VisitEntry(visit=VISIT, stopped=[{"drug": "methotrexate", "start_date": "2024-02-01", "stop_date": None}]),
     {("treatments", 1, "stop_date", "required")}),
    (VisitEntry(visit=VISIT, imaging=[{"exam_date": "2024-02-01", "joint": "left_hand_mcp1", "erosion": 9,
                                       "jsn": 0, "source": "reader"},
                                      {"exam_date": "2024-02-01", "joint": "elbow", "source": "reader"}]),
     {("imaging", 1, "erosion", "erosion_above_area_max"), ("imaging", 2, "joint", "enum")}),
    (VisitEntry(visit=VISIT, imaging=[{"patient_id": "P002", "exam_date": "2024-02-01", "joint": "left_hand_mcp1",
                                       "source": "reader"}]),
     {("imaging", 1, "patient_id", "other_patient")}),
])
def test_invalid_visits_are_refused_naming_table_row_column_rule(store_engine, patient, entry, expected):
    before = _snapshot(store_engine)
    with pytest.raises(RecordError) as e:
        records.save_visit(store_engine, entry, user="nurse1")
    found = {(p.table, p.row, p.column, p.rule) for p in e.value.problems}
    assert found == expected
    assert _snapshot(store_engine) == before


def test_audit_frame_filters_and_limits(store_engine, patient):
    for day in range(1, 6):
        records.save_visit(store_engine, VisitEntry(visit={**VISIT, "visit_date": dt.date(2024, 3, day)}),
                           user=f"nurse{day}")
    visits = audit_frame(store_engine, table="visits")
    assert visits["user"].to_list() == [f"nurse{d}" for d in range(5, 0, -1)]  # newest first
    assert visits["at"].is_sorted(descending=True)
    assert audit_frame(store_engine, limit=2).height == 2
    one = audit_frame(store_engine, key={"visit_date": dt.date(2024, 3, 2), "patient_id": patient})
    assert one["user"].to_list() == ["nurse2"]
    assert json.loads(one["new_values"][0]) == {**{c: None for c in load_contract().tables["visits"].column_names},
                                                **{**VISIT, "visit_date": "2024-03-02"}}
