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
             raw: pl.DataFrame) -> list[pl.DataFrame]:
    """Turn mask columns into violation rows, with the raw value of each offending cell."""
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
            values = frame.select(chk.value.cast(pl.String)).to_series().gather(hit)
        elif chk.column in raw.columns:
            values = _as_text(raw.get_column(chk.column).gather(rows - 1))
        else:
            values = pl.Series([None] * rows.len(), dtype=pl.String)
        out.append(pl.DataFrame({
            "severity": chk.severity, "table": table, "row": rows, "column": chk.column,
            "value": values, "rule": chk.rule, "message": chk.message,
        }, schema=VIOLATION_SCHEMA))
    return out


def _null_broken_cells(columns: list[str], checks: list[Check], masks: list[str]) -> list[pl.Expr]:
    """The table's columns with cells that broke a single-value check set to null."""
    out = []
    for col in columns:
        broken = [pl.col(m) for c, m in zip(checks, masks) if c.nulls_cell and c.column == col]
        out.append(pl.when(pl.any_horizontal(broken)).then(None).otherwise(pl.col(col)).alias(col) if broken
                   else pl.col(col))
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
    extras = [c for c in raw.columns if c not in set(table.column_names)]
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
    typed = {n: f.select(pl.exclude(r"^__m\d+$")) for n, f in stage.items()}
    del stage  # the typed frames above are all that is needed from here; free the masks and old columns
    for name in typed:
        lf, checks = table_checks(contract.tables[name], contract, typed, today)
        masks = [f"__v{i}" for i in range(len(checks))]
        checked = lf.with_columns(c.mask.alias(m) for c, m in zip(checks, masks)).collect()
        parts += _extract(checked, masks, checks, name, raw[name])
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
        rows_read={n: f.height for n, f in raw.items() if n in contract.tables},
        contract_version=contract.version,
        source=source,
    )
    return ValidationResult(report=report, tables=tables)
