"""rxpredict clinic app: the router.

Run with ``streamlit run app/main.py`` (``make run`` does, with a demo
database). This file only signs people in and out and lists the pages their
role may open; every page checks the role again on the server when it runs,
so a hidden link is never the only protection.
"""
from __future__ import annotations

import streamlit as st

from ui import PAGES, page_allowed, sign_out, signed_in

st.set_page_config(page_title="rxpredict clinic", layout="wide")

user = signed_in()
if user is None:
    navigation = st.navigation([st.Page("views/login.py", title="Sign in", icon=":material/login:")])
else:
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role.replace('_', ' ')})")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
    allowed = [(path, title, icon) for name, (path, title, icon) in PAGES.items() if page_allowed(user, name)]
    navigation = st.navigation(
        [st.Page(path, title=title, icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(allowed)]
    )
navigation.run()
