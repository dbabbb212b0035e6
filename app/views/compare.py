"""Therapy comparison (rheumatologists): every option side by side for the patient at a date, best first, with
intervals, progression and retention, flags, the reasons (SHAP) and a report to file in the chart."""
from __future__ import annotations

import datetime as dt

import polars as pl
import streamlit as st

from rxpredict.bundle import load_models
from rxpredict.compare import compare_patient, explain_option
from rxpredict.exceptions import BundleError
from rxpredict.explain.importance import plot_png
from rxpredict.explain.reasons import option_title
from rxpredict.registry import Registry
from rxpredict.report import comparison_html, modality_lines, options_table, retention_chart
from rxpredict.store import records
from rxpredict.store.models import active_model
from ui import engine, guard

user = guard("compare")
st.title("Therapy comparison")


@st.cache_resource(show_spinner="Loading the model", max_entries=2)
def _models(path: str, created: str):  # noqa: ARG001 - the creation time keys the cache: a bundle rewritten reloads
    return load_models(path)


version = active_model(engine())
if version is None:
    st.info("No model is active yet: a data scientist trains one and promotes it on the Models page.")
    st.stop()
try:
    model, survival = _models(str(version.path), version.created)
except (BundleError, OSError) as e:
    st.error(f"The active model cannot be loaded: {e}")
    st.stop()

query = st.text_input("Search by patient ID", key="compare_query")
ids = records.search_patients(engine(), query or "").get_column("patient_id").to_list()
chosen = st.selectbox("Patient", ids, index=None, placeholder="choose a patient", key="compare_id")
at = st.date_input("Date of the comparison", value=dt.date.today(), key="compare_date")
if not chosen:
    st.stop()

try:
    comparison = compare_patient(model, survival, Registry.from_tables(records.patient_tables(engine(), chosen)),
                                 chosen, at)
except ValueError as e:
    st.error(f"No comparison for {chosen} on {at}: {e}")
    st.stop()

horizon = None if survival is None else survival.retention.horizon_days
for line in comparison.notices():
    st.warning(line, icon=":material/info:")
st.subheader("Options, best first")
st.caption("Probabilities of a EULAR good or moderate response, a good response and DAS28 remission at 24 weeks, "
           "with 90 % intervals; rapid radiographic progression by the first follow-up radiograph; stopping within "
           "a year for inefficacy or an adverse event.")
st.table(options_table(comparison, horizon), hide_index=True)

if comparison.flags.height:
    st.subheader("Safety flags")
    st.caption("Shown for the prescriber to weigh, never used to hide an option.")
    for therapy in comparison.options["therapy"]:
        for flag in comparison.flags.filter(pl.col("therapy") == therapy).iter_rows(named=True):
            icon = ":material/warning:" if flag["kind"] == "caution" else ":material/checklist:"
            st.markdown(f"{icon} **{option_title(therapy)}** ({flag['kind']}): {flag['message']}")

if comparison.retention_curves is not None:
    st.subheader("Drug retention")
    st.altair_chart(retention_chart(comparison), width="stretch")

st.subheader("Why")
ranked = comparison.options["therapy"].to_list()
focus_option = st.selectbox("Option in focus", ranked, format_func=option_title, key="compare_focus")
focus = explain_option(model, comparison, focus_option)
waterfall = plot_png(focus.explanation, "waterfall")
left, right = st.columns(2)
with left:
    st.markdown("**Main reasons**")
    st.markdown("\n".join(f"- {r}" for r in focus.reasons))
    st.markdown("**By source of data** (points of P(response))")
    st.markdown("\n".join(f"- {line}" for line in modality_lines(focus)))
with right:
    st.image(waterfall, caption=f"SHAP values of P(response) to {option_title(focus_option)}: from the average "
                                "training patient to this patient (probability before calibration)")

st.markdown("**Why one option over another**")
a, b = st.columns(2)
first = a.selectbox("Option", ranked, index=0, format_func=option_title, key="compare_a")
second = b.selectbox("versus", ranked, index=1, format_func=option_title, key="compare_b")
if first == second:
    st.info("Choose two different options.")
else:
    contrast = explain_option(model, comparison, first, second)
    st.markdown("\n".join(f"- {r}" for r in contrast.reasons))

st.divider()
st.caption(f"Model {version.label}, data contract v{model.contract_version_}.")
card = version.path / "MODEL_CARD.md"
with st.expander("Model card"):
    st.markdown(card.read_text() if card.is_file() else "The bundle has no model card.")
st.download_button("Download the report (HTML, prints on one page)", key="compare_report", mime="text/html",
                   file_name=f"comparison-{chosen}-{at}.html",
                   data=comparison_html(comparison, model_name=version.label, focus=focus, waterfall_png=waterfall,
                                        retention_horizon_days=horizon, generated_by=user.name))
