"""Turn a raw column (CSV text or whatever a Parquet file holds) into its schema type.

Each field gets three expressions over the raw frame:
- ``sentinel``: the value is a missing-data code (``"NA"``, ``""``, ``-1`` where
  out of range ...), which the contract forbids: a missing value is a null;
- ``type_error``: the value is present, not a sentinel, and cannot be read as the
  field's type;
- ``typed``: the parsed value, null where either of the above holds.
A bad cell is reported once, by the first of these that applies.
"""
from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from rxpredict.schemas import Field

def _as_float(expr: pl.Expr) -> pl.Expr:
    """Finite float or null (inf and NaN are not numbers a registry can hold)."""
    f = expr.cast(pl.Float64, strict=False)
    return pl.when(f.is_finite()).then(f)


def _integral(f: pl.Expr) -> pl.Expr:
    """A float that is a whole number within the exact range of float64, as Int64; else null."""
    return pl.when((f == f.round(0)) & (f.abs() < 2.0**53)).then(f.cast(pl.Int64, strict=False))


@dataclass(frozen=True)
class ColumnParse:
    """The three expressions for one field; see the module docstring."""

    typed: pl.Expr
    sentinel: pl.Expr
    type_error: pl.Expr


def _parse_text(field: Field, s: pl.Expr) -> pl.Expr:
    stripped = s.str.strip_chars()
    if field.type == "integer":
        return _integral(_as_float(stripped))
    if field.type == "number":
        return _as_float(stripped)
    if field.type == "boolean":
        return pl.when(s.is_in(list(field.true_values))).then(True).when(s.is_in(list(field.false_values))).then(False)
    if field.type == "date":
        return stripped.str.to_date("%Y-%m-%d", strict=False)
    return s


def _parse_native(field: Field, c: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Parse a column that a Parquet file (or a caller's frame) already typed."""
    target = field.type
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        return pl.lit(None, dtype=field.dtype)  # no reading of lists, structs or bytes as a value
    if target == "string":
        return c.cast(pl.String, strict=False)
    if dtype.is_numeric() and target in ("integer", "number"):
        f = _as_float(c)
        return _integral(f) if target == "integer" else f
    if dtype.is_integer() and target == "boolean":
        return pl.when(c == 1).then(True).when(c == 0).then(False)
    if dtype == pl.Boolean and target == "boolean":
        return c
    if target == "date" and dtype == pl.Date:
        return c
    if target == "date" and isinstance(dtype, pl.Datetime):
        return c.dt.date()
    return pl.lit(None, dtype=field.dtype)


def parse_column(field: Field, dtype: pl.DataType, sentinel_strings: list[str],
                 sentinel_numbers: list[float]) -> ColumnParse:
    """Expressions that read ``field`` from a raw column of ``dtype``."""
    c = pl.col(field.name)
    if dtype == pl.Null:
        null = pl.lit(None, dtype=field.dtype)
        return ColumnParse(null, pl.lit(False), pl.lit(False))
    if dtype == pl.String:
        parsed = _parse_text(field, c)
        sentinel = c.str.strip_chars().is_in(sentinel_strings)
        number = _as_float(c.str.strip_chars()) if field.type in ("integer", "number") else None
    else:
        parsed = _parse_native(field, c, dtype)
        sentinel = pl.lit(False)
        number = _as_float(c) if dtype.is_numeric() and field.type in ("integer", "number") else None
    if number is not None and (field.minimum is not None or field.maximum is not None):
        outside = pl.lit(False)
        if field.minimum is not None:
            outside = outside | (number < field.minimum)
        if field.maximum is not None:
            outside = outside | (number > field.maximum)
        sentinel = sentinel | (number.is_in(sentinel_numbers) & outside)
    sentinel = sentinel.fill_null(False)
    typed = pl.when(sentinel).then(pl.lit(None, dtype=field.dtype)).otherwise(parsed.cast(field.dtype, strict=False))
    type_error = c.is_not_null() & ~sentinel & parsed.is_null()
    return ColumnParse(typed, sentinel, type_error)
