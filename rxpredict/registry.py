"""Read and write registry directories: one Parquet or CSV file per table.

>>> from rxpredict.registry import read_registry
>>> reg = read_registry("rxpredict/data/example_registry")   # raises if the registry is invalid
>>> reg["visits"].height, reg.report.ok
(12, True)
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from rxpredict.exceptions import RegistryReadError, RegistryValidationError
from rxpredict.schemas import Contract, load_contract
from rxpredict.validation import ValidationReport, ValidationResult, validate_tables

FORMATS = ("parquet", "csv")


@dataclass
class Registry:
    """Validated registry tables in their schema dtypes.

    Every table of the contract is present: an optional table the registry
    lacks is an empty frame (``has`` tells which were supplied).
    """

    tables: dict[str, pl.DataFrame]
    report: ValidationReport
    contract_version: str
    _keyed: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def __getitem__(self, name: str) -> pl.DataFrame:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"no table {name!r}; tables: {sorted(self.tables)}") from None

    def lazy(self, name: str) -> pl.LazyFrame:
        return self[name].lazy()

    @classmethod
    def from_tables(cls, tables: Mapping[str, pl.DataFrame], *, strict: bool = True, contract: Contract | None = None,
                    today: dt.date | None = None) -> "Registry":
        """Validate tables held in memory (e.g. a simulation's frames) into a Registry; unknown names are ignored."""
        contract = contract or load_contract()
        result = validate_tables({n: f for n, f in tables.items() if n in contract.tables}, contract=contract,
                                 today=today, source="tables in memory")
        return cls.from_validation(result, strict=strict)

    @classmethod
    def from_validation(cls, result: ValidationResult, *, strict: bool = True) -> "Registry":
        """The registry of a validation, or RegistryValidationError (carrying the report) when strict and invalid."""
        if strict and not result.report.ok:
            raise RegistryValidationError(result.report)
        return cls(tables=result.tables, report=result.report, contract_version=result.report.contract_version)

    def keyed(self, name: str) -> pl.LazyFrame:
        """A table with ``_pid``, the patient's row number in ``patients`` (UInt32; null if unknown).

        Integer patient keys make joins and as-of lookups over millions of rows
        far cheaper than the ``patient_id`` strings (see :mod:`rxpredict.asof`);
        computed once per table and kept.
        """
        if name not in self._keyed:
            patients = self["patients"].with_row_index("_pid")
            self._keyed[name] = patients if name == "patients" else self[name].join(
                patients.select("patient_id", "_pid"), on="patient_id", how="left", maintain_order="left")
        return self._keyed[name].lazy()

    def has(self, name: str) -> bool:
        """Whether the registry supplied this table (with at least one row)."""
        return self[name].height > 0


def table_files(directory: Path, contract: Contract) -> tuple[dict[str, Path], list[dict[str, Any]]]:
    """The file holding each table, and problems such as a table in both formats."""
    found: dict[str, Path] = {}
    problems: list[dict[str, Any]] = []
    for name in contract.tables:
        candidates = [directory / f"{name}.{fmt}" for fmt in FORMATS if (directory / f"{name}.{fmt}").is_file()]
        if len(candidates) > 1:
            problems.append({"severity": "warning", "table": name, "rule": "ambiguous_file",
                             "message": f"both {name}.parquet and {name}.csv exist; read the Parquet file"})
        if candidates:
            found[name] = candidates[0]
    return found, problems


def _read_file(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    # Every column as text, so that the validator sees exactly what the file holds.
    # An unquoted empty field is a null; a quoted "" stays "" and is reported as a sentinel.
    return pl.read_csv(path, infer_schema=False, encoding="utf8-lossy", truncate_ragged_lines=False)


def read_raw_tables(directory: str | Path,
                    contract: Contract | None = None) -> tuple[dict[str, pl.DataFrame], list[dict[str, Any]]]:
    """Read each table file as it is (CSV as text) plus the problems of files that cannot be read.

    Raises RegistryReadError when the directory itself cannot be read.
    """
    contract = contract or load_contract()
    directory = Path(directory)
    if not directory.is_dir():
        raise RegistryReadError(f"registry directory not found or not a directory: {directory}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise RegistryReadError(f"registry directory cannot be read: {directory}")
    files, problems = table_files(directory, contract)
    raw: dict[str, pl.DataFrame] = {}
    for name, path in files.items():
        if path.stat().st_size == 0:
            problems.append({"severity": "error", "table": name, "rule": "empty_file",
                             "message": f"{path.name} is empty (not even a header row)"})
            continue
        try:
            raw[name] = _read_file(path)
        except Exception as e:  # noqa: BLE001 - any reader failure is a finding, not a crash
            problems.append({"severity": "error", "table": name, "rule": "unreadable",
                             "message": f"{path.name} cannot be read: {type(e).__name__}: {str(e).splitlines()[0][:200]}"})
    return raw, problems


def validate_registry(directory: str | Path, *, contract: Contract | None = None,
                      today: dt.date | None = None) -> ValidationResult:
    """Read and validate a registry directory; never raises for bad content, only for an unreadable directory."""
    contract = contract or load_contract()
    raw, problems = read_raw_tables(directory, contract)
    return validate_tables(raw, contract=contract, today=today, source=str(directory), problems=problems,
                           release_raw=True)


def read_registry(directory: str | Path, *, strict: bool = True, contract: Contract | None = None,
                  today: dt.date | None = None) -> Registry:
    """Read a registry directory into validated, typed polars frames.

    With ``strict`` (the default) a registry with any error raises
    RegistryValidationError, whose ``report`` lists every violation; without it
    the bad cells are read as null and the report travels with the registry.
    """
    return Registry.from_validation(validate_registry(directory, contract=contract, today=today), strict=strict)


def write_registry(tables: Registry | Mapping[str, pl.DataFrame], directory: str | Path, *,
                   format: Literal["parquet", "csv"] = "parquet", contract: Contract | None = None,
                   today: dt.date | None = None) -> Path:
    """Validate tables and write them, one file per table, all or nothing.

    Files are written to a temporary directory beside the target and moved in
    only when every table has been written, so a failure leaves what was in
    ``directory`` as it was. Invalid tables raise RegistryValidationError and
    write nothing.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    contract = contract or load_contract()
    given = tables.tables if isinstance(tables, Registry) else dict(tables)
    supplied = {n: f for n, f in given.items() if n in contract.tables
                and (contract.tables[n].required or f.height > 0)}
    result = validate_tables(supplied, contract=contract, today=today, source="tables to write")
    if not result.report.ok:
        raise RegistryValidationError(result.report)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".rxpredict-write-", dir=target))
    try:
        written = []
        for name in supplied:
            frame = result.tables[name]
            path = staging / f"{name}.{format}"
            if format == "parquet":
                frame.write_parquet(path, statistics=True)
            else:
                frame.write_csv(path, date_format="%Y-%m-%d")
            written.append(path)
        for path in written:
            for fmt in FORMATS:  # a stale file of the other format would shadow or confuse the new one
                other = target / f"{path.stem}.{fmt}"
                if fmt != format and other.exists():
                    other.unlink()
            os.replace(path, target / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
