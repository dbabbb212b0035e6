"""Alerts from daily flare risks under an alert budget, and what they catch.

A clinic can follow up only so many alerts. The policy raises an alert on a
patient-day whose risk reaches the threshold, unless the patient had one in
the last ``quiet_days`` (the same flare is not announced twice); the
threshold is the lowest one whose alerts stay within ``budget_per_month``
alerts per patient-month on the scores it is fitted on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

DAYS_PER_MONTH = 365.25 / 12


def _alerts(patient: np.ndarray, day: np.ndarray, p: np.ndarray, threshold: float, quiet_days: int) -> np.ndarray:
    """Alert flags for rows sorted by patient and day (only rows at or above the threshold are visited)."""
    alert = np.zeros(p.size, dtype=bool)
    last_patient, last_day = None, -np.inf
    for i in np.flatnonzero(p >= threshold):
        if patient[i] != last_patient:
            last_patient, last_day = patient[i], -np.inf
        if day[i] - last_day >= quiet_days:
            alert[i], last_day = True, day[i]
    return alert


@dataclass
class AlertPolicy:
    """Alert when P(flare in 28 days) reaches ``threshold_``, at most once per ``quiet_days`` per patient.

    Parameters
    ----------
    budget_per_month : alerts per patient-month, on average, that the fitted threshold allows
    quiet_days : days after an alert in which the same patient gets no new one
    """

    budget_per_month: float = 1.0
    quiet_days: int = 14
    threshold_: float | None = None

    def _arrays(self, scores: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        s = scores.sort("patient_id", "date")
        return (s, s["patient_id"].to_numpy(), s["date"].cast(pl.Int64).to_numpy(),
                s["p_flare_28d"].to_numpy().astype(float))

    def fit(self, scores: pl.DataFrame) -> "AlertPolicy":
        """The lowest threshold within the budget, on daily scores (patient_id, date, p_flare_28d)."""
        _, patient, day, p = self._arrays(scores)
        months = scores.height / DAYS_PER_MONTH
        allowed = self.budget_per_month * months
        candidates = np.unique(np.quantile(p, np.linspace(0.5, 1.0, 501)))
        lo, hi = 0, len(candidates) - 1  # alerts fall as the threshold rises: bisect for the first within budget
        while lo < hi:
            mid = (lo + hi) // 2
            if _alerts(patient, day, p, candidates[mid], self.quiet_days).sum() <= allowed:
                hi = mid
            else:
                lo = mid + 1
        self.threshold_ = float(candidates[lo])
        return self

    def apply(self, scores: pl.DataFrame) -> pl.DataFrame:
        """``scores`` sorted by patient and date, with ``alert``."""
        if self.threshold_ is None:
            raise RuntimeError("this AlertPolicy is not fitted: call fit() on daily scores first")
        s, patient, day, p = self._arrays(scores)
        return s.with_columns(pl.Series("alert", _alerts(patient, day, p, self.threshold_, self.quiet_days)))


def alert_performance(alerts: pl.DataFrame, events: pl.DataFrame, horizon_days: int = 28) -> dict[str, float]:
    """Sensitivity, median lead time, alerts per patient-month and PPV of alerts against flare events.

    ``alerts``: daily rows (patient_id, date, alert); ``events``: (patient_id, date) of flares. A flare
    counts when the patient was scored on every one of the ``horizon_days`` days before it; it is caught
    when an alert fell in them, and the lead time is the days from the earliest such alert to the flare.
    An alert is a true one when a flare follows within ``horizon_days``.
    """
    span = alerts.group_by("patient_id").agg(pl.col("date").min().alias("_first"), pl.col("date").max().alias("_last"))
    horizon = pl.duration(days=horizon_days)
    flares = (
        events.select("patient_id", pl.col("date").alias("flare")).unique()
        .join(span, on="patient_id")
        .filter((pl.col("flare") - horizon >= pl.col("_first")) & (pl.col("flare") - pl.duration(days=1) <= pl.col("_last")))
    )
    raised = alerts.filter("alert").select("patient_id", pl.col("date").alias("alert_date"))
    before = (
        flares.join(raised, on="patient_id", how="left")
        .with_columns(pl.col("alert_date").is_between(pl.col("flare") - horizon, pl.col("flare") - pl.duration(days=1))
                      .fill_null(False).alias("_in"))
        .group_by("patient_id", "flare")
        .agg(pl.col("alert_date").filter("_in").min().alias("first_alert"))
        .with_columns((pl.col("flare") - pl.col("first_alert")).dt.total_days().alias("lead_days"))
    )
    followed = (
        raised.join(events.select("patient_id", pl.col("date").alias("flare")), on="patient_id", how="left")
        .with_columns(((pl.col("flare") > pl.col("alert_date")) & (pl.col("flare") <= pl.col("alert_date") + horizon))
                      .fill_null(False).alias("_hit"))
        .group_by("patient_id", "alert_date").agg(pl.col("_hit").any())
    )
    caught = before["first_alert"].is_not_null()
    return {
        "flares": float(before.height),
        "sensitivity": float(caught.mean()) if before.height else float("nan"),
        "median_lead_days": float(before["lead_days"].drop_nulls().median() or float("nan")),
        "alerts_per_patient_month": float(raised.height / (alerts.height / DAYS_PER_MONTH)) if alerts.height else 0.0,
        "ppv": float(followed["_hit"].mean()) if followed.height else float("nan"),
    }
