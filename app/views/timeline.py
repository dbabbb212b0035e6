"""Patient timeline: disease activity over time with treatment courses, SvdH totals and wearable trends."""
from __future__ import annotations

import streamlit as st

from rxpredict.store import records
from rxpredict.timeline import patient_timeline, timeline_charts
from ui import engine, guard

guard("timeline")
st.title("Patient timeline")

query = st.text_input("Search by patient ID", key="timeline_query")
ids = records.search_patients(engine(), query or "").get_column("patient_id").to_list()
chosen = st.selectbox("Patient", ids, index=None, placeholder="choose a patient", key="timeline_id")
if chosen:
    timeline = patient_timeline(records.patient_tables(engine(), chosen))
    charts = timeline_charts(timeline)
    if not charts:
        st.info("No visits, treatments or images recorded for this patient yet.")
    for title, chart in charts.items():
        st.subheader(title)
        st.altair_chart(chart, width="content")
