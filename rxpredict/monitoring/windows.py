"""What the flare-risk models see on a patient-day: the last 56 days of streams and the clinical context.

For each requested (patient_id, date):
- ``sequence``: days t-55 .. t, per stream its deviation from the personal
  baseline in scale units (clipped to +/-5, 0 where missing) and whether it
  was observed; a day before the patient's first wearable record, or an
  unworn one, is missing (the model gets the mask, never a fake zero);
- ``summary``: per stream the day's deviation, the 7-day mean, the 7- and
  28-day deviations, the 28-day slope, the observed days in the last 28 and
  the baseline level
  (what a summary-feature model such as gradient boosting uses);
- ``context``: the last visit's DAS28 (DAS28-CRP, else DAS28-ESR), its change
  from the visit before, days since it, flares in the past year and days
  since the latest (how recent the last flare was says much about the next), the therapy
  options and glucocorticoid running on the day, days since the latest start,
  age, sex and seropositivity. Nothing dated after the day is used.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from rxpredict.clinical import das28_crp, das28_esr
from rxpredict.monitoring.baselines import (BASELINE_DAYS, BASELINE_GAP_DAYS, TREND_DAYS, USUAL_STEPS_DAYS,
                                            personal_baselines, streams)
from rxpredict.monitoring.flares import flare_events
from rxpredict.registry import Registry
from rxpredict.schemas import load_contract

WINDOW_DAYS = 56
Z_CLIP = 5.0
#: History the window's first day needs before it: its baseline's days, and the usual step count that decides
#: whether the earliest of those was worn. With less, a day's inputs would depend on the other days requested.
HISTORY_DAYS = WINDOW_DAYS + BASELINE_GAP_DAYS + BASELINE_DAYS + USUAL_STEPS_DAYS
YEAR = dt.timedelta(days=365)


@dataclass
class Windows:
    """Model inputs for a set of patient-days, row-aligned with ``keys``."""

    keys: pl.DataFrame
    sequence: np.ndarray
    sequence_names: list[str]
    summary: pl.DataFrame
    context: pl.DataFrame

    def __len__(self) -> int:
        return self.keys.height

    def take(self, rows: np.ndarray) -> "Windows":
        """The windows of these row numbers."""
        idx = pl.Series(np.asarray(rows, dtype=np.int64))
        return Windows(self.keys[idx], self.sequence[rows], self.sequence_names, self.summary[idx], self.context[idx])


def sequence_names() -> list[str]:
    """Channel names of ``Windows.sequence``: each stream's ``_z`` then its ``_seen``."""
    return [f"{s}_{part}" for s in streams() for part in ("z", "seen")]


def _summary() -> list[pl.Expr]:
    out = []
    for s in streams():
        out += [pl.col(f"{s}_z").alias(f"{s}_today"), pl.col(s).rolling_mean(7, min_samples=2).over("patient_id")
                .alias(f"{s}_mean7")]
        out += [pl.col(f"{s}_dev{n}") for n in TREND_DAYS] + [pl.col(f"{s}_slope28")]
        out += [pl.col(s).is_not_null().cast(pl.Int32).rolling_sum(28, min_samples=1).over("patient_id")
                .alias(f"{s}_days28"), pl.col(f"{s}_baseline")]
    return out


