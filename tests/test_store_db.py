"""The app database's schema migrations, registry import and export, and the ``rxpredict db`` commands.

Every test runs on a SQLite file and on a fresh PostgreSQL database (the
``database_url`` and ``store_engine`` fixtures of conftest.py).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import polars as pl
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from polars.testing import assert_frame_equal
from sqlalchemy import Engine, func, insert, inspect, select, text

from rxpredict.cli_db import db
from rxpredict.exceptions import RecordError, RegistryValidationError
from rxpredict.registry import read_registry, write_registry
from rxpredict.simulate import simulate
from rxpredict.store.audit import audit_frame
from rxpredict.store.engine import make_engine
from rxpredict.store.migrate import (MigrationError, alembic_config, current_revision, head_revision, open_store,
                                     sqlite_file, upgrade_database)
from rxpredict.store.tables import REGISTRY_TABLES, Base
from rxpredict.store.transfer import export_registry, import_registry
from rxpredict.validation.records import Problem


@pytest.fixture(scope="module")
def simulated_dir(tmp_path_factory) -> Path:
    """A small simulated registry (300 patients, every table) as Parquet files."""
    out = tmp_path_factory.mktemp("simulated")
    simulate(300, seed=5, out=out, progress=False)
    return out


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as c:
        return {t.name: c.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def _assert_same_registry(expected_dir: Path, actual_dir: Path) -> None:
    """Same tables, rows, dtypes and nulls, each table compared sorted by its primary key."""
    expected, actual = read_registry(expected_dir), read_registry(actual_dir)
    for name, table in REGISTRY_TABLES.items():
        key = [c.name for c in table.primary_key.columns]
        assert_frame_equal(actual[name].sort(key), expected[name].sort(key), check_exact=True)


# --- migrations -----------------------------------------------------------------------------------------------

def test_upgrade_creates_every_table_of_an_empty_database(database_url):
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    assert upgrade_database(engine) == head_revision() == current_revision(engine)
    assert set(inspect(engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    engine.dispose()


def test_migrated_database_matches_the_metadata(store_engine):
    # types, nullability, keys, indexes, unique constraints, foreign keys and (on PostgreSQL) comments
    with store_engine.connect() as c:
        context = MigrationContext.configure(c, opts={"compare_type": True, "compare_server_default": True})
        assert compare_metadata(context, Base.metadata) == []


def test_an_old_database_keeps_every_row_and_sqlite_is_backed_up(database_url, example_dir, tmp_path):
    engine = make_engine(database_url)
    with engine.begin() as c:
        command.upgrade(alembic_config(c), "0001")
    assert current_revision(engine) == "0001"
    example = read_registry(example_dir)
    with engine.begin() as c:
        for name, table in REGISTRY_TABLES.items():
            c.execute(insert(table), example[name].to_dicts())
    assert not inspect(engine).has_table("users")

    assert upgrade_database(engine) == head_revision()
    assert inspect(engine).has_table("users")
    export_registry(engine, tmp_path / "after")
    _assert_same_registry(example_dir, tmp_path / "after")

    path = sqlite_file(engine.url)
    if path is not None:
        backup = path.with_name(f"{path.name}.0001.bak")
        old = make_engine(f"sqlite:///{backup}")
        assert current_revision(old) == "0001"
        export_registry(old, tmp_path / "backup")
        _assert_same_registry(example_dir, tmp_path / "backup")
        old.dispose()
    engine.dispose()


def test_upgrading_twice_changes_nothing(store_engine, example_dir):
    import_registry(store_engine, example_dir)
    before = _counts(store_engine)
    assert upgrade_database(store_engine) == head_revision()
    assert _counts(store_engine) == before
    path = sqlite_file(store_engine.url)
    if path is not None:
        assert not list(path.parent.glob("*.bak"))  # an up-to-date database is not copied


def test_concurrent_upgrades_of_an_empty_database_migrate_it_once(database_url):
    engines = [make_engine(database_url) for _ in range(4)]
    results: list[object] = []

    def run(engine: Engine) -> None:
        try:
            results.append(upgrade_database(engine))
        except Exception as e:  # noqa: BLE001 - the assertion below names it
            results.append(e)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [head_revision()] * 4
    with engines[0].connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head_revision()]
    for e in engines:
        e.dispose()


def test_a_database_of_a_newer_rxpredict_is_refused(store_engine):
    with store_engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(MigrationError, match="'9999'.*newer rxpredict"):
        upgrade_database(store_engine)


def test_tables_not_made_by_the_migrations_are_refused(database_url):
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    with pytest.raises(MigrationError, match="no rxpredict schema revision"):
        upgrade_database(engine)
    assert current_revision(engine) is None
    engine.dispose()


def test_open_store_gives_an_engine_at_the_newest_revision(database_url):
    engine = open_store(database_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


# --- import and export ----------------------------------------------------------------------------------------

def test_import_then_export_gives_back_the_registry(store_engine, simulated_dir, tmp_path):
    counts = import_registry(store_engine, simulated_dir, user="cli:tester")
    registry = read_registry(simulated_dir)
    assert counts == {name: registry[name].height for name in REGISTRY_TABLES}
    assert all(counts.values())  # every table of the simulation holds rows

    audit = audit_frame(store_engine, limit=100)
    assert sorted(audit["record_key"]) == sorted(REGISTRY_TABLES)
    assert set(audit["action"]) == {"import"} and set(audit["user"]) == {"cli:tester"}
    assert {r["table"]: json.loads(r["new_values"]) for r in audit.iter_rows(named=True)} == {
        name: {"rows": n} for name, n in counts.items()}

    assert export_registry(store_engine, tmp_path / "out") == tmp_path / "out"
    _assert_same_registry(simulated_dir, tmp_path / "out")
    exported = read_registry(tmp_path / "out")
    for name, table in REGISTRY_TABLES.items():  # written sorted by primary key
        key = [c.name for c in table.primary_key.columns]
        assert exported[name].equals(exported[name].sort(key))


def _spoiled(raw: dict[str, pl.DataFrame], out: Path) -> Path:
    """The example registry as CSV with the third visit's tender joint count above the maximum of 28."""
    raw["visits"] = raw["visits"].with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("40")).otherwise(pl.col("tjc28")).alias("tjc28"))
    out.mkdir()
    for name, frame in raw.items():
        frame.write_csv(out / f"{name}.csv")
    return out


