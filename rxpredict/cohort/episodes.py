"""Treatment episodes, their treatment history as of the index date, and their baseline visit.

An episode is the start of a therapy option: a course of a drug whose option is
not already running (a second overlapping course of the same option continues
the episode; a new course after the previous one stopped is a new episode, e.g.
TNF cycling). Its index date is the course's start date.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from rxpredict.cohort.rules import CohortRules
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract

EPISODE_KEY = ["patient_id", "index_date", "therapy"]
_FAR = dt.date(9999, 12, 31)


def courses(registry: Registry) -> pl.LazyFrame:
    """Treatment courses with each drug's therapy option, role and whether it is an advanced therapy."""
    vocabulary = load_contract().drug_frame.lazy().rename({"therapy_option": "therapy"})
    return registry.lazy("treatments").join(vocabulary, on="drug", how="left")


def treatment_episodes(registry: Registry) -> pl.LazyFrame:
    """One row per start of a therapy option: patient_id, index_date, therapy, drug and the course's stop."""
    running_until = pl.col("stop_date").fill_null(_FAR).cum_max().shift(1).over("patient_id", "therapy",
                                                                                 order_by=["start_date", "drug"])
    return (
        courses(registry)
        .filter(pl.col("therapy").is_not_null())
        .with_columns(running_until.alias("_running_until"))
        .filter(pl.col("_running_until").is_null() | (pl.col("_running_until") < pl.col("start_date")))
        .select(
            "patient_id",
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
    keys = episodes.select("patient_id", "index_date").unique()
    history = (
        keys.join(courses(registry), on="patient_id", how="inner")
        .group_by("patient_id", "index_date")
        .agg(
            *[(prior & (pl.col("therapy") == o)).sum().alias(f"clinical_prior_{o}") for o in options],
            *[(failed & (pl.col("therapy") == o)).sum().alias(f"clinical_failures_{o}") for o in options],
            (prior & pl.col("advanced")).sum().alias("clinical_n_prior_advanced"),
            failed.sum().alias("clinical_n_prior_failures"),
            pl.col("stop_date").filter(failed).max().alias("_last_failure"),
            (running & (pl.col("drug") == "methotrexate")).any().alias("clinical_concomitant_mtx"),
            (gc_running & (pl.col("role") == "glucocorticoid")).any().alias("clinical_concomitant_gc"),
        )
        .with_columns(
            ((pl.col("index_date") - pl.col("_last_failure")).dt.total_days() / 365.25)
            .alias("clinical_years_since_failure")
        )
        .drop("_last_failure")
    )
    counts = [f"clinical_prior_{o}" for o in options] + [f"clinical_failures_{o}" for o in options] + [
        "clinical_n_prior_advanced", "clinical_n_prior_failures"]
    return (
        episodes.join(history, on=["patient_id", "index_date"], how="left")
        .with_columns(
            pl.col(counts).fill_null(0).cast(pl.Int64),
            pl.col("clinical_concomitant_mtx", "clinical_concomitant_gc").fill_null(False).cast(pl.Int64),
        )
    )


def with_baseline_visit(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules) -> pl.LazyFrame:
    """Add ``baseline_visit_date``: the latest visit within [index - 90, index + 7] days, or null."""
    visits = (
        registry.lazy("visits")
        .select("patient_id", pl.col("visit_date").alias("baseline_visit_date"))
        .with_columns(pl.col("baseline_visit_date").alias("_on"))
        .sort("_on")
    )
    latest_allowed = pl.col("index_date") + pl.duration(days=rules.baseline_after)
    return (
        episodes.with_columns(latest_allowed.alias("_on"))
        .sort("_on")
        .join_asof(visits, on="_on", by="patient_id", strategy="backward",
                   check_sortedness=False, tolerance=dt.timedelta(days=rules.baseline_before + rules.baseline_after))
        .drop("_on")
    )
