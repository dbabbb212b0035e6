"""Cohort descriptives: Kaplan-Meier curves per therapy option with confidence bands, numbers at risk, log-rank.

Data only (polars frames and dicts); rxpredict/survival/plots.py draws them.
Outcomes: ``"retention"`` (no stop for inefficacy or an adverse event;
episodes with a baseline visit, as the retention model) and ``"progression"``
(no rapid radiographic progression seen; episodes with radiographs). The
curves are unadjusted: they describe who received what, not what an option
would do for the same patients (the models adjust for that).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from rxpredict.survival.data import progression_time_data, retention_data

OUTCOMES = ("retention", "progression")


def outcome_data(cohort: pl.DataFrame, outcome: str) -> pl.DataFrame:
    """The episodes of one outcome with ``therapy``, ``duration`` (days) and ``event``."""
    if outcome == "retention":
        return retention_data(cohort).filter(pl.col("baseline_visit_date").is_not_null())
    if outcome == "progression":
        return progression_time_data(cohort)
    raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")


def kaplan_meier(cohort: pl.DataFrame, outcome: str = "retention", alpha: float = 0.05) -> pl.DataFrame:
    """Per option and distinct time: survival, its (1 - alpha) band (lifelines' exponential Greenwood), and
    the numbers at risk, with events and censored there. Columns name the band's level (``lower_95``)."""
    rows = outcome_data(cohort, outcome)
    level = f"{round(100 * (1 - alpha)):d}"
    parts = []
    for (option,), part in rows.group_by("therapy", maintain_order=True):
        km = KaplanMeierFitter(alpha=alpha).fit(part["duration"].to_numpy(), part["event"].to_numpy())
        band = km.confidence_interval_survival_function_.to_numpy()
        table = km.event_table
        parts.append(pl.DataFrame({
            "therapy": option, "time_days": km.survival_function_.index.to_numpy().astype(float),
            "survival": km.survival_function_.to_numpy()[:, 0], f"lower_{level}": band[:, 0],
            f"upper_{level}": band[:, 1], "at_risk": table["at_risk"].to_numpy().astype(np.int64),
            "events": table["observed"].to_numpy().astype(np.int64),
            "censored": table["censored"].to_numpy().astype(np.int64),
        }))
    if not parts:
        raise ValueError(f"no episodes with a {outcome} time in this cohort")
    return pl.concat(parts).sort("therapy", "time_days", maintain_order=True)


def number_at_risk(curves: pl.DataFrame, times: Sequence[float]) -> pl.DataFrame:
    """Per option (rows) and time (columns ``"0"``, ``"365"``, ...): episodes still at risk then."""
    out = []
    for (option,), part in curves.group_by("therapy", maintain_order=True):
        t, at_risk = part["time_days"].to_numpy(), part["at_risk"].to_numpy()
        index = np.searchsorted(t, np.asarray(times, dtype=float), side="left")
        counts = np.where(index < len(t), at_risk[np.minimum(index, len(t) - 1)], 0)
        out.append({"therapy": option, **{f"{x:g}": int(c) for x, c in zip(times, counts)}})
    return pl.DataFrame(out)


def logrank(cohort: pl.DataFrame, outcome: str = "retention") -> dict[str, object]:
    """lifelines' multivariate log-rank test of equal curves across the options present."""
    rows = outcome_data(cohort, outcome)
    options = rows["therapy"].unique().sort().to_list()
    if len(options) < 2:
        raise ValueError(f"the log-rank test needs two options with a {outcome} time, got {options}")
    test = multivariate_logrank_test(rows["duration"].to_numpy(), rows["therapy"].to_numpy(), rows["event"].to_numpy())
    return {"outcome": outcome, "statistic": float(test.test_statistic), "p": float(test.p_value),
            "degrees_of_freedom": int(test.degrees_of_freedom), "options": options, "episodes": rows.height}