def test_an_invalid_registry_writes_nothing(store_engine, raw_example, tmp_path):
    with pytest.raises(RegistryValidationError) as caught:
        import_registry(store_engine, _spoiled(raw_example, tmp_path / "bad"))
    errors = caught.value.report.violations.filter(severity="error")
    assert errors.select("table", "row", "column", "rule").rows() == [("visits", 3, "tjc28", "maximum")]
    assert set(_counts(store_engine).values()) == {0}


def test_an_import_clashing_with_stored_rows_writes_nothing(store_engine, example_dir, simulated_dir, tmp_path):
    import_registry(store_engine, example_dir)
    before = _counts(store_engine)
    # the simulated registry plus, as its last patient, one the database holds already
    tables = dict(read_registry(simulated_dir).tables)
    tables["patients"] = pl.concat([tables["patients"], read_registry(example_dir)["patients"].slice(1, 1)])
    write_registry(tables, tmp_path / "clash")

    with pytest.raises(RecordError) as caught:
        import_registry(store_engine, tmp_path / "clash")
    assert caught.value.problems == [Problem("patients", tables["patients"].height, "patient_id", "duplicate_key",
                                             "a patients row with this (patient_id) is stored already")]
    assert _counts(store_engine) == before


# --- the command line -----------------------------------------------------------------------------------------

def _db(*args: str):
    return CliRunner().invoke(db, list(args), prog_name="rxpredict db")


def test_cli_upgrade_import_status_export(database_url, example_dir, tmp_path):
    first = _db("upgrade", "--database", database_url)
    assert first.exit_code == 0, first.output
    assert "upgraded from revision none (empty) to " + head_revision() in first.output
    assert "at the newest schema revision" in _db("upgrade", "--database", database_url).output

    imported = _db("import", str(example_dir), "--database", database_url)
    assert imported.exit_code == 0, imported.output
    assert "4 patients, 12 visits" in imported.output

    status = _db("status", "--database", database_url)
    assert status.exit_code == 0, status.output
    assert f"revision: {head_revision()} (up to date)" in status.output
    assert [line.split() for line in status.output.splitlines() if line.split()[0] in ("patients", "visits")] == [
        ["patients", "4"], ["visits", "12"]]

    exported = _db("export", str(tmp_path / "out"), "--format", "csv", "--database", database_url)
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in example_dir.iterdir())
    _assert_same_registry(example_dir, tmp_path / "out")


def test_cli_upgrades_an_old_database_and_names_the_backup(database_url):
    engine = make_engine(database_url)
    with engine.begin() as c:
        command.upgrade(alembic_config(c), "0001")
    result = _db("upgrade", "--database", database_url)
    assert result.exit_code == 0, result.output
    assert f"upgraded from revision 0001 to {head_revision()}" in result.output
    path = sqlite_file(engine.url)
    if path is not None:
        assert f"kept as {path}.0001.bak" in result.output
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_cli_refuses_a_bad_registry_with_its_rows_and_rules(database_url, example_dir, raw_example, tmp_path):
    missing = _db("import", str(tmp_path / "nowhere"), "--database", database_url)
    assert missing.exit_code == 2 and "does not exist" in missing.output

    invalid = _db("import", str(_spoiled(raw_example, tmp_path / "bad")), "--database", database_url)
    assert invalid.exit_code == 1
    assert "nothing was imported" in invalid.output
    assert "visits row 3, column tjc28: above the maximum 28 (rule maximum)" in invalid.output

    assert _db("import", str(example_dir), "--database", database_url).exit_code == 0
    again = _db("import", str(example_dir), "--database", database_url)
    assert again.exit_code == 1
    assert "patients row 1, column patient_id: a patients row with this (patient_id) is stored already" in again.output
    assert "Traceback" not in invalid.output + again.output


@pytest.mark.parametrize("url, code, message", [
    ("not a url", 2, "not a database URL"),
    ("nosuchdb://host/x", 2, "not a database URL"),
    ("postgresql+psycopg://someone:secret@127.0.0.1:1/x", 1, "cannot use the database"),
])
def test_cli_names_a_bad_database_url_in_one_line(url, code, message):
    result = _db("status", "--database", url)
    assert result.exit_code == code
    assert result.output.startswith(f"error: {message}") and result.output.count("\n") == 1
    assert "secret" not in result.output


def test_cli_status_and_export_do_not_create_a_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'none.db'}"
    for args in (["status"], ["export", str(tmp_path / "out")]):
        result = _db(*args, "--database", url)
        assert result.exit_code == 1 and "no database file at" in result.output
    assert not (tmp_path / "none.db").exists()
