"""From a cohort frame to survival data: one duration and one event flag per treatment episode.

The cohort builder (rxpredict/cohort/outcomes.py) already applied the
censoring rules; this module only turns its columns into what a survival
fitter reads, and refuses rows that break them:

- Drug retention: ``retention_days`` from the start to a stop for inefficacy
  or an adverse event (``retention_event`` names it), or to censoring
  (``"censored"``: a stop for another reason, at its date; an ongoing course,
  at the last visit). For one cause (cause-specific hazard) the other cause
  is censored at its date too. A stop on the start day (0 days) counts as
  half a day, since fitters need positive times.
- Time to rapid radiographic progression: ``rrp_time_days`` from the start to
  the first radiograph showing >= 5 SvdH units a year since the baseline one
  (``rrp_event``), else censored at the last radiograph; only episodes with a
  baseline radiograph and a later one have it.
- Rapid progression in the first year (``rrp``): the cohort's label, present
  where ``rrp_status`` is ``"observed"``.
"""
from __future__ import annotations

import polars as pl

#: Stop reasons the retention models treat as events (competing causes).
CAUSES = ("inefficacy", "adverse_event")
RETENTION_EVENTS = (*CAUSES, "censored")
#: A duration of 0 days (stopped on the start day) enters the fitters as this many days.
MIN_DURATION_DAYS = 0.5
KEY = ["patient_id", "index_date"]


def _require(frame: pl.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs the cohort column(s) {missing}: pass rxpredict.cohort.build_cohort(...).frame")


def _first_bad_row(frame: pl.DataFrame, bad: pl.Expr, column: str, rule: str) -> None:
    """Raise naming the first episode (patient_id, index_date) where ``bad`` holds."""
    offenders = frame.with_row_index("_row").filter(bad)
    if offenders.height:
        row = offenders.row(0, named=True)
        raise ValueError(f"row {row['_row']} (patient {row['patient_id']}, index {row['index_date']}): "
                         f"column {column} {rule} ({offenders.height} such row(s))")


def retention_data(cohort: pl.DataFrame, cause: str | None = None) -> pl.DataFrame:
    """Episodes with a therapy and a retention time: the cohort's rows with ``duration`` (days) and ``event``.

    ``cause`` None: the event is a stop for inefficacy or an adverse event;
    ``"inefficacy"`` or ``"adverse_event"``: that cause only, the other censored.
    """
    if cause is not None and cause not in CAUSES:
        raise ValueError(f"cause must be one of {', '.join(CAUSES)} or None, got {cause!r}")
    _require(cohort, [*KEY, "therapy", "retention_days", "retention_event"], "retention data")
    rows = cohort.filter(pl.col("therapy").is_not_null() & pl.col("retention_days").is_not_null())
    _first_bad_row(rows, pl.col("retention_days") < 0, "retention_days", "is negative: a stop before the start")
    _first_bad_row(rows, ~pl.col("retention_event").is_in(list(RETENTION_EVENTS)) | pl.col("retention_event").is_null(),
                   "retention_event", f"must be one of {', '.join(RETENTION_EVENTS)}")
    event = pl.col("retention_event").is_in(list(CAUSES) if cause is None else [cause])
    return rows.with_columns(pl.col("retention_days").cast(pl.Float64).clip(MIN_DURATION_DAYS).alias("duration"),
                             event.alias("event"))


def progression_time_data(cohort: pl.DataFrame) -> pl.DataFrame:
    """Episodes with a therapy, a baseline radiograph and a later one: rows with ``duration`` and ``event``."""
    _require(cohort, [*KEY, "therapy", "baseline_exam_date", "rrp_time_days", "rrp_event"], "progression data")
    rows = cohort.filter(pl.col("therapy").is_not_null() & pl.col("baseline_exam_date").is_not_null()
                         & pl.col("rrp_time_days").is_not_null())
    _first_bad_row(rows, pl.col("rrp_time_days") < 0, "rrp_time_days",
                   "is negative: a progression radiograph before the start")
    _first_bad_row(rows, pl.col("rrp_event").is_null(), "rrp_event", "is null where rrp_time_days is set")
    return rows.with_columns(pl.col("rrp_time_days").cast(pl.Float64).clip(MIN_DURATION_DAYS).alias("duration"),
                             pl.col("rrp_event").cast(pl.Boolean).alias("event"))


def progression_label_data(cohort: pl.DataFrame) -> pl.DataFrame:
    """Episodes with a therapy whose first-year progression was observed (``rrp_status == "observed"``)."""
    _require(cohort, [*KEY, "therapy", "rrp_status", "rrp"], "progression labels")
    rows = cohort.filter(pl.col("therapy").is_not_null() & (pl.col("rrp_status") == "observed"))
    _first_bad_row(rows, pl.col("rrp").is_null(), "rrp", "is null where rrp_status is 'observed'")
    return rows
