"""Bring the app database to the newest schema with Alembic, keeping every row.

The migrations live in ``rxpredict/store/migrations/versions`` (0001: the
registry tables, 0002: users, login sessions, the audit log and patient
versions, 0003: monitoring alerts, 0004: response-model versions and training
jobs). :func:`open_store` is what the app and the command line call: an
engine on a database at the newest revision. An upgrade runs in one
transaction while holding the database's write lock (SQLite ``BEGIN
IMMEDIATE``, a PostgreSQL advisory lock), so two processes starting at once
upgrade it once; a SQLite file behind the newest revision is first copied to
``<file>.<old revision>.bak``. Migrations never drop a table or column that
holds data, and are never run backwards.
"""
from __future__ import annotations

import logging
import sqlite3
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, inspect, text

from rxpredict.exceptions import RxpredictError
from rxpredict.store.engine import make_engine

LOGGER = logging.getLogger(__name__)
SCRIPT_LOCATION = "rxpredict.store:migrations"
#: Key of the PostgreSQL advisory lock held while migrating (any constant shared by every rxpredict process).
POSTGRES_LOCK_KEY = 0x7278_7072_6564  # "rxpred"


class MigrationError(RxpredictError):
    """The database cannot be brought to the newest schema (made by a newer rxpredict, or not by rxpredict)."""


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the app database, with ``connection`` for env.py to migrate on."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision this rxpredict knows."""
    return _scripts().get_current_head()


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated (e.g. empty)."""
    with engine.connect() as connection:
        return _revision(connection)


def _take_migration_lock(connection: Connection) -> None:
    # SQLite: the BEGIN IMMEDIATE of the sqlite_write connection is the lock already.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POSTGRES_LOCK_KEY})


def _check_known(connection: Connection, current: str | None) -> None:
    if current is None:
        tables = sorted(set(inspect(connection).get_table_names()) - {"alembic_version"})
        if tables:
            raise MigrationError(f"the database holds tables ({', '.join(tables)}) but no rxpredict schema revision: "
                                 "it was not made by rxpredict's migrations; use an empty database")
    elif current not in {s.revision for s in _scripts().walk_revisions()}:
        raise MigrationError(f"the database is at schema revision {current!r}, which this rxpredict does not know "
                             f"(newest known: {head_revision()}): it was upgraded by a newer rxpredict")


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for another database or an in-memory one."""
    database = url.database if url.get_backend_name() == "sqlite" else None
    return Path(database).expanduser() if database and database != ":memory:" else None


def _backup_path(path: Path, revision: str) -> Path:
    """``<file>.<revision>.bak``, or with a counter before ``.bak`` when that one exists already."""
    candidate, n = path.with_name(f"{path.name}.{revision}.bak"), 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.{revision}.{n}.bak"), n + 1
    return candidate


def _backup_sqlite(path: Path, revision: str) -> Path:
    """A consistent copy of the SQLite file (WAL included) beside it.

    Read through a connection of its own: the migrating connection holds the
    write lock, which in WAL mode still lets readers in.
    """
    target = _backup_path(path, revision)
    source, copy = sqlite3.connect(path), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target


def upgrade_database(engine: Engine) -> str:
    """Bring the database (empty, or at an older revision) to the newest revision and return it.

    A SQLite file behind the newest revision is copied to
    ``<file>.<old revision>.bak`` first. Raises :class:`MigrationError` for a
    database this rxpredict cannot migrate; on any failure nothing changes.
    """
    head = head_revision()
    with engine.execution_options(sqlite_write=True).begin() as connection:
        _take_migration_lock(connection)
        current = _revision(connection)
        if current == head:
            return head
        _check_known(connection, current)
        path = sqlite_file(engine.url)
        if current is not None and path is not None:
            LOGGER.info("copied the database to %s before upgrading it", _backup_sqlite(path, current))
        command.upgrade(alembic_config(connection), "head")
        LOGGER.info("upgraded the database from schema revision %s to %s", current, head)
    return head


def open_store(url: str | None = None) -> Engine:
    """An engine on the app database (see :func:`rxpredict.store.engine.database_url`) at the newest schema."""
    engine = make_engine(url)
    try:
        upgrade_database(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
