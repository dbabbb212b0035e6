"""The clinic app's forms: fields read from the schema, joints, HAQ-DI items, live scores, validation, SvdH entry."""
from __future__ import annotations

import datetime as dt
import json
import math
import shutil

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rxpredict.clinical import haq_di, score_visit
from rxpredict.exceptions import ContractError
from rxpredict.forms import (
    JOINT_COUNT_COLUMNS,
    count_joints,
    drug_groups,
    field_specs,
    haq_from_items,
    haq_sections,
    joint_grid,
    joint_key,
    live_scores,
    ongoing_courses,
    parse_svdh_csv,
    stop_reasons,
    svdh_areas,
    svdh_rows,
    validate_visit_form,
    visit_values,
)
from rxpredict.registry import read_registry
from rxpredict.schemas import load_contract, schema_dir

TODAY = dt.date(2026, 11, 23)
PATIENT = {"patient_id": "EX001", "sex": "F", "birth_year": 1962, "diagnosis_date": dt.date(2015, 3, 2),
           "rf_positive": True, "acpa_positive": True, "smoking": "former"}
VISIT = {"patient_id": "EX001", "visit_date": dt.date(2021, 1, 11), "tjc28": 9, "sjc28": 6, "esr_mm_h": 38.0,
         "crp_mg_l": 18.0, "patient_global_0_100": 62.0, "physician_global_0_100": 55.0, "pain_0_100": 60.0,
         "haq_di": 1.375, "bmi_kg_m2": 29.4, "morning_stiffness_min": 90}


@pytest.fixture(scope="module")
def contract():
    return load_contract()


@pytest.fixture(scope="module")
def example():
    return read_registry("rxpredict/data/example_registry")


def haq_items(value: int | None) -> dict[str, int | None]:
    return {i: value for k in load_contract().haq.categories for i in k.items}


# --- fields -------------------------------------------------------------------------------------------------

def test_field_specs_are_the_schema(contract):
    kinds = {"integer": "int", "number": "float", "date": "date", "boolean": "bool", "string": "text"}
    for table in contract.table_names:
        specs = field_specs(table, today=TODAY)
        assert [s.name for s in specs] == contract.tables[table].column_names
        for spec, f in zip(specs, contract.tables[table].fields):
            assert spec.kind == ("enum" if f.enum else kinds[f.type])
            assert spec.label.startswith(f.title) and (f.unit is None or f.type == "date" or f.unit in spec.label)
            assert spec.help.startswith(f.description)
            assert spec.required == f.required and spec.min == f.minimum
            assert spec.options == (f.enum or ((True, False) if f.type == "boolean" else ()))
            if not f.dynamic_maximum:
                assert spec.max == f.maximum
    visits = {s.name: s for s in field_specs("visits")}
    assert visits["haq_di"].step == 0.125 and visits["tjc28"].step == 1 and visits["esr_mm_h"].step is None
    assert "0..200 mm/h" in visits["esr_mm_h"].help
    patients = {s.name: s for s in field_specs("patients", today=TODAY)}
    assert patients["birth_year"].max == 2026 and patients["diagnosis_date"].max == TODAY


def test_option_labels_come_from_the_vocabularies():
    drug = {s.name: s for s in field_specs("treatments")}["drug"]
    assert drug.format("certolizumab_pegol") == "certolizumab pegol (TNF inhibitor)"
    assert drug.format("prednisone") == "prednisone (glucocorticoid)"
    assert drug.format("methotrexate") == "methotrexate"  # its option's title says nothing more
    assert drug.format(None) == "" and drug.format("not a drug") == "not a drug"
    rf = {s.name: s for s in field_specs("patients")}["rf_positive"]
    assert rf.format(True) == "yes" and rf.format(False) == "no" and rf.format(1) == "1"


# --- joints -------------------------------------------------------------------------------------------------