def _gather(grid: pl.DataFrame, keys: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of each key's 56 days in the dense grid, and whether each exists (False before the first day)."""
    first = grid.with_row_index("_row").group_by("patient_id").agg(pl.col("date").first().alias("_first"),
                                                                      pl.col("_row").first(), pl.len().alias("_n"))
    at = keys.join(first, on="patient_id", how="left", maintain_order="left").with_columns(
        (pl.col("date") - pl.col("_first")).dt.total_days().alias("_offset"))
    offset = at["_offset"].fill_null(-(10**6)).to_numpy()[:, None] + np.arange(-WINDOW_DAYS + 1, 1)[None, :]
    n = at["_n"].fill_null(0).to_numpy()[:, None]
    ok = (offset >= 0) & (offset < n)
    rows = at["_row"].fill_null(0).to_numpy()[:, None] + np.where(ok, offset, 0)
    return rows, ok


def _visits_asof(keys: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    on_crp = pl.col("crp_mg_l").is_not_null()
    das = (
        registry.lazy("visits").sort("patient_id", "visit_date")
        .with_columns(das28_crp(), das28_esr())
        .with_columns(pl.when(on_crp).then("das28_crp").otherwise("das28_esr").alias("last_das28"))
        .with_columns((pl.col("last_das28") - pl.col("last_das28").shift(1).over("patient_id")).alias("last_das28_change"))
        .select("patient_id", "visit_date", "last_das28", "last_das28_change")
        .collect()
    )
    return (
        keys.sort("patient_id", "date")
        .join_asof(das, left_on="date", right_on="visit_date", by="patient_id", strategy="backward",
                   check_sortedness=False)
        .with_columns((pl.col("date") - pl.col("visit_date")).dt.total_days().alias("days_since_visit"))
        .drop("visit_date")
    )


def _therapy_on(keys: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    options = load_contract().option_names
    drugs = load_contract().drug_frame.select("drug", pl.col("therapy_option").fill_null("glucocorticoid"))
    running = (pl.col("start_date") <= pl.col("date")) & (pl.col("stop_date").is_null() | (pl.col("stop_date") > pl.col("date")))
    on = (
        keys.lazy().join(registry.lazy("treatments").join(drugs.lazy(), on="drug"), on="patient_id")
        .filter(pl.col("start_date") <= pl.col("date"))
        .group_by("patient_id", "date")
        .agg(
            *((running & (pl.col("therapy_option") == o)).any().alias(f"on_{o}") for o in [*options, "glucocorticoid"]),
            (pl.col("date").first() - pl.col("start_date").filter(pl.col("therapy_option") != "glucocorticoid").max())
            .dt.total_days().alias("days_since_start"),
            (pl.col("date").first() - pl.col("stop_date").filter((pl.col("therapy_option") == "glucocorticoid")
                                                        & (pl.col("stop_date") <= pl.col("date"))).max())
            .dt.total_days().alias("days_since_glucocorticoid_stop"),
        )
        .collect()
    )
    flags = [c for c in on.columns if c.startswith("on_")]
    return keys.join(on, on=["patient_id", "date"], how="left").with_columns(pl.col(flags).fill_null(False))


def _flare_history(keys: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """Flares in the year up to each key's day, and days since the latest (null: none seen)."""
    events = flare_events(registry).select("patient_id", pl.col("date").alias("_event")).unique()
    seen = keys.join(events, on="patient_id").filter(pl.col("_event") <= pl.col("date"))
    history = seen.group_by("patient_id", "date").agg(
        (pl.col("_event") > pl.col("date") - YEAR).sum().cast(pl.Float64).alias("flares_past_year"),
        (pl.col("date").first() - pl.col("_event").max()).dt.total_days().cast(pl.Float64).alias("days_since_flare"))
    return keys.join(history, on=["patient_id", "date"], how="left").with_columns(pl.col("flares_past_year").fill_null(0.0))


def _patients(keys: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    p = registry["patients"].select(
        "patient_id", "birth_year", (pl.col("sex") == "F").cast(pl.Float64).alias("female"),
        (pl.col("rf_positive").fill_null(False) | pl.col("acpa_positive").fill_null(False)).cast(pl.Float64)
        .alias("seropositive"))
    return keys.join(p, on="patient_id", how="left").with_columns(
        (pl.col("date").dt.year() - pl.col("birth_year")).cast(pl.Float64).alias("age")).drop("birth_year")


def context_features(keys: pl.DataFrame, registry: Registry) -> pl.DataFrame:
    """The clinical context of each key (columns after patient_id and date), in the keys' order."""
    parts = [_visits_asof(keys, registry), _therapy_on(keys, registry), _flare_history(keys, registry),
             _patients(keys, registry)]
    out = keys
    for part in parts:
        out = out.join(part, on=["patient_id", "date"], how="left", maintain_order="left")
    return out.drop("patient_id", "date").with_columns(pl.all().cast(pl.Float64))


def build_windows(registry: Registry, keys: pl.DataFrame) -> Windows:
    """Sequences, summaries and context of the patient-days ``keys`` (patient_id, date), in their order."""
    keys = keys.select("patient_id", pl.col("date").cast(pl.Date))
    names = list(streams())
    horizon = keys.group_by("patient_id").agg(pl.col("date").max().alias("_last"),
                                               (pl.col("date").min() - dt.timedelta(days=HISTORY_DAYS)).alias("_from"))
    wear = registry.lazy("wearables").join(horizon.lazy(), on="patient_id").filter(
        pl.col("date").is_between("_from", "_last")).drop("_last", "_from")
    # The grid reaches each patient's latest requested day, so a day after the last record is a missing day.
    ends = horizon.lazy().join(wear.select("patient_id").unique(), on="patient_id", how="semi")
    padded = pl.concat([wear, ends.select("patient_id", pl.col("_last").alias("date"))], how="diagonal").unique(
        ["patient_id", "date"], keep="first")
    summary_exprs = _summary()
    grid = personal_baselines(padded).with_columns(summary_exprs).collect()
    rows, ok = _gather(grid, keys)
    z = grid.select(pl.col(f"{s}_z").clip(-Z_CLIP, Z_CLIP) for s in names).to_numpy().astype(np.float32)
    seen = np.isfinite(z)
    day_values = np.concatenate([np.nan_to_num(z)[:, :, None], seen[:, :, None].astype(np.float32)], axis=2)
    sequence = day_values.reshape(len(grid), -1)[rows] * ok[:, :, None]
    summary_names = {e.meta.output_name() for e in summary_exprs}
    summary_cols = [c for c in grid.columns if c in summary_names]
    summary = keys.join(grid.select("patient_id", "date", *summary_cols), on=["patient_id", "date"], how="left",
                        maintain_order="left").drop("patient_id", "date")
    return Windows(keys=keys, sequence=sequence.astype(np.float32), sequence_names=sequence_names(), summary=summary,
                   context=context_features(keys, registry))
