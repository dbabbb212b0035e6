"""Validate registry tables against the data contract and return typed frames.

Three stages, each reported in full rather than stopping at the first problem:
1. structure: missing tables, missing and unknown columns;
2. reading: every cell parsed to its schema type (sentinels and type errors);
3. values: ranges, enums, keys, foreign keys and the tables' cross-column rules.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from rxpredict.schemas import Contract, TableSchema, load_contract
from rxpredict.validation.casting import parse_column
from rxpredict.validation.checks import ROW, Check, table_checks
from rxpredict.validation.report import VIOLATION_SCHEMA, ValidationReport, violation_frame


@dataclass
class ValidationResult:
    """The report and the tables read to their schema types (bad cells as null)."""

    report: ValidationReport
    tables: dict[str, pl.DataFrame]


def _as_text(values: pl.Series) -> pl.Series:
    try:
        return values.cast(pl.String, strict=False)
    except Exception:  # nested or binary dtypes have no cast to text
        return pl.Series(values.name, [None if v is None else repr(v) for v in values.to_list()], dtype=pl.String)


def _extract(frame: pl.DataFrame, masks: list[str], checks: list[Check], table: str,
             raw: pl.DataFrame | None = None) -> list[pl.DataFrame]:
    """Turn mask columns into violation rows with the offending values.

    Values come from ``raw`` (the cells as read, by row number) when given,
    else from ``frame`` itself (typed values, which read back as the raw text
    for every cell that parsed).
    """
    out = []
    counts = frame.select(pl.col(masks).fill_null(False).sum()).row(0) if masks else ()
    for name, chk, n in zip(masks, checks, counts):
        if n == 0:
            continue
        hit = frame.get_column(name).fill_null(False).arg_true()
        if chk.refine is not None:
            hit = hit.filter(frame[hit].select(chk.refine).to_series())
            if hit.len() == 0:
                continue
        rows = frame.get_column(ROW).gather(hit).cast(pl.Int64)
        if chk.value is not None:
            values = frame[hit].select(chk.value.cast(pl.String)).to_series()
        elif raw is not None and chk.column in raw.columns:
            values = _as_text(raw.get_column(chk.column).gather(rows - 1))
        elif chk.column in frame.columns:
            values = _as_text(frame.get_column(chk.column).gather(hit))
        else:
            values = pl.Series([None] * rows.len(), dtype=pl.String)
        out.append(pl.DataFrame({
            "severity": chk.severity, "table": table, "row": rows, "column": chk.column,
            "value": values, "rule": chk.rule, "message": chk.message,
        }, schema=VIOLATION_SCHEMA))
    return out


def _null_broken_cells(columns: list[str], checks: list[Check], masks: list[str]) -> list[pl.Expr]:
    """The table's columns (the frame's first ones) with cells that broke a single-value check set to null.

    Columns are taken by position: an extra column named "*" would otherwise be a wildcard.
    """
    out = []
    for i, col in enumerate(columns):
        broken = [pl.col(m) for c, m in zip(checks, masks) if c.nulls_cell and c.column == col]
        out.append(pl.when(pl.any_horizontal(broken)).then(None).otherwise(pl.nth(i)).alias(col) if broken
                   else pl.nth(i))
    return out


def _structure(table: TableSchema, raw: pl.DataFrame) -> list[dict[str, Any]]:
    found = []
    for f in table.fields:
        if f.name not in raw.columns:
            found.append({
                "severity": "error" if f.required else "warning", "table": table.name, "column": f.name,
                "rule": "missing_column",
                "message": "required column is missing" if f.required else "optional column absent; read as all null",
            })
    known = set(table.column_names)
    found += [{"severity": "warning", "table": table.name, "column": c, "rule": "extra_column",
               "message": "not in the data contract; kept as is"} for c in raw.columns if c not in known]
    return found


def _read_cells(table: TableSchema, raw: pl.DataFrame, contract: Contract) -> tuple[pl.DataFrame, list[Check]]:
    """Stage 2: typed columns plus required / sentinel / type masks, computed in one pass."""
    strings, numbers = list(contract.sentinel_strings), list(contract.sentinel_numbers)
    numbers_first: list[pl.Expr] = []
    parsed: list[pl.Expr] = []
    exprs: list[pl.Expr] = []
    checks: list[Check] = []
    for f in table.fields:
        if f.name not in raw.columns:
            exprs.append(pl.lit(None, dtype=f.dtype).alias(f.name))
            continue
        p = parse_column(f, raw.schema[f.name], strings, numbers)
        if p.number is not None:
            numbers_first.append(p.number.alias(p.number_col))
        parsed += [p.parsed.alias(p.parsed_col), p.sentinel.alias(p.sentinel_col)]
        exprs.append(p.typed.alias(f.name))
        checks.append(Check("sentinel", f.name, "a missing-data code; leave the cell empty (null) instead",
                            pl.col(p.sentinel_col)))
        expected = f"{f.type} (YYYY-MM-DD)" if f.type == "date" else f.type
        checks.append(Check("type", f.name, f"not a valid {expected}", p.type_error))
        if f.required:
            checks.append(Check("required", f.name, "required value is missing", pl.col(f.name).is_null()))
    masks = [f"__m{i}" for i in range(len(checks))]
    # Extra columns by position: a name like "*" or "^a$" would be a wildcard or regex to polars.
    extras = [pl.nth(i + 1) for i, c in enumerate(raw.columns) if c not in set(table.column_names)]
    frame = (
        raw.lazy()
        .with_row_index(ROW, offset=1)
        .with_columns(numbers_first)
        .with_columns(parsed)
        .select(ROW, *exprs, *extras, *(c.mask.alias(m) for c, m in zip(checks, masks)))
        .collect()
    )
    return frame, checks


def validate_tables(
    raw: Mapping[str, pl.DataFrame],
    *,
    contract: Contract | None = None,
    today: dt.date | None = None,
    source: str | None = None,
    problems: list[dict[str, Any]] | None = None,
    release_raw: bool = False,
) -> ValidationResult:
    """Check raw tables (as read from files or built in memory) against the contract.

    Parameters
    ----------
    raw : mapping of table name to DataFrame
        Tables as read; CSV columns may all be text. Unknown table names are ignored.
    contract : Contract, optional
        Defaults to :func:`rxpredict.schemas.load_contract`.
    today : date, optional
        The date "not in the future" rules compare with; defaults to today.
    source : str, optional
        Shown in the report (the registry directory).
    problems : list of dict, optional
        Table-level problems found while reading files (unreadable, empty ...).
    release_raw : bool
        Remove each table from ``raw`` (a dict) as soon as its cells are read,
        so that a huge registry never holds raw and typed copies of every table
        at once. The caller's dict ends empty.

    Returns
    -------
    ValidationResult
        ``report`` with every violation, ``tables`` with every table of the
        contract in its schema dtypes (absent optional tables are empty).
    """
    contract = contract or load_contract()
    today = today or dt.date.today()
    table_level = list(problems or [])
    parts: list[pl.DataFrame] = []
    stage: dict[str, pl.DataFrame] = {}
    rows_read = {n: f.height for n, f in raw.items() if n in contract.tables}
    for name, schema in contract.tables.items():
        frame = raw.get(name)
        if frame is None:
            if schema.required and not any(p["table"] == name for p in table_level):
                table_level.append({"severity": "error", "table": name, "rule": "missing_table",
                                    "message": "required table is missing"})
            continue
        table_level += _structure(schema, frame)
        stage[name], checks = _read_cells(schema, frame, contract)
        masks = [f"__m{i}" for i in range(len(checks))]
        parts += _extract(stage[name], masks, checks, name, frame)
        stage[name] = stage[name].drop(masks)
        if release_raw:
            del raw[name], frame
    typed = stage
    for name in typed:
        lf, checks = table_checks(contract.tables[name], contract, typed, today)
        masks = [f"__v{i}" for i in range(len(checks))]
        checked = lf.with_columns(c.mask.alias(m) for c, m in zip(checks, masks)).collect()
        parts += _extract(checked, masks, checks, name)
        typed[name] = checked.select(_null_broken_cells(typed[name].columns, checks, masks))
    order = {n: i for i, n in enumerate(contract.tables)}
    violations = (
        pl.concat([violation_frame(table_level), *parts], how="vertical")
        .sort(pl.col("table").replace_strict(order, default=len(order), return_dtype=pl.Int64),
              "row", nulls_last=False, maintain_order=True)
    )
    tables = {n: typed[n].drop(ROW) if n in typed else s.empty() for n, s in contract.tables.items()}
    report = ValidationReport(
        violations=violations,
        rows_read=rows_read,
        contract_version=contract.version,
        source=source,
    )
    return ValidationResult(report=report, tables=tables)
