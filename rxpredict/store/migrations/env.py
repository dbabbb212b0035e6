"""Alembic environment of the app database.

Migrations run only through :mod:`rxpredict.store.migrate`, which passes an
open connection (already inside the transaction that holds the migration lock)
as ``config.attributes["connection"]``. On SQLite, operations that change an
existing table are rendered as "batch" operations (copy and move), since
SQLite's ALTER TABLE cannot change columns or constraints.
"""
from alembic import context

from rxpredict.store.tables import Base

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("rxpredict's migrations run on an open connection: use rxpredict.store.migrate "
                       "(rxpredict db upgrade), not the alembic command line")

context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
