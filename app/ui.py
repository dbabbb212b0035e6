"""What every page of the clinic app shares: the database, who is signed in, the role check, and widgets drawn from field specs.

No modelling, scoring or validation here: those come from ``rxpredict``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl
import streamlit as st
from sqlalchemy import Engine

from rxpredict.forms import FieldSpec
from rxpredict.store import auth
from rxpredict.store.engine import database_url
from rxpredict.store.migrate import open_store

#: page name -> (file, title, icon); which roles may open a page is rxpredict.store.auth's decision.
PAGES = {
    "patients": ("views/patients.py", "Patients", ":material/group:"),
    "visit_entry": ("views/visit_entry.py", "Visit entry", ":material/edit_note:"),
    "timeline": ("views/timeline.py", "Patient timeline", ":material/timeline:"),
    "compare": ("views/compare.py", "Therapy comparison", ":material/compare_arrows:"),
    "monitoring": ("views/monitoring.py", "Monitoring", ":material/monitor_heart:"),
    "models": ("views/models.py", "Models", ":material/model_training:"),
    "admin": ("views/admin.py", "Administration", ":material/admin_panel_settings:"),
}
EARLIEST_DATE = dt.date(1900, 1, 1)


@st.cache_resource(show_spinner="Opening the database")
def _open(url: str) -> Engine:
    return open_store(url)


def engine() -> Engine:
    """The app database ($RXPREDICT_DATABASE_URL or the default file), upgraded to the newest schema once per process."""
    return _open(database_url())


def signed_in() -> auth.SignedIn | None:
    """The user of this browser session, checked against the database on every run (expired sessions end here)."""
    token = st.session_state.get("token")
    if not token:
        return None
    user = auth.session_user(engine(), token)
    if user is None:
        st.session_state.pop("token", None)
        st.session_state["notice"] = "Your session ended after a period of inactivity; please sign in again."
    return user


def sign_out() -> None:
    token = st.session_state.pop("token", None)
    if token:
        auth.end_session(engine(), token)


def page_allowed(user: auth.SignedIn, page: str) -> bool:
    return user.role in auth.PAGE_ROLES[page]


def guard(page: str) -> auth.SignedIn:
    """First line of every page: stop here unless the signed-in user's role may open ``page``."""
    user = signed_in()
    if user is None:
        st.warning(st.session_state.pop("notice", "Please sign in."))
        st.stop()
    try:
        auth.require_role(user, page)
    except auth.AccessDenied as e:
        st.error(str(e))
        st.stop()
    return user


def as_dates(frame: pl.DataFrame) -> dict[str, st.column_config.DateColumn]:
    """Column settings that show the frame's date columns as dates (st.dataframe shows midnight datetimes)."""
    return {c: st.column_config.DateColumn(format="YYYY-MM-DD") for c, t in frame.schema.items() if t == pl.Date}


#: A flare risk as the tables show it: in percent with one decimal, like the alert threshold (the column holds
#: ``p_flare_28d`` times 100, :data:`RISK_PERCENT`).
RISK_COLUMN = st.column_config.NumberColumn("risk", format="%.1f%%", help="Probability of a flare within 28 days")
RISK_PERCENT = pl.col("p_flare_28d") * 100


def show_messages(messages: Iterable[str]) -> None:
    """Validation messages under the field they belong to."""
    for m in messages:
        st.error(m, icon=":material/error:")


def field_input(spec: FieldSpec, *, key: str, value: Any = None, disabled: bool = False) -> Any:
    """One widget for one schema field: label, unit, help and choices come from the spec, never typed here.

    Numbers have no widget-side bounds, so an out-of-range value reaches the
    validator and its message is shown; the range is in the help text.
    """
    if key not in st.session_state:
        st.session_state[key] = value  # the widget's value lives in session state only, never in two places
    common = {"label": spec.label, "help": spec.help, "key": key, "disabled": disabled}
    if spec.kind in ("enum", "bool"):
        return st.selectbox(options=list(spec.options), format_func=spec.format,
                            placeholder="choose" if spec.required else "unknown", **common)
    if spec.kind == "date":
        return st.date_input(min_value=EARLIEST_DATE, max_value=dt.date(2100, 12, 31), **common)
    if spec.kind == "int":
        return st.number_input(step=1, **common)
    if spec.kind == "float":
        return st.number_input(step=float(spec.step or 1.0), format="%g", **common)
    return st.text_input(**common)


def form_fields(specs: Iterable[FieldSpec], *, prefix: str, values: Mapping[str, Any] | None = None,
                messages: Mapping[str, list[str]] | None = None, columns: int = 3,
                disabled: Iterable[str] = ()) -> dict[str, Any]:
    """A grid of field widgets with each field's messages under it; returns name -> value."""
    values, messages, disabled = values or {}, messages or {}, set(disabled)
    out: dict[str, Any] = {}
    specs = list(specs)
    for start in range(0, len(specs), columns):
        for col, spec in zip(st.columns(columns), specs[start:start + columns]):
            with col:
                out[spec.name] = field_input(spec, key=f"{prefix}{spec.name}", value=values.get(spec.name),
                                             disabled=spec.name in disabled)
                show_messages(messages.get(spec.name, ()))
    return out
