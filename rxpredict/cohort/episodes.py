"""Treatment episodes, their treatment history as of the index date, and their baseline visit.

An episode is the start of a therapy option: a course of a drug whose option is
not already running (a second overlapping course of the same option continues
the episode; a new course after the previous one stopped is a new episode, e.g.
TNF cycling). Its index date is the course's start date.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from rxpredict.asof import asof_by_patient, patient_day_key
from rxpredict.cohort.rules import CohortRules
from rxpredict.features import years_between
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract

EPISODE_KEY = ["patient_id", "index_date", "therapy"]
_FAR = dt.date(9999, 12, 31)
_GROUP_LIFT = 10**7  # more days than any date has since 1970, so group g's stop days all exceed group g-1's


def courses(registry: Registry) -> pl.LazyFrame:
    """Treatment courses (with ``_pid``) with each drug's therapy option, role and whether it is advanced."""
    vocabulary = load_contract().drug_frame.lazy().rename({"therapy_option": "therapy"})
    return registry.keyed("treatments").join(vocabulary, on="drug", how="left")


def treatment_episodes(registry: Registry) -> pl.LazyFrame:
    """One row per start of a therapy option: patient_id, index_date, therapy, drug and the course's stop.

    A course starts an episode unless a course of the same option started
    before it is still running: a running maximum of stop dates over each
    patient's courses of one option, in start order. (Computed as one
    cumulative maximum over the sorted table, each group lifted above the
    previous by a constant, because a window per group is slow with millions
    of small groups.)
    """
    same_group = (pl.col("_pid") == pl.col("_pid").shift(1)) & (pl.col("therapy") == pl.col("therapy").shift(1))
    lift = pl.col("_group").cast(pl.Int64) * _GROUP_LIFT
    stop_day = pl.col("stop_date").fill_null(_FAR).cast(pl.Int64)
    return (
        courses(registry)
        .filter(pl.col("therapy").is_not_null())
        .sort("_pid", "therapy", "start_date", "drug")
        .with_columns((~same_group.fill_null(False)).cum_sum().alias("_group"), same_group.fill_null(False).alias("_same"))
        .with_columns(((lift + stop_day).cum_max() - lift).alias("_running"))
        .filter(~pl.col("_same") | (pl.col("_running").shift(1) < pl.col("start_date").cast(pl.Int64)))
        .select(
            "patient_id",
            "_pid",
            pl.col("start_date").alias("index_date"),
            "therapy",
            "drug",
            pl.col("stop_date").alias("course_stop_date"),
            pl.col("stop_reason").alias("course_stop_reason"),
        )
        .unique(EPISODE_KEY, keep="first", maintain_order=True)
    )


def history_features(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules) -> pl.LazyFrame:
    """Prior therapies and failures by option, concomitant methotrexate and glucocorticoid, as of the index date.

    A prior course is one started before the index date; a failure is a stop
    for inefficacy dated up to index + 7 days. Stop dates and reasons after
    that are never read (a course stopping later is simply running at index).
    """
    options = load_contract().option_names
    known_until = pl.col("index_date") + pl.duration(days=rules.leakage_after)
    stopped_by_then = pl.col("stop_date").is_not_null() & (pl.col("stop_date") <= known_until)
    prior = pl.col("start_date") < pl.col("index_date")
    failed = prior & stopped_by_then & (pl.col("stop_reason") == "inefficacy")
    # Methotrexate already running (started before the index date), so that an MTX start is not its own
    # concomitant MTX and a patient scored before any MTX looks like the patients trained on.
    running = prior & (pl.col("stop_date").is_null() | (pl.col("stop_date") > pl.col("index_date")))
    gc_running = (pl.col("start_date") <= known_until) & (
        pl.col("stop_date").is_null() | (pl.col("stop_date") >= pl.col("index_date")))
    indicators = {
        **{f"clinical_prior_{o}": prior & (pl.col("therapy") == o) for o in options},
        **{f"clinical_failures_{o}": failed & (pl.col("therapy") == o) for o in options},
        "clinical_n_prior_advanced": prior & pl.col("advanced"),
        "clinical_n_prior_failures": failed,
        "clinical_concomitant_mtx": running & (pl.col("drug") == "methotrexate"),
        "clinical_concomitant_gc": gc_running & (pl.col("role") == "glucocorticoid"),
    }
    keys = episodes.select("_pid", "index_date").unique()
    history = (
        keys.join(courses(registry).drop("patient_id"), on="_pid", how="inner")
        # Each condition becomes a column first and the groups have one integer key, so that grouping
        # millions of episodes only adds up.
        .select(patient_day_key("index_date").alias("_key"), "index_date",
                *(cond.cast(pl.Int64).alias(name) for name, cond in indicators.items()),
                pl.when(failed).then("stop_date").alias("_last_failure"))
        .group_by("_key")
        .agg(pl.col(*indicators).sum(), pl.col("index_date", "_last_failure").max())
        .with_columns(
            years_between(pl.col("index_date"), pl.col("_last_failure")).alias("clinical_years_since_failure"),
            pl.col("clinical_concomitant_mtx", "clinical_concomitant_gc").clip(upper_bound=1),
        )
        .drop("_last_failure")
    )
    return (
        episodes.with_columns(patient_day_key("index_date").alias("_key"))
        .join(history.drop("index_date"), on="_key", how="left")
        .drop("_key")
        .with_columns(pl.col(*indicators).fill_null(0))  # no prior course: every count is 0
    )


def with_baseline_visit(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules) -> pl.LazyFrame:
    """Add ``baseline_visit_date``: the latest visit within [index - 90, index + 7] days, or null."""
    visits = registry.keyed("visits").select("_pid", pl.col("visit_date").alias("baseline_visit_date"))
    return asof_by_patient(
        episodes, visits, left_on=pl.col("index_date") + pl.duration(days=rules.baseline_after),
        right_on="baseline_visit_date", strategy="backward",
        tolerance_days=rules.baseline_before + rules.baseline_after)
