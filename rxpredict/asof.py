"""As-of lookups per patient on one integer key: the latest (or next) record of the same patient.

``LazyFrame.join_asof(..., by="patient_id")`` is slow on millions of rows with
string keys (4.7 s to find 2.9 million baseline visits among 13 million
visits); the same lookup on the integer key ``patient number x 100,000 + day``
takes 0.3 s. Both frames need the patient number ``_pid``
(:meth:`rxpredict.registry.Registry.keyed`); a match that crossed into a
neighbouring patient is discarded.
"""
from __future__ import annotations

from typing import Literal

import polars as pl

#: Days since 1970-01-01 stay below this until the year 2243, so keys of two patients never overlap.
DAY_SPAN = 100_000


def patient_day_key(date: str | pl.Expr) -> pl.Expr:
    """One Int64 per (patient, day): ``_pid x 100,000 + days since 1970`` (an unknown patient is -1)."""
    day = pl.col(date) if isinstance(date, str) else date
    return pl.col("_pid").cast(pl.Int64).fill_null(-1) * DAY_SPAN + day.cast(pl.Int64)


def asof_by_patient(left: pl.LazyFrame, right: pl.LazyFrame, *, left_on: str | pl.Expr, right_on: str,
                    strategy: Literal["backward", "forward"] = "backward",
                    tolerance_days: int | None = None) -> pl.LazyFrame:
    """``left`` with the columns of the right row of the same patient nearest before (or after) ``left_on``.

    Both frames carry ``_pid``; ``right`` keeps only the columns to bring
    over plus ``_pid`` and ``right_on``. Rows without a match get nulls.
    """
    r = right.with_columns(patient_day_key(right_on).alias("_k"), pl.col("_pid").alias("_rpid")).drop("_pid").sort("_k")
    brought = [c for c in r.collect_schema().names() if c not in ("_k", "_rpid")]
    return (
        left.with_columns(patient_day_key(left_on).alias("_k"))
        .sort("_k")
        .join_asof(r, on="_k", strategy=strategy, tolerance=tolerance_days, check_sortedness=False)
        .with_columns(pl.when(pl.col("_rpid") == pl.col("_pid")).then(pl.col(c)).alias(c) for c in brought)
        .drop("_k", "_rpid")
    )
