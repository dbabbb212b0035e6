"""Sign in with a local account; failed attempts are slowed and then locked by rxpredict.store.auth."""
from __future__ import annotations

import streamlit as st

from rxpredict.store import auth
from ui import engine

st.title("rxpredict clinic")
if notice := st.session_state.pop("notice", None):
    st.info(notice)
name = st.text_input("User name", key="login_name")
password = st.text_input("Password", type="password", key="login_password")
if st.button("Sign in", type="primary", key="login_submit"):
    try:
        token = auth.sign_in(engine(), name or "", password or "")
    except auth.LoginFailed as e:
        st.error(str(e))
    else:
        st.session_state["token"] = token
        st.session_state.pop("login_password", None)
        st.rerun()
