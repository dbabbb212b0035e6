"""Where the app database lives and how to connect to it.

SQLite file by default (WAL journal, foreign keys on, a busy timeout so that
concurrent writers wait rather than fail); PostgreSQL or any SQLAlchemy URL
through ``$RXPREDICT_DATABASE_URL``. Writes go through :func:`writing`: one
transaction that commits whole or not at all.
"""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

DATABASE_URL_ENV = "RXPREDICT_DATABASE_URL"
HOME_ENV = "RXPREDICT_HOME"
#: Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 60


def default_database_path() -> Path:
    """``$RXPREDICT_HOME/rxpredict.db`` (default ``~/.rxpredict``)."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".rxpredict") / "rxpredict.db"


def database_url(url: str | None = None) -> str:
    """The URL given, else ``$RXPREDICT_DATABASE_URL``, else the default SQLite file."""
    return url or os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{default_database_path()}"


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (it stays WAL). A new file opened by several connections at once can refuse the
    switch with "database is locked" whatever the busy timeout, so the switch is retried until one of them made it."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_setup(engine: Engine) -> None:
    """Foreign keys, WAL and explicit BEGIN (IMMEDIATE for writers), as SQLAlchemy's pysqlite notes advise."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        # A writer takes the write lock up front, so two writers never deadlock upgrading read locks.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_write") else "BEGIN")


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """An engine for the app database (see :func:`database_url`); creates a SQLite file's folder."""
    parsed = make_url(database_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, hide_parameters=True, **kwargs)
        _sqlite_setup(engine)
        return engine
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True, **kwargs)


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """One write transaction: commits when the block ends, rolls everything back on any error."""
    with Session(engine.execution_options(sqlite_write=True), expire_on_commit=False) as session, session.begin():
        yield session
