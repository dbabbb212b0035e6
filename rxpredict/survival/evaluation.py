"""Survival metrics and the evaluation of fitted progression and retention models on a cohort.

Pure functions in the style of rxpredict/metrics.py (arrays in, floats out,
bad input raises naming the argument): Harrell's C-index, the IPCW Brier
score at a time and integrated over times, and the calibration error of
predicted risks at a horizon against Kaplan-Meier estimates per risk decile.
:func:`evaluate_survival` applies them to the models on a cohort (what
``rxpredict evaluate`` reports), and compares with a simulator's oracle.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from lifelines import KaplanMeierFitter
from lifelines.utils import concordance_index as _lifelines_concordance

from rxpredict import metrics
from rxpredict.survival.data import progression_label_data, progression_time_data, retention_data

if TYPE_CHECKING:
    from rxpredict.survival.progression import ProgressionModel
    from rxpredict.survival.retention import RetentionModel

KEY = ["patient_id", "index_date", "therapy"]
#: The integrated Brier score runs over the first two years.
IBS_DAYS = 730


def _survival_inputs(duration: object, event: object) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(duration, dtype=float)
    e = np.asarray(event, dtype=bool)
    if d.ndim != 1 or d.size == 0 or d.shape != e.shape:
        raise ValueError(f"duration and event must be 1-D of the same non-zero length, got {d.shape} and {e.shape}")
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("duration must be finite and non-negative")
    return d, e


def concordance(duration: object, event: object, risk: object) -> float:
    """Harrell's C-index: the share of comparable pairs where the higher risk has the earlier event."""
    d, e = _survival_inputs(duration, event)
    r = np.asarray(risk, dtype=float)
    if r.shape != d.shape or not np.isfinite(r).all():
        raise ValueError(f"risk must be finite with shape {d.shape}, got {r.shape}")
    return float(_lifelines_concordance(d, -r, e))


def _censoring_survival(d: np.ndarray, e: np.ndarray) -> KaplanMeierFitter:
    return KaplanMeierFitter().fit(d, ~e)


def brier_at(duration: object, event: object, survival: object, time: float,
             censoring: KaplanMeierFitter | None = None) -> float:
    """IPCW Brier score of predicted P(no event by ``time``) (Graf et al.): censoring weighted by its KM."""
    d, e = _survival_inputs(duration, event)
    s = np.asarray(survival, dtype=float)
    if s.shape != d.shape:
        raise ValueError(f"survival must have shape {d.shape}, got {s.shape}")
    g = censoring or _censoring_survival(d, e)
    g_before = np.clip(g.survival_function_at_times(np.maximum(d - 1e-9, 0)).to_numpy(), 1e-3, None)
    g_time = max(float(g.survival_function_at_times(time).iloc[0]), 1e-3)
    died = (d <= time) & e
    alive = d > time
    return float(np.mean(np.where(died, s**2 / g_before, 0) + np.where(alive, (1 - s) ** 2 / g_time, 0)))


def integrated_brier_score(duration: object, event: object, survival: np.ndarray, times: np.ndarray) -> float:
    """The IPCW Brier score averaged over ``times`` (trapezoid rule); ``survival`` is (rows, times)."""
    d, e = _survival_inputs(duration, event)
    times = np.asarray(times, dtype=float)
    if survival.shape != (d.size, times.size) or times.size < 2:
        raise ValueError(f"survival must have shape {(d.size, times.size)} with at least two times")
    g = _censoring_survival(d, e)
    scores = np.array([brier_at(d, e, survival[:, j], t, g) for j, t in enumerate(times)])
    return float(np.trapezoid(scores, times) / (times[-1] - times[0]))


def calibration_error_at(duration: object, event: object, risk: object, time: float, n_bins: int = 10) -> float:
    """Mean |predicted risk - observed risk| at ``time`` over risk-quantile bins, weighted by bin size.

    The observed risk of a bin is 1 - its Kaplan-Meier survival at ``time`` (censoring handled).
    """
    d, e = _survival_inputs(duration, event)
    r = np.asarray(risk, dtype=float)
    if r.shape != d.shape:
        raise ValueError(f"risk must have shape {d.shape}, got {r.shape}")
    edges = np.unique(np.quantile(r, np.linspace(0, 1, n_bins + 1)))
    bins = np.searchsorted(edges[1:-1], r, side="right")
    total = 0.0
    for b in np.unique(bins):
        inside = bins == b
        km = KaplanMeierFitter().fit(d[inside], e[inside])
        observed = 1 - float(km.survival_function_at_times(time).iloc[0])
        total += inside.sum() * abs(r[inside].mean() - observed)
    return float(total / len(r))


