"""Patients: search, register and edit (an edit keeps the previous version, shown in the history)."""
from __future__ import annotations

import streamlit as st

from rxpredict.exceptions import RecordError
from rxpredict.forms import field_specs
from rxpredict.store import records
from rxpredict.validation.records import problems_by_column
from ui import as_dates, engine, form_fields, guard

user = guard("patients")
st.title("Patients")

query = st.text_input("Search by patient ID", key="patient_query", placeholder="e.g. P0001")
found = records.search_patients(engine(), query or "")
st.dataframe(found, hide_index=True, width="stretch", column_config=as_dates(found))
st.caption(f"{found.height} patient(s) shown")

if notice := st.session_state.pop("saved_notice", None):
    st.success(notice)
register, edit = st.tabs(["Register a patient", "Edit a patient"])
specs = field_specs("patients")


def show_general(problems: list) -> None:
    """Problems that belong to no field of this form: the whole record, or stored visits an edit would break."""
    for p in problems:
        if p.table != "patients" or not p.column:
            st.error(str(p))


with register:
    problems = st.session_state.get("register_problems", [])
    values = form_fields(specs, prefix="new_", messages=problems_by_column(problems, "patients"))
    if st.button("Register", type="primary", key="register_submit"):
        try:
            patient_id = records.register_patient(engine(), values, user=user.name)
        except RecordError as e:
            st.session_state["register_problems"] = e.problems
            st.rerun()
        else:
            st.session_state["register_problems"] = []
            for spec in specs:
                st.session_state.pop(f"new_{spec.name}", None)
            st.session_state["saved_notice"] = f"Registered patient {patient_id}."
            st.rerun()
    show_general(problems)

with edit:
    ids = found.get_column("patient_id").to_list() if found.height else []
    chosen = st.selectbox("Patient", ids, index=None, placeholder="choose a patient from the search", key="edit_id")
    if chosen:
        current = records.get_patient(engine(), chosen) or {}
        prefix = f"edit_{chosen}_"
        problems = st.session_state.get("edit_problems", [])
        values = form_fields(specs, prefix=prefix, values=current, disabled={"patient_id"},
                             messages=problems_by_column(problems, "patients"))
        if st.button("Save changes", type="primary", key="edit_submit"):
            changes = {k: v for k, v in values.items() if k != "patient_id" and v != current.get(k)}
            try:
                version = records.edit_patient(engine(), chosen, changes, user=user.name)
            except RecordError as e:
                st.session_state["edit_problems"] = e.problems
            else:
                st.session_state["edit_problems"] = []
                st.session_state["saved_notice"] = f"Saved {chosen}: now version {version}."
            st.rerun()
        show_general(problems)
        st.subheader("Earlier versions")
        versions = records.patient_versions(engine(), chosen)
        st.dataframe(versions, hide_index=True, width="stretch", column_config=as_dates(versions))
