"""Visit entry: joint counts (tick the 28 joints or type the totals), labs, globals, HAQ-DI (total or the 20 items),
treatments started or stopped and SvdH scores; DAS28, CDAI and SDAI are shown as the user types.

Every label, range and choice comes from ``rxpredict.forms`` (read from
``data_schemas/``); the scores, the validation and the save come from
``rxpredict``. A save is one transaction: all of it or nothing.
"""
from __future__ import annotations

import streamlit as st

from rxpredict.exceptions import RecordError
from rxpredict.forms import (JOINT_COUNT_COLUMNS, drug_groups, field_spec, field_specs, haq_sections, joint_grid, joint_key,
                             live_scores, ongoing_courses, parse_svdh_csv, stop_reasons, svdh_areas, svdh_rows,
                             validate_visit_form, visit_values)
from rxpredict.forms.fields import readable
from rxpredict.store import records
from ui import engine, field_input, guard, show_messages

P = "visit."  # session-state prefix of every field of this form
user = guard("visit_entry")
st.title("Visit entry")

if notice := st.session_state.pop("visit_saved", None):
    st.success(notice)

query = st.text_input("Search patients by ID", key="visit_query")
ids = records.search_patients(engine(), query or "").get_column("patient_id").to_list()
patient_id = st.selectbox("Patient", ids, index=None, placeholder="choose a patient", key="visit_patient")
if not patient_id:
    st.info("Choose the patient this visit belongs to.")
    st.stop()
patient = records.get_patient(engine(), patient_id)
stored = records.patient_tables(engine(), patient_id)

joints_by_tick = st.radio("Joint counts", ["tick the joints", "type the totals"], horizontal=True,
                          key="visit_joint_mode") == "tick the joints"
haq_by_items = st.radio("HAQ-DI", ["type the total", "answer the 20 items"], horizontal=True,
                        key="visit_haq_mode") == "answer the 20 items"

# The form's state as rxpredict.forms reads it: only the parts of the form now shown.
tick_keys = {joint_key(kind, j.name) for kind in JOINT_COUNT_COLUMNS for row in joint_grid() for j in row if j}
item_keys = {f.name for s in haq_sections() for f in (*s.items, s.aid)}
hidden = (set(JOINT_COUNT_COLUMNS.values()) if joints_by_tick else tick_keys) | (
    {"haq_di"} if haq_by_items else item_keys)
form = {k[len(P):]: v for k, v in st.session_state.items() if k.startswith(P) and k[len(P):] not in hidden}
form["patient_id"] = patient_id
attempted = st.session_state.get("visit_attempted", False)
messages = {k: v for k, v in validate_visit_form(form, patient=patient).items()
            if attempted or form.get(k) is not None}
specs = {s.name: s for s in field_specs("visits")}


def field(name: str) -> None:
    field_input(specs[name], key=P + name)
    show_messages(messages.get(name, ()))


field("visit_date")

st.subheader("28 joints")
if joints_by_tick:
    for kind, column in JOINT_COUNT_COLUMNS.items():
        st.markdown(f"**{readable(kind).capitalize()}** (patient's right on the left)")
        for row in joint_grid():
            for cell, joint in zip(st.columns(len(row), gap="small"), row):
                if joint is not None:
                    with cell:
                        key = P + joint_key(kind, joint.name)
                        st.session_state.setdefault(key, False)
                        # the grid's place gives the side, so the label is the joint alone
                        st.checkbox(joint.title.split(" ", 1)[1].split(" (")[0], key=key)
        show_messages(messages.get(column, ()))
else:
    cols = st.columns(2)
    for col, column in zip(cols, JOINT_COUNT_COLUMNS.values()):
        with col:
            field(column)

st.subheader("Labs and global assessments")
others = [n for n in specs if n not in {"patient_id", "visit_date", "haq_di", *JOINT_COUNT_COLUMNS.values()}]
for start in range(0, len(others), 3):
    for col, name in zip(st.columns(3), others[start:start + 3]):
        with col:
            field(name)