def test_das28_joints_in_the_contract(contract):
    joints = contract.das28_joints
    assert len(joints) == 28 and len({j.name for j in joints}) == 28
    fingers = {f"{joint}{i}" for joint in ("mcp", "pip") for i in range(1, 6)}
    sites = {"shoulder", "elbow", "wrist", "knee", *fingers}
    for side in ("left", "right"):
        assert {j.site for j in joints if j.side == side} == sites
    assert {j.name for j in joints} == {f"{j.side}_{j.site}" for j in joints}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["joints"].pop(), "lists 27 joints"),
        (lambda d: d["joints"][1].update(row=0, col=1), "grid position"),
        (lambda d: d["joints"][1].update(name="right_shoulder"), "repeats a joint name"),
    ],
)
def test_contradictory_joint_vocabulary_is_refused(tmp_path, edit, message):
    copy = tmp_path / "schemas"
    shutil.copytree(schema_dir(), copy)
    doc = json.loads((copy / "das28_joints.json").read_text())
    edit(doc)
    (copy / "das28_joints.json").write_text(json.dumps(doc))
    with pytest.raises(ContractError, match=message):
        load_contract(copy)


def test_joint_grid_is_drawn_facing_the_patient():
    grid = joint_grid()
    cells = [j for row in grid for j in row if j is not None]
    assert len(cells) == 28 and len(grid) == 6 and {len(r) for r in grid} == {10}
    assert [j.site for j in grid[0] if j] == ["shoulder", "shoulder"]
    assert [j.site for j in grid[-1] if j] == ["knee", "knee"]
    mcps = [j.name for j in grid[3]]
    assert mcps[0] == "right_mcp1" and mcps[4] == "right_mcp5" and mcps[5] == "left_mcp5" and mcps[9] == "left_mcp1"
    for j in cells:  # the two sides mirror each other
        assert grid[j.row][9 - j.col].site == j.site and grid[j.row][9 - j.col].side != j.side


def test_count_joints():
    assert count_joints([]) == 0
    assert count_joints(["left_wrist", "right_knee", "left_wrist"]) == 2
    assert count_joints(j.name for row in joint_grid() for j in row if j) == 28
    with pytest.raises(ValueError, match="not DAS28 joints: \\['left_ankle'\\]"):
        count_joints(["left_wrist", "left_ankle"])
    assert joint_key("tender", "left_wrist") == "tender_left_wrist"
    with pytest.raises(ValueError):
        joint_key("painful", "left_wrist")  # type: ignore[arg-type]


# --- HAQ-DI -------------------------------------------------------------------------------------------------

def test_haq_sections_are_the_instrument(contract):
    sections = haq_sections()
    assert [s.name for s in sections] == [k.name for k in contract.haq.categories]
    assert sum(len(s.items) for s in sections) == 20
    first = sections[0].items[0]
    assert first.name == "haq_dress" and first.label.startswith("Dress yourself") and first.options == (0, 1, 2, 3)
    assert first.format(3) == "Unable to do" and sections[0].aid.name == "haq_aid_dressing"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        (haq_items(0), 0.0),
        (haq_items(3), 3.0),
        ({**haq_items(1), "haq_dress": 3}, 1.25),  # dressing 3, seven categories 1: 10/8
        ({**haq_items(0), "haq_aid_walking": True}, 0.25),  # an aid raises walking to 2: 2/8
        ({**haq_items(3), "haq_aid_walking": True}, 3.0),  # an aid never lowers a 3
        ({**haq_items(None), "haq_dress": 1, "haq_stand_chair": 2, "haq_cut_meat": 1, "haq_walk_outdoors": 0,
          "haq_toilet": 1, "haq_reach_object": 2, "haq_open_jars": 1}, 1.125),  # 8/7 = 1.143 -> nearest step 1.125
        ({**haq_items(None), "haq_dress": 2, "haq_stand_chair": 2, "haq_cut_meat": 2, "haq_walk_outdoors": 2,
          "haq_toilet": 2}, None),  # five categories: too few
        ({**haq_items(None), "haq_aid_dressing": True}, None),  # an aid answers no category
    ],
)
def test_haq_from_items_known_cases(answers, expected):
    assert haq_from_items(answers) == expected
    # ... and exactly what rxpredict.clinical scores for the same answers
    haq = load_contract().haq
    aids = {k.aid_column: answers.get(k.aid_column, False) for k in haq.categories}
    items = {i: answers.get(i) for k in haq.categories for i in k.items}
    frame = pl.DataFrame([{**items, **aids}], schema={**{i: pl.Int64 for i in items}, **{a: pl.Boolean for a in aids}})
    assert frame.select(haq_di()).item() == expected