def evaluate_survival(cohort: pl.DataFrame, progression: ProgressionModel | None = None,
                      retention: RetentionModel | None = None, oracle: pl.DataFrame | None = None) -> dict:
    """C-index, integrated Brier score and 1-year calibration of each model at the option each episode received.

    Retention: on episodes with a baseline visit (C-index of p_stop_1y, IBS of
    the retention curve over the first two years, calibration of p_stop_1y at
    365 days). Progression: the same for time to RRP on episodes with
    radiographs (p_rrp, the RRP-free curve, calibration at the first follow-up
    radiograph, ``first_exam_days_``); AUROC and ECE of p_rrp on the observed
    first-year labels. With a simulator's ``oracle``: RMSE of p_rrp /
    p_stop_1y over every option and the oracle's own C-index (the ordering any
    model should approach).
    """
    out: dict = {}
    if retention is not None:
        rows = retention_data(cohort).filter(pl.col("baseline_visit_date").is_not_null())
        pred = retention.predict_options(rows)
        d, e = rows["duration"].to_numpy(), rows["event"].to_numpy()
        out["retention"] = {"episodes": rows.height, "events": int(e.sum())} | _time_to_event_figures(
            rows, _given(pred, rows)["p_stop_1y"].to_numpy(), retention.predict_curves(rows), "retention", 365)
        if oracle is not None:
            out["retention"] |= _against_oracle(pred, oracle, "p_stop_1y",
                                                given_rows=rows, duration=d, event=e)
    if progression is not None:
        timed = progression_time_data(cohort)
        labelled = progression_label_data(cohort)
        d, e = timed["duration"].to_numpy(), timed["event"].to_numpy()
        at_given = _given(progression.predict_options(timed), timed)
        labelled_pred = progression.predict_options(labelled)
        label_pred = _given(labelled_pred, labelled)
        y = labelled["rrp"].cast(pl.Int64).to_numpy()
        out["progression"] = {
            "episodes_timed": timed.height, "events": int(e.sum()), "episodes_labelled": labelled.height,
            **_time_to_event_figures(timed, at_given["p_rrp"].to_numpy(), progression.predict_curves(timed),
                                     "rrp_free", progression.first_exam_days_),
            "auroc_rrp": metrics.auroc(y, label_pred["p_rrp"].to_numpy()) if 0 < y.sum() < len(y) else None,
            "ece_rrp": metrics.expected_calibration_error(y, label_pred["p_rrp"].to_numpy()),
        }
        if oracle is not None:
            out["progression"] |= _against_oracle(labelled_pred, oracle, "p_rrp")
    return out


def _time_to_event_figures(rows: pl.DataFrame, risk: np.ndarray, curves: pl.DataFrame, column: str,
                           horizon: float) -> dict[str, float]:
    """C-index of ``risk`` (at the option given), IBS of the curves' ``column`` over the first two years,
    and the calibration of ``risk`` at ``horizon`` days, against ``rows``' durations and events."""
    d, e = rows["duration"].to_numpy(), rows["event"].to_numpy()
    given = _given(curves.filter(pl.col("time_days") <= IBS_DAYS), rows, curves=True)
    times = np.unique(given["time_days"].to_numpy())
    return {"c_index": concordance(d, e, risk),
            "integrated_brier_2y": integrated_brier_score(d, e, given[column].to_numpy().reshape(-1, times.size),
                                                          times),
            "calibration_error_1y": calibration_error_at(d, e, risk, horizon)}


def _given(pred: pl.DataFrame, rows: pl.DataFrame, curves: bool = False) -> pl.DataFrame:
    """The predictions at the option each row received, in the rows' order."""
    order = rows.select(KEY).with_row_index("_order")
    joined = order.join(pred, on=KEY, how="left")
    return joined.sort(["_order", "time_days"] if curves else "_order")


def _against_oracle(pred: pl.DataFrame, oracle: pl.DataFrame, column: str, given_rows: pl.DataFrame | None = None,
                    duration: np.ndarray | None = None, event: np.ndarray | None = None) -> dict:
    """RMSE of ``column`` against the oracle over every option, and the oracle's C-index at the option given."""
    joined = pred.join(oracle.select(*KEY, pl.col(column).alias("_true")), on=KEY, how="inner")
    out = {f"rmse_{column}": float(np.sqrt(np.mean((joined[column] - joined["_true"]).to_numpy() ** 2))),
           "oracle_rows": joined.height}
    if given_rows is not None:
        truth = given_rows.select(KEY).with_row_index("_order").join(
            oracle.select(*KEY, pl.col(column).alias("_true")), on=KEY, how="left").sort("_order")["_true"]
        known = truth.is_not_null().to_numpy()
        out["oracle_c_index"] = concordance(duration[known], event[known], truth.to_numpy()[known])
    return out
