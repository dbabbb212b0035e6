"""From a registry to a fitted flare monitor, and from a monitor to today's risks and alerts.

- :func:`labelled_days`: every wearable patient-day with its 28-day flare label (censored days left out).
- :func:`fit_monitor`: split patients into training and held-out, fit the
  network (it holds out its own patients to stop and calibrate), fit the alert
  policy on the held-out patients' daily risks, measure AUROC, ECE, Brier,
  sensitivity and lead time there.
- :func:`score_patients`: each patient's risk on a date from the last 56
  days, the alert (the policy replayed over the preceding quiet days, so an
  alert is not repeated) and the reasons.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from rxpredict.bundle import cohort_hash
from rxpredict.metrics import auroc, brier, expected_calibration_error
from rxpredict.monitoring.alerts import AlertPolicy, alert_performance
from rxpredict.monitoring.flares import flare_events, flare_labels
from rxpredict.monitoring.model import FlareRiskModel
from rxpredict.monitoring.reasons import background_sample, reasons_frame
from rxpredict.monitoring.windows import WINDOW_DAYS, build_windows
from rxpredict.registry import Registry


@dataclass
class FittedMonitor:
    """A fitted model with its alert policy, SHAP background, held-out figures and the training summary;
    ``train`` holds the training days (patient_id, date, flare), ``held_out`` the held-out days with their risk."""

    model: FlareRiskModel
    policy: AlertPolicy
    background: tuple[np.ndarray, np.ndarray]
    metrics: dict[str, float]
    training: dict[str, object]
    train: pl.DataFrame
    held_out: pl.DataFrame


def labelled_days(registry: Registry) -> pl.DataFrame:
    """patient_id, date, flare for every wearable patient-day whose 28-day label is known."""
    days = registry["wearables"].select("patient_id", "date")
    return flare_labels(days, registry).filter(pl.col("flare").is_not_null()).select("patient_id", "date", "flare")


def held_out_metrics(scores: pl.DataFrame, policy: AlertPolicy, registry: Registry) -> dict[str, float]:
    """AUROC, ECE, Brier of ``scores`` (patient_id, date, flare, p_flare_28d) and the policy's alert figures."""
    y, p = scores["flare"].to_numpy().astype(int), scores["p_flare_28d"].to_numpy()
    alerts = policy.apply(scores)
    return {"auroc": auroc(y, p), "ece": expected_calibration_error(y, p), "brier": brier(y, p),
            "flare_rate": float(y.mean()), "patient_days": float(len(y)),
            **alert_performance(alerts, flare_events(registry))}


def fit_monitor(registry: Registry, *, held_out_fraction: float = 0.25, stride: int = 2, seed: int = 0,
                budget_per_month: float = 1.0, progress: bool = True, **params: object) -> FittedMonitor:
    """Fit the flare monitor on a registry's wearable patient-days (every ``stride``-th day for training)."""
    days = labelled_days(registry)
    if days.is_empty():
        raise ValueError("the registry has no labelled wearable patient-days: nothing to train a monitor on")
    rng = np.random.default_rng(seed)
    patients = days["patient_id"].unique().sort().to_numpy()
    held = set(rng.choice(patients, size=max(1, int(len(patients) * held_out_fraction)), replace=False).tolist())
    is_held = days["patient_id"].is_in(list(held))
    train = days.filter(~is_held).gather_every(stride)
    test = days.filter(is_held)
    windows = build_windows(registry, train.select("patient_id", "date"))
    model = FlareRiskModel(seed=seed, progress=progress, **params).fit(windows, train["flare"].to_numpy())
    test_windows = build_windows(registry, test.select("patient_id", "date"))
    scores = test.with_columns(pl.Series("p_flare_28d", model.predict_proba(test_windows)))
    policy = AlertPolicy(budget_per_month=budget_per_month).fit(scores)
    training = {"patients": int(len(patients) - len(held)), "patient_days": train.height,
                "flare_rate": float(train["flare"].mean()), "hash": cohort_hash(train)}
    return FittedMonitor(model=model, policy=policy, background=background_sample(model, windows, seed=seed),
                         metrics=held_out_metrics(scores, policy, registry), training=training, train=train,
                         held_out=scores)


def score_patients(model: FlareRiskModel, policy: AlertPolicy, background: tuple[np.ndarray, np.ndarray],
                   registry: Registry, at: dt.date, *, patients: list[str] | None = None,
                   reasons: bool = True, replay: bool = True) -> pl.DataFrame:
    """One row per patient with wearable data in the 56 days up to ``at``: date, p_flare_28d, alert, reasons.

    With ``replay`` (a caller that keeps no alerts and scores every day, such
    as the CLI) the policy is replayed over the ``quiet_days`` before ``at``
    so that an alert raised then is not raised again; without it, ``alert``
    is set wherever the risk on ``at`` reaches the threshold, and repeats are
    left to whoever keeps the alerts (the app's store: a replay there would
    silence a patient behind an alert on a day nobody scored). Reasons (moved
    streams and SHAP) are computed for the alerts, or for everyone with
    ``reasons=True``.
    """
    start = at - dt.timedelta(days=WINDOW_DAYS - 1)
    active = registry.lazy("wearables").filter(pl.col("date").is_between(start, at))
    if patients is not None:
        active = active.filter(pl.col("patient_id").is_in(patients))
    ids = active.select("patient_id").unique().sort("patient_id").collect()
    if ids.is_empty():
        return pl.DataFrame(schema={"patient_id": pl.String, "date": pl.Date, "p_flare_28d": pl.Float64,
                                    "alert": pl.Boolean, "reasons": pl.String, "shap": pl.String})
    days = pl.date_range(at - dt.timedelta(days=(policy.quiet_days if replay else 1) - 1), at, eager=True)
    keys = ids.join(days.alias("date").to_frame(), how="cross")
    windows = build_windows(registry, keys)
    scored = keys.with_columns(pl.Series("p_flare_28d", model.predict_proba(windows)))
    today = policy.apply(scored).filter(pl.col("date") == at)
    out = today.select("patient_id", "date", "p_flare_28d", "alert")
    explain = out["alert"].to_numpy() | reasons
    text = pl.Series("reasons", [""] * out.height, dtype=pl.String)
    shap_json = pl.Series("shap", [None] * out.height, dtype=pl.String)
    if explain.any():
        rows = np.flatnonzero(explain)
        positions = scored.with_row_index("_i").filter(pl.col("date") == at).sort("patient_id")["_i"].to_numpy()
        why = reasons_frame(model, windows.take(positions[rows]), background)
        text = text.scatter(rows, why["reasons"])
        shap_json = shap_json.scatter(rows, why["shap"])
    return out.with_columns(text, shap_json).sort("p_flare_28d", descending=True)