def test_haq_from_items_refuses_answers_off_the_scale():
    with pytest.raises(ValueError, match="haq_dress"):
        haq_from_items({**haq_items(1), "haq_dress": 4})
    with pytest.raises(ValueError, match="haq_aid_grip"):
        haq_from_items({**haq_items(1), "haq_aid_grip": "yes"})


# --- the visit form -----------------------------------------------------------------------------------------

def ticked(kind: str, joints: list[str]) -> dict[str, bool]:
    return {joint_key(kind, j.name): j.name in joints for row in joint_grid() for j in row if j}  # type: ignore[arg-type]


def test_visit_values_count_ticked_joints_and_score_haq_items():
    form = {**VISIT, "tjc28": None, "sjc28": None, "haq_di": None,
            **ticked("tender", ["left_wrist", "right_wrist", "left_knee"]), **ticked("swollen", ["left_wrist"]),
            **haq_items(1)}
    row = visit_values(form)
    assert list(row) == load_contract().tables["visits"].column_names
    assert (row["tjc28"], row["sjc28"], row["haq_di"]) == (3, 1, 1.0)
    assert visit_values({**VISIT, "unknown": 1}) == VISIT  # without ticks or items the typed values stand


def test_live_scores_match_rxpredict_clinical():
    scores = live_scores(VISIT)
    expected = score_visit(VISIT)
    assert {k: scores[k] for k in expected} == expected
    assert scores["das28_esr_category"] == "high" and (scores["tjc28"], scores["haq_di"]) == (9, 1.375)
    assert math.isclose(scores["das28_esr"], 0.56 * 3 + 0.28 * math.sqrt(6) + 0.70 * math.log(38) + 0.014 * 62)


def test_live_scores_leave_out_what_is_missing_or_wrong():
    partial = live_scores({"tjc28": 2, "sjc28": 1, "patient_global_0_100": 40, "physician_global_0_100": 30})
    assert partial["cdai"] == 10.0 and partial["cdai_category"] == "low"
    assert partial["das28_esr"] is None and partial["sdai"] is None and partial["sdai_category"] is None
    for bad in ("abc", float("nan"), float("inf"), -1, 201, True, [38]):
        assert live_scores({**VISIT, "esr_mm_h": bad})["das28_esr"] is None, bad
    assert live_scores({**VISIT, "tjc28": 2.5})["cdai"] is None
    assert live_scores({**VISIT, "esr_mm_h": "38"})["das28_esr"] == live_scores(VISIT)["das28_esr"]
    assert set(live_scores(None)) == set(live_scores(VISIT)) and live_scores(None)["das28_crp"] is None


def test_valid_visit_form_has_no_messages():
    assert validate_visit_form(VISIT, patient=PATIENT, today=TODAY) == {}
    assert validate_visit_form({**VISIT, "patient_id": None}, patient=PATIENT, today=TODAY) == {}


def test_each_invalid_value_is_explained_next_to_its_field():
    form = {**VISIT, "sjc28": 30, "esr_mm_h": "fast", "haq_di": 1.3, "visit_date": None, "bmi_kg_m2": -999}
    messages = validate_visit_form(form, patient=PATIENT, today=TODAY)
    assert messages["sjc28"] == ["above the maximum 28"]
    assert messages["esr_mm_h"] == ["not a valid number"]
    assert messages["haq_di"] == ["not a multiple of 0.125"]
    assert messages["visit_date"] == ["required value is missing"]
    assert "bmi_kg_m2" in messages and set(messages) == {"sjc28", "esr_mm_h", "haq_di", "visit_date", "bmi_kg_m2"}


