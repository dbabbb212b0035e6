"""Patient timeline: disease activity over time with treatment courses, SvdH totals, wearable streams against the
patient's baseline and the flare-risk alerts."""
from __future__ import annotations

import streamlit as st

from rxpredict.store import alerts, records
from rxpredict.timeline import patient_timeline, timeline_charts
from ui import RISK_COLUMN, RISK_PERCENT, as_dates, engine, guard

guard("timeline")
st.title("Patient timeline")

query = st.text_input("Search by patient ID", key="timeline_query")
ids = records.search_patients(engine(), query or "").get_column("patient_id").to_list()
chosen = st.selectbox("Patient", ids, index=None, placeholder="choose a patient", key="timeline_id")
if chosen:
    raised = alerts.patient_alerts(engine(), chosen)
    timeline = patient_timeline(records.patient_tables(engine(), chosen), raised)
    charts = timeline_charts(timeline)
    if not charts:
        st.info("No visits, treatments or images recorded for this patient yet.")
    for title, chart in charts.items():
        st.subheader(title)
        st.altair_chart(chart, width="content")
    if not raised.is_empty():
        st.subheader("Flare-risk alerts")
        table = raised.select("date", RISK_PERCENT, "status", "decided_by", "decided_at", "note", "reasons")
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={**as_dates(table), "p_flare_28d": RISK_COLUMN})
