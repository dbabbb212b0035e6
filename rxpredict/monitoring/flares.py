"""Flares as a registry records them, and the 28-day flare label of each patient-day.

A flare (clinical-reference.md, "Flare") is either
- a **DAS28 flare** at a visit: DAS28 higher than at the patient's previous
  visit by more than 1.2, or by more than 0.6 where the previous DAS28 was
  >= 3.2 (DAS28-CRP when both visits have CRP, else DAS28-ESR, as for the
  24-week response); or
- a **treatment escalation for worsening**: a glucocorticoid course started
  with no DMARD started within 14 days of it (a glucocorticoid started with a
  DMARD is bridging, not a reaction to a flare).

The label of patient-day t is 1 when a flare falls in (t, t + 28 days]; it is
null (censored) where the patient's follow-up ends before t + 28, because a
flare there could not have been seen.
"""
from __future__ import annotations

import datetime as dt

import polars as pl

from rxpredict.clinical import das28_crp, das28_esr
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract

HORIZON_DAYS = 28
DAS28_RISE = 1.2
DAS28_RISE_ACTIVE = 0.6
ACTIVE_FROM = 3.2
BRIDGING_DAYS = 14


def das28_flare(rise: pl.Expr, previous: pl.Expr) -> pl.Expr:
    """Whether a DAS28 rise from ``previous`` is a flare (OMERACT, van der Maas 2013)."""
    return (rise > DAS28_RISE) | ((previous >= ACTIVE_FROM) & (rise > DAS28_RISE_ACTIVE))


def visit_flares(visits: pl.LazyFrame) -> pl.LazyFrame:
    """patient_id, date, das28, das28_rise for every visit whose DAS28 rose to a flare since the previous visit."""
    on_crp = pl.col("crp_mg_l").is_not_null() & pl.col("crp_mg_l").shift(1).over("patient_id").is_not_null()
    now = pl.when(on_crp).then(pl.col("das28_crp")).otherwise(pl.col("das28_esr"))
    before = pl.when(on_crp).then(pl.col("das28_crp").shift(1)).otherwise(pl.col("das28_esr").shift(1)).over("patient_id")
    return (
        visits.sort("patient_id", "visit_date")
        .with_columns(das28_crp(), das28_esr())
        .with_columns(now.alias("das28"), before.alias("_previous"))
        .with_columns((pl.col("das28") - pl.col("_previous")).alias("das28_rise"))
        .filter(das28_flare(pl.col("das28_rise"), pl.col("_previous")))
        .select("patient_id", pl.col("visit_date").alias("date"), "das28", "das28_rise")
    )


def escalations(treatments: pl.LazyFrame, drugs: pl.DataFrame) -> pl.LazyFrame:
    """patient_id, date of glucocorticoid courses started with no DMARD start within 14 days."""
    kind = treatments.join(drugs.lazy().select("drug", pl.col("therapy_option").is_null().alias("_gc")), on="drug",
                           how="left")
    gc = kind.filter(pl.col("_gc")).select("patient_id", pl.col("start_date").alias("date")).unique()
    dmard = kind.filter(~pl.col("_gc")).select("patient_id", pl.col("start_date").alias("_dmard")).unique()
    apart = dt.timedelta(days=BRIDGING_DAYS)
    bridging = (
        gc.join(dmard, on="patient_id")
        .filter((pl.col("_dmard") - pl.col("date")).abs() <= apart)
        .select("patient_id", "date")
    )
    return gc.join(bridging, on=["patient_id", "date"], how="anti")


def flare_events(registry: Registry) -> pl.DataFrame:
    """patient_id, date, kind (``das28`` or ``escalation``) of every flare the registry records, by date."""
    drugs = load_contract().drug_frame
    return pl.concat([
        visit_flares(registry.lazy("visits")).select("patient_id", "date", pl.lit("das28").alias("kind")),
        escalations(registry.lazy("treatments"), drugs).select("patient_id", "date", pl.lit("escalation").alias("kind")),
    ]).sort("patient_id", "date", "kind").collect()


def followup_end(registry: Registry) -> pl.LazyFrame:
    """patient_id, followup_end: the last date anything was recorded for the patient."""
    dates = [
        registry.lazy("visits").select("patient_id", pl.col("visit_date").alias("d")),
        registry.lazy("treatments").select("patient_id", pl.max_horizontal("start_date", "stop_date").alias("d")),
        registry.lazy("wearables").select("patient_id", pl.col("date").alias("d")),
    ]
    return pl.concat(dates).group_by("patient_id").agg(pl.col("d").max().alias("followup_end"))


def flare_labels(days: pl.LazyFrame | pl.DataFrame, registry: Registry, *,
                 horizon_days: int = HORIZON_DAYS) -> pl.DataFrame:
    """``days`` (patient_id, date) with ``next_flare`` and ``flare`` (bool; null when follow-up is too short).

    ``flare`` is True when the next flare after ``date`` comes within
    ``horizon_days``, else False, where the patient was followed for the whole
    horizon; null otherwise, even when a flare was seen in the shorter span
    (keeping those would leave only the positive days of the last weeks).
    """
    events = flare_events(registry).select("patient_id", pl.col("date").alias("next_flare")).unique().sort(
        "patient_id", "next_flare")
    horizon = dt.timedelta(days=horizon_days)
    left = days.lazy().with_columns((pl.col("date") + dt.timedelta(days=1)).alias("_from")).sort("patient_id", "_from")
    return (
        left.join_asof(events.lazy(), left_on="_from", right_on="next_flare", by="patient_id", strategy="forward",
                       check_sortedness=False)
        .join(followup_end(registry), on="patient_id", how="left")
        .with_columns(
            pl.when(pl.col("followup_end") >= pl.col("date") + horizon)
            .then(pl.col("next_flare").is_not_null() & (pl.col("next_flare") <= pl.col("date") + horizon))
            .alias("flare")
        )
        .drop("_from", "followup_end")
        .sort("patient_id", "date")
        .collect()
    )
