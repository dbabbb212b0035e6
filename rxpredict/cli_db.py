"""``rxpredict db``: upgrade the app database, import a registry into it, export it, and show its state.

Every command takes ``--database URL`` (default: ``$RXPREDICT_DATABASE_URL``,
else the SQLite file in ``$RXPREDICT_HOME``). Failures are one-line messages
on stderr: exit 2 for a bad argument (a URL that is not one, a registry
directory that cannot be read), exit 1 when the data or the database says no.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click
from sqlalchemy import func, inspect, select

from rxpredict.cli_store import (DATABASE_OPTION, EXIT_BAD_ARGUMENT, EXIT_REFUSED, cli_operator, fail, parse_url,
                                 require_sqlite_file, shown, url_engine)
from rxpredict.exceptions import RecordError, RegistryReadError, RegistryValidationError

#: Problems listed when an import is refused (the validator's report has them all).
PROBLEMS_SHOWN = 10


@click.group("db")
def db() -> None:
    """The clinic app's database: schema upgrades, registry import and export, status."""


@db.command("upgrade")
@DATABASE_OPTION
def upgrade(database: str | None) -> None:
    """Create the database or bring it to the newest schema (a SQLite file is backed up first)."""
    from rxpredict.store.migrate import current_revision, sqlite_file, upgrade_database

    url = parse_url(database)
    with url_engine(url, upgrade=False) as engine:
        before = current_revision(engine)
        after = upgrade_database(engine)
    if before == after:
        click.echo(f"{shown(url)} is at the newest schema revision ({after})")
        return
    click.echo(f"{shown(url)} upgraded from revision {before or 'none (empty)'} to {after}")
    path = sqlite_file(url)
    if before is not None and path is not None:
        backup = max(path.parent.glob(f"{path.name}.{before}*.bak"), key=lambda p: p.stat().st_mtime)
        click.echo(f"the file as it was before is kept as {backup}")


def _refused_import(error: RegistryValidationError | RecordError, registry_dir: Path) -> None:
    if isinstance(error, RecordError):
        summary = "the database refused these rows"
        lines = [str(p) for p in error.problems[:PROBLEMS_SHOWN]]
    else:
        summary = str(error).split(";")[0]
        violations = error.report.violations.filter(severity="error").head(PROBLEMS_SHOWN)
        lines = [f"{v['table']} row {v['row'] if v['row'] is not None else '-'}, column {v['column'] or '-'}: "
                 f"{v['message']} (rule {v['rule']})" for v in violations.iter_rows(named=True)]
        lines.append(f"run `rxpredict validate {registry_dir}` for the full report")
    click.echo(f"error: nothing was imported: {summary}", err=True)
    click.echo("\n".join(f"  {line}" for line in lines), err=True)
    sys.exit(EXIT_REFUSED)


@db.command("import")
@click.argument("registry_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@DATABASE_OPTION
def import_(registry_dir: Path, database: str | None) -> None:
    """Store every table of the registry in REGISTRY_DIR (all or nothing; validated first)."""
    from rxpredict.store.transfer import import_registry

    url = parse_url(database)
    with url_engine(url, upgrade=True) as engine:
        try:
            counts = import_registry(engine, registry_dir, user=cli_operator())
        except RegistryReadError as e:
            fail(str(e), EXIT_BAD_ARGUMENT)
        except (RegistryValidationError, RecordError) as e:
            _refused_import(e, registry_dir)
    click.echo(f"imported into {shown(url)}: " + ", ".join(f"{n} {name}" for name, n in counts.items()))


@db.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True)
@DATABASE_OPTION
def export(out_dir: Path, fmt: str, database: str | None) -> None:
    """Write every registry table of the database to OUT_DIR, one file per table."""
    from rxpredict.store.transfer import export_registry

    url = parse_url(database)
    require_sqlite_file(url)
    with url_engine(url, upgrade=True) as engine:
        try:
            written = export_registry(engine, out_dir, format=fmt)
        except OSError as e:
            fail(f"cannot write to {out_dir}: {e.strerror or e}", EXIT_BAD_ARGUMENT)
    click.echo(f"exported {shown(url)} to {written}")


@db.command("status")
@DATABASE_OPTION
def status(database: str | None) -> None:
    """The database's schema revision and the rows in each of its tables (changes nothing)."""
    from rxpredict.store.migrate import current_revision, head_revision
    from rxpredict.store.tables import REGISTRY_TABLES, Base

    url = parse_url(database)
    require_sqlite_file(url)
    head = head_revision()
    with url_engine(url, upgrade=False) as engine:
        revision = current_revision(engine)
        present = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            tables = [*REGISTRY_TABLES.values(),
                      *(t for t in Base.metadata.sorted_tables if t.name not in REGISTRY_TABLES)]
            rows = {t.name: connection.scalar(select(func.count()).select_from(t)) for t in tables if t.name in present}
    state = ("up to date" if revision == head else "empty: `rxpredict db upgrade` creates the tables"
             if revision is None else f"behind the newest revision {head}: run `rxpredict db upgrade`")
    click.echo(f"database: {shown(url)}")
    click.echo(f"revision: {revision or 'none'} ({state})")
    width = max((len(name) for name in rows), default=0)
    for name, n in rows.items():
        click.echo(f"  {name:<{width}}  {n:>9,}")
