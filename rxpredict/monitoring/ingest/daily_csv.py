"""Daily tables: a CSV from any device or app with a column mapping, or the wearables table's own format.

A generic CSV goes through a :class:`CsvMapping` (its date column and format,
an optional patient column, source column -> wearables column with an
optional unit factor); a file in our own format (CSV or Parquet with the
contract's column names) through the identity mapping. Either way the rows
then meet the same checks as every other import (:func:`checked_days`):
a CSV problem is reported at the file line (the header is line 1), a Parquet
problem at its 1-based row.
"""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import polars as pl

from rxpredict.monitoring.ingest.days import LINE, checked_days
from rxpredict.monitoring.ingest.errors import ImportFileError
from rxpredict.monitoring.ingest.mapping import ColumnMap, CsvMapping, measure_columns
from rxpredict.monitoring.ingest.report import ProblemLog, WearableImport
from rxpredict.schemas import load_contract


def _first_ragged_line(path: Path, delimiter: str) -> int | None:
    """The first line whose number of fields differs from the header's (polars does not say where)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f, delimiter=delimiter)
        width = len(next(reader, []))
        return next((reader.line_num for row in reader if row and len(row) != width), None)


def _read_csv(path: Path, delimiter: str) -> pl.DataFrame:
    """Every column as text, as the registry reader does; a file polars cannot parse raises ImportFileError."""
    try:
        if path.stat().st_size == 0:
            raise ImportFileError(path, "the file is empty (not even a header row)")
        return pl.read_csv(path, separator=delimiter, infer_schema=False, encoding="utf8-lossy")
    except OSError as e:
        raise ImportFileError(path, f"cannot be read: {type(e).__name__}") from None
    except pl.exceptions.PolarsError:
        # polars' message may quote the file's values: say where instead.
        raise ImportFileError(path, "cannot be parsed as CSV (a row with another number of fields than the "
                                    "header, or broken quoting)", _first_ragged_line(path, delimiter)) from None


def _date(raw: pl.DataFrame, mapping: CsvMapping, path: Path) -> pl.Expr:
    column = raw.schema[mapping.date_column]
    c = pl.col(mapping.date_column)
    if column == pl.Date:
        return c
    if column == pl.String:
        return c.str.strip_chars().str.to_date(mapping.date_format, strict=False)
    raise ImportFileError(path, f"column {mapping.date_column!r} holds {column}, not dates or text")


def _measure(m: ColumnMap, integer: bool) -> pl.Expr:
    """The source column, multiplied into the column's unit where the mapping says; text that is no number stays
    as it is, so that the contract's validator reports it."""
    c = pl.col(m.source)
    if m.factor is None:
        return c.alias(m.to)
    number = c.str.strip_chars().cast(pl.Float64, strict=False) * m.factor
    converted = (number + 0.5).floor() if integer else number
    return pl.when(number.is_not_null()).then(converted.cast(pl.String)).otherwise(c).alias(m.to)


def _import(raw: pl.DataFrame, mapping: CsvMapping, path: Path, patient_id: str, *, file_format: str,
            first_line: int, today: dt.date | None) -> WearableImport:
    """Map, check and type the rows of a daily table read as it is."""
    missing = [c for c in mapping.sources if c not in raw.columns]
    if missing:
        raise ImportFileError(path, f"has no column {', '.join(map(repr, missing))}")
    if not mapping.columns:
        raise ImportFileError(path, f"has none of the wearables columns ({', '.join(measure_columns())})")
    table = load_contract().tables["wearables"]
    mapped = {m.to: m for m in mapping.columns}
    frame = raw.select(
        (pl.col(mapping.patient_column).cast(pl.String) if mapping.patient_column
         else pl.lit(patient_id, dtype=pl.String)).alias("patient_id"),
        _date(raw, mapping, path).alias("date"),
        *(_measure(mapped[c], table.field(c).type == "integer") if c in mapped else pl.lit(None).alias(c)
          for c in measure_columns()),
        (pl.int_range(pl.len(), dtype=pl.Int64) + first_line).alias(LINE),
    )
    log = ProblemLog()
    days, lines, empty = checked_days(frame, patient_id, log, today=today or dt.date.today(),
                                      date_format=mapping.date_format)
    ignored = [c for c in raw.columns if c not in mapping.sources]
    return WearableImport(
        path=str(path), format=file_format, patient_id=patient_id, days=days, lines=lines, problems=log.frame(),
        records_read=raw.height, set_aside={"no_value": empty},
        notes=[f"columns not imported: {', '.join(ignored)}"] if ignored else [],
        location="row" if file_format == "parquet" else "line",
    )


def read_daily_csv(path: str | Path, patient_id: str, *, mapping: CsvMapping | None = None,
                   today: dt.date | None = None) -> WearableImport:
    """Read a daily CSV: with ``mapping`` any layout, without it the wearables table's own column names.

    Raises ImportFileError when the file cannot be parsed or lacks a column
    the mapping names; row-level problems are reported in the result.
    """
    path = Path(path)
    raw = _read_csv(path, mapping.delimiter if mapping else ",")
    return _import(raw, mapping or CsvMapping.own_format(raw.columns), path, patient_id, file_format="csv",
                   first_line=2, today=today)


def read_daily_parquet(path: str | Path, patient_id: str, *, today: dt.date | None = None) -> WearableImport:
    """Read a Parquet file in the wearables table's own format (contract column names)."""
    path = Path(path)
    try:
        raw = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as e:
        raise ImportFileError(path, f"cannot be read as Parquet: {type(e).__name__}") from None
    return _import(raw, CsvMapping.own_format(raw.columns), path, patient_id, file_format="parquet",
                   first_line=1, today=today)
