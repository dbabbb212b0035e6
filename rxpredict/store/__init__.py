"""The app database: registry tables from data_schemas/, users, login sessions and the audit log (SQLAlchemy 2)."""
