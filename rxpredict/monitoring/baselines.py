"""Personal baselines of the wearable streams: what is usual for this patient, and how far each day is from it.

People differ far more from each other than from their own usual week:
8,000 steps is a bad day for one patient and a good one for another. So each
stream is compared with the patient's own robust baseline:

- **Non-wear.** A device day without steps is unworn, and so is a day with no
  heart rate, no sleep and a step count below a quarter of the patient's usual
  (the watch worn for an hour): its device streams become missing, never zero
  activity. Self reports (pain, stiffness) are kept either way.
- **Baseline.** The median of the stream over the 56 days that end 7 days
  before the day (at least 14 observed), so a week-long lead-up into a flare
  does not drag the baseline along with it. Its **scale** is the interquartile
  range / 1.349 over the same days (the normal-equivalent SD, robust to the odd
  wild day), floored at the smallest change that matters for the stream.
- **Deviations** in scale units: the day's (``_z``), the mean of the last 7
  and 28 observed days (``_dev7``, ``_dev28``) and the least-squares slope over
  the last 28 days per week (``_slope28``).

Everything is one lazy polars pipeline over a dense daily grid per patient
(days without a row are missing days, not dropped days).
"""
from __future__ import annotations

import polars as pl

from rxpredict.schemas import load_contract

BASELINE_DAYS = 56
BASELINE_GAP_DAYS = 7
MIN_BASELINE_DAYS = 14
#: A device day below this share of the patient's usual steps, with no heart rate and no sleep, was hardly worn.
PARTIAL_WEAR_SHARE = 0.25
#: Without a usual step count yet (the first days), fewer steps than this with no heart rate and no sleep.
PARTIAL_WEAR_STEPS = 300
USUAL_STEPS_DAYS = 28
#: The smallest change in each stream that matters: a floor under the scale (units of the stream).
SCALE_FLOOR = {"steps": 400.0, "active_min": 5.0, "sleep_min": 15.0, "resting_hr_bpm": 1.5, "pain_0_10": 0.5,
               "stiffness_min": 5.0}
TREND_DAYS = (7, 28)


def streams() -> dict[str, str]:
    """The wearables table's streams and who records each (``device`` or ``self_report``), from the schema."""
    table = load_contract().tables["wearables"]
    return {f.name: f.recorded_by for f in table.fields if f.recorded_by}


def daily_grid(wearables: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """Every patient's days from the first to the last wearable row, one row each (missing days are nulls)."""
    wear = wearables.lazy()
    span = wear.group_by("patient_id").agg(pl.date_ranges(pl.col("date").min(), pl.col("date").max()).first().alias("date"))
    return span.explode("date").join(wear, on=["patient_id", "date"], how="left").sort("patient_id", "date")


def mark_nonwear(grid: pl.LazyFrame) -> pl.LazyFrame:
    """``worn`` per day, and the device streams set to null on unworn days."""
    device = [s for s, by in streams().items() if by == "device"]
    usual = (pl.col("steps").rolling_median(USUAL_STEPS_DAYS, min_samples=7).shift(1)).over("patient_id")
    hardly = pl.col("steps") < pl.when(usual.is_not_null()).then(usual * PARTIAL_WEAR_SHARE).otherwise(PARTIAL_WEAR_STEPS)
    worn = pl.col("steps").is_not_null() & ~(pl.col("resting_hr_bpm").is_null() & pl.col("sleep_min").is_null() & hardly)
    return grid.with_columns(worn.alias("worn")).with_columns(
        pl.when(pl.col("worn")).then(pl.col(s)).alias(s) for s in device)


def _baseline(s: str) -> list[pl.Expr]:
    x = pl.col(s).cast(pl.Float64)
    lagged = lambda e: e.shift(BASELINE_GAP_DAYS).over("patient_id")  # noqa: E731
    window = dict(window_size=BASELINE_DAYS, min_samples=MIN_BASELINE_DAYS)
    iqr = x.rolling_quantile(0.75, **window) - x.rolling_quantile(0.25, **window)
    return [lagged(x.rolling_median(**window)).alias(f"{s}_baseline"),
            pl.max_horizontal(lagged(iqr) / 1.349, pl.lit(SCALE_FLOOR[s])).alias(f"{s}_scale")]


def _trends(s: str) -> list[pl.Expr]:
    out = [pl.col(f"{s}_z").rolling_mean(n, min_samples=max(2, n // 4)).over("patient_id").alias(f"{s}_dev{n}")
            for n in TREND_DAYS]
    # Least-squares slope of z on the day number over the last 28 days, from rolling sums of the observed days.
    n = TREND_DAYS[-1]
    t = pl.int_range(pl.len()).over("patient_id").cast(pl.Float64)
    seen = pl.col(f"{s}_z").is_not_null().cast(pl.Float64)
    zz = pl.col(f"{s}_z").fill_null(0.0)
    roll = lambda e: e.rolling_sum(n, min_samples=1).over("patient_id")  # noqa: E731
    k, st, sz, stz, stt = roll(seen), roll(t * seen), roll(zz), roll(t * zz), roll(t * t * seen)
    slope = (k * stz - st * sz) / (k * stt - st * st)
    out.append(pl.when(k >= n // 4).then(slope * 7).alias(f"{s}_slope28"))
    return out


def personal_baselines(wearables: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """The dense daily grid with ``worn``, each stream's baseline, scale and deviations (see the module docstring)."""
    names = list(streams())
    return (
        mark_nonwear(daily_grid(wearables))
        .with_columns(e for s in names for e in _baseline(s))
        .with_columns(((pl.col(s) - pl.col(f"{s}_baseline")) / pl.col(f"{s}_scale")).alias(f"{s}_z") for s in names)
        .with_columns(e for s in names for e in _trends(s))
    )
