"""The checks every format shares once its records are days: patient, date, duplicates, the data contract.

Readers hand over one row per day (``patient_id``, ``date`` as a date or null
where it could not be read, every measure column in whatever type the file
had) plus ``__line``, the row's line in the file, and optionally
``__line_<column>`` where a column's value came from other lines (Apple
Health days are built from many records). The contract's own validator
(:func:`rxpredict.validation.validate_tables`) then checks types, sentinels
and ranges, so a value this importer accepts is one the registry accepts.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from rxpredict.monitoring.ingest.mapping import ISO_DATE, measure_columns
from rxpredict.monitoring.ingest.report import ProblemLog
from rxpredict.validation import validate_tables

LINE = "__line"
#: Days before this are impossible for a wearable (and the contract's year minimum elsewhere).
EARLIEST_DAY = dt.date(1900, 1, 1)


def line_column(frame: pl.DataFrame, column: str) -> str:
    """The column of ``frame`` holding the line a value of ``column`` came from."""
    own = f"{LINE}_{column}"
    return own if own in frame.columns else LINE


def latest_day(today: dt.date) -> dt.date:
    """The last acceptable day: tomorrow, as a patient east of the importing machine may already be there."""
    return today + dt.timedelta(days=1)


def _reject(frame: pl.DataFrame, broken: pl.Expr, log: ProblemLog, rule: str, message: str,
            column: str | None) -> pl.DataFrame:
    """Log every row where ``broken`` holds and return the others."""
    broken = broken.fill_null(True)
    log.add_lines(frame.filter(broken).get_column(LINE).to_list(), rule, message, column)
    return frame.filter(~broken)


def checked_days(frame: pl.DataFrame, patient_id: str, log: ProblemLog, *, today: dt.date,
                 date_format: str = ISO_DATE) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Check day rows of one patient; returns the typed days, their lines, and how many rows had no value left.

    Rejects (and logs, by line) rows of another patient, unreadable or
    impossible dates and days that appear twice (all of their rows: which
    one is right cannot be told). A value the contract rejects is logged and
    left out; the day keeps its other values. Days with no value left are
    dropped and counted.
    """
    measures = measure_columns()
    frame = _reject(frame, pl.col("patient_id") != patient_id, log, "other_patient",
                    "not the patient being imported (or empty)", "patient_id")
    frame = _reject(frame, pl.col("date").is_null(), log, "bad_date", f"not a date in the format {date_format}", "date")
    frame = _reject(frame, (pl.col("date") < EARLIEST_DAY) | (pl.col("date") > latest_day(today)), log,
                    "date_out_of_range", "before 1900 or in the future", "date")
    frame = _reject(frame, pl.col("date").is_duplicated(), log, "duplicate_day",
                    "the same day is on more than one line; none of them is imported", "date")
    result = validate_tables({"wearables": frame.select("patient_id", "date", *measures)}, today=today,
                             source="wearables import")
    found = result.report.violations.filter(pl.col("table") == "wearables")
    for v in found.iter_rows(named=True):
        where = line_column(frame, v["column"]) if v["column"] in measures else LINE
        log.add(frame.get_column(where)[v["row"] - 1], v["rule"], v["message"], v["column"], v["severity"])
    days = result.tables["wearables"]
    lines = frame.select("date", *(pl.col(line_column(frame, m)).alias(m) for m in measures))
    has_value = days.select(pl.any_horizontal(pl.col(measures).is_not_null())).to_series()
    return days.filter(has_value).sort("date"), lines.filter(has_value).sort("date"), int((~has_value).sum())
