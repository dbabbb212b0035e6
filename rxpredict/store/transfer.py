"""Move a whole registry into the app database and out again, losing nothing.

:func:`import_registry` reads and validates a registry directory with the
registry reader's own rules, then inserts every table in bulk in one write
transaction with one audit row per table: an invalid registry, or rows whose
keys are stored already, write nothing. :func:`export_registry` reads every
table from one snapshot of the database in the contract's dtypes, sorted by
primary key, and writes it through :func:`rxpredict.registry.write_registry`
(validated, all files or none). Import then export gives back the same rows,
dtypes and nulls.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import polars as pl
from sqlalchemy import Connection, Engine, Table, insert, select
from sqlalchemy.exc import IntegrityError

from rxpredict.exceptions import RecordError
from rxpredict.registry import Registry, read_registry, write_registry
from rxpredict.schemas import load_contract
from rxpredict.store.audit import record_write
from rxpredict.store.engine import writing
from rxpredict.store.tables import REGISTRY_TABLES
from rxpredict.validation.records import Problem

#: Rows sent to the database per executemany call (bounds the memory of the Python row dicts).
CHUNK_ROWS = 20_000
#: Clashing rows named per table in an import's RecordError (a count stands for the rest).
CLASHES_SHOWN = 10


def _key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _read_table(connection: Connection, name: str, columns: list[str] | None = None) -> pl.DataFrame:
    """A stored table (or some of its columns) in the contract's dtypes, sorted by primary key."""
    table = REGISTRY_TABLES[name]
    schema = load_contract().tables[name].polars_schema
    columns = columns or list(schema)
    rows = connection.execute(select(*(table.c[c] for c in columns))).all()
    frame = pl.DataFrame(rows, schema={c: schema[c] for c in columns}, orient="row")
    return frame.sort(_key_columns(table))  # sorted here, not in SQL: the server's collation may differ


def _clashes(engine: Engine, registry: Registry) -> list[Problem]:
    """Imported rows whose primary key is stored already, by table, row (in its file) and key columns."""
    problems = []
    with engine.connect() as connection:
        for name, table in REGISTRY_TABLES.items():
            keys = _key_columns(table)
            clashing = (registry[name].select(keys).with_row_index("row", offset=1)
                        .join(_read_table(connection, name, keys), on=keys, how="semi")
                        .sort("row")["row"].to_list())
            where = ",".join(keys)
            message = f"a {name} row with this ({where}) is stored already"
            problems += [Problem(name, row, where, "duplicate_key", message) for row in clashing[:CLASHES_SHOWN]]
            if len(clashing) > CLASHES_SHOWN:
                problems.append(Problem(name, None, where, "duplicate_key",
                                        f"{len(clashing)} {name} rows in all have keys that are stored already"))
    return problems or [Problem("registry", None, None, "integrity",
                                "the database refused the rows (a key written by another user meanwhile?)")]


def import_registry(engine: Engine, directory: str | Path, *, user: str | None = None) -> dict[str, int]:
    """Store every table of the registry in ``directory``; the rows imported per table.

    All or nothing: an unreadable or invalid registry raises
    :class:`~rxpredict.exceptions.RegistryReadError` or
    :class:`~rxpredict.exceptions.RegistryValidationError` (whose report names
    every row, column and rule), rows with keys stored already raise
    :class:`~rxpredict.exceptions.RecordError`, and either way nothing is
    written. Each table imported gets one audit row (action ``import``).
    """
    registry = read_registry(directory)
    counts = {name: registry[name].height for name in REGISTRY_TABLES}
    try:
        with writing(engine) as session:
            for name, table in REGISTRY_TABLES.items():  # patients first: the others refer to it
                if not counts[name]:
                    continue
                for chunk in registry[name].iter_slices(CHUNK_ROWS):
                    session.execute(insert(table), chunk.to_dicts())
                record_write(session, user=user, action="import", table=name, key=name, old=None,
                             new={"rows": counts[name]})
    except IntegrityError:
        raise RecordError(_clashes(engine, registry)) from None
    return counts


def _snapshot(engine: Engine) -> Connection:
    """A connection whose reads all see one moment of the database (so every visit's patient is there)."""
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="REPEATABLE READ")
    return engine.connect()  # SQLite in WAL mode: one read transaction is one snapshot


def registry_tables(engine: Engine) -> dict[str, pl.DataFrame]:
    """Every registry table of the database, read from one snapshot."""
    with _snapshot(engine) as connection, connection.begin():
        return {name: _read_table(connection, name) for name in REGISTRY_TABLES}


def export_registry(engine: Engine, out_dir: str | Path, *, format: Literal["parquet", "csv"] = "parquet") -> Path:
    """Write every registry table of the database to ``out_dir`` as a registry (one file per table)."""
    return write_registry(registry_tables(engine), out_dir, format=format)
