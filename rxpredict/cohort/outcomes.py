"""Outcomes of each treatment episode, with a status that says why a label is missing.

- 24-week response (data contract): EULAR response on DAS28-CRP (DAS28-ESR where
  CRP is missing at either visit) between the baseline visit and the visit
  nearest index + 24 weeks within +/- 6 weeks while the course ran (before its
  stop date). A course stopped for inefficacy with no such visit (stopped
  before or early in the window) is a non-response; stopped for another reason
  first, or no visit in the window, the label is missing (censored).
- Rapid radiographic progression: SvdH total gained per year between the
  baseline radiograph and the next one, when that comes 6-24 months later;
  >= 5 units a year is rapid. Time to it: the first later radiograph at which
  the gain since baseline reaches that rate (else censored at the last one).
- Drug retention: days from the start to a stop for inefficacy or an adverse
  event (competing reasons kept apart); other stops are censored at their
  date, ongoing courses at the patient's last visit.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from rxpredict.clinical import das28_crp, das28_esr, eular_response
from rxpredict.asof import asof_by_patient, patient_day_key
from rxpredict.cohort.episodes import EPISODE_KEY
from rxpredict.cohort.rules import CohortRules
from rxpredict.features import exam_totals, years_between
from rxpredict.registry import Registry

STATUS_OBSERVED = "observed"


def _visit_das28(registry: Registry) -> pl.LazyFrame:
    return registry.keyed("visits").select(
        "_pid", "visit_date", das28_crp(), das28_esr(), pl.col("crp_mg_l").is_not_null().alias("has_crp"))


def _followup_visit(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules) -> pl.LazyFrame:
    """The visit nearest index + 24 weeks within the tolerance, while the course ran (before its stop date).

    A tie goes to the earlier visit. Returns the episode keys with ``followup_visit_date``.
    """
    target = pl.col("index_date") + pl.duration(days=rules.followup_day)
    tol = dt.timedelta(days=rules.followup_tolerance)
    stop = pl.col("course_stop_date").fill_null(dt.date(9999, 12, 31))
    keys = episodes.select(*EPISODE_KEY, "_pid", target.alias("_target"), stop.alias("_stop")).unique()
    visits = lambda name: registry.keyed("visits").select("_pid", pl.col("visit_date").alias(name))  # noqa: E731
    latest_before = pl.min_horizontal("_target", pl.col("_stop") - pl.duration(days=1))
    gap = lambda c: (pl.col(c) - pl.col("_target")).dt.total_days().abs()  # noqa: E731
    return (
        asof_by_patient(keys, visits("_before"), left_on=latest_before, right_on="_before", strategy="backward")
        .pipe(asof_by_patient, visits("_after"), left_on="_target", right_on="_after", strategy="forward",
              tolerance_days=rules.followup_tolerance)
        .select(
            *EPISODE_KEY,
            pl.when(pl.col("_before") >= pl.col("_target") - tol).then("_before").alias("_before"),
            pl.when(pl.col("_after") < pl.col("_stop")).then("_after").alias("_after"),
            "_target",
        )
        .select(
            *EPISODE_KEY,
            pl.when(pl.col("_before").is_null() | (gap("_after") < gap("_before")))
            .then("_after").otherwise("_before").alias("followup_visit_date"),
        )
    )


def response_outcomes(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules) -> pl.LazyFrame:
    """24-week EULAR response, good response, DAS28 remission and change, with ``response_status``."""
    das = _visit_das28(registry)
    followup = _followup_visit(episodes, registry, rules)
    baseline = das.rename({"visit_date": "baseline_visit_date", "das28_crp": "_b_crp", "das28_esr": "_b_esr",
                           "has_crp": "_b_has_crp"})
    after = das.rename({"visit_date": "followup_visit_date", "das28_crp": "_f_crp", "das28_esr": "_f_esr",
                        "has_crp": "_f_has_crp"})
    window_end = pl.col("index_date") + pl.duration(days=rules.followup_day + rules.followup_tolerance)
    stopped = pl.col("course_stop_date").is_not_null()
    stop_first = stopped & (pl.col("course_stop_date") < pl.col("followup_visit_date").fill_null(window_end))
    inefficacy_first = stop_first & (pl.col("course_stop_reason") == "inefficacy")
    on_crp = pl.col("_b_has_crp") & pl.col("_f_has_crp")
    b = pl.when(on_crp).then("_b_crp").otherwise("_b_esr")
    f = pl.when(on_crp).then("_f_crp").otherwise("_f_esr")
    status = (
        pl.when(pl.col("therapy").is_null()).then(pl.lit("not_a_treatment_start"))
        .when(inefficacy_first).then(pl.lit("stopped_for_inefficacy"))
        .when(pl.col("baseline_visit_date").is_null()).then(pl.lit("no_baseline_visit"))
        .when(stop_first).then(pl.lit("stopped_before_followup"))
        .when(pl.col("followup_visit_date").is_null()).then(pl.lit("no_followup_visit"))
        .when(pl.col("_b").is_null() | pl.col("_f").is_null()).then(pl.lit("no_das28"))
        .otherwise(pl.lit(STATUS_OBSERVED))
    )
    observed = pl.col("response_status") == STATUS_OBSERVED
    non_response = pl.col("response_status") == "stopped_for_inefficacy"
    eular = eular_response("_b", "_f").cast(pl.String)
    return (
        episodes.join(followup, on=EPISODE_KEY, how="left", nulls_equal=True)
        .join(baseline, on=["_pid", "baseline_visit_date"], how="left")
        .join(after, on=["_pid", "followup_visit_date"], how="left")
        .with_columns(b.alias("_b"), f.alias("_f"), pl.when(on_crp).then(pl.lit("crp")).otherwise(pl.lit("esr"))
                      .alias("_version"))
        .with_columns(status.alias("response_status"))
        .with_columns(
            pl.when(observed).then(eular).when(non_response).then(pl.lit("none")).alias("eular_response"),
            pl.when(observed).then(eular != "none").when(non_response).then(False).alias("response"),
            pl.when(observed).then(eular == "good").when(non_response).then(False).alias("good_response"),
            pl.when(observed).then(pl.col("_f") < 2.6).when(non_response).then(False).alias("remission"),
            pl.when(observed).then(pl.col("_f") - pl.col("_b")).alias("das28_change"),
            pl.when(observed).then(pl.col("_version")).alias("das28_version"),
            pl.when(observed).then(pl.col("followup_visit_date")).alias("followup_visit_date"),
        )
        .drop("_b", "_f", "_version", "_b_crp", "_b_esr", "_b_has_crp", "_f_crp", "_f_esr", "_f_has_crp")
    )


def progression_outcomes(episodes: pl.LazyFrame, registry: Registry, rules: CohortRules,
                         exams: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Rapid radiographic progression between the baseline radiograph and the next, and time to it.

    ``exams`` (from :func:`exam_totals`) may be given to share the totals with the imaging features.
    """
    exams = (exam_totals(registry) if exams is None else exams).select("_pid", "exam_date", "svdh_total", "complete")
    keys = episodes.select("_pid", "index_date").unique()
    as_ = lambda date, total, complete: exams.select(  # noqa: E731
        "_pid", pl.col("exam_date").alias(date), pl.col("svdh_total").alias(total), pl.col("complete").alias(complete))
    found = (
        asof_by_patient(keys, as_("baseline_exam_date", "_base_total", "_base_complete"), left_on="index_date",
                        right_on="baseline_exam_date", strategy="backward", tolerance_days=rules.exam_before)
        .pipe(asof_by_patient, as_("progression_exam_date", "_next_total", "_next_complete"),
              left_on=pl.col("baseline_exam_date").fill_null(pl.col("index_date")) + pl.duration(days=1),
              right_on="progression_exam_date", strategy="forward")
        .with_columns(pl.when(pl.col("baseline_exam_date").is_not_null()).then(c).alias(c)
                      for c in ("progression_exam_date", "_next_total", "_next_complete"))
    )
    years = lambda date: years_between(pl.col(date), pl.col("baseline_exam_date"))  # noqa: E731
    later = (
        found.filter(pl.col("baseline_exam_date").is_not_null())
        .select("_pid", "index_date", "baseline_exam_date", "_base_total")
        .join(exams, on="_pid")
        .filter(pl.col("exam_date") > pl.col("baseline_exam_date"))
        .select(
            patient_day_key("index_date").alias("_key"),
            pl.when((pl.col("svdh_total") - pl.col("_base_total")) / years("exam_date") >= rules.rrp_units_per_year)
            .then("exam_date").alias("_first_rapid"),
            pl.col("exam_date").alias("_last_exam"),
        )
        .group_by("_key")
        .agg(pl.col("_first_rapid").min(), pl.col("_last_exam").max())
    )
    gap = (pl.col("progression_exam_date") - pl.col("baseline_exam_date")).dt.total_days()
    status = (
        pl.when(pl.col("baseline_exam_date").is_null()).then(pl.lit("no_baseline_exam"))
        .when(pl.col("progression_exam_date").is_null()).then(pl.lit("no_next_exam"))
        .when(gap < rules.progression_min).then(pl.lit("next_exam_too_early"))
        .when(gap > rules.progression_max).then(pl.lit("next_exam_too_late"))
        .when(~pl.col("_base_complete") | ~pl.col("_next_complete")).then(pl.lit("incomplete_exam"))
        .otherwise(pl.lit(STATUS_OBSERVED))
    )
    rate = (pl.col("_next_total") - pl.col("_base_total")) / years("progression_exam_date")
    observed = pl.col("rrp_status") == STATUS_OBSERVED
    per_episode = (
        found.with_columns(patient_day_key("index_date").alias("_key"))
        .join(later, on="_key", how="left")
        .with_columns(status.alias("rrp_status"))
        .with_columns(
            pl.when(observed).then(rate >= rules.rrp_units_per_year).alias("rrp"),
            pl.when(observed).then(rate).alias("svdh_progression_per_year"),
            (pl.col("_first_rapid").fill_null(pl.col("_last_exam")) - pl.col("index_date")).dt.total_days()
            .alias("rrp_time_days"),
            pl.col("_first_rapid").is_not_null().alias("rrp_event"),
        )
        .drop("_key", "_base_total", "_base_complete", "_next_total", "_next_complete", "_first_rapid", "_last_exam")
    )
    return episodes.join(per_episode, on=["_pid", "index_date"], how="left")


def retention_outcomes(episodes: pl.LazyFrame, registry: Registry) -> pl.LazyFrame:
    """Days on the drug until a stop for inefficacy or an adverse event, and which it was (or censored)."""
    last_visit = registry.lazy("visits").group_by("patient_id").agg(pl.col("visit_date").max().alias("_last_visit"))
    event = pl.col("course_stop_reason").is_in(["inefficacy", "adverse_event"]) & pl.col("course_stop_date").is_not_null()
    end = pl.coalesce("course_stop_date", pl.max_horizontal("_last_visit", "index_date"))
    return (
        episodes.join(last_visit, on="patient_id", how="left")
        .with_columns(
            pl.when(pl.col("therapy").is_not_null()).then((end - pl.col("index_date")).dt.total_days())
            .alias("retention_days"),
            pl.when(pl.col("therapy").is_null()).then(None).when(event).then(pl.col("course_stop_reason"))
            .otherwise(pl.lit("censored")).alias("retention_event"),
        )
        .drop("_last_visit")
    )
