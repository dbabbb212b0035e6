"""Add one patient's imported days to a registry directory's wearables table, all or nothing.

A day already stored for the patient is merged value by value: a value the
stored day lacks is added; a value it holds is kept, and where the file says
otherwise that is a conflict (reported with the file's line) unless
``replace`` is given, in which case the file wins. Stored values the file
does not have are never removed. The table is written to a temporary file
beside it and moved into place (``os.replace``), so a failed import leaves
the registry as it was; an import that changes nothing does not write.

Imports into one registry at once (several processes) are serialised by an
advisory lock (``fcntl.flock``) on ``wearables.lock`` beside the table, held
from reading the stored table to moving the new one into place, so no
import's days are lost. Where ``fcntl`` is missing (Windows) there is no
lock: run one import at a time there.
"""
from __future__ import annotations

import datetime as dt
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rxpredict.exceptions import RegistryReadError
from rxpredict.monitoring.ingest.errors import PatientNotFoundError, StoredTableError, TableLockedError
from rxpredict.monitoring.ingest.formats import read_wearables_file
from rxpredict.monitoring.ingest.mapping import CsvMapping, measure_columns
from rxpredict.monitoring.ingest.report import PROBLEM_SCHEMA, WearableImport, problem_lines
from rxpredict.registry import table_files
from rxpredict.schemas import load_contract
from rxpredict.validation import validate_tables

try:
    import fcntl
except ImportError:  # Windows: imports are not locked against each other (see table_lock)
    fcntl = None

TABLE = "wearables"
LOCK_FILE = f"{TABLE}.lock"
#: Seconds an import waits for another one to finish writing the table.
LOCK_TIMEOUT_S = 60.0
_STORED, _NEW = "__stored", "__new"


@dataclass
class RegistryImport:
    """One file imported into a registry: what was read, and what changed in the wearables table.

    ``conflicts`` has one row (:data:`PROBLEM_SCHEMA`, severity ``warning``)
    per stored day and column where the file holds another value, at the
    file's line for that day; those values were replaced only if ``replaced``.
    """

    file: WearableImport
    table_path: str
    added: int
    updated: int
    unchanged: int
    values_written: dict[str, int]
    conflicts: pl.DataFrame
    replaced: bool
    written: bool

    @property
    def problems(self) -> pl.DataFrame:
        """Rejected records and conflicts together, in line order."""
        return pl.concat([self.file.problems, self.conflicts]).sort("line", nulls_last=False, maintain_order=True)

    def to_text(self, first: int = 5) -> str:
        """The file's summary, then what happened to the registry (counts and line numbers only)."""
        per = ", ".join(f"{m} {n:,}" for m, n in self.values_written.items() if n)
        lines = [self.file.to_text(first),
                 f"{Path(self.table_path).name}: {self.added:,} days added, {self.updated:,} stored days updated, "
                 f"{self.unchanged:,} already stored as in the file"
                 + (f"; values written per measure: {per}" if per else "")
                 + ("" if self.written else " (nothing to write)")]
        if self.conflicts.height:
            what = "replaced by the file's (--replace)" if self.replaced else \
                "kept as stored (--replace to take the file's)"
            lines.append(f"  conflicts: {self.conflicts.height:,} stored values differ from the file; {what}")
            lines += problem_lines(self.conflicts, self.file.location, first)
        return "\n".join(lines)


