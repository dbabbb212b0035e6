"""Shared fixtures: the shipped example registry, read raw (as a CSV reader sees it)."""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import settings

from rxpredict.registry import read_raw_tables

# `pytest --hypothesis-profile=thorough` runs the property tests ten times longer.
settings.register_profile("default", max_examples=40)
settings.register_profile("thorough", max_examples=400)
settings.load_profile("default")

EXAMPLE = Path(__file__).resolve().parents[1] / "rxpredict" / "data" / "example_registry"
TODAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="session")
def example_dir() -> Path:
    return EXAMPLE


@pytest.fixture(scope="session")
def _raw_example_once() -> dict[str, pl.DataFrame]:
    raw, problems = read_raw_tables(EXAMPLE)
    assert not problems
    return raw


@pytest.fixture()
def raw_example(_raw_example_once) -> dict[str, pl.DataFrame]:
    """The example registry's tables as text columns, ready to be spoiled by a test (frames are immutable)."""
    return dict(_raw_example_once)


# --- the app database, on SQLite and on a real PostgreSQL server -------------------------------------------
# .ci/run starts PostgreSQL on loopback and sets RXPREDICT_TEST_POSTGRES_URL (a server URL, database
# "postgres") and RXPREDICT_REQUIRE_POSTGRES=1, so that in CI the PostgreSQL half can never be skipped.
POSTGRES_URL_ENV = "RXPREDICT_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "RXPREDICT_REQUIRE_POSTGRES"


def _fresh_postgres_database() -> tuple[str, callable]:
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{REQUIRE_POSTGRES_ENV}=1 but {POSTGRES_URL_ENV} is not set")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_ENV} (.ci/run does)")
    name = f"rxp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server).set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database, once as a SQLite file and once on the PostgreSQL server; dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rxpredict.db'}"
        return
    url, drop = _fresh_postgres_database()
    yield url
    drop()


@pytest.fixture()
def store_engine(database_url):
    """An engine on a database brought to the newest schema."""
    from rxpredict.store.engine import make_engine
    from rxpredict.store.migrate import upgrade_database

    engine = make_engine(database_url)
    upgrade_database(engine)
    yield engine
    engine.dispose()
