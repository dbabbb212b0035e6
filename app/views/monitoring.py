"""Monitoring between visits: score the patients who share wearable data, and decide on the alerts raised.

The flare-risk monitor is a bundle made by ``rxpredict monitor train`` (``make run`` makes a demo one), found in
``$RXPREDICT_MONITOR_MODEL`` or ``$RXPREDICT_HOME/models/monitor``. Scoring, the alert rules and the store all
come from ``rxpredict``; this page only asks and shows.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from rxpredict.exceptions import BundleError
from rxpredict.monitoring.pipeline import score_patients
from rxpredict.monitoring.windows import WINDOW_DAYS
from rxpredict.store import alerts
from ui import EARLIEST_DATE, RISK_COLUMN, RISK_PERCENT, as_dates, engine, guard

user = guard("monitoring")
st.title("Monitoring between visits")


@st.cache_resource(show_spinner="Loading the flare-risk monitor")
def _monitor(path: str, stamp: str) -> tuple:
    """The bundle's model, alert policy, SHAP background and metrics; keyed by its stamp, so a new bundle is read."""
    return alerts.load_active_monitor(Path(path))


directory = alerts.monitor_dir()
how_to = (f"To make one, run `rxpredict monitor train --registry REGISTRY_DIR --out {directory}` (or set "
          f"`{alerts.MONITOR_MODEL_ENV}` to a bundle's folder). The alerts stored so far are listed below.")
monitor = None
try:
    stamp = alerts.monitor_stamp(directory)
    monitor = None if stamp is None else _monitor(str(directory), stamp)
except (BundleError, OSError) as e:
    st.error(f"The flare-risk monitor cannot be used: {e}. {how_to}")
else:
    if stamp is None:
        st.info(f"There is no flare-risk monitor yet, so nobody can be scored. {how_to}")

if monitor is not None:
    model, policy, background, metrics = monitor
    st.caption(f"Flare-risk monitor: {stamp}. An alert is raised when the risk of a flare within 28 days reaches "
               f"{policy.threshold_:.1%}, at most once in {policy.quiet_days} days per patient: the threshold that "
               f"keeps to about {policy.budget_per_month:g} alert per patient-month.")
    if "sensitivity" in metrics:
        st.caption(f"On patients it did not learn from, it warned before {metrics['sensitivity']:.0%} of flares, a "
                   f"median of {metrics['median_lead_days']:.0f} days ahead; {metrics['ppv']:.0%} of its alerts "
                   "were followed by a flare within 28 days.")
    latest = alerts.latest_wearable_date(engine())
    if latest is None:
        st.info("No wearable data is stored yet: there is nobody to score.")
    else:
        day = st.date_input("Day to score", value=latest, min_value=EARLIEST_DATE, key="monitor_day",
                            help=f"Each patient with wearable data in the {WINDOW_DAYS} days up to it is scored.")
        scoring = st.button("Score", type="primary", key="monitor_score", disabled=day is None)
        if scoring and not alerts.wearers(engine(), day, WINDOW_DAYS):
            st.warning(f"Nobody has wearable data in the {WINDOW_DAYS} days up to {day}: there is nobody to score.")
        elif scoring:
            with st.spinner(f"Scoring the patients with wearable data up to {day}"):
                scores = score_patients(model, policy, background, alerts.stored_registry(engine()), day,
                                        reasons=False, replay=False)
                added = alerts.record_alerts(engine(), scores, model=stamp, user=user.name,
                                             quiet_days=policy.quiet_days)
            st.success(f"Scored {scores.height} patient(s) on {day}: {added} new alert(s).")

st.subheader("Open alerts")
if notice := st.session_state.pop("alert_notice", None):
    st.success(notice)
if problem := st.session_state.pop("alert_problem", None):
    st.error(problem)
shown = alerts.open_alerts(engine())
if shown.is_empty():
    st.info("No open alerts.")
    st.stop()
table = shown.select("patient_id", "sex", "birth_year", "date", RISK_PERCENT, "reasons")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={**as_dates(table), "patient_id": "patient", "p_flare_28d": RISK_COLUMN,
                            "birth_year": st.column_config.NumberColumn("born", format="%d")})
for alert in shown.iter_rows(named=True):
    key = alert["id"]
    with st.container(border=True):
        st.text(f"{alert['patient_id']} on {alert['date']}: risk {alert['p_flare_28d']:.1%}\n"
                + alert["reasons"].replace("; ", "\n"))
        note = st.text_input("Note (optional)", key=f"alert_note_{key}")
        acknowledge, dismiss, timeline = st.columns(3)
        acknowledged = acknowledge.button("Acknowledge", key=f"alert_ack_{key}")
        dismissed = dismiss.button("Dismiss", key=f"alert_dismiss_{key}")
        if acknowledged or dismissed:
            decision = "acknowledged" if acknowledged else "dismissed"
            try:
                alerts.decide_alert(engine(), key, decision, user.name, note)
            except alerts.AlertError as e:
                st.session_state["alert_problem"] = str(e)
            else:
                st.session_state["alert_notice"] = (f"The alert of {alert['patient_id']} on {alert['date']} "
                                                    f"is {decision}.")
            st.rerun()
        if timeline.button("Open timeline", key=f"alert_timeline_{key}"):
            st.session_state["timeline_query"] = st.session_state["timeline_id"] = alert["patient_id"]
            st.switch_page("views/timeline.py")
