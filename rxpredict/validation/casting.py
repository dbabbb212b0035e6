"""Turn a raw column (CSV text or whatever a Parquet file holds) into its schema type.

Each field yields three things about every cell (see :class:`ColumnParse` for
the stages in which they are computed):
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
    """How to read one field, in stages that the caller materialises in order.

    Polars does not share a repeated string-to-number cast between the
    expressions of one select, so the number and the parsed value are made
    once as helper columns (``number_col``, ``parsed_col``) and the masks read
    those. ``number`` is None for fields that are not numeric.
    """

    number_col: str
    parsed_col: str
    sentinel_col: str
    number: pl.Expr | None
    parsed: pl.Expr
    sentinel: pl.Expr
    typed: pl.Expr
    type_error: pl.Expr


def _parse_text(field: Field, s: pl.Expr) -> pl.Expr:
    stripped = s.str.strip_chars()
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
    """Expressions that read ``field`` from a raw column of ``dtype``.

    Stage 1 ``number`` (if any) becomes ``number_col``; stage 2 ``parsed`` and
    ``sentinel`` become ``parsed_col`` and ``sentinel_col``; stage 3 ``typed``
    and ``type_error`` read those helper columns.
    """
    c = pl.col(field.name)
    number_col, parsed_col, sentinel_col = (f"__{k}_{field.name}" for k in ("num", "val", "sen"))
    numeric = field.type in ("integer", "number") and (dtype == pl.String or dtype.is_numeric())
    number = (_as_float(c.str.strip_chars() if dtype == pl.String else c)) if numeric else None
    if dtype == pl.Null:
        parsed, sentinel = pl.lit(None, dtype=field.dtype), pl.lit(False)
    elif numeric:
        num = pl.col(number_col)
        parsed = _integral(num) if field.type == "integer" else num
        sentinel = c.str.strip_chars().is_in(sentinel_strings) if dtype == pl.String else pl.lit(False)
        bounds = [num < field.minimum] if field.minimum is not None else []
        bounds += [num > field.maximum] if field.maximum is not None else []
        if bounds:
            sentinel = sentinel | (num.is_in(sentinel_numbers) & pl.any_horizontal(bounds))
    elif dtype == pl.String:
        parsed, sentinel = _parse_text(field, c), c.str.strip_chars().is_in(sentinel_strings)
    else:
        parsed, sentinel = _parse_native(field, c, dtype), pl.lit(False)
    is_sentinel = pl.col(sentinel_col)
    value = pl.col(parsed_col)
    return ColumnParse(
        number_col=number_col,
        parsed_col=parsed_col,
        sentinel_col=sentinel_col,
        number=number,
        parsed=parsed.cast(field.dtype, strict=False),
        sentinel=sentinel.fill_null(False),
        typed=pl.when(is_sentinel).then(pl.lit(None, dtype=field.dtype)).otherwise(value),
        type_error=c.is_not_null() & ~is_sentinel & value.is_null(),
    )
