"""Evaluate a response model on a cohort: against what happened, and against the truth where an oracle exists."""
from __future__ import annotations

import numpy as np
import polars as pl

from rxpredict import metrics
from rxpredict.models.response import ResponseModel

KEY = ["patient_id", "index_date", "therapy"]


def evaluate_response(model: ResponseModel, cohort: pl.DataFrame, oracle: pl.DataFrame | None = None) -> dict:
    """Figures for P(response) at 24 weeks.

    At the option each patient received (labelled episodes): AUROC, AUPRC,
    Brier, ECE, calibration slope and intercept. With a simulator's
    ``oracle``: PEHE of each option's effect versus methotrexate, policy
    regret and value of recommending the highest predicted option, the share
    of true probabilities inside the 90 % intervals, and the oracle's own
    AUROC at the option given (the best any model can do).
    """
    episodes = cohort.filter(pl.col("therapy").is_not_null() & pl.col("baseline_visit_date").is_not_null())
    pred = model.predict_options(episodes)
    given = pred.join(episodes.filter(pl.col("response").is_not_null()).select(*KEY, "response"), on=KEY)
    y, p = given["response"].cast(pl.Int64).to_numpy(), given["p_response"].to_numpy()
    slope, intercept = metrics.calibration_slope_intercept(y, p)
    out: dict = {
        "labelled_episodes": len(y), "auroc": metrics.auroc(y, p), "auprc": metrics.auprc(y, p),
        "brier": metrics.brier(y, p), "ece": metrics.expected_calibration_error(y, p),
        "calibration_slope": slope, "calibration_intercept": intercept,
    }
    if oracle is None:
        return out
    truth = pred.join(oracle.select(*KEY, pl.col("p_response").alias("p_true")), on=KEY)
    wide = truth.pivot(on="therapy", index=["patient_id", "index_date"], values=["p_response", "p_true"])
    options = model.options_
    est = wide.select(f"p_response_{o}" for o in options).to_numpy()
    true = wide.select(f"p_true_{o}" for o in options).to_numpy()
    pehe = metrics.pehe_vs_reference(true, est, options=options, reference="csdmard_mtx")
    at_given = given.join(oracle.select(*KEY, pl.col("p_response").alias("p_true")), on=KEY)
    out |= {
        "pehe_vs_mtx": pehe.mean, "policy_regret": metrics.policy_regret(true, est),
        "policy_value": metrics.policy_value(true, est),
        "interval_coverage": metrics.interval_coverage(truth["p_true"], truth["p_response_low"],
                                                       truth["p_response_high"]),
        "interval_width": metrics.mean_interval_width(truth["p_response_low"], truth["p_response_high"]),
        "oracle_auroc": metrics.auroc(at_given["response"].cast(pl.Int64).to_numpy(), at_given["p_true"].to_numpy()),
        "episodes_with_oracle": int(np.isfinite(true).all(axis=1).sum()),
    }
    return out