def _read_table(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A registry file as it is (CSV as text, as the registry reader reads it)."""
    if path.suffix == ".parquet":
        return pl.read_parquet(path, columns=columns)
    return pl.read_csv(path, columns=columns, infer_schema=False, encoding="utf8-lossy")


def _check_patient(files: Mapping[str, Path], patient_id: str, directory: Path) -> None:
    if "patients" not in files:
        raise RegistryReadError(f"{directory} has no patients table")
    try:
        ids = _read_table(files["patients"], ["patient_id"]).get_column("patient_id").cast(pl.String)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise RegistryReadError(f"{files['patients'].name}: cannot read its patient_id column: "
                                f"{type(e).__name__}") from None
    if not ids.eq(patient_id).any():
        raise PatientNotFoundError(f"patient {patient_id!r} is not in {files['patients']}")


def _stored_table(path: Path | None, today: dt.date) -> pl.DataFrame:
    """The stored wearables table in its schema dtypes; StoredTableError if it breaks the contract."""
    if path is None:
        return load_contract().tables[TABLE].empty()
    try:
        raw = _read_table(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise StoredTableError(f"{path} cannot be read: {type(e).__name__}") from None
    result = validate_tables({TABLE: raw}, today=today, source=str(path))
    errors = result.report.errors.filter(pl.col("table") == TABLE)
    if errors.height:
        raise StoredTableError(f"{path} breaks the data contract ({errors.height} error(s)); "
                               f"run `rxpredict validate {path.parent}` for the report; nothing was imported")
    return result.tables[TABLE]


def merge_days(stored: pl.DataFrame, imported: WearableImport, *,
               replace: bool = False) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The stored table with the imported days merged in, and what changed.

    Returns the new table (sorted by patient and date) and a dict with
    ``added``, ``updated``, ``unchanged`` (days), ``values_written`` (per
    measure) and ``conflicts`` (a problems frame).
    """
    measures = measure_columns()
    new = imported.days.drop("patient_id").join(
        imported.lines.rename({m: f"{m}__line" for m in measures}), on="date", how="left")
    mine = stored.filter(pl.col("patient_id") == imported.patient_id)
    joined = (
        mine.with_columns(pl.lit(True).alias(_STORED))
        .join(new.rename({m: f"{m}{_NEW}" for m in measures}).with_columns(pl.lit(True).alias(_NEW)),
              on="date", how="full", coalesce=True)
        .with_columns(pl.col(_STORED, _NEW).fill_null(False), pl.lit(imported.patient_id).alias("patient_id"))
    )
    s, n = ({m: pl.col(m + suffix) for m in measures} for suffix in ("", _NEW))
    differ = {m: s[m].is_not_null() & n[m].is_not_null() & (s[m] != n[m]) for m in measures}
    written = {m: n[m].is_not_null() & (s[m].is_null() | (differ[m] if replace else pl.lit(False))) for m in measures}
    flags = joined.select(
        pl.col(_STORED), pl.col(_NEW),
        pl.any_horizontal(*written.values()).alias("changed"),
        *(written[m].alias(f"written_{m}") for m in measures),
    )
    conflicts = [
        joined.filter(differ[m]).select(
            pl.lit("warning").alias("severity"), pl.col(f"{m}__line").alias("line"), pl.lit(m).alias("column"),
            pl.lit("conflict").alias("rule"),
            pl.lit("a value for this day is already stored and differs").alias("message"))
        for m in measures
    ]
    merged = joined.with_columns(
        (pl.coalesce(n[m], s[m]) if replace else pl.coalesce(s[m], n[m])).alias(m) for m in measures
    ).select(stored.columns)
    table = pl.concat([stored.filter(pl.col("patient_id") != imported.patient_id), merged]).sort("patient_id", "date")
    stored_days, new_days, changed = (flags.get_column(c) for c in (_STORED, _NEW, "changed"))
    return table, {
        "added": int((new_days & ~stored_days).sum()),
        "updated": int((stored_days & changed).sum()),
        "unchanged": int((stored_days & new_days & ~changed).sum()),
        "values_written": {m: int(flags.get_column(f"written_{m}").sum()) for m in measures},
        "conflicts": pl.concat(conflicts).cast(dict(PROBLEM_SCHEMA)).sort("line", maintain_order=True),
    }


def _file_mode(path: Path) -> int:
    """The permissions ``path`` has, or those a new file gets (a temporary file is private to its owner)."""
    if path.exists():
        return stat.S_IMODE(path.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_table_atomically(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` (Parquet or CSV by suffix) through a temporary file and ``os.replace``."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _file_mode(path))
        if path.suffix == ".parquet":
            frame.write_parquet(tmp, statistics=True)
        else:
            frame.write_csv(tmp, date_format="%Y-%m-%d")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def table_lock(directory: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``directory``'s wearables lock, waiting up to ``timeout`` seconds (then TableLockedError).

    An exclusive ``flock`` on ``wearables.lock``, released when the block
    ends or the process dies; the file stays. Without ``fcntl``, no lock.
    """
    if fcntl is None:
        yield
        return
    deadline = time.monotonic() + timeout
    with open(directory / LOCK_FILE, "ab") as f:
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TableLockedError(f"{directory / LOCK_FILE}: another import has held the wearables table "
                                           f"for more than {timeout:g} s; nothing was imported, try again") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def import_wearables(registry_dir: str | Path, patient_id: str, path: str | Path, *, format: str = "auto",
                     mapping: CsvMapping | Mapping[str, Any] | str | Path | None = None, replace: bool = False,
                     today: dt.date | None = None, progress: bool = False,
                     lock_timeout: float = LOCK_TIMEOUT_S) -> RegistryImport:
    """Import one patient's file into ``registry_dir``'s wearables table (created as Parquet if absent).

    The patient and the stored table are checked before the file is read;
    the table is then read again, merged and written under the registry's
    lock (:func:`table_lock`), so imports running at once all keep their days.
    Raises RegistryReadError (no such directory or patients table),
    PatientNotFoundError, StoredTableError (TableLockedError after waiting
    ``lock_timeout`` seconds for another import), MappingError or
    ImportFileError, each before anything is written; records the rules
    reject are in the result, as are conflicts with stored days.
    """
    directory = Path(registry_dir)
    if not directory.is_dir():
        raise RegistryReadError(f"registry directory not found or not a directory: {directory}")
    today = today or dt.date.today()
    files, _ = table_files(directory, load_contract())
    _check_patient(files, patient_id, directory)
    _stored_table(files.get(TABLE), today)
    imported = read_wearables_file(path, patient_id, format=format, mapping=mapping, today=today, progress=progress)
    with table_lock(directory, lock_timeout):
        files, _ = table_files(directory, load_contract())  # another import may have created or changed it
        table, changes = merge_days(_stored_table(files.get(TABLE), today), imported, replace=replace)
        target = files.get(TABLE, directory / f"{TABLE}.parquet")
        written = changes["added"] + changes["updated"] > 0
        if written:
            write_table_atomically(table, target)
    return RegistryImport(file=imported, table_path=str(target), replaced=replace, written=written, **changes)