def test_messages_that_need_the_patient():
    early = validate_visit_form({**VISIT, "visit_date": dt.date(2009, 1, 1)}, patient=PATIENT, today=TODAY)
    assert list(early) == ["visit_date"]
    other = validate_visit_form({**VISIT, "patient_id": "EX002"}, patient=PATIENT, today=TODAY)
    assert list(other) == ["patient_id"]
    assert validate_visit_form({**VISIT, "visit_date": dt.date(2009, 1, 1)}, today=TODAY) == {}  # left to the save


def test_form_only_messages():
    form = {**VISIT, **ticked("tender", ["left_wrist"]), "tender_right_knee": "x"}
    messages = validate_visit_form(form, patient=PATIENT, today=TODAY)
    assert messages["tender_right_knee"] == ["tick or untick this joint"]
    assert messages["tjc28"] == ["1 tender joints are ticked: enter the count or tick the joints, not both"]
    assert validate_visit_form({**form, "tjc28": 1.0, "tender_right_knee": False}, patient=PATIENT, today=TODAY) == {}
    few = {**VISIT, "haq_di": None, "haq_dress": 2, "haq_cut_meat": 9}
    messages = validate_visit_form(few, patient=PATIENT, today=TODAY)
    assert messages["haq_cut_meat"] == ["answer one of 0, 1, 2, 3"]
    assert messages["haq_di"][0].startswith("HAQ-DI needs answers in at least 6 of 8 categories (1 answered)")
    both = validate_visit_form({**VISIT, **haq_items(1)}, patient=PATIENT, today=TODAY)
    assert both == {"haq_di": ["the items score 1: enter the total or the items, not both"]}
    assert validate_visit_form({**VISIT, "haq_di": None, **haq_items(1)}, patient=PATIENT, today=TODAY) == {}
    assert validate_visit_form("not a form") == {"": ["the form's values are missing"]}


# Any value a widget, a session state or a hostile client could hand over.
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20, max_value=10**400), st.floats(),
    st.text(max_size=20), st.dates(), st.datetimes(), st.binary(max_size=8), st.decimals(),
    st.lists(st.integers(), max_size=3), st.sampled_from(["", "NA", "-999", " 3 ", "1e400", "nan", "2021-13-45"]),
)
FORM_KEYS = st.sampled_from([
    *load_contract().tables["visits"].column_names,
    *(joint_key(kind, j.name) for kind in JOINT_COUNT_COLUMNS for j in load_contract().das28_joints),
    *(i for k in load_contract().haq.categories for i in (*k.items, k.aid_column)),
]) | st.text(max_size=10)
FORMS = st.dictionaries(FORM_KEYS, ANY_VALUE, max_size=25) | ANY_VALUE


@given(form=FORMS, patient=st.none() | st.dictionaries(st.sampled_from(list(PATIENT)), ANY_VALUE))
def test_validate_visit_form_never_raises(form, patient):
    messages = validate_visit_form(form, patient=patient)
    assert isinstance(messages, dict)
    assert all(isinstance(m, str) for texts in messages.values() for m in texts)


@given(form=FORMS)
def test_live_scores_never_raise(form):
    scores = live_scores(form)
    assert set(scores) >= {"das28_esr", "das28_crp", "cdai", "sdai", "cdai_category"}
    assert all(v is None or isinstance(v, bool | int | float | str) for v in scores.values())


# --- treatments ---------------------------------------------------------------------------------------------

def test_treatment_choices_come_from_the_vocabulary(contract, example):
    groups = drug_groups()
    assert list(groups)[:3] == ["Methotrexate", "Other csDMARD", "TNF inhibitor"]
    assert groups["JAK inhibitor"] == ("tofacitinib", "baricitinib", "upadacitinib", "filgotinib")
    assert groups["glucocorticoid"] == ("prednisone", "prednisolone")
    assert sorted(d for ds in groups.values() for d in ds) == sorted(d.name for d in contract.drugs)
    assert stop_reasons() == contract.tables["treatments"].field("stop_reason").enum
    ex001 = example["treatments"].filter(pl.col("patient_id") == "EX001")
    assert ongoing_courses(ex001) == [
        {"patient_id": "EX001", "drug": "methotrexate", "start_date": dt.date(2015, 4, 1)},
        {"patient_id": "EX001", "drug": "adalimumab", "start_date": dt.date(2021, 1, 18)},
    ]
    ex002 = example["treatments"].filter(pl.col("patient_id") == "EX002")
    assert [c["drug"] for c in ongoing_courses(ex002)] == ["tocilizumab"]