st.subheader("HAQ-DI")
if haq_by_items:
    for section in haq_sections():
        with st.expander(section.title):
            for item in (*section.items, section.aid):
                field_input(item, key=P + item.name)
                show_messages(messages.get(item.name, ()))
else:
    field("haq_di")
show_messages(messages.get("", ()))

scores = live_scores(form)
st.subheader("Scores as entered")
for col, (label, score) in zip(st.columns(4), [("DAS28-CRP", "das28_crp"), ("DAS28-ESR", "das28_esr"),
                                                ("CDAI", "cdai"), ("SDAI", "sdai")]):
    value = scores.get(score)
    col.metric(label, "-" if value is None else f"{value:.2f}",
               help=None if value is None else f"activity: {scores.get(score + '_category')}")
    if value is not None:
        col.caption(f"{scores.get(score + '_category')} activity")

st.subheader("Treatments")
drug = field_spec("treatments", "drug")
started = st.multiselect("Drugs started at this visit", [d for g in drug_groups().values() for d in g],
                         key="visit_started", format_func=drug.format)
stopped = []
for i, course in enumerate(ongoing_courses(stored["treatments"])):
    left, right = st.columns([2, 1])
    if left.checkbox(f"Stop {readable(course['drug'])} (since {course['start_date']})", key=f"visit_stop_{i}"):
        reason = right.selectbox("Reason", stop_reasons(), index=None, key=f"visit_stop_reason_{i}",
                                 format_func=readable)
        stopped.append({**course, "stop_reason": reason})

st.subheader("Radiograph (Sharp/van der Heijde)")
imaging, imaging_problems = [], []
if st.checkbox("Scored radiographs at this visit", key="visit_has_imaging"):
    by_area, by_file = st.tabs(["Scores per joint area", "Upload a CSV (joint, erosion, jsn)"])
    with by_area:
        areas = svdh_areas()
        edited = st.data_editor(
            [{"joint": a.joint, "area": a.title, "erosion": None, "jsn": None} for a in areas],
            key="visit_svdh_grid", hide_index=True, disabled=["joint", "area"],
            column_config={
                "joint": None,
                "erosion": st.column_config.NumberColumn("erosion", min_value=0, step=1),
                "jsn": st.column_config.NumberColumn("JSN", min_value=0, step=1),
            },
        )
        typed = {r["joint"]: {"erosion": r["erosion"], "jsn": r["jsn"]} for r in edited}
    with by_file:
        upload = st.file_uploader("SvdH scores", type=["csv"], key="visit_svdh_file")
    if upload is not None:
        imaging, imaging_problems = parse_svdh_csv(upload.getvalue(), patient_id=patient_id,
                                                   exam_date=form.get("visit_date"))
    else:
        imaging = svdh_rows(typed, patient_id=patient_id, exam_date=form.get("visit_date"))
    for p in imaging_problems:
        (st.error if p.severity == "error" else st.warning)(str(p))
    imaging_problems = [p for p in imaging_problems if p.severity == "error"]

if st.button("Save visit", type="primary", key="visit_save"):
    st.session_state["visit_attempted"] = True
    if not validate_visit_form(form, patient=patient) and not imaging_problems:
        date = form.get("visit_date")
        entry = records.VisitEntry(
            visit={**visit_values(form), "patient_id": patient_id},
            started=[{"drug": d, "start_date": date} for d in started],
            stopped=[{**c, "stop_date": date} for c in stopped],
            imaging=imaging,
        )
        try:
            records.save_visit(engine(), entry, user=user.name)
        except RecordError as e:
            st.session_state["visit_problems"] = [str(p) for p in e.problems]
        else:
            for key in [k for k in st.session_state if k.startswith(("visit.", "visit_stop", "visit_started",
                                                                      "visit_svdh", "visit_has", "visit_att"))]:
                del st.session_state[key]
            st.session_state["visit_saved"] = f"Saved the visit of {patient_id} on {date}."
    st.rerun()
if problems := st.session_state.pop("visit_problems", None):
    st.error("Nothing was saved:\n\n" + "\n".join(f"- {p}" for p in problems))
elif attempted and messages:
    st.error("Nothing was saved: correct the fields marked above.")
