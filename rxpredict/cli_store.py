"""What the ``db`` and ``users`` commands share: the ``--database`` option, one-line failures, who ran it.

A database URL that is not one exits 2; a database that refuses exits 1;
neither prints a traceback, and a password in a URL is shown as ``***``.
"""
from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

EXIT_REFUSED, EXIT_BAD_ARGUMENT = 1, 2
DATABASE_OPTION = click.option("--database", "database", metavar="URL", default=None,
                               help="Database URL (default: $RXPREDICT_DATABASE_URL, else the SQLite file "
                                    "in $RXPREDICT_HOME).")


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def cli_operator() -> str:
    """Who ran the command, for the audit log: ``cli:`` and the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment (a bare container)
        return "cli"


def parse_url(database: str | None) -> URL:
    """The URL given, else the configured one, checked to be one SQLAlchemy can open (else exit 2)."""
    from rxpredict.store.engine import database_url

    try:
        url = make_url(database_url(database))
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        fail("not a database URL this rxpredict can open (e.g. sqlite:///path/rxpredict.db or "
              "postgresql+psycopg://user@host:5432/dbname)", EXIT_BAD_ARGUMENT)
    return url


def shown(url: URL) -> str:
    """The URL with its password hidden, for messages."""
    return url.render_as_string(hide_password=True)


def require_sqlite_file(url: URL) -> None:
    """Reading commands do not create a database: a SQLite file must exist already."""
    from rxpredict.store.migrate import sqlite_file

    path = sqlite_file(url)
    if path is not None and not path.is_file():
        fail(f"no database file at {path} (`rxpredict db upgrade` or `rxpredict db import` creates it)", EXIT_REFUSED)


@contextmanager
def url_engine(url: URL, *, upgrade: bool) -> Iterator[Engine]:
    """An engine on ``url`` (brought to the newest schema when ``upgrade``); database failures become messages."""
    from rxpredict.store.engine import make_engine
    from rxpredict.store.migrate import MigrationError, open_store

    target = url.render_as_string(hide_password=False)
    try:
        engine = open_store(target) if upgrade else make_engine(target)
        try:
            yield engine
        finally:
            engine.dispose()
    except MigrationError as e:
        fail(f"{shown(url)}: {e}", EXIT_REFUSED)
    except SQLAlchemyError as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        fail(f"cannot use the database {shown(url)}: {reason}", EXIT_REFUSED)


@contextmanager
def store_engine(database: str | None, *, upgrade: bool = True) -> Iterator[Engine]:
    """An engine on ``--database`` (or the configured database), with every failure turned into a message."""
    with url_engine(parse_url(database), upgrade=upgrade) as engine:
        yield engine
