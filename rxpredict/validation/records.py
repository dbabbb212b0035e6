"""Validate a few records (a form's values, one visit being saved) with the same rules as a whole registry.

The app and the database write path use this, so a value the registry
validator would reject can never be stored, and every message names the
table, the row, the column and the rule. Any Python value is accepted as
input: it is checked as the text a registry file would hold, so a wrong type
is a validation problem, never an exception.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from rxpredict.schemas import Contract, load_contract
from rxpredict.validation.validator import validate_tables

Records = Mapping[str, Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class Problem:
    """One reason a record cannot be stored."""

    table: str
    row: int | None  # 1-based position of the record in its table's list; None for a table-level problem
    column: str | None
    rule: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.table} row {self.row}" if self.row is not None else self.table
        return f"{where}, column {self.column or '-'}: {self.message} (rule {self.rule})"


def as_text(value: Any) -> str | None:
    """A Python value as the text a registry file would hold (None and NaN are null)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails is still just a bad value
        return repr(type(value))


def _text_frame(rows: Sequence[Mapping[str, Any]], columns: list[str]) -> pl.DataFrame:
    return pl.DataFrame({c: [as_text(r.get(c)) for r in rows] for c in columns}, schema={c: pl.String for c in columns})


def check_records(records: Records, *, context: Mapping[str, pl.DataFrame] | None = None,
                  contract: Contract | None = None, today: dt.date | None = None) -> list[Problem]:
    """Every problem with ``records`` (table name -> list of dicts) under the data contract.

    ``context`` holds already stored rows the records refer to (the patient a
    visit belongs to), in their schema dtypes; problems are reported for the
    records only. Keys a record lacks count as null; unknown keys are reported.
    """
    contract = contract or load_contract()
    context = context or {}
    raw: dict[str, pl.DataFrame] = {}
    problems: list[Problem] = []
    for table, rows in records.items():
        if table not in contract.tables:
            problems.append(Problem(table, None, None, "unknown_table", f"there is no table {table!r} in the contract"))
            continue
        columns = contract.tables[table].column_names
        for i, row in enumerate(rows, start=1):
            problems += [Problem(table, i, str(k), "unknown_column", f"{table} has no column {k!r}")
                         for k in row if k not in columns]
        raw[table] = _text_frame(rows, columns)
    for table, frame in context.items():
        if table not in raw:
            raw[table] = frame
    for table, schema in contract.tables.items():
        if schema.required and table not in raw:
            raw[table] = schema.empty()
    report = validate_tables(raw, contract=contract, today=today, source="records").report
    checked = set(records)
    for v in report.violations.filter(pl.col("table").is_in(list(checked))).iter_rows(named=True):
        problems.append(Problem(v["table"], v["row"], v["column"], v["rule"], v["message"], v["severity"]))
    return problems


def problems_by_column(problems: Sequence[Problem], table: str, row: int = 1) -> dict[str, list[str]]:
    """Error messages of one record, keyed by column ("" for problems of no column), for showing beside fields."""
    out: dict[str, list[str]] = {}
    for p in problems:
        if p.table == table and p.row in (row, None) and p.severity == "error":
            out.setdefault(p.column or "", []).append(p.message)
    return out
