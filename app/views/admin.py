"""Administration (admins only): user accounts and the audit log."""
from __future__ import annotations

import streamlit as st

from rxpredict.store import audit, auth
from rxpredict.store.tables import ROLES
from ui import engine, guard

user = guard("admin")
st.title("Administration")

accounts, log = st.tabs(["Users", "Audit log"])
with accounts:
    st.dataframe(auth.users_frame(engine()), hide_index=True, width="stretch")
    st.subheader("Add a user")
    name = st.text_input("User name", key="admin_new_name")
    role = st.selectbox("Role", ROLES, index=None, key="admin_new_role", format_func=lambda r: r.replace("_", " "))
    password = st.text_input("Initial password", type="password", key="admin_new_password")
    if st.button("Add user", key="admin_add"):
        try:
            auth.add_user(engine(), name or "", role or "", password or "", by=user.name)
        except (auth.AuthError, ValueError) as e:
            st.error(str(e))
        else:
            st.success(f"Added {name} ({role}).")
    locked = st.text_input("Unlock user", key="admin_unlock_name")
    if st.button("Unlock", key="admin_unlock") and locked:
        auth.unlock_user(engine(), locked, by=user.name)
        st.success(f"Unlocked {locked}.")

with log:
    table = st.selectbox("Table", ["(all)", *audit.audited_tables(engine())], key="audit_table")
    st.dataframe(audit.audit_frame(engine(), table=None if table == "(all)" else table),
                 hide_index=True, width="stretch")