# --- SvdH ---------------------------------------------------------------------------------------------------

def test_svdh_areas_are_bounded_by_their_maximum(contract):
    areas = svdh_areas()
    assert [a.joint for a in areas] == [a.name for a in contract.joint_areas]
    by_joint = {a.joint: a for a in areas}
    assert by_joint["left_foot_mtp1"].erosion.max == 10 and by_joint["left_hand_mcp1"].erosion.max == 5
    assert by_joint["right_hand_ip1"].jsn is None and by_joint["right_hand_cmc3"].erosion is None
    assert sum(a.erosion.max for a in areas if a.erosion) == 280 and sum(a.jsn.max for a in areas if a.jsn) == 168
    assert "0..4 SvdH units" in by_joint["left_hand_mcp1"].jsn.help


def test_svdh_rows_skip_empty_areas():
    rows = svdh_rows({"left_hand_mcp1": {"erosion": 1, "jsn": 0}, "left_hand_ip1": {"erosion": None},
                      "left_hand_cmc3": {"jsn": 2}}, patient_id="EX001", exam_date=dt.date(2022, 1, 17))
    assert [(r["joint"], r["erosion"], r["jsn"]) for r in rows] == [("left_hand_mcp1", 1, 0),
                                                                   ("left_hand_cmc3", None, 2)]
    assert all(r["source"] == "reader" and r["patient_id"] == "EX001" for r in rows)


def svdh_csv(example) -> tuple[str, pl.DataFrame]:
    exam = example["imaging"].filter(pl.col("patient_id") == "EX001", pl.col("exam_date") == dt.date(2021, 1, 11))
    return exam.select("joint", "erosion", "jsn").write_csv(), exam


def test_parse_svdh_csv_reads_a_whole_exam(example):
    text, exam = svdh_csv(example)
    rows, problems = parse_svdh_csv(("\ufeff" + text).encode(), patient_id="EX001", exam_date=dt.date(2021, 1, 11))
    assert problems == []
    assert rows == exam.with_columns(source=pl.lit("reader")).to_dicts()


def test_parse_svdh_csv_names_row_column_and_rule(example):
    text, _ = svdh_csv(example)
    lines = text.splitlines()
    lines[1] = "left_hand_mcp1,6,0"  # a hand erosion above 5
    lines[2] = "left_ankle,1,1"  # no such area
    lines[3] = "left_hand_mcp3,x,1"  # not a number
    lines[4] = "left_hand_mcp1,0,0"  # the same area again
    lines[5] += ",7"  # a cell too many
    rows, problems = parse_svdh_csv("\n".join(lines), patient_id="EX001", exam_date=dt.date(2021, 1, 11))
    found = {(p.row, p.column, p.rule) for p in problems if p.severity == "error"}
    assert found == {
        (1, "erosion", "erosion_above_area_max"), (2, "joint", "enum"), (3, "erosion", "type"),
        (4, "patient_id,exam_date,joint", "duplicate_key"), (5, None, "extra_cells"),
    }
    assert [p.rule for p in problems if p.severity == "warning"] == ["incomplete_exam"]  # two areas went missing
    assert len(rows) == 56


@pytest.mark.parametrize(
    ("data", "rule", "column"),
    [
        (b"joint,erosion\nleft_hand_mcp1,1\n", "missing_column", "jsn"),
        (b"joint,erosion,jsn,reader\nleft_hand_mcp1,1,0,ab\n", "unknown_column", "reader"),
        (b"joint,erosion,jsn\n", "empty", None),
        (b"joint,erosion,jsn\n\xff\xfe,1,1\n", "encoding", None),
    ],
)
def test_parse_svdh_csv_file_problems(data, rule, column):
    rows, problems = parse_svdh_csv(data, patient_id="EX001", exam_date=dt.date(2021, 1, 11))
    assert rows == [] and [(p.rule, p.column, p.row) for p in problems] == [(rule, column, None)]
